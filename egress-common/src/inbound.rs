//! Types of the `inbound` program (the primary-MX guard on uplink ingress), shared by kernel and
//! user space: its config, its counters and the throttle's per-source token bucket.

use crate::subscriber::SubscriberKey;

/// Names of the inbound program, its maps and its load-time port global.
pub mod names {
    pub const PROGRAM: &str = "egress_inbound";
    pub const PORTS: &str = "EGRESS_INBOUND_PORTS";
    pub const CONFIG: &str = "EGRESS_INBOUND_CONFIG";
    pub const COUNTERS: &str = "EGRESS_INBOUND_COUNTERS";
    pub const PROTECTED_V4: &str = "EGRESS_PROTECTED_MX_V4";
    pub const PROTECTED_V6: &str = "EGRESS_PROTECTED_MX_V6";
    pub const SENDERS_V4: &str = "EGRESS_MX_SENDERS_V4";
    pub const SENDERS_V6: &str = "EGRESS_MX_SENDERS_V6";
    pub const THROTTLED_V4: &str = "EGRESS_THROTTLE_DESTS_V4";
    pub const THROTTLED_V6: &str = "EGRESS_THROTTLE_DESTS_V6";
    pub const BUCKETS: &str = "EGRESS_THROTTLE_SOURCES";
    pub const HOSTS_V4: &str = "EGRESS_INBOUND_HOSTS_V4";
}

/// Class bits of a host in the inbound program's host table (`host_table`).
pub mod host_class {
    /// A host of `protected_mx`.
    pub const PROTECTED: u32 = 1;
    /// A host of `throttle.destinations`.
    pub const THROTTLED: u32 = 2;
}

/// Capacity of each inbound prefix list (per family). Tries are not preallocated.
pub const LIST_CAPACITY: u32 = 65_536;
/// `[inbound.throttle] max_sources` default.
pub const DEFAULT_MAX_SOURCES: u32 = 262_144;
/// IPv6 sources share one bucket per /64.
pub const THROTTLE_IPV6_PREFIX_LEN: u8 = 64;

/// Bits of `InboundConfig::flags`: lookups the dataplane may skip because the list is empty.
/// 0 (a new config map) is always correct, only slower.
pub mod empty {
    pub const PROTECTED_V4: u32 = 1;
    pub const PROTECTED_V6: u32 = 2;
    pub const SENDERS_V4: u32 = 4;
    pub const SENDERS_V6: u32 = 8;
    pub const THROTTLED_V4: u32 = 16;
    pub const THROTTLED_V6: u32 = 32;
}

/// The one entry of the inbound config map. All zeros is safe: enforce mode, every list looked
/// up, and a throttle whose zero interval admits every SYN.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InboundConfig {
    /// `Mode` as u32 (the global `mode`).
    pub mode: u32,
    /// `empty` bits.
    pub flags: u32,
    /// The token bucket as a virtual schedule (GCRA): one SYN per `interval_ns`
    /// (10^9 / syn_per_second)...
    pub interval_ns: u64,
    /// ...and up to `burst` SYNs ahead of it: `(burst - 1) * interval_ns`.
    pub tolerance_ns: u64,
    /// When nonzero, the time the dataplane uses instead of the kernel's monotonic clock. Only
    /// tests set it, to drive the token bucket exactly; the agent always writes 0.
    pub clock_ns: u64,
}

impl InboundConfig {
    pub const fn monitor(&self) -> bool {
        self.mode == crate::Mode::Monitor as u32
    }

    /// The bucket parameters for `syn_per_second` (>= 1) and `burst` (>= 1).
    pub const fn throttle(syn_per_second: u32, burst: u32) -> (u64, u64) {
        let interval = 1_000_000_000 / syn_per_second as u64;
        (interval, (burst as u64 - 1) * interval)
    }
}

/// One source's bucket in the throttle's LRU map (key: [`SubscriberKey`], IPv6 per /64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleBucket {
    /// Theoretical arrival time of the next SYN (monotonic ns); the bucket is empty while it is
    /// more than `tolerance_ns` ahead of now.
    pub next_ns: u64,
    /// SYNs this source had throttled (dropped, or counted in monitor mode).
    pub throttled: u64,
}

impl ThrottleBucket {
    /// Whether the bucket has no token left at `now_ns`.
    pub const fn empty_at(&self, now_ns: u64, tolerance_ns: u64) -> bool {
        self.next_ns > now_ns && self.next_ns - now_ns > tolerance_ns
    }
}

/// The throttle key of a source: IPv4 /32, IPv6 /64.
pub fn bucket_key(family: crate::Family, address: [u8; 16]) -> SubscriberKey {
    match family {
        crate::Family::Ipv4 => {
            SubscriberKey::ipv4([address[0], address[1], address[2], address[3]])
        }
        crate::Family::Ipv6 => SubscriberKey::ipv6(address, THROTTLE_IPV6_PREFIX_LEN),
    }
}

/// One slot of the inbound per-CPU counter array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundCounter {
    AllowedSenderV4 = 0,
    AllowedSenderV6,
    DroppedV4,
    DroppedV6,
    ThrottledV4,
    ThrottledV6,
    MonitoredV4,
    MonitoredV6,
}

impl InboundCounter {
    pub const COUNT: u32 = InboundCounter::MonitoredV6 as u32 + 1;

    pub const ALL: [InboundCounter; InboundCounter::COUNT as usize] = [
        InboundCounter::AllowedSenderV4,
        InboundCounter::AllowedSenderV6,
        InboundCounter::DroppedV4,
        InboundCounter::DroppedV6,
        InboundCounter::ThrottledV4,
        InboundCounter::ThrottledV6,
        InboundCounter::MonitoredV4,
        InboundCounter::MonitoredV6,
    ];

    /// The `verdict` label of `egress_inbound_smtp_packets_total`.
    pub const fn verdict(self) -> &'static str {
        match self {
            InboundCounter::AllowedSenderV4 | InboundCounter::AllowedSenderV6 => "allowed_sender",
            InboundCounter::DroppedV4 | InboundCounter::DroppedV6 => "dropped",
            InboundCounter::ThrottledV4 | InboundCounter::ThrottledV6 => "throttled",
            InboundCounter::MonitoredV4 | InboundCounter::MonitoredV6 => "monitored",
        }
    }

    /// The `family` label.
    pub const fn family(self) -> &'static str {
        match self as u32 % 2 {
            0 => "ipv4",
            _ => "ipv6",
        }
    }

    /// The IPv4 or IPv6 slot of a verdict.
    pub const fn of(v4: bool, ipv4: InboundCounter, ipv6: InboundCounter) -> InboundCounter {
        if v4 { ipv4 } else { ipv6 }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for InboundConfig {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for ThrottleBucket {}
