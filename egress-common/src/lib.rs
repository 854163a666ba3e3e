//! Types and logic shared by the eBPF dataplane and user space.
//!
//! Everything here is `no_std`: the packet parser is compiled into the kernel programs and, for
//! tests and fuzzing, for the host. Map types are `#[repr(C)]` with explicit padding so both
//! sides agree byte for byte; the `user` feature adds `aya::Pod` for them.
#![no_std]

#[cfg(feature = "user")]
pub mod batch;
pub mod checksum;
pub mod config;
pub mod counters;
pub mod event;
pub mod host_table;
pub mod host_table_v6;
pub mod inbound;
pub mod index;
#[cfg(all(test, feature = "user"))]
mod index_oracle;
#[cfg(feature = "user")]
pub mod index_plan;
#[cfg(feature = "user")]
pub mod index_sync;
pub mod packet;
pub mod parse;
pub mod pools;
pub mod ports;
pub mod source_filter;
pub mod subscriber;

pub use config::{DataplaneConfig, Mode};
pub use counters::Counter;
pub use event::{EventKind, SubscriberEvent};
pub use packet::Packet;
pub use parse::{Family, Parsed, SmtpPacket, Suspect, parse};
pub use ports::PortSet;
pub use subscriber::{SubscriberKey, SubscriberRecord, destination_bit};

/// Names of the maps and globals in the eBPF object; user space finds them by these names.
pub mod names {
    pub const XDP_PROGRAM: &str = "egress_xdp";
    pub const TC_PROGRAM: &str = "egress_tc";
    pub const CONFIG: &str = "EGRESS_CONFIG";
    pub const COUNTERS: &str = "EGRESS_COUNTERS";
    pub const SOURCES_V4: &str = "EGRESS_SOURCES_V4";
    pub const SOURCES_V6: &str = "EGRESS_SOURCES_V6";
    pub const DESTINATIONS_V4: &str = "EGRESS_DESTS_V4";
    pub const DESTINATIONS_V6: &str = "EGRESS_DESTS_V6";
    /// One slot per IPv4 /24 (see `index`): what the dataplane reads instead of SOURCES_V4.
    pub const SOURCE_INDEX_V4: &str = "EGRESS_SOURCE_INDEX_V4";
    /// The index's second level: 256 entries for each /24 that holds longer prefixes.
    pub const SOURCE_BLOCKS_V4: &str = "EGRESS_SOURCE_BLOCKS_V4";
    /// The IPv6 source filter (see `source_filter`): which /48s may hold a source prefix.
    pub const SOURCE_FILTER_V6: &str = "EGRESS_SOURCE_FILTER_V6";
    /// The /128 entries of the IPv6 sources as a host table (see `host_table_v6`).
    pub const SOURCE_HOSTS_V6: &str = "EGRESS_SOURCE_HOSTS_V6";
    /// The IPv4 destinations as a host table (see `host_table`).
    pub const DEST_HOSTS_V4: &str = "EGRESS_DEST_HOSTS_V4";
    /// Pins of earlier versions that nothing reads any more; the agent removes them.
    pub const RETIRED: [&str; 1] = [
        // The long-prefix hash of the one-level index (before the two-level layout).
        "EGRESS_SOURCE_LONG_V4",
    ];
    pub const SUBSCRIBERS: &str = "EGRESS_SUBSCRIBERS";
    /// The IPv4 subscriber pools (see `pools`): the table of pools, one element.
    pub const POOL_TABLE_V4: &str = "EGRESS_POOL_TABLE_V4";
    /// One subscriber record per pool address.
    pub const POOL_RECORDS_V4: &str = "EGRESS_POOL_RECORDS_V4";
    pub const EVENTS: &str = "EGRESS_EVENTS";
    /// Read-only global holding the blocked-port bitmap, set at load time.
    pub const BLOCKED_PORTS: &str = "EGRESS_BLOCKED_PORTS";
}

/// Bits in an allowlist map value: a prefix may be both a relay and an exempt customer.
pub mod allow_kind {
    pub const RELAY: u32 = 1;
    pub const EXEMPT: u32 = 2;
    pub const DESTINATION: u32 = 4;
    /// The inbound lists' values (the inbound program only asks whether a prefix is there).
    pub const PROTECTED_MX: u32 = 8;
    pub const MX_SENDER: u32 = 16;
    pub const THROTTLE_DESTINATION: u32 = 32;
}

/// Default capacity of each allowlist map (per family and direction).
pub const DEFAULT_ALLOWLIST_CAPACITY: u32 = 2_097_152;
/// Default capacity of the subscriber LRU map.
pub const DEFAULT_MAX_TRACKED: u32 = 1_048_576;
/// Size of the event ring buffer in bytes (a power of two, a multiple of the page size).
pub const EVENTS_RING_BYTES: u32 = 256 * 1024;
