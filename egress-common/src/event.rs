//! Ring-buffer events from the dataplane to the agent.

use crate::subscriber::SubscriberKey;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A subscriber sent its first blocked SMTP packet (a record was created).
    FirstSeen = 1,
    /// A subscriber crossed a detection threshold within the window.
    Flagged = 2,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriberEvent {
    /// Monotonic clock (`bpf_ktime_get_ns`).
    pub timestamp_ns: u64,
    /// `EventKind` as u32.
    pub kind: u32,
    pub dst_port: u32,
    pub subscriber: SubscriberKey,
    /// Destination of the packet that caused the event (IPv4 in the first four bytes).
    pub destination: [u8; 16],
    pub _pad: [u8; 4],
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for SubscriberEvent {}
