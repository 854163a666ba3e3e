//! Indices of the per-CPU global counters.

/// One slot of the per-CPU counter array. The discriminant is the array index.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    AllowedRelayV4 = 0,
    AllowedRelayV6,
    AllowedExemptV4,
    AllowedExemptV6,
    AllowedDestinationV4,
    AllowedDestinationV6,
    DroppedV4,
    DroppedV6,
    MonitoredV4,
    MonitoredV6,
    TinyFragment,
    OverlapFragment,
    Ipv6Chain,
    Malformed,
    /// Ring-buffer events lost because the buffer was full.
    EventsSuppressed,
    /// Blocked IPv4 SMTP packets from a source in none of `subscribers.pools` (counted only
    /// while pools are configured): on a subscriber-facing interface, a spoofed source.
    OutsidePools,
}

impl Counter {
    /// Number of slots in the counter array.
    pub const COUNT: u32 = Counter::OutsidePools as u32 + 1;

    pub const ALL: [Counter; Counter::COUNT as usize] = [
        Counter::AllowedRelayV4,
        Counter::AllowedRelayV6,
        Counter::AllowedExemptV4,
        Counter::AllowedExemptV6,
        Counter::AllowedDestinationV4,
        Counter::AllowedDestinationV6,
        Counter::DroppedV4,
        Counter::DroppedV6,
        Counter::MonitoredV4,
        Counter::MonitoredV6,
        Counter::TinyFragment,
        Counter::OverlapFragment,
        Counter::Ipv6Chain,
        Counter::Malformed,
        Counter::EventsSuppressed,
        Counter::OutsidePools,
    ];

    /// Stable snake_case name, used in tests and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::AllowedRelayV4 => "allowed_relay_ipv4",
            Counter::AllowedRelayV6 => "allowed_relay_ipv6",
            Counter::AllowedExemptV4 => "allowed_exempt_ipv4",
            Counter::AllowedExemptV6 => "allowed_exempt_ipv6",
            Counter::AllowedDestinationV4 => "allowed_destination_ipv4",
            Counter::AllowedDestinationV6 => "allowed_destination_ipv6",
            Counter::DroppedV4 => "dropped_ipv4",
            Counter::DroppedV6 => "dropped_ipv6",
            Counter::MonitoredV4 => "monitored_ipv4",
            Counter::MonitoredV6 => "monitored_ipv6",
            Counter::TinyFragment => "tiny_fragment",
            Counter::OverlapFragment => "overlap_fragment",
            Counter::Ipv6Chain => "ipv6_chain",
            Counter::Malformed => "malformed",
            Counter::EventsSuppressed => "events_suppressed",
            Counter::OutsidePools => "outside_pools",
        }
    }
}
