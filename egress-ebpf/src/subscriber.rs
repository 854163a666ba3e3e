//! Per-subscriber records and ring-buffer events for blocked SMTP traffic.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_coarse_ns};
use egress_common::{
    Counter, DataplaneConfig, EventKind, Family, SmtpPacket, SubscriberEvent, SubscriberKey,
    SubscriberRecord,
    parse::address_from_words,
    subscriber::{bits_set, destination_bit_of_words},
};

use crate::maps::{EVENTS, POOL_RECORDS_V4, POOL_TABLE_V4, SUBSCRIBERS, count};

/// Records one blocked (dropped or monitored) SMTP packet against its subscriber: in the pool
/// records for an IPv4 source of `subscribers.pools`, in the LRU map otherwise. Kept out of
/// line: it is off the fast path and its own stack frame keeps the caller's small.
#[inline(never)]
pub fn record_blocked(packet: &SmtpPacket, config: &DataplaneConfig) {
    // CLOCK_MONOTONIC at tick granularity (1-4 ms): the same clock the agent reads, a fraction of
    // the cost of the precise one, and far finer than the seconds the records are shown in and
    // the windows they are judged over.
    // SAFETY: a helper without preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let bit = destination_bit_of_words(packet.destination_words());
    let update = Update {
        now,
        attempt: packet.is_connection_attempt() as u64,
        word: (bit >> 6) as usize & 1,
        mask: 1u64 << (bit & 63),
    };
    if packet.family == Family::Ipv4 {
        if let Some(record) = pool_record(packet.source_v4()) {
            // SAFETY: a pointer into the array's value, valid for this program run.
            let record = unsafe { &mut *record };
            if record.packets == 0 {
                // A slot nobody has used: a subscriber seen for the first time. Two CPUs
                // may both see it empty in the same instant and both report it; the agent
                // takes the second report as the same subscriber.
                *record = update.fresh(packet);
                emit(EventKind::FirstSeen, now, packet, config);
                check_thresholds(record, config, now, packet, true);
            } else {
                update.apply(record, packet, config);
            }
            return;
        }
    }
    let key = subscriber_key(packet, config);
    let record = match SUBSCRIBERS.get_ptr_mut(&key) {
        Some(record) => record,
        None => {
            let mut fresh = update.fresh(packet);
            // Judged before the insert, so a new subscriber costs one lookup, not two.
            let crossed = over_threshold(&fresh, config, true);
            if crossed {
                fresh.flagged_ns = now;
            }
            if SUBSCRIBERS.insert(&key, &fresh, BPF_NOEXIST as u64).is_ok() {
                emit(EventKind::FirstSeen, now, packet, config);
                if crossed {
                    emit(EventKind::Flagged, now, packet, config);
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
    update.apply(unsafe { &mut *record }, packet, config);
}

/// The pool record of an IPv4 source, or None outside the pools (counted while there are
/// pools) or without pools.
#[inline(always)]
fn pool_record(source: u32) -> Option<*mut SubscriberRecord> {
    let table = POOL_TABLE_V4.get(0)?;
    if table.count == 0 {
        return None;
    }
    match table.slot_of(source) {
        Some(slot) => POOL_RECORDS_V4.get_ptr_mut(slot),
        None => {
            count(Counter::OutsidePools);
            None
        }
    }
}

/// What one blocked packet adds to its subscriber's record.
struct Update {
    now: u64,
    attempt: u64,
    /// The destination's bit: word of the bitmap and mask in it.
    word: usize,
    mask: u64,
}

impl Update {
    #[inline(always)]
    fn fresh(&self, packet: &SmtpPacket) -> SubscriberRecord {
        let mut destinations = [0u64; 2];
        destinations[self.word] = self.mask;
        SubscriberRecord {
            attempts: self.attempt,
            packets: 1,
            bytes: packet.ip_len as u64,
            first_seen_ns: self.now,
            last_seen_ns: self.now,
            destinations,
            window_start_ns: self.now,
            window_attempts: self.attempt,
            window_destinations: destinations,
            flagged_ns: 0,
        }
    }

    /// Plain read-modify-write, not atomic adds: a lock-prefixed add costs as much as the rest
    /// of the update on a hot record. The price is a rare lost increment when two CPUs update
    /// the same subscriber within the same few nanoseconds (RSS keeps a flow on one CPU; only a
    /// subscriber spreading connections over CPUs at a very high rate can collide), which the
    /// per-window thresholds and the counters' use as bot evidence tolerate.
    #[inline(always)]
    fn apply(&self, record: &mut SubscriberRecord, packet: &SmtpPacket, config: &DataplaneConfig) {
        let (now, word, mask) = (self.now, self.word, self.mask);
        if now.wrapping_sub(record.window_start_ns) > config.window_ns {
            record.window_start_ns = now;
            record.window_attempts = 0;
            record.window_destinations = [0, 0];
        }
        // Whether the last packet was over a threshold: both stamps come from the same `now`.
        let was_flagged = record.flagged_ns == record.last_seen_ns;
        record.attempts += self.attempt;
        record.window_attempts += self.attempt;
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
        check_thresholds(record, config, now, packet, bitmap_may_cross);
    }
}

/// Whether the record's window is over a detection threshold.
#[inline(always)]
fn over_threshold(
    record: &SubscriberRecord,
    config: &DataplaneConfig,
    bitmap_may_cross: bool,
) -> bool {
    let over_attempts =
        config.attempts_threshold != 0 && record.window_attempts >= config.attempts_threshold;
    over_attempts
        || (bitmap_may_cross
            && config.destination_bits_threshold != 0
            && bits_set(&record.window_destinations) >= config.destination_bits_threshold)
}

/// Marks the subscriber as over a detection threshold, emitting an event when it was not already.
#[inline(always)]
fn check_thresholds(
    record: &mut SubscriberRecord,
    config: &DataplaneConfig,
    now: u64,
    packet: &SmtpPacket,
    bitmap_may_cross: bool,
) {
    if !over_threshold(record, config, bitmap_may_cross) {
        return;
    }
    let already = record.flagged_ns != 0 && now.wrapping_sub(record.flagged_ns) <= config.window_ns;
    record.flagged_ns = now;
    if !already {
        emit(EventKind::Flagged, now, packet, config);
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

/// Out of line, with the key built again here: events are rare, and the pool path needs no key
/// otherwise.
#[inline(never)]
fn emit(kind: EventKind, now: u64, packet: &SmtpPacket, config: &DataplaneConfig) {
    match EVENTS.reserve::<SubscriberEvent>(0) {
        Some(mut entry) => {
            entry.write(SubscriberEvent {
                timestamp_ns: now,
                kind: kind as u32,
                dst_port: packet.destination_port as u32,
                subscriber: subscriber_key(packet, config),
                destination: packet.destination,
                _pad: [0; 4],
            });
            entry.submit(0);
        }
        None => count(Counter::EventsSuppressed),
    }
}
