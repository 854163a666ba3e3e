//! Delivering queued reports to the webhook, on a thread of its own: POST the stored body,
//! signed with HMAC-SHA256 (`X-Egress-Signature: sha256=<hex>`), until a 2xx; failed tries
//! back off exponentially, up to an hour. Whatever the endpoint does (hangs, refuses, 500s),
//! only this thread waits.

use std::{
    sync::{
        Arc,
        atomic::Ordering::Relaxed,
        mpsc::{Receiver, RecvTimeoutError},
    },
    thread::JoinHandle,
    time::Duration,
};

use hmac::{KeyInit as _, Mac as _};
use rusqlite::Connection;

use super::{NotifyError, NotifyStats, queue, report::hex};
use crate::history::{History, now_ms};

/// Reports tried per pass before looking at the wake-ups again.
const BATCH: i64 = 32;
/// Longest sleep with nothing due (a report stored by another connection wakes it anyway).
const IDLE: Duration = Duration::from_secs(30);
const PRUNE_EVERY_MS: i64 = 3_600_000;

pub const SIGNATURE_HEADER: &str = "X-Egress-Signature";

/// `notify.webhook_url` must be an absolute http or https URL.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed: ureq::http::Uri = url
        .parse()
        .map_err(|err| format!("`{url}` is not a URL: {err}"))?;
    match parsed.scheme_str() {
        Some("http" | "https") if parsed.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        Some("http" | "https") => Err(format!("`{url}` has no host")),
        _ => Err(format!("`{url}` must start with http:// or https://")),
    }
}

/// `sha256=<hex>` of the body under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

pub struct Deliverer {
    pub url: String,
    pub secret: Option<Vec<u8>>,
    pub timeout: Duration,
    pub retention_ms: i64,
}

pub fn spawn(
    deliverer: Deliverer,
    history: &History,
    stats: Arc<NotifyStats>,
    wake: Receiver<()>,
) -> Result<JoinHandle<()>, NotifyError> {
    let conn = history.connect()?;
    let history = history.clone();
    std::thread::Builder::new()
        .name("notify".into())
        .spawn(move || deliverer.run(&conn, &history, &stats, &wake))
        .map_err(NotifyError::Thread)
}

impl Deliverer {
    fn run(&self, conn: &Connection, history: &History, stats: &NotifyStats, wake: &Receiver<()>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("egress-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let mut next_prune = 0;
        tracing::info!(url = %self.url, "delivering evidence reports to the webhook");
        loop {
            let now = now_ms();
            if now >= next_prune {
                self.prune(conn, history, now);
                next_prune = now + PRUNE_EVERY_MS;
            }
            let due = match queue::due(conn, now, BATCH) {
                Ok(due) => due,
                Err(err) => {
                    tracing::warn!(err = %history.error(err), "cannot read the notification queue");
                    Vec::new()
                }
            };
            for (report_id, body, attempts) in &due {
                self.deliver(&agent, conn, history, stats, report_id, body, *attempts);
            }
            refresh_queued(conn, stats);
            if !due.is_empty() {
                continue;
            }
            let wait = queue::next_due_ms(conn).ok().flatten().map_or(IDLE, |due| {
                Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0)).min(IDLE)
            });
            match wake.recv_timeout(wait) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &self,
        agent: &ureq::Agent,
        conn: &Connection,
        history: &History,
        stats: &NotifyStats,
        report_id: &str,
        body: &str,
        attempts: u64,
    ) {
        let mut request = agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
        }
        let outcome = match request.send(body.as_bytes()) {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("HTTP {}", response.status())),
            Err(err) => Err(err.to_string()),
        };
        let stored = match &outcome {
            Ok(()) => {
                stats.delivered.fetch_add(1, Relaxed);
                tracing::info!(report_id, "evidence report delivered");
                queue::mark_delivered(conn, report_id, now_ms())
            }
            Err(why) => {
                stats.failed_attempt.fetch_add(1, Relaxed);
                let next = queue::backoff_ms(attempts + 1) / 1000;
                tracing::warn!(report_id, error = %why, retry_in_seconds = next,
                    "webhook delivery failed; will retry");
                queue::mark_failed(conn, report_id, attempts, why, now_ms())
            }
        };
        if let Err(err) = stored {
            tracing::error!(report_id, err = %history.error(err), "cannot record a delivery attempt");
        }
    }

    fn prune(&self, conn: &Connection, history: &History, now: i64) {
        let pruned = conn.execute(
            "DELETE FROM reports WHERE flagged_ms < ?1 AND state != 'queued'",
            [now - self.retention_ms],
        );
        match pruned {
            Ok(0) => {}
            Ok(n) => tracing::info!(reports = n, "reports past retention_days pruned"),
            Err(err) => tracing::warn!(err = %history.error(err), "cannot prune reports"),
        }
    }
}

fn refresh_queued(conn: &Connection, stats: &NotifyStats) {
    if let Ok(queued) = queue::count_queued(conn) {
        stats.queued.store(queued, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_http_and_https_urls_are_accepted() {
        assert!(check_url("https://abuse.isp.example/egress").is_ok());
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("ftp://abuse.isp.example/").is_err());
        assert!(check_url("abuse.isp.example").is_err());
        assert!(check_url("http://").is_err());
    }
}
