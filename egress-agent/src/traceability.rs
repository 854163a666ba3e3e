//! Ties identity and notification to the rest of the agent through one narrow handle,
//! present only when `[identity]` or `[notify]` is configured (otherwise nothing here
//! runs, and the fast path and telemetry are as before).
//!
//! Everything on it blocks (SQLite): callers are the blocking pool and the two threads.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::SystemTime,
};

use egress_common::{SubscriberEvent, SubscriberKey, SubscriberRecord};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{
    clock::{self, Clocks},
    config::{Config, DetectionConfig},
    history::{History, HistoryError, unix_ms},
    identity::{self, Directory, Identity, RadiusStats, Session, listener::ListenerError},
    notify::{
        Notifier, NotifyError, Report,
        queue::{self, ReportRow},
        report::{self, Thresholds},
        samples::SampleBook,
    },
    telemetry::{SubscriberView, exposition::Exposition, subscribers},
};

/// Most rows one `reports` answer carries.
const MAX_REPORTS_LISTED: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Listener(#[from] ListenerError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

pub struct Traceability {
    pub history: History,
    pub directory: Directory,
    /// Present with `[identity]`.
    pub radius: Option<Arc<RadiusStats>>,
    pub notifier: Notifier,
    pub samples: SampleBook,
    /// Per flagged subscriber, when its transition was last recorded as seen active (Unix
    /// ms); bounded by the detection scan's suspects.
    flag_marks: Mutex<HashMap<SubscriberKey, i64>>,
    _threads: Vec<JoinHandle<()>>,
}

impl Traceability {
    /// Opens the history and starts the listener and delivery threads the config asks for.
    pub fn start(config: &Config) -> Result<Option<Arc<Traceability>>, TraceError> {
        if config.identity.is_none() && config.notify.is_none() {
            return Ok(None);
        }
        let history = History::open(std::path::Path::new(&config.state_dir))?;
        let directory = Directory::open(&history)?;
        let mut threads = Vec::new();
        let radius = match &config.identity {
            Some(identity) => {
                let stats = Arc::new(RadiusStats::default());
                threads.push(identity::spawn_listener(
                    identity,
                    &history,
                    Arc::clone(&stats),
                )?);
                Some(stats)
            }
            None => None,
        };
        let (notifier, delivery) = Notifier::start(config, &history)?;
        threads.extend(delivery);
        tracing::info!(database = %history.path().display(), "history database open");
        Ok(Some(Arc::new(Traceability {
            history,
            directory,
            radius,
            notifier,
            samples: SampleBook::default(),
            flag_marks: Mutex::default(),
            _threads: threads,
        })))
    }

    /// A dataplane event: remember its destination for the subscriber's report.
    pub fn record_event(&self, event: &SubscriberEvent, destination: IpAddr) {
        self.samples.record(&event.subscriber, destination);
    }

    /// Newly flagged subscribers: their identity then (and now, if different), and one
    /// stored report each, queued for the webhook, unless the flag is a transition already
    /// reported (by this agent before a restart).
    pub fn flagged(
        &self,
        detection: &DetectionConfig,
        flagged: &[(SubscriberKey, SubscriberRecord)],
        clocks: &Clocks,
    ) -> Vec<Identity> {
        let window_ms = window_ms(detection);
        let mut identities = Vec::with_capacity(flagged.len());
        let mut reports = Vec::with_capacity(flagged.len());
        let mut continued = Vec::new();
        let mut marks = self.flag_marks.lock().unwrap_or_else(|p| p.into_inner());
        for (key, record) in flagged {
            let flagged_at = clocks.wall_of(record.flagged_ns);
            let flag_ms = unix_ms(flagged_at);
            let identity = self.identity_of(key, Some(flagged_at));
            let subscriber = subscribers::label(key);
            match self.notifier.active_report(&subscriber, flag_ms, window_ms) {
                Ok(Some(report_id)) => {
                    tracing::debug!(%subscriber, %report_id, "flag already reported");
                    continued.push((subscriber, flag_ms));
                }
                Ok(None) => reports.push((
                    self.report(detection, key, record, clocks, identity.then.clone()),
                    flag_ms,
                )),
                Err(err) => tracing::error!(%err, %subscriber, "cannot read the active flags"),
            }
            marks.insert(*key, flag_ms);
            identities.push(identity);
        }
        drop(marks);
        if let Err(err) = self.notifier.store(&reports) {
            tracing::error!(%err, reports = reports.len(), "cannot store evidence reports");
        }
        if let Err(err) = self.notifier.track_flags(&continued, &[]) {
            tracing::error!(%err, "cannot record the active flags");
        }
        identities
    }

    /// The scan's other transitions: flags still active (their sighting is recorded at most
    /// every half window) and flags that ended.
    pub fn flags_seen(
        &self,
        detection: &DetectionConfig,
        active: &[(SubscriberKey, SubscriberRecord)],
        ended: &[SubscriberKey],
        clocks: &Clocks,
    ) {
        let window_ms = window_ms(detection);
        let mut seen = Vec::new();
        let mut marks = self.flag_marks.lock().unwrap_or_else(|p| p.into_inner());
        for (key, record) in active {
            let flag_ms = unix_ms(clocks.wall_of(record.flagged_ns));
            let marked = marks.entry(*key).or_insert(i64::MIN);
            if flag_ms.saturating_sub(*marked) > window_ms / 2 {
                *marked = flag_ms;
                seen.push((subscribers::label(key), flag_ms));
            }
        }
        for key in ended {
            marks.remove(key);
        }
        drop(marks);
        let ended: Vec<String> = ended.iter().map(subscribers::label).collect();
        if let Err(err) = self.notifier.track_flags(&seen, &ended) {
            tracing::error!(%err, "cannot record the active flags");
        }
    }

    fn report(
        &self,
        detection: &DetectionConfig,
        key: &SubscriberKey,
        record: &SubscriberRecord,
        clocks: &Clocks,
        identity: Option<Session>,
    ) -> Report {
        let subscriber = subscribers::label(key);
        Report {
            version: 1,
            kind: "suspected_bot".to_owned(),
            report_id: report::report_id(&self.notifier.router, &subscriber, record.flagged_ns),
            router: self.notifier.router.clone(),
            family: if key.family == 4 { "ipv4" } else { "ipv6" }.to_owned(),
            identity,
            flagged_at: clock::rfc3339(clocks.wall_of(record.flagged_ns)),
            first_seen: clock::rfc3339(clocks.wall_of(record.first_seen_ns)),
            last_seen: clock::rfc3339(clocks.wall_of(record.last_seen_ns)),
            attempts_total: record.attempts,
            attempts_in_window: record.window_attempts,
            window_seconds: detection.window_seconds,
            distinct_destinations_estimate: subscribers::distinct_destinations(
                &record.window_destinations,
            ),
            sample_destinations: self.samples.of(key),
            thresholds: Thresholds {
                window_seconds: detection.window_seconds,
                attempts_threshold: detection.attempts_threshold,
                distinct_destinations_threshold: detection.distinct_destinations_threshold,
            },
            subscriber,
        }
    }

    /// The identity of a subscriber: then = when flagged (or now, when not flagged).
    pub fn identity_of(&self, key: &SubscriberKey, flagged_at: Option<SystemTime>) -> Identity {
        self.directory.identity(subscriber_net(key), flagged_at)
    }

    /// Adds the identity to a `top` / `subscriber` row.
    pub fn enrich(
        &self,
        view: &mut SubscriberView,
        key: &SubscriberKey,
        record: &SubscriberRecord,
        clocks: &Clocks,
    ) {
        let flagged_at = (view.suspected_bot && record.flagged_ns != 0)
            .then(|| clocks.wall_of(record.flagged_ns));
        let identity = self.identity_of(key, flagged_at);
        view.identity = identity.then;
        view.identity_now = identity.now;
    }

    /// `who`: the sessions holding `target` at `at`.
    pub fn who(&self, target: IpNet, at: SystemTime) -> Result<Vec<Session>, HistoryError> {
        self.directory.who(target, at)
    }

    /// `reports`: flagged at or after `since`.
    pub fn reports(&self, since: SystemTime) -> Result<Vec<ReportRow>, HistoryError> {
        self.directory
            .with(|conn| queue::list(conn, unix_ms(since), MAX_REPORTS_LISTED))
    }

    pub fn write_metrics(&self, out: &mut Exposition) {
        if let Some(radius) = &self.radius {
            identity::metrics::write(out, radius);
        }
        crate::notify::metrics::write(out, &self.notifier.stats);
    }
}

fn window_ms(detection: &DetectionConfig) -> i64 {
    i64::try_from(detection.window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// The prefix a subscriber record stands for (/32, or the aggregated IPv6 prefix).
pub fn subscriber_net(key: &SubscriberKey) -> IpNet {
    if key.family == 4 {
        let [a, b, c, d, ..] = key.addr;
        IpNet::V4(Ipv4Net::from(std::net::Ipv4Addr::new(a, b, c, d)))
    } else {
        Ipv6Net::new(key.addr.into(), key.prefix_len.min(128)).map_or_else(
            |_| IpNet::V6(Ipv6Net::from(std::net::Ipv6Addr::from(key.addr))),
            |net| IpNet::V6(net.trunc()),
        )
    }
}

/// The flag log line with who held the address then (and now, when someone else does).
pub fn log_flagged(key: &SubscriberKey, record: &SubscriberRecord, identity: &Identity) {
    let describe = |session: &Option<Session>| {
        session.as_ref().map_or_else(
            || "unknown (no RADIUS session)".to_owned(),
            Session::summary,
        )
    };
    let subscriber = subscribers::label(key);
    let destinations = subscribers::distinct_destinations(&record.window_destinations);
    let then = describe(&identity.then);
    let session_id = identity
        .then
        .as_ref()
        .map(|s| s.acct_session_id.as_str())
        .unwrap_or("");
    match &identity.now {
        None => tracing::warn!(
            event = "suspected_bot",
            subscriber = %subscriber,
            attempts = record.attempts,
            window_attempts = record.window_attempts,
            distinct_destinations = destinations,
            identity = %then,
            acct_session_id = session_id,
            "subscriber flagged as a suspected bot"
        ),
        Some(now) => tracing::warn!(
            event = "suspected_bot",
            subscriber = %subscriber,
            attempts = record.attempts,
            window_attempts = record.window_attempts,
            distinct_destinations = destinations,
            identity = %then,
            acct_session_id = session_id,
            identity_now = %now.summary(),
            "subscriber flagged as a suspected bot"
        ),
    }
}
