//! RADIUS accounting on the wire (RFC 2865 packet format, RFC 2866 accounting, RFC 3162 /
//! RFC 4818 / RFC 6911 IPv6 attributes): parsing an Accounting-Request, verifying its
//! Request Authenticator, and building the Accounting-Response.
//!
//! Only what accounting needs: no Access-* packets, no attribute encryption.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::Ipv6Net;
use md5::{Digest, Md5};

pub const ACCOUNTING_REQUEST: u8 = 4;
pub const ACCOUNTING_RESPONSE: u8 = 5;
const HEADER: usize = 20;
/// RFC 2865 §3: the largest packet.
pub const MAX_PACKET: usize = 4096;

mod attr {
    pub const USER_NAME: u8 = 1;
    pub const NAS_IP_ADDRESS: u8 = 4;
    pub const FRAMED_IP_ADDRESS: u8 = 8;
    pub const CALLING_STATION_ID: u8 = 31;
    pub const NAS_IDENTIFIER: u8 = 32;
    pub const ACCT_STATUS_TYPE: u8 = 40;
    pub const ACCT_SESSION_ID: u8 = 44;
    pub const ACCT_SESSION_TIME: u8 = 46;
    pub const EVENT_TIMESTAMP: u8 = 55;
    pub const NAS_PORT_ID: u8 = 87;
    pub const NAS_IPV6_ADDRESS: u8 = 95;
    pub const FRAMED_IPV6_PREFIX: u8 = 97;
    pub const DELEGATED_IPV6_PREFIX: u8 = 123;
    pub const FRAMED_IPV6_ADDRESS: u8 = 168;
}

/// Acct-Status-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Start,
    Stop,
    InterimUpdate,
    AccountingOn,
    AccountingOff,
}

impl Status {
    fn from_wire(value: u32) -> Option<Status> {
        Some(match value {
            1 => Status::Start,
            2 => Status::Stop,
            3 => Status::InterimUpdate,
            7 => Status::AccountingOn,
            8 => Status::AccountingOff,
            _ => return None,
        })
    }
}

/// Why a datagram is not a usable Accounting-Request.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("{0} bytes: shorter than a RADIUS header")]
    Short(usize),
    #[error("length field {field} does not fit the {got}-byte datagram (20..=4096)")]
    Length { field: usize, got: usize },
    #[error("code {0} is not Accounting-Request")]
    Code(u8),
    #[error("attribute at offset {0} overruns the packet")]
    Attribute(usize),
    #[error("attribute {kind} has a bad value")]
    Value { kind: u8 },
    #[error("no Acct-Status-Type, or one this listener does not handle")]
    Status,
    #[error("no Acct-Session-Id")]
    SessionId,
}

/// One Accounting-Request, attributes decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    pub identifier: u8,
    pub authenticator: [u8; 16],
    pub status: Option<Status>,
    pub acct_session_id: Option<String>,
    pub user_name: Option<String>,
    pub calling_station_id: Option<String>,
    pub nas_identifier: Option<String>,
    pub nas_ip_address: Option<IpAddr>,
    pub nas_port_id: Option<String>,
    pub framed_ip_address: Option<Ipv4Addr>,
    pub framed_ipv6_prefix: Option<Ipv6Net>,
    pub delegated_ipv6_prefix: Option<Ipv6Net>,
    pub framed_ipv6_address: Option<Ipv6Addr>,
    /// Seconds since the Unix epoch.
    pub event_timestamp: Option<u32>,
    pub session_time: Option<u32>,
}

/// The packet's own bytes (the length field's worth; RFC 2865 says to ignore the rest).
pub fn packet_bytes(datagram: &[u8]) -> Result<&[u8], Malformed> {
    if datagram.len() < HEADER {
        return Err(Malformed::Short(datagram.len()));
    }
    let field = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if !(HEADER..=MAX_PACKET).contains(&field) || field > datagram.len() {
        return Err(Malformed::Length {
            field,
            got: datagram.len(),
        });
    }
    if datagram[0] != ACCOUNTING_REQUEST {
        return Err(Malformed::Code(datagram[0]));
    }
    Ok(&datagram[..field])
}

/// RFC 2866 §3: MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret).
pub fn request_authentic(packet: &[u8], secret: &[u8]) -> bool {
    if packet.len() < HEADER {
        return false;
    }
    let mut md5 = Md5::new();
    md5.update(&packet[..4]);
    md5.update([0u8; 16]);
    md5.update(&packet[HEADER..]);
    md5.update(secret);
    let expected: [u8; 16] = md5.finalize().into();
    // Constant time: the secret must not leak through timing.
    expected
        .iter()
        .zip(&packet[4..HEADER])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Decodes the attributes of a packet `packet_bytes` accepted.
pub fn decode(packet: &[u8]) -> Result<Accounting, Malformed> {
    let mut out = Accounting {
        identifier: packet[1],
        ..Accounting::default()
    };
    out.authenticator.copy_from_slice(&packet[4..HEADER]);
    let mut at = HEADER;
    while at < packet.len() {
        if packet.len() - at < 2 {
            return Err(Malformed::Attribute(at));
        }
        let (kind, len) = (packet[at], usize::from(packet[at + 1]));
        if len < 2 || at + len > packet.len() {
            return Err(Malformed::Attribute(at));
        }
        apply(&mut out, kind, &packet[at + 2..at + len])?;
        at += len;
    }
    if out.status.is_none() {
        return Err(Malformed::Status);
    }
    let on_off = matches!(
        out.status,
        Some(Status::AccountingOn | Status::AccountingOff)
    );
    if out.acct_session_id.is_none() && !on_off {
        return Err(Malformed::SessionId);
    }
    Ok(out)
}

fn apply(out: &mut Accounting, kind: u8, value: &[u8]) -> Result<(), Malformed> {
    let bad = Malformed::Value { kind };
    let text = || Some(String::from_utf8_lossy(value).into_owned());
    let int = || -> Result<u32, Malformed> {
        let bytes: [u8; 4] = value.try_into().map_err(|_| Malformed::Value { kind })?;
        Ok(u32::from_be_bytes(bytes))
    };
    match kind {
        attr::USER_NAME => out.user_name = text(),
        attr::CALLING_STATION_ID => out.calling_station_id = text(),
        attr::NAS_IDENTIFIER => out.nas_identifier = text(),
        attr::NAS_PORT_ID => out.nas_port_id = text(),
        attr::ACCT_SESSION_ID => out.acct_session_id = text(),
        attr::ACCT_STATUS_TYPE => {
            out.status = Some(Status::from_wire(int()?).ok_or(Malformed::Status)?)
        }
        attr::EVENT_TIMESTAMP => out.event_timestamp = Some(int()?),
        attr::ACCT_SESSION_TIME => out.session_time = Some(int()?),
        attr::NAS_IP_ADDRESS => out.nas_ip_address = Some(IpAddr::V4(Ipv4Addr::from(int()?))),
        attr::FRAMED_IP_ADDRESS => out.framed_ip_address = Some(Ipv4Addr::from(int()?)),
        attr::NAS_IPV6_ADDRESS | attr::FRAMED_IPV6_ADDRESS => {
            let bytes: [u8; 16] = value.try_into().map_err(|_| bad)?;
            let address = Ipv6Addr::from(bytes);
            if kind == attr::NAS_IPV6_ADDRESS {
                out.nas_ip_address.get_or_insert(IpAddr::V6(address));
            } else {
                out.framed_ipv6_address = Some(address);
            }
        }
        attr::FRAMED_IPV6_PREFIX => out.framed_ipv6_prefix = Some(ipv6_prefix(value, kind)?),
        attr::DELEGATED_IPV6_PREFIX => out.delegated_ipv6_prefix = Some(ipv6_prefix(value, kind)?),
        _ => {}
    }
    Ok(())
}

/// RFC 3162 §2.3: reserved octet, prefix length, then only the prefix's significant octets.
fn ipv6_prefix(value: &[u8], kind: u8) -> Result<Ipv6Net, Malformed> {
    let bad = Malformed::Value { kind };
    if value.len() < 2 || value.len() > 18 {
        return Err(bad);
    }
    let len = value[1];
    let significant = usize::from(len).div_ceil(8);
    if len > 128 || value.len() - 2 < significant {
        return Err(bad);
    }
    let mut bytes = [0u8; 16];
    bytes[..value.len() - 2].copy_from_slice(&value[2..]);
    Ipv6Net::new(Ipv6Addr::from(bytes), len)
        .map(|net| net.trunc())
        .map_err(|_| bad)
}

/// RFC 2866 §3: an Accounting-Response without attributes, its authenticator
/// MD5(Code + Identifier + Length + Request Authenticator + Secret).
pub fn response(request: &Accounting, secret: &[u8]) -> [u8; HEADER] {
    let mut out = [0u8; HEADER];
    out[0] = ACCOUNTING_RESPONSE;
    out[1] = request.identifier;
    out[2..4].copy_from_slice(&(HEADER as u16).to_be_bytes());
    let mut md5 = Md5::new();
    md5.update(&out[..4]);
    md5.update(request.authenticator);
    md5.update(secret);
    let authenticator: [u8; 16] = md5.finalize().into();
    out[4..].copy_from_slice(&authenticator);
    out
}

#[cfg(test)]
#[path = "radius_tests.rs"]
mod tests;
