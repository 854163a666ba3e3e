//! Frames built from a structured description (VLAN stacks, PPPoE, IPv4 options and fragments,
//! IPv6 chains, TCP), then cut and corrupted: reaches deep states raw bytes rarely do.
#![no_main]

use std::sync::LazyLock;

use egress_common::PortSet;
use egress_fuzz::{blocked_port_set, check, structured::FrameSpec};
use libfuzzer_sys::fuzz_target;

static PORTS: LazyLock<PortSet> = LazyLock::new(blocked_port_set);

fuzz_target!(|spec: FrameSpec| check(&spec.build(), &PORTS));
