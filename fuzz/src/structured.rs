//! A structured description of a frame for the `parse_structured` target.

use arbitrary::Arbitrary;

use crate::frames::{
    self, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_PPPOE, PPP_IPV4, PPP_IPV6, SUBSCRIBER_V6,
};

#[derive(Arbitrary, Debug)]
pub struct FrameSpec {
    /// TPID choice per tag; more than four is legal input.
    tags: Vec<Tpid>,
    pppoe: Option<bool>,
    network: Network,
    /// Cut the frame to this many bytes (modulo its length + 1).
    cut: Option<u16>,
    /// Overwrite single bytes (position modulo length).
    corruptions: Vec<(u16, u8)>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Tpid {
    Dot1q,
    Dot1ad,
    Qinq9100,
}

#[derive(Arbitrary, Debug)]
enum Network {
    V4 {
        option_words: u8,
        fragment: u16,
        upper: Upper,
    },
    V6 {
        chain: Vec<Extension>,
        upper: Upper,
    },
}

#[derive(Arbitrary, Debug)]
enum Extension {
    Options { kind: OptionsKind, units: u8 },
    Authentication { units: u8 },
    Fragment { offset: u16, more: bool },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum OptionsKind {
    HopByHop,
    Routing,
    Destination,
}

#[derive(Arbitrary, Debug)]
enum Upper {
    Tcp {
        port: Port,
        flags: u8,
        data_offset: u8,
        payload_len: u8,
    },
    Udp {
        port: Port,
    },
    Other {
        protocol: u8,
        payload_len: u8,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Port {
    Smtp,
    Alternative,
    Submission,
    Top,
    Any(u16),
}

impl Port {
    fn number(self) -> u16 {
        match self {
            Port::Smtp => 25,
            Port::Alternative => 2525,
            Port::Submission => 587,
            Port::Top => 65535,
            Port::Any(port) => port,
        }
    }
}

impl Upper {
    fn protocol(&self) -> u8 {
        match self {
            Upper::Tcp { .. } => frames::TCP,
            Upper::Udp { .. } => frames::UDP,
            Upper::Other { protocol, .. } => *protocol,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Upper::Tcp {
                port,
                flags,
                data_offset,
                payload_len,
            } => frames::tcp(
                port.number(),
                *flags,
                data_offset & 0xf,
                &vec![0x55; usize::from(*payload_len)],
            ),
            Upper::Udp { port } => frames::udp(port.number(), b"x"),
            Upper::Other { payload_len, .. } => vec![0xaa; usize::from(*payload_len)],
        }
    }
}

impl Extension {
    fn protocol(&self) -> u8 {
        match self {
            Extension::Options { kind, .. } => match kind {
                OptionsKind::HopByHop => frames::HOP_BY_HOP,
                OptionsKind::Routing => frames::ROUTING,
                OptionsKind::Destination => frames::DESTINATION_OPTIONS,
            },
            Extension::Authentication { .. } => frames::AUTHENTICATION,
            Extension::Fragment { .. } => frames::FRAGMENT,
        }
    }

    fn bytes(&self, next: u8) -> Vec<u8> {
        match self {
            // Small units keep chains mostly inside the parser's window, with room to cross it.
            Extension::Options { units, .. } => frames::extension(next, units % 32),
            Extension::Authentication { units } => frames::authentication(next, units % 64),
            Extension::Fragment { offset, more } => frames::fragment(next, offset % 4, *more),
        }
    }
}

impl FrameSpec {
    pub fn build(&self) -> Vec<u8> {
        let tpids: Vec<u16> = self
            .tags
            .iter()
            .take(8)
            .map(|tpid| match tpid {
                Tpid::Dot1q => 0x8100,
                Tpid::Dot1ad => 0x88a8,
                Tpid::Qinq9100 => 0x9100,
            })
            .collect();
        let (ethertype, ppp_protocol, packet) = match &self.network {
            Network::V4 {
                option_words,
                fragment,
                upper,
            } => {
                let options = vec![1u8; usize::from(option_words % 11) * 4];
                let packet = frames::ipv4(upper.protocol(), &options, *fragment, &upper.bytes());
                (ETHERTYPE_IPV4, PPP_IPV4, packet)
            }
            Network::V6 { chain, upper } => {
                let mut next = upper.protocol();
                let mut payload = upper.bytes();
                for extension in chain.iter().take(12).rev() {
                    payload = [extension.bytes(next), payload].concat();
                    next = extension.protocol();
                }
                (
                    ETHERTYPE_IPV6,
                    PPP_IPV6,
                    frames::ipv6(SUBSCRIBER_V6, next, &payload),
                )
            }
        };
        let mut frame = match self.pppoe {
            None => frames::join(&[&frames::ethernet(&tpids, ethertype), &packet]),
            Some(compressed) => frames::join(&[
                &frames::ethernet(&tpids, ETHERTYPE_PPPOE),
                &frames::pppoe(ppp_protocol, compressed, packet.len()),
                &packet,
            ]),
        };
        if let Some(cut) = self.cut {
            frame.truncate(usize::from(cut) % (frame.len() + 1));
        }
        if !frame.is_empty() {
            let len = frame.len();
            for (position, byte) in self.corruptions.iter().take(4) {
                frame[usize::from(*position) % len] = *byte;
            }
        }
        frame
    }
}
