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

mod ipv4;
mod ipv6;
mod link;
mod transport;

pub use ipv4::Ipv4;
pub use ipv6::{Ext, Ipv6};
pub use link::{Eth, pppoe_padi, tpid};
pub use transport::{Tcp, Udp, flags};

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

/// The first `len` bytes of a frame.
pub fn truncate(mut frame: Vec<u8>, len: usize) -> Vec<u8> {
    frame.truncate(len);
    frame
}
