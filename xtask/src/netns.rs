//! The lab namespaces of the demo and the bench: [`egress_lab`], shared with the tests crate.
//! `Netns::create(name, runner)` echoes its commands when the runner does.

pub use egress_lab::{Netns, address, route, veth};
