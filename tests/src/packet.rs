//! A small packet builder for dataplane tests (in the spirit of Katran's test fixtures).
//!
//! Layers are built inside out: a [`Tcp`] or [`Udp`] segment goes into an [`Ipv4`] or
//! [`Ipv6`] packet, which goes into an [`Eth`] frame with any number of VLAN tags and an
//! optional PPPoE session header. Every length and count is correct by default; the override
//! methods exist to make them wrong on purpose. Checksums are left zero: the dataplane never
//! reads them.
//!
//! ```
//! use tests::packet::{Eth, Ipv4, Tcp, tpid};
//! let frame = Eth::new()
//!     .vlan(tpid::QINQ)
//!     .vlan(tpid::DOT1Q)
//!     .ipv4(Ipv4::new([192, 0, 2, 7], [203, 0, 113, 9]).tcp(Tcp::syn(25)));
//! assert_eq!(frame.len(), 14 + 8 + 20 + 20);
//! ```

/// Tag protocol identifiers of VLAN headers.
pub mod tpid {
    pub const DOT1Q: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const LEGACY_QINQ: u16 = 0x9100;
}

/// TCP flag bits.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_PPPOE_DISCOVERY: u16 = 0x8863;
pub const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
pub const PPP_IPV4: u16 = 0x0021;
pub const PPP_IPV6: u16 = 0x0057;
pub const PPP_LCP: u16 = 0xc021;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

/// An Ethernet header with stacked VLAN tags and optional PPPoE session encapsulation.
#[derive(Clone, Debug, Default)]
pub struct Eth {
    vlans: Vec<u16>,
    pppoe: bool,
}

impl Eth {
    pub fn new() -> Eth {
        Eth::default()
    }

    /// Adds a VLAN tag (outermost first) with the given TPID.
    pub fn vlan(mut self, tpid: u16) -> Eth {
        self.vlans.push(tpid);
        self
    }

    /// Adds `n` tags, cycling through the three TPIDs.
    pub fn vlans(mut self, n: usize) -> Eth {
        let all = [tpid::DOT1Q, tpid::QINQ, tpid::LEGACY_QINQ];
        self.vlans.extend((0..n).map(|i| all[i % all.len()]));
        self
    }

    /// Carries the network layer in a PPPoE session (EtherType 0x8864) with a PPP header.
    pub fn pppoe(mut self) -> Eth {
        self.pppoe = true;
        self
    }

    pub fn ipv4(self, packet: Vec<u8>) -> Vec<u8> {
        if self.pppoe {
            self.ppp(PPP_IPV4, &packet)
        } else {
            self.ethertype(ETHERTYPE_IPV4, &packet)
        }
    }

    pub fn ipv6(self, packet: Vec<u8>) -> Vec<u8> {
        if self.pppoe {
            self.ppp(PPP_IPV6, &packet)
        } else {
            self.ethertype(ETHERTYPE_IPV6, &packet)
        }
    }

    /// A PPPoE session frame carrying any PPP protocol (for example LCP).
    pub fn ppp(self, protocol: u16, payload: &[u8]) -> Vec<u8> {
        let ppp_len = u16::try_from(payload.len() + 2).expect("PPP payload fits 16 bits");
        let mut session = vec![0x11, 0x00, 0x12, 0x34];
        session.extend(ppp_len.to_be_bytes());
        session.extend(protocol.to_be_bytes());
        session.extend(payload);
        self.ethertype(ETHERTYPE_PPPOE_SESSION, &session)
    }

    /// A frame with a raw EtherType after the tags (ignores [`Eth::pppoe`]).
    pub fn ethertype(self, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
        for (i, tpid) in self.vlans.iter().enumerate() {
            frame.extend(tpid.to_be_bytes());
            frame.extend((100 + i as u16).to_be_bytes());
        }
        frame.extend(ethertype.to_be_bytes());
        frame.extend(payload);
        frame
    }
}

/// A PPPoE Active Discovery Initiation frame body (EtherType 0x8863).
pub fn pppoe_padi() -> Vec<u8> {
    // ver/type, code PADI, session 0, length 4, tag Service-Name (0x0101) of length 0.
    vec![0x11, 0x09, 0x00, 0x00, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00]
}

/// A TCP segment.
#[derive(Clone, Debug)]
pub struct Tcp {
    source_port: u16,
    destination_port: u16,
    flags: u8,
    options: Vec<u8>,
    payload: Vec<u8>,
    data_offset: Option<u8>,
}

impl Tcp {
    /// A bare SYN to `port`.
    pub fn syn(port: u16) -> Tcp {
        Tcp {
            source_port: 40000,
            destination_port: port,
            flags: flags::SYN,
            options: Vec::new(),
            payload: Vec::new(),
            data_offset: None,
        }
    }

    pub fn source_port(mut self, port: u16) -> Tcp {
        self.source_port = port;
        self
    }

    pub fn flags(mut self, flags: u8) -> Tcp {
        self.flags = flags;
        self
    }

    /// TCP options, padded to a multiple of four bytes.
    pub fn options(mut self, options: &[u8]) -> Tcp {
        self.options = options.to_vec();
        self.options.resize(options.len().div_ceil(4) * 4, 0);
        self
    }

    pub fn payload(mut self, payload: &[u8]) -> Tcp {
        self.payload = payload.to_vec();
        self
    }

    /// Overrides the data offset (in 32-bit words).
    pub fn data_offset(mut self, words: u8) -> Tcp {
        self.data_offset = Some(words);
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let words = self
            .data_offset
            .unwrap_or(u8::try_from(5 + self.options.len() / 4).expect("TCP options too long"));
        let mut out = Vec::with_capacity(20 + self.options.len() + self.payload.len());
        out.extend(self.source_port.to_be_bytes());
        out.extend(self.destination_port.to_be_bytes());
        out.extend(1u32.to_be_bytes()); // sequence
        out.extend(0u32.to_be_bytes()); // acknowledgement
        out.push(words << 4);
        out.push(self.flags);
        out.extend(64240u16.to_be_bytes()); // window
        out.extend([0, 0, 0, 0]); // checksum, urgent pointer
        out.extend(&self.options);
        out.extend(&self.payload);
        out
    }
}

/// A UDP datagram.
#[derive(Clone, Debug)]
pub struct Udp {
    destination_port: u16,
    payload: Vec<u8>,
}

impl Udp {
    pub fn to(port: u16) -> Udp {
        Udp {
            destination_port: port,
            payload: b"egress".to_vec(),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let len = u16::try_from(8 + self.payload.len()).expect("UDP datagram fits 16 bits");
        let mut out = Vec::new();
        out.extend(40000u16.to_be_bytes());
        out.extend(self.destination_port.to_be_bytes());
        out.extend(len.to_be_bytes());
        out.extend([0, 0]);
        out.extend(&self.payload);
        out
    }
}

/// An IPv4 header; finish it with [`Ipv4::tcp`], [`Ipv4::udp`] or [`Ipv4::payload`].
#[derive(Clone, Debug)]
pub struct Ipv4 {
    source: [u8; 4],
    destination: [u8; 4],
    options: Vec<u8>,
    ihl: Option<u8>,
    fragment_offset: u16,
    more_fragments: bool,
    total_len: Option<u16>,
}

impl Ipv4 {
    pub fn new(source: [u8; 4], destination: [u8; 4]) -> Ipv4 {
        Ipv4 {
            source,
            destination,
            options: Vec::new(),
            ihl: None,
            fragment_offset: 0,
            more_fragments: false,
            total_len: None,
        }
    }

    /// IP options (padded with End-of-Options to a multiple of four); the IHL follows.
    pub fn options(mut self, options: &[u8]) -> Ipv4 {
        self.options = options.to_vec();
        self.options.resize(options.len().div_ceil(4) * 4, 0);
        self
    }

    /// Overrides the IHL (in 32-bit words) without changing the bytes.
    pub fn ihl(mut self, words: u8) -> Ipv4 {
        self.ihl = Some(words);
        self
    }

    /// Fragment offset in 8-byte units and the More Fragments flag.
    pub fn fragment(mut self, offset: u16, more: bool) -> Ipv4 {
        self.fragment_offset = offset;
        self.more_fragments = more;
        self
    }

    /// Overrides the total length field.
    pub fn total_len(mut self, len: u16) -> Ipv4 {
        self.total_len = Some(len);
        self
    }

    pub fn tcp(self, tcp: Tcp) -> Vec<u8> {
        self.payload(PROTO_TCP, &tcp.bytes())
    }

    pub fn udp(self, udp: Udp) -> Vec<u8> {
        self.payload(PROTO_UDP, &udp.bytes())
    }

    pub fn payload(self, protocol: u8, payload: &[u8]) -> Vec<u8> {
        let header_len = 20 + self.options.len();
        let words = self
            .ihl
            .unwrap_or(u8::try_from(header_len / 4).expect("IPv4 options too long"));
        let total = self.total_len.unwrap_or(
            u16::try_from(header_len + payload.len()).expect("IPv4 packet fits 16 bits"),
        );
        let fragment = self.fragment_offset | if self.more_fragments { 0x2000 } else { 0 };
        let mut out = Vec::with_capacity(header_len + payload.len());
        out.push(0x40 | (words & 0x0f));
        out.push(0);
        out.extend(total.to_be_bytes());
        out.extend(0x1234u16.to_be_bytes());
        out.extend(fragment.to_be_bytes());
        out.extend([64, protocol, 0, 0]);
        out.extend(self.source);
        out.extend(self.destination);
        out.extend(&self.options);
        out.extend(payload);
        out
    }
}

/// An IPv6 extension header. Lengths are in the header's own units beyond the minimum.
#[derive(Clone, Copy, Debug)]
pub enum Ext {
    HopByHop,
    Routing,
    DestinationOptions,
    /// Offset in 8-byte units and the M flag.
    Fragment {
        offset: u16,
        more: bool,
    },
    /// Authentication Header with a 12-byte ICV (the usual HMAC-SHA1-96 size).
    Authentication,
}

impl Ext {
    pub const PROTO_HOP_BY_HOP: u8 = 0;
    pub const PROTO_ROUTING: u8 = 43;
    pub const PROTO_FRAGMENT: u8 = 44;
    pub const PROTO_AUTHENTICATION: u8 = 51;
    pub const PROTO_DESTINATION_OPTIONS: u8 = 60;

    pub fn protocol(self) -> u8 {
        match self {
            Ext::HopByHop => Self::PROTO_HOP_BY_HOP,
            Ext::Routing => Self::PROTO_ROUTING,
            Ext::DestinationOptions => Self::PROTO_DESTINATION_OPTIONS,
            Ext::Fragment { .. } => Self::PROTO_FRAGMENT,
            Ext::Authentication => Self::PROTO_AUTHENTICATION,
        }
    }

    fn bytes(self, next: u8) -> Vec<u8> {
        match self {
            // 8 bytes: next, length 0, PadN option of four bytes.
            Ext::HopByHop | Ext::DestinationOptions => vec![next, 0, 1, 4, 0, 0, 0, 0],
            // 24 bytes: type 0 routing header with one address (segments left 0).
            Ext::Routing => {
                let mut out = vec![next, 2, 0, 0, 0, 0, 0, 0];
                out.extend([0x20, 0x01, 0x0d, 0xb8]);
                out.extend([0; 11]);
                out.push(1);
                out
            }
            Ext::Fragment { offset, more } => {
                let field = (offset << 3) | u16::from(more);
                let mut out = vec![next, 0];
                out.extend(field.to_be_bytes());
                out.extend(0xdead_beef_u32.to_be_bytes());
                out
            }
            // 24 bytes: payload length (24 / 4) - 2 = 4, SPI, sequence, 12-byte ICV.
            Ext::Authentication => {
                let mut out = vec![next, 4, 0, 0];
                out.extend(0x100u32.to_be_bytes());
                out.extend(1u32.to_be_bytes());
                out.extend([0xab; 12]);
                out
            }
        }
    }
}

/// An IPv6 header with an extension-header chain.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    source: [u8; 16],
    destination: [u8; 16],
    chain: Vec<Ext>,
    payload_len: Option<u16>,
}

impl Ipv6 {
    pub fn new(source: [u8; 16], destination: [u8; 16]) -> Ipv6 {
        Ipv6 {
            source,
            destination,
            chain: Vec::new(),
            payload_len: None,
        }
    }

    /// Appends an extension header to the chain.
    pub fn ext(mut self, header: Ext) -> Ipv6 {
        self.chain.push(header);
        self
    }

    /// Overrides the payload length field.
    pub fn payload_len(mut self, len: u16) -> Ipv6 {
        self.payload_len = Some(len);
        self
    }

    pub fn tcp(self, tcp: Tcp) -> Vec<u8> {
        self.payload(PROTO_TCP, &tcp.bytes())
    }

    pub fn udp(self, udp: Udp) -> Vec<u8> {
        self.payload(PROTO_UDP, &udp.bytes())
    }

    /// The upper layer `next_header` with `payload`, after the chain.
    pub fn payload(self, next_header: u8, payload: &[u8]) -> Vec<u8> {
        let mut chain = Vec::new();
        for (i, header) in self.chain.iter().enumerate() {
            let next = self.chain.get(i + 1).map_or(next_header, |h| h.protocol());
            chain.extend(header.bytes(next));
        }
        let first = self.chain.first().map_or(next_header, |h| h.protocol());
        let len = self.payload_len.unwrap_or(
            u16::try_from(chain.len() + payload.len()).expect("IPv6 payload fits 16 bits"),
        );
        let mut out = vec![0x60, 0, 0, 0];
        out.extend(len.to_be_bytes());
        out.extend([first, 64]);
        out.extend(self.source);
        out.extend(self.destination);
        out.extend(chain);
        out.extend(payload);
        out
    }
}

/// The first `len` bytes of a frame.
pub fn truncate(mut frame: Vec<u8>, len: usize) -> Vec<u8> {
    frame.truncate(len);
    frame
}
