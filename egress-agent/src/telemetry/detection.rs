//! Logs subscribers becoming suspected bots and ceasing to be (the window passed quietly).
//!
//! The dataplane decides; this task only notices the transitions, by looking at the map every
//! few seconds. It remembers at most `MAX_REMEMBERED` suspects, so a flood of flagged (spoofed)
//! sources costs bounded memory; beyond that, transitions are summarised, not listed.

use std::{collections::HashSet, time::Duration};

use egress_common::{SubscriberKey, SubscriberRecord};

use super::{
    TelemetryContext, limiter,
    subscribers::{self, Detector},
};

const INTERVAL: Duration = Duration::from_secs(3);
const MAX_REMEMBERED: usize = 100_000;

pub async fn watch_forever(ctx: TelemetryContext) {
    let mut suspects: HashSet<SubscriberKey> = HashSet::new();
    let mut reported_suppressed = limiter::suppressed();
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let scan_ctx = ctx.clone();
        let scanned = tokio::task::spawn_blocking(move || current_suspects(&scan_ctx)).await;
        match scanned {
            Ok(Ok(now)) => suspects = log_transitions(suspects, now),
            Ok(Err(err)) => tracing::debug!(error = %err, "bot detection scan failed"),
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

fn log_transitions(mut before: HashSet<SubscriberKey>, now: Suspects) -> HashSet<SubscriberKey> {
    let mut current = HashSet::with_capacity(now.len());
    for (key, record) in &now {
        current.insert(*key);
        if !before.remove(key) && limiter::allow() {
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
