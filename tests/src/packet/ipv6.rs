//! IPv6 with extension-header chains.

use super::{PROTO_TCP, PROTO_UDP, Tcp, Udp};

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
