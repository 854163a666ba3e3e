//! Arbitrary bytes as an Ethernet frame: the parser must agree with the reference decoder.
#![no_main]

use std::sync::LazyLock;

use egress_common::PortSet;
use egress_fuzz::{blocked_port_set, check};
use libfuzzer_sys::fuzz_target;

static PORTS: LazyLock<PortSet> = LazyLock::new(blocked_port_set);

fuzz_target!(|frame: &[u8]| check(frame, &PORTS));
