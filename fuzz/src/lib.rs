//! Differential fuzzing of the dataplane parser against an independent reference decoder.

pub mod frames;
pub mod reference;
pub mod seeds;
pub mod structured;

use egress_common::{Family, Parsed, PortSet, Suspect, parse};
use reference::{Decision, Reason, Smtp};

/// Ports the fuzz targets block: the default, a common alternative, and both bitmap edges' far
/// end.
pub const BLOCKED_PORTS: [u16; 3] = [25, 2525, 65535];

pub fn blocked_port_set() -> PortSet {
    BLOCKED_PORTS
        .iter()
        .fold(PortSet::EMPTY, |set, &port| set.with(port))
}

/// The parser's answer in the reference decoder's terms.
pub fn parser_decision(frame: &[u8], ports: &PortSet) -> Decision {
    match parse(frame, ports) {
        Parsed::Pass => Decision::Pass,
        Parsed::Malformed => Decision::Malformed,
        Parsed::Suspect(suspect) => Decision::Suspect(match suspect {
            Suspect::TinyFragment => Reason::TinyFragment,
            Suspect::OverlapFragment => Reason::OverlapFragment,
            Suspect::Ipv6Chain => Reason::Ipv6Chain,
            Suspect::Malformed => Reason::Malformed,
        }),
        Parsed::Smtp(smtp) => Decision::Smtp(Smtp {
            family: match smtp.family {
                Family::Ipv4 => 4,
                Family::Ipv6 => 6,
            },
            source: smtp.source,
            destination: smtp.destination,
            port: smtp.destination_port,
            tcp_flags: smtp.tcp_flags,
            ip_len: smtp.ip_len,
        }),
    }
}

/// Panics, with the frame in hex, when the parser and the reference disagree.
pub fn check(frame: &[u8], ports: &PortSet) {
    let expected = reference::decide(frame, &BLOCKED_PORTS);
    let actual = parser_decision(frame, ports);
    assert_eq!(
        actual,
        expected,
        "parser (left) and reference (right) disagree on frame {}",
        hex(frame)
    );
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
