//! The transport layer: TCP and UDP.

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
