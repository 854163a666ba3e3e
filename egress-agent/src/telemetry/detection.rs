//! Logs subscribers becoming suspected bots and ceasing to be (the window passed quietly).
//!
//! The dataplane decides; this task only notices the transitions, by looking at the map every
//! few seconds, and at once (at most every `MIN_GAP`) when the event drain sees a flag event:
//! the periodic scan is the backstop for events lost to a full ring buffer. It remembers at most `MAX_REMEMBERED` suspects, so a flood of flagged (spoofed)
//! sources costs bounded memory; beyond that, transitions are summarised, not listed.

use std::{collections::HashSet, time::Duration};

use tokio::time::Instant;

use egress_common::{SubscriberKey, SubscriberRecord};

use super::{
    TelemetryContext, limiter,
    subscribers::{self, Detector},
};

const INTERVAL: Duration = Duration::from_secs(3);
/// Shortest pause between two scans, however many flag events arrive.
const MIN_GAP: Duration = Duration::from_millis(250);
const MAX_REMEMBERED: usize = 100_000;

pub async fn watch_forever(ctx: TelemetryContext) {
    let mut suspects: HashSet<SubscriberKey> = HashSet::new();
    let mut reported_suppressed = limiter::suppressed();
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_scan: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = ctx.flag_wake.notified() => {
                if let Some(last) = last_scan {
                    tokio::time::sleep_until(last + MIN_GAP).await;
                }
            }
        }
        last_scan = Some(Instant::now());
        let scan_ctx = ctx.clone();
        let before = std::mem::take(&mut suspects);
        // Transitions are handled on the blocking pool too: with traceability they look up
        // identities and store reports (SQLite).
        let scanned = tokio::task::spawn_blocking(move || match current_suspects(&scan_ctx) {
            Ok(now) => Ok(log_transitions(&scan_ctx, before, now)),
            Err(err) => Err((before, err.to_string())),
        })
        .await;
        match scanned {
            Ok(Ok(now)) => suspects = now,
            Ok(Err((before, err))) => {
                suspects = before;
                tracing::debug!(error = %err, "bot detection scan failed");
            }
            Err(err) => tracing::warn!(error = %err, "bot detection scan panicked"),
        }
        let suppressed = limiter::suppressed();
        if suppressed > reported_suppressed {
            tracing::warn!(
                suppressed = suppressed - reported_suppressed,
                "subscriber log lines suppressed by the rate limit"
            );
            reported_suppressed = suppressed;
        }
    }
}

type Suspects = Vec<(SubscriberKey, SubscriberRecord)>;

fn current_suspects(ctx: &TelemetryContext) -> Result<Suspects, super::TelemetryError> {
    let detector = Detector::now(ctx);
    let mut suspects = Vec::new();
    super::scan::for_each_subscriber(&ctx.pins, |key, record| {
        if detector.suspected(record) && suspects.len() < MAX_REMEMBERED {
            suspects.push((*key, *record));
        }
    })?;
    Ok(suspects)
}

fn log_transitions(
    ctx: &TelemetryContext,
    mut before: HashSet<SubscriberKey>,
    now: Suspects,
) -> HashSet<SubscriberKey> {
    let mut current = HashSet::with_capacity(now.len());
    let mut flagged = Vec::new();
    let mut still = Vec::new();
    for (key, record) in &now {
        current.insert(*key);
        if before.remove(key) {
            still.push((*key, *record));
        } else {
            flagged.push((*key, *record));
        }
    }
    if let Some(trace) = &ctx.traceability {
        let detection = super::read(&ctx.config).detection.clone();
        let ended: Vec<SubscriberKey> = before.iter().copied().collect();
        trace.flags_seen(&detection, &still, &ended, &crate::clock::Clocks::now());
    }
    if let Some(trace) = ctx.traceability.as_ref().filter(|_| !flagged.is_empty()) {
        let detection = super::read(&ctx.config).detection.clone();
        let identities = trace.flagged(&detection, &flagged, &crate::clock::Clocks::now());
        for ((key, record), identity) in flagged.iter().zip(identities) {
            if limiter::allow() {
                crate::traceability::log_flagged(key, record, &identity);
            }
        }
        flagged.clear();
    }
    for (key, record) in &flagged {
        if limiter::allow() {
            tracing::warn!(
                event = "suspected_bot",
                subscriber = %subscribers::label(key),
                attempts = record.attempts,
                window_attempts = record.window_attempts,
                distinct_destinations =
                    subscribers::distinct_destinations(&record.window_destinations),
                "subscriber flagged as a suspected bot"
            );
        }
    }
    for key in &before {
        if limiter::allow() {
            tracing::info!(
                event = "suspected_bot_cleared",
                subscriber = %subscribers::label(key),
                "subscriber no longer a suspected bot: the detection window passed quietly"
            );
        }
    }
    if now.len() >= MAX_REMEMBERED {
        tracing::warn!(
            remembered = MAX_REMEMBERED,
            "too many suspected bots to follow one by one; see egress_suspected_bots"
        );
    }
    current
}
