//! A straightforward reference decoder for SPEC.md "Dataplane rules", written without looking at
//! the dataplane parser's structure: it decodes each layer into plain values, then decides.
//!
//! Limits the parser documents (and the spec leaves to the implementation) are restated here:
//! at most four VLAN tags, at most eight IPv6 extension headers, and no header field read
//! starting past byte 1024 of the frame (the eBPF verifier needs a bound). An IPv6 header that
//! starts where its fields would cross that window belongs to "a chain too long to walk".

/// What the dataplane must do with one frame, before allowlists are consulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not SMTP-bound.
    Pass,
    /// TCP to a blocked port, with everything the judge needs.
    Smtp(Smtp),
    /// Could be SMTP-bound and cannot be judged: dropped in enforce mode.
    Suspect(Reason),
    /// Broken, but cannot be SMTP-bound: passes, counted.
    Malformed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Smtp {
    /// 4 or 6.
    pub family: u8,
    /// IPv4 in the first four bytes, the rest zero.
    pub source: [u8; 16],
    pub destination: [u8; 16],
    pub port: u16,
    pub tcp_flags: u8,
    /// IP header plus payload, as the IP header states it.
    pub ip_len: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    TinyFragment,
    OverlapFragment,
    Ipv6Chain,
    Malformed,
}

pub const MAX_VLAN_TAGS: usize = 4;
pub const MAX_EXTENSION_HEADERS: usize = 8;
/// Last frame offset at which a header field may start.
pub const WINDOW_LAST_START: usize = 1024;
/// Last offset at which an IPv6 upper-layer or extension header may start: its furthest field
/// read (TCP flags, 13 bytes in) must still start inside the window.
pub const WALK_LAST_START: usize = WINDOW_LAST_START - 13;
const TCP: u8 = 6;
const TCP_MIN: usize = 20;

/// The frame as seen through the parser's window.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn get<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        if at > WINDOW_LAST_START {
            return None;
        }
        self.0.get(at..at + N)?.try_into().ok()
    }
    fn u8(&self, at: usize) -> Option<u8> {
        self.get::<1>(at).map(|b| b[0])
    }
    fn u16(&self, at: usize) -> Option<u16> {
        self.get::<2>(at).map(u16::from_be_bytes)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Decides one Ethernet frame against the blocked destination ports.
pub fn decide(frame: &[u8], blocked: &[u16]) -> Decision {
    let bytes = Bytes(frame);
    match network_header(&bytes) {
        Ok(Network::V4(at)) => ipv4(&bytes, at, blocked),
        Ok(Network::V6(at)) => ipv6(&bytes, at, blocked),
        Err(decision) => decision,
    }
}

enum Network {
    V4(usize),
    V6(usize),
}

fn network_header(bytes: &Bytes) -> Result<Network, Decision> {
    let mut tags = 0;
    let mut at = 12;
    let ethertype = loop {
        let ethertype = bytes.u16(at).ok_or(Decision::Malformed)?;
        if !matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
            break ethertype;
        }
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return Err(Decision::Suspect(Reason::Malformed));
        }
        at += 4;
    };
    at += 2;
    match ethertype {
        0x0800 => Ok(Network::V4(at)),
        0x86dd => Ok(Network::V6(at)),
        0x8864 => pppoe(bytes, at),
        _ => Err(Decision::Pass),
    }
}

/// RFC 2516 session header, then a PPP protocol field that may be compressed to one odd byte
/// (RFC 1661 PFC).
fn pppoe(bytes: &Bytes, at: usize) -> Result<Network, Decision> {
    let version_type = bytes.u8(at).ok_or(Decision::Malformed)?;
    let code = bytes.u8(at + 1).ok_or(Decision::Malformed)?;
    if version_type != 0x11 || code != 0 {
        return Err(Decision::Malformed);
    }
    let first = bytes.u8(at + 6).ok_or(Decision::Malformed)?;
    let (protocol, payload) = if first % 2 == 1 {
        (u16::from(first), at + 7)
    } else {
        (bytes.u16(at + 6).ok_or(Decision::Malformed)?, at + 8)
    };
    match protocol {
        0x0021 => Ok(Network::V4(payload)),
        0x0057 => Ok(Network::V6(payload)),
        _ => Err(Decision::Pass),
    }
}

fn ipv4(bytes: &Bytes, at: usize, blocked: &[u16]) -> Decision {
    let (Some(version_ihl), Some(protocol)) = (bytes.u8(at), bytes.u8(at + 9)) else {
        return Decision::Malformed;
    };
    let is_tcp = protocol == TCP;
    let broken = if is_tcp {
        Decision::Suspect(Reason::Malformed)
    } else {
        Decision::Malformed
    };
    let header_len = usize::from(version_ihl & 0xf) * 4;
    if version_ihl >> 4 != 4 || header_len < 20 {
        return broken;
    }
    if !is_tcp {
        return Decision::Pass;
    }
    let (Some(total_len), Some(fragment)) = (bytes.u16(at + 2), bytes.u16(at + 6)) else {
        return broken;
    };
    let end = at + usize::from(total_len);
    if usize::from(total_len) < header_len || end > bytes.len() {
        return broken;
    }
    let fragment_offset = fragment & 0x1fff;
    let more_fragments = fragment & 0x2000 != 0;
    if fragment_offset == 1 {
        return Decision::Suspect(Reason::OverlapFragment);
    }
    if fragment_offset > 1 {
        return Decision::Pass;
    }
    let tcp_at = at + header_len;
    if more_fragments && end - tcp_at < TCP_MIN {
        return Decision::Suspect(Reason::TinyFragment);
    }
    let addresses = |offset: usize| {
        let mut wide = [0u8; 16];
        wide[..4].copy_from_slice(&bytes.0[offset..offset + 4]);
        wide
    };
    let ip = Ip {
        family: 4,
        source: addresses(at + 12),
        destination: addresses(at + 16),
        ip_len: total_len,
    };
    tcp(bytes, tcp_at, end, ip, blocked)
}

struct Ip {
    family: u8,
    source: [u8; 16],
    destination: [u8; 16],
    ip_len: u16,
}

fn tcp(bytes: &Bytes, at: usize, end: usize, ip: Ip, blocked: &[u16]) -> Decision {
    if at + TCP_MIN > end {
        return Decision::Suspect(Reason::Malformed);
    }
    let (Some(port), Some(data_offset), Some(flags)) =
        (bytes.u16(at + 2), bytes.u8(at + 12), bytes.u8(at + 13))
    else {
        return Decision::Suspect(Reason::Ipv6Chain);
    };
    let header_len = usize::from(data_offset >> 4) * 4;
    if header_len < TCP_MIN || at + header_len > end {
        return Decision::Suspect(Reason::Malformed);
    }
    if !blocked.contains(&port) {
        return Decision::Pass;
    }
    Decision::Smtp(Smtp {
        family: ip.family,
        source: ip.source,
        destination: ip.destination,
        port,
        tcp_flags: flags,
        ip_len: ip.ip_len,
    })
}

fn ipv6(bytes: &Bytes, at: usize, blocked: &[u16]) -> Decision {
    let (Some(version), Some(payload_len), Some(next)) =
        (bytes.u8(at), bytes.u16(at + 4), bytes.u8(at + 6))
    else {
        return Decision::Malformed;
    };
    if version >> 4 != 6 {
        return Decision::Malformed;
    }
    // Payload length zero: a jumbogram (RFC 2675), bounded by the frame.
    let end = if payload_len == 0 {
        bytes.len()
    } else {
        at + 40 + usize::from(payload_len)
    };
    let could_be_tcp = next == TCP || extension_length_kind(next).is_some();
    if end > bytes.len() {
        return if could_be_tcp {
            Decision::Suspect(Reason::Malformed)
        } else {
            Decision::Malformed
        };
    }
    let upper = match walk_chain(bytes, at + 40, next, end) {
        Ok(upper) => upper,
        Err(decision) => return decision,
    };
    if upper.first_fragment && upper.at + TCP_MIN > end {
        return Decision::Suspect(Reason::TinyFragment);
    }
    let address = |offset: usize| -> [u8; 16] {
        bytes.0[offset..offset + 16]
            .try_into()
            .expect("16-byte slice")
    };
    // A truncated jumbogram may not even hold its addresses: then the TCP check below fails.
    let (source, destination) = if at + 40 <= bytes.len() {
        (address(at + 8), address(at + 24))
    } else {
        ([0; 16], [0; 16])
    };
    let ip = Ip {
        family: 6,
        source,
        destination,
        ip_len: (40 + usize::from(payload_len)) as u16,
    };
    tcp(bytes, upper.at, end, ip, blocked)
}

struct UpperTcp {
    at: usize,
    first_fragment: bool,
}

#[derive(Clone, Copy)]
enum LengthKind {
    /// (length + 1) * 8 bytes.
    Eights,
    /// (length + 2) * 4 bytes (AH).
    Fours,
    /// Always 8 bytes (fragment header).
    Fragment,
}

fn extension_length_kind(next: u8) -> Option<LengthKind> {
    match next {
        0 | 43 | 60 | 135 | 139 | 140 => Some(LengthKind::Eights),
        51 => Some(LengthKind::Fours),
        44 => Some(LengthKind::Fragment),
        _ => None,
    }
}

/// Walks IPv6 extension headers to TCP, or decides the frame on the way.
fn walk_chain(
    bytes: &Bytes,
    mut at: usize,
    mut next: u8,
    end: usize,
) -> Result<UpperTcp, Decision> {
    let mut first_fragment = false;
    let mut walked = 0;
    loop {
        if next == TCP {
            return Ok(UpperTcp { at, first_fragment });
        }
        let Some(kind) = extension_length_kind(next) else {
            return Err(Decision::Pass);
        };
        let cut_short = if first_fragment {
            Decision::Suspect(Reason::Ipv6Chain)
        } else {
            Decision::Suspect(Reason::Malformed)
        };
        if walked == MAX_EXTENSION_HEADERS {
            return Err(Decision::Suspect(Reason::Ipv6Chain));
        }
        walked += 1;
        if at + 8 > end {
            return Err(cut_short);
        }
        let (Some(following), Some(length)) = (bytes.u8(at), bytes.u8(at + 1)) else {
            return Err(Decision::Suspect(Reason::Ipv6Chain));
        };
        let header_len = match kind {
            LengthKind::Eights => (usize::from(length) + 1) * 8,
            LengthKind::Fours => (usize::from(length) + 2) * 4,
            LengthKind::Fragment => {
                let Some(offset_flags) = bytes.u16(at + 2) else {
                    return Err(Decision::Suspect(Reason::Ipv6Chain));
                };
                match offset_flags >> 3 {
                    0 => first_fragment |= offset_flags & 1 == 1,
                    // Offset 1 cannot be legitimate (RFC 1858 overlap), whatever follows.
                    1 => return Err(Decision::Suspect(Reason::OverlapFragment)),
                    _ => return Err(Decision::Pass),
                }
                8
            }
        };
        at += header_len;
        next = following;
        if at > end {
            return Err(if first_fragment {
                Decision::Suspect(Reason::Ipv6Chain)
            } else {
                Decision::Suspect(Reason::Malformed)
            });
        }
        if at > WALK_LAST_START {
            return Err(Decision::Suspect(Reason::Ipv6Chain));
        }
    }
}
