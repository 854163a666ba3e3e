//! The lab's webhook receiver ([`egress_lab::webhook`]), started the way the tests start their
//! servers: a failure to bind ends the test with the reason.

pub use egress_lab::webhook::{Delivery, Receiver, expected_signature};

use crate::netns::Netns;

/// Listens on `addr` (port 0: any) inside `ns`, checking signatures under `secret`.
pub fn start(ns: &Netns, addr: &str, secret: &[u8]) -> Receiver {
    Receiver::start(ns, addr, secret).unwrap_or_else(|err| panic!("{err}"))
}
