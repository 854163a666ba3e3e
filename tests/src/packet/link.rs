//! The link layer: Ethernet, VLAN tags, PPPoE.

use super::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_PPPOE_SESSION, PPP_IPV4, PPP_IPV6};

/// Tag protocol identifiers of VLAN headers.
pub mod tpid {
    pub const DOT1Q: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const LEGACY_QINQ: u16 = 0x9100;
}

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
