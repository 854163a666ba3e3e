//! IPv4 with options and fragments.

use super::{PROTO_TCP, PROTO_UDP, Tcp, Udp};

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
