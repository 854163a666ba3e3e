//! The one decision function shared by the XDP and TC programs.

use egress_common::{
    Counter, DataplaneConfig, Family, Packet, Parsed, PortSet, SmtpPacket, Suspect, allow_kind,
    parse, ports::BlockedPorts,
};

use crate::{
    allowlist::{destination_allowed, source_allow_kind},
    maps::{CONFIG, count},
    subscriber,
};

/// Blocked destination ports, set by the agent at load time. Read-only, so checking a port costs
/// one load and no map lookup on the fast path.
#[unsafe(no_mangle)]
static EGRESS_BLOCKED_PORTS: PortSet = PortSet::DEFAULT;

/// A port set the agent writes into a read-only global at load time (`blocked_ports` here,
/// `inbound.ports` for the inbound program).
pub struct LoadTimePorts(pub *const PortSet);

impl BlockedPorts for LoadTimePorts {
    #[inline(always)]
    fn is_blocked(&self, port: u16) -> bool {
        let set = self.0;
        // SAFETY (all three reads): `set` points at a global, and the index is in bounds of it by
        // construction (below 1024); volatile keeps the compiler from folding in the default
        // value the agent overrides.
        let (lowest, highest) = unsafe {
            (
                core::ptr::read_volatile(core::ptr::addr_of!((*set).lowest)),
                core::ptr::read_volatile(core::ptr::addr_of!((*set).highest)),
            )
        };
        // Most traffic is to ports outside the blocked range: no bitmap load for it.
        if port < lowest || port > highest {
            return false;
        }
        let word = unsafe {
            core::ptr::read_volatile(
                core::ptr::addr_of!((*set).words)
                    .cast::<u64>()
                    .add((port >> 6) as usize),
            )
        };
        (word >> (port & 63)) & 1 == 1
    }
}

pub enum Action {
    Pass,
    Drop,
}

#[inline(always)]
pub fn judge<P: Packet>(packet: &P) -> Action {
    match parse(
        packet,
        &LoadTimePorts(core::ptr::addr_of!(EGRESS_BLOCKED_PORTS)),
    ) {
        Parsed::Pass => Action::Pass,
        Parsed::Smtp(smtp) => judge_smtp(&smtp),
        Parsed::Suspect(suspect) => {
            count(suspect_counter(suspect));
            if config().monitor() {
                Action::Pass
            } else {
                Action::Drop
            }
        }
        Parsed::Malformed => {
            count(Counter::Malformed);
            Action::Pass
        }
    }
}

/// The global counter of a frame that could be SMTP-bound and cannot be judged.
#[inline(always)]
pub fn suspect_counter(suspect: Suspect) -> Counter {
    match suspect {
        Suspect::TinyFragment => Counter::TinyFragment,
        Suspect::OverlapFragment => Counter::OverlapFragment,
        Suspect::Ipv6Chain => Counter::Ipv6Chain,
        Suspect::Malformed => Counter::Malformed,
    }
}

#[inline(always)]
fn judge_smtp(packet: &SmtpPacket) -> Action {
    let config = config();
    let v4 = packet.family == Family::Ipv4;
    let source_kind = source_allow_kind(packet, config.allowlist_flags);
    if source_kind & allow_kind::RELAY != 0 {
        count(pick(v4, Counter::AllowedRelayV4, Counter::AllowedRelayV6));
        return Action::Pass;
    }
    if source_kind & allow_kind::EXEMPT != 0 {
        count(pick(v4, Counter::AllowedExemptV4, Counter::AllowedExemptV6));
        return Action::Pass;
    }
    if destination_allowed(packet, config.allowlist_flags) {
        count(pick(
            v4,
            Counter::AllowedDestinationV4,
            Counter::AllowedDestinationV6,
        ));
        return Action::Pass;
    }
    subscriber::record_blocked(packet, config);
    if config.monitor() {
        count(pick(v4, Counter::MonitoredV4, Counter::MonitoredV6));
        Action::Pass
    } else {
        count(pick(v4, Counter::DroppedV4, Counter::DroppedV6));
        Action::Drop
    }
}

#[inline(always)]
fn pick(v4: bool, ipv4: Counter, ipv6: Counter) -> Counter {
    if v4 { ipv4 } else { ipv6 }
}

/// Used only if the config map has no slot, which cannot happen for an array map; it keeps the
/// verifier happy and fails closed (enforce mode).
static FALLBACK_CONFIG: DataplaneConfig = DataplaneConfig {
    mode: 0,
    ipv6_prefix_len: 64,
    ipv6_mask: egress_common::config::ipv6_mask(64),
    window_ns: 0,
    attempts_threshold: 0,
    destination_bits_threshold: 0,
    allowlist_flags: 0,
    reserved: 0,
};

#[inline(always)]
fn config() -> &'static DataplaneConfig {
    CONFIG.get(0).unwrap_or(&FALLBACK_CONFIG)
}
