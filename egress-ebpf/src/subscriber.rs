//! Per-subscriber records and ring-buffer events for blocked SMTP traffic.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_coarse_ns};
use egress_common::{
    Counter, DataplaneConfig, EventKind, Family, SmtpPacket, SubscriberEvent, SubscriberKey,
    SubscriberRecord,
    parse::address_from_words,
    subscriber::{bits_set, destination_bit_of_words},
};

use crate::maps::{EVENTS, SUBSCRIBERS, count};

/// Records one blocked (dropped or monitored) SMTP packet against its subscriber. Kept out of
/// line: it is off the fast path and its own stack frame keeps the caller's small.
#[inline(never)]
pub fn record_blocked(packet: &SmtpPacket, config: &DataplaneConfig) {
    // CLOCK_MONOTONIC at tick granularity (1-4 ms): the same clock the agent reads, a fraction of
    // the cost of the precise one, and far finer than the seconds the records are shown in and
    // the windows they are judged over.
    // SAFETY: a helper without preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let key = subscriber_key(packet, config);
    let attempt = packet.is_connection_attempt() as u64;
    let bit = destination_bit_of_words(packet.destination_words());
    let (word, mask) = ((bit >> 6) as usize & 1, 1u64 << (bit & 63));

    let record = match SUBSCRIBERS.get_ptr_mut(&key) {
        Some(record) => record,
        None => {
            let mut destinations = [0u64; 2];
            destinations[word] = mask;
            let fresh = SubscriberRecord {
                attempts: attempt,
                packets: 1,
                bytes: packet.ip_len as u64,
                first_seen_ns: now,
                last_seen_ns: now,
                destinations,
                window_start_ns: now,
                window_attempts: attempt,
                window_destinations: destinations,
                flagged_ns: 0,
            };
            if SUBSCRIBERS.insert(&key, &fresh, BPF_NOEXIST as u64).is_ok() {
                emit(EventKind::FirstSeen, now, &key, packet);
                if let Some(record) = SUBSCRIBERS.get_ptr_mut(&key) {
                    // SAFETY: a pointer into the map value, valid for this program run.
                    unsafe { check_thresholds(&mut *record, config, now, &key, packet, true) };
                }
                return;
            }
            // Another CPU created it first: update theirs.
            match SUBSCRIBERS.get_ptr_mut(&key) {
                Some(record) => record,
                None => return,
            }
        }
    };

    // SAFETY: map values stay valid for the program run.
    //
    // Plain read-modify-write, not atomic adds: a lock-prefixed add costs as much as the rest of
    // the update on a hot record. The price is a rare lost increment when two CPUs update the
    // same subscriber within the same few nanoseconds (RSS keeps a flow on one CPU; only a
    // subscriber spreading connections over CPUs at a very high rate can collide), which the
    // per-window thresholds and the counters' use as bot evidence tolerate.
    unsafe {
        let record = &mut *record;
        if now.wrapping_sub(record.window_start_ns) > config.window_ns {
            record.window_start_ns = now;
            record.window_attempts = 0;
            record.window_destinations = [0, 0];
        }
        // Whether the last packet was over a threshold: both stamps come from the same `now`.
        let was_flagged = record.flagged_ns == record.last_seen_ns;
        record.attempts += attempt;
        record.window_attempts += attempt;
        record.packets += 1;
        record.bytes += packet.ip_len as u64;
        record.last_seen_ns = now;
        record.destinations[word] |= mask;
        let window_word = record.window_destinations[word];
        record.window_destinations[word] = window_word | mask;
        // The destination bitmap only changes when a new bit is set; unchanged and not over a
        // threshold on the last packet, it cannot be over now (a threshold lowered by a reload
        // takes effect from the subscriber's next new destination).
        let bitmap_may_cross = window_word & mask == 0 || was_flagged;
        check_thresholds(record, config, now, &key, packet, bitmap_may_cross);
    }
}

/// Marks the subscriber as over a detection threshold, emitting an event when it was not already.
#[inline(always)]
fn check_thresholds(
    record: &mut SubscriberRecord,
    config: &DataplaneConfig,
    now: u64,
    key: &SubscriberKey,
    packet: &SmtpPacket,
    bitmap_may_cross: bool,
) {
    let over_attempts =
        config.attempts_threshold != 0 && record.window_attempts >= config.attempts_threshold;
    let over_destinations = !over_attempts
        && bitmap_may_cross
        && config.destination_bits_threshold != 0
        && bits_set(&record.window_destinations) >= config.destination_bits_threshold;
    if !(over_attempts || over_destinations) {
        return;
    }
    let already = record.flagged_ns != 0 && now.wrapping_sub(record.flagged_ns) <= config.window_ns;
    record.flagged_ns = now;
    if !already {
        emit(EventKind::Flagged, now, key, packet);
    }
}

/// The source as the subscriber map's key: as two words, masked as two words for IPv6.
#[inline(always)]
fn subscriber_key(packet: &SmtpPacket, config: &DataplaneConfig) -> SubscriberKey {
    let [mut high, mut low] = packet.source_words();
    let mut prefix_len = 32;
    if packet.family == Family::Ipv6 {
        let [mask_high, mask_low] = config.ipv6_mask_words();
        high &= mask_high;
        low &= mask_low;
        prefix_len = config.ipv6_prefix_len as u8;
    }
    SubscriberKey {
        family: packet.family as u8,
        prefix_len,
        _pad: [0; 2],
        addr: address_from_words([high, low]),
    }
}

#[inline(never)]
fn emit(kind: EventKind, now: u64, key: &SubscriberKey, packet: &SmtpPacket) {
    match EVENTS.reserve::<SubscriberEvent>(0) {
        Some(mut entry) => {
            entry.write(SubscriberEvent {
                timestamp_ns: now,
                kind: kind as u32,
                dst_port: packet.destination_port as u32,
                subscriber: *key,
                destination: packet.destination,
                _pad: [0; 4],
            });
            entry.submit(0);
        }
        None => count(Counter::EventsSuppressed),
    }
}
