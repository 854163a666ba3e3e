//! Drains the dataplane's event ring buffer into structured, rate-limited log lines.

use std::{
    mem::size_of,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use egress_common::{EventKind, SubscriberEvent, names};
use tokio::io::{Interest, unix::AsyncFd};

use super::{TelemetryContext, TelemetryError, limiter, pinned, subscribers};
use crate::clock::{self, Clocks};

/// How long to wait before reopening the ring buffer after an error (e.g. maps not pinned yet).
const RETRY: Duration = Duration::from_secs(5);

/// Drains events until aborted; problems are logged and retried, never fatal.
pub async fn drain_forever(ctx: TelemetryContext) {
    loop {
        if let Err(err) = drain(&ctx).await {
            tracing::warn!(error = %err, "subscriber events unavailable; retrying");
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn drain(ctx: &TelemetryContext) -> Result<(), TelemetryError> {
    let pinned::PinnedMap { path, map } = pinned::open(&ctx.pins, names::EVENTS)?;
    let ring = RingBuf::<MapData>::try_from(map).map_err(|source| TelemetryError::OpenMap {
        path: path.clone(),
        source,
    })?;
    // SAFETY: the RingBuf owns its map fd and always returns it; the AsyncFd owns the RingBuf.
    let registered = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) };
    let mut ring = registered.map_err(|err| TelemetryError::Events {
        path: path.clone(),
        source: err.into_parts().1,
    })?;
    loop {
        let mut ready = ring
            .readable_mut()
            .await
            .map_err(|source| TelemetryError::Events {
                path: path.clone(),
                source,
            })?;
        let clocks = Clocks::now();
        let ring = ready.get_inner_mut();
        let mut flagged = false;
        while let Some(item) = ring.next() {
            if let Some(event) = parse(&item) {
                if let Some(trace) = &ctx.traceability {
                    trace.record_event(&event, destination(&event));
                }
                flagged |= event.kind == EventKind::Flagged as u32;
                log(&event, &clocks);
            }
        }
        if flagged {
            // The detection scan notices the transition (and stores the report) now; it is
            // rate-limited there, so a flood of flags costs at most 4 scans a second.
            ctx.flag_wake.notify_one();
        }
        ready.clear_ready();
    }
}

fn parse(bytes: &[u8]) -> Option<SubscriberEvent> {
    if bytes.len() < size_of::<SubscriberEvent>() {
        return None;
    }
    // SAFETY: the length is checked; SubscriberEvent is plain old data, read unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<SubscriberEvent>()) })
}

fn log(event: &SubscriberEvent, clocks: &Clocks) {
    if !limiter::allow() {
        return;
    }
    let subscriber = subscribers::label(&event.subscriber);
    let destination = destination(event);
    let at = clock::rfc3339(clocks.wall_of(event.timestamp_ns));
    // tracing fixes the level per call site, so one line shape is stamped out per level.
    macro_rules! event_line {
        ($level:ident, $name:literal, $message:literal) => {
            tracing::$level!(
                event = $name,
                subscriber = %subscriber,
                destination = %destination,
                dst_port = event.dst_port,
                at = %at,
                $message
            )
        };
    }
    match event.kind {
        k if k == EventKind::FirstSeen as u32 => event_line!(
            info,
            "first_seen",
            "subscriber first seen sending to a blocked port"
        ),
        k if k == EventKind::Flagged as u32 => event_line!(
            warn,
            "flagged",
            "subscriber crossed a bot-detection threshold"
        ),
        other => tracing::debug!(kind = other, "unknown subscriber event kind"),
    }
}

fn destination(event: &SubscriberEvent) -> IpAddr {
    if event.subscriber.family == 4 {
        let [a, b, c, d, ..] = event.destination;
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    } else {
        IpAddr::V6(Ipv6Addr::from(event.destination))
    }
}
