//! egress-agent: loads the dataplane, owns its maps, serves the control socket and metrics.

pub mod allowlist;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod estimate;
pub mod fleet;
pub mod history;
pub mod identity;
pub mod inbound;
pub mod notify;
pub mod paths;
pub mod prefix;
pub mod state_file;
pub mod status;
pub mod telemetry;
pub mod traceability;

/// The eBPF object built from `egress-ebpf` by this crate's build script.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/egress"));
