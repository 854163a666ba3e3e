//! The etcd side of the fleet, on its own thread and runtime so a slow or absent etcd never
//! stalls the daemon. It lists the key space at a revision, watches from the next one, and
//! publishes the whole set after every change; a compacted revision or a broken watch means
//! a new list. CLI changes arrive as [`Request`]s and are answered with etcd's revision.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, KeyValue, Txn, TxnOp, WatchOptions,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::{FleetEntry, FleetSet, keys};

/// First reconnect delay, doubled per failure up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Every unary read (the list) is bounded.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// A write waits longer: a busy member's disk can take seconds to sync its log. Below the
/// daemon's own limit, so the CLI hears which way it went.
const WRITE_TIMEOUT: Duration = Duration::from_secs(4);
/// How often the watch is asked for progress; its answers keep `last_sync` fresh and prove
/// the member is alive.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(3);
/// A watch silent for this long (no events, no progress) is treated as broken.
const SILENCE_LIMIT: Duration = Duration::from_secs(10);

/// What the daemon sees of the fleet.
#[derive(Clone, Debug, Default)]
pub struct Published {
    pub connected: bool,
    /// The endpoint in use, or last tried.
    pub endpoint: String,
    /// The whole fleet set at its revision; none until the first list succeeded.
    pub set: Option<Arc<FleetSet>>,
    /// Keys or values refused (each version of a key counted once).
    pub sync_errors: u64,
    pub last_sync: Option<SystemTime>,
    pub last_error: String,
}

/// A CLI change, sent to etcd.
#[derive(Debug)]
pub enum Change {
    Put { key: String, value: String },
    Delete { keys: Vec<String> },
}

/// A change with where its answer goes: etcd's revision after it, or why it failed.
pub struct Request {
    pub change: Change,
    pub reply: oneshot::Sender<Result<i64, ChangeFailed>>,
}

/// Why a change got no revision; the two tell the operator different things.
#[derive(Debug, thiserror::Error)]
pub enum ChangeFailed {
    #[error("{0}; nothing changed")]
    Rejected(String),
    /// etcd may still apply it: a write in flight is not taken back.
    #[error(
        "etcd did not answer within {} s; the change may or may not have been made",
        .0.as_secs()
    )]
    Unanswered(Duration),
}

/// Connection settings, read and checked at start.
#[derive(Clone)]
pub struct Settings {
    pub endpoints: Vec<String>,
    pub key_prefix: String,
    pub options: ConnectOptions,
}

pub struct Worker {
    settings: Settings,
    publish: watch::Sender<Published>,
    requests: mpsc::Receiver<Request>,
    /// Valid entries by key.
    set: BTreeMap<String, FleetEntry>,
    /// Refused keys and the version (mod revision) already counted.
    refused: HashMap<String, i64>,
    revision: i64,
}

/// How a watch ended.
enum Ended {
    /// The watch's start revision was compacted: list again on the same connection.
    Compacted(i64),
    Broken(String),
    /// The daemon is gone.
    Stopped,
}

impl Worker {
    pub fn new(
        settings: Settings,
        publish: watch::Sender<Published>,
        requests: mpsc::Receiver<Request>,
    ) -> Worker {
        Worker {
            settings,
            publish,
            requests,
            set: BTreeMap::new(),
            refused: HashMap::new(),
            revision: 0,
        }
    }

    /// Connects, syncs and watches until the daemon goes away, reconnecting with backoff and
    /// moving to the next endpoint after each failure.
    pub async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        let mut next = 0;
        loop {
            let endpoint = self.settings.endpoints[next % self.settings.endpoints.len()].clone();
            self.publish
                .send_modify(|p| p.endpoint.clone_from(&endpoint));
            let started = Instant::now();
            let Some(problem) = self.session(&endpoint).await else {
                return;
            };
            let was_connected = self.publish.borrow().connected;
            if was_connected {
                tracing::warn!(%endpoint, %problem, "fleet: lost etcd; the last applied set stays enforced");
            } else if self.publish.borrow().last_error != problem {
                tracing::warn!(%endpoint, %problem, "fleet: cannot reach etcd; retrying");
            }
            self.publish.send_modify(|p| {
                p.connected = false;
                p.last_error.clone_from(&problem);
            });
            if started.elapsed() > SILENCE_LIMIT {
                backoff = BACKOFF_MIN;
            }
            let refusal = format!("etcd is unreachable ({endpoint}: {problem})");
            let pause = tokio::time::sleep(backoff);
            if refuse_changes_during(&mut self.requests, &refusal, pause)
                .await
                .is_none()
            {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            next += 1;
        }
    }

    /// One connection: list, then watch; a compaction lists again on the same connection.
    /// Returns why it broke; `None` when the daemon is gone.
    async fn session(&mut self, endpoint: &str) -> Option<String> {
        let refusal = format!("connecting to etcd at {endpoint}");
        let connect = bounded(
            CONNECT_TIMEOUT + REQUEST_TIMEOUT,
            Client::connect([endpoint], Some(self.settings.options.clone())),
        );
        let client = match refuse_changes_during(&mut self.requests, &refusal, connect).await? {
            Err(problem) => return Some(problem),
            Ok(client) => client,
        };
        loop {
            let mut lister = client.clone();
            let listed = bounded(
                REQUEST_TIMEOUT,
                lister.get(self.space(), Some(GetOptions::new().with_prefix())),
            );
            let revision = match refuse_changes_during(&mut self.requests, &refusal, listed).await?
            {
                Err(problem) => return Some(problem),
                Ok(response) => self.take_list(&response),
            };
            tracing::info!(%endpoint, revision, entries = self.set.len(), "fleet: synced with etcd");
            match self.watch(client.clone(), revision).await {
                Ended::Compacted(compacted) => {
                    tracing::warn!(%endpoint, from = revision + 1, compacted,
                        "fleet: watch revision compacted; listing the whole key space again");
                }
                Ended::Broken(problem) => return Some(problem),
                Ended::Stopped => return None,
            }
        }
    }

    /// Takes a list of the key space as the whole set and publishes it; returns its revision.
    fn take_list(&mut self, response: &etcd_client::GetResponse) -> i64 {
        let revision = response.header().map_or(0, |h| h.revision());
        self.set.clear();
        let mut refused = HashMap::new();
        for kv in response.kvs() {
            if let Some(version) = self.take(kv) {
                refused.insert(String::from_utf8_lossy(kv.key()).into_owned(), version);
            }
        }
        self.refused = refused;
        self.revision = revision;
        self.publish_set(true);
        revision
    }

    /// Watches from `revision + 1` until the watch breaks or its start was compacted.
    async fn watch(&mut self, mut client: Client, revision: i64) -> Ended {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1)
            .with_progress_notify();
        let mut stream =
            match bounded(REQUEST_TIMEOUT, client.watch(self.space(), Some(options))).await {
                Ok(stream) => stream,
                Err(problem) => return Ended::Broken(problem),
            };
        let mut progress = tokio::time::interval(PROGRESS_INTERVAL);
        let mut heard = Instant::now();
        loop {
            tokio::select! {
                message = stream.message() => {
                    let response = match message {
                        Ok(Some(response)) => response,
                        Ok(None) => return Ended::Broken("etcd closed the watch".into()),
                        Err(err) => return Ended::Broken(err.to_string()),
                    };
                    heard = Instant::now();
                    if response.compact_revision() > 0 {
                        return Ended::Compacted(response.compact_revision());
                    }
                    if response.canceled() {
                        return Ended::Broken(format!("watch canceled: {}", response.cancel_reason()));
                    }
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        match event.event_type() {
                            EventType::Put => self.put(kv),
                            EventType::Delete => self.delete(kv),
                        }
                    }
                    let at = response.header().map_or(0, |h| h.revision());
                    let changed = !response.events().is_empty();
                    self.revision = self.revision.max(at);
                    self.publish_set(changed);
                }
                _ = progress.tick() => {
                    if heard.elapsed() > SILENCE_LIMIT {
                        return Ended::Broken(format!("no answer from etcd for {} s", SILENCE_LIMIT.as_secs()));
                    }
                    if let Err(err) = stream.request_progress().await {
                        return Ended::Broken(err.to_string());
                    }
                }
                request = self.requests.recv() => {
                    let Some(request) = request else { return Ended::Stopped };
                    tokio::spawn(carry_out(client.clone(), request));
                }
            }
        }
    }

    /// The watched range: the prefix and a slash, so `/egress/north` never sees
    /// `/egress/northern`.
    fn space(&self) -> String {
        format!("{}/", self.settings.key_prefix)
    }

    /// Takes a listed or put key into the set; returns its version when it was refused.
    fn take(&mut self, kv: &KeyValue) -> Option<i64> {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        match keys::decode(&self.settings.key_prefix, kv.key(), kv.value()) {
            Ok(entry) => {
                self.set.insert(key, entry);
                None
            }
            Err(err) => {
                // A refused key contributes nothing, whatever it held before: every router
                // derives the same set from the same key space.
                self.set.remove(&key);
                let version = kv.mod_revision();
                if self.refused.get(&key) != Some(&version) {
                    tracing::warn!(%err, "fleet: entry refused and skipped");
                    self.publish.send_modify(|p| p.sync_errors += 1);
                }
                Some(version)
            }
        }
    }

    fn put(&mut self, kv: &KeyValue) {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        match self.take(kv) {
            Some(version) => {
                self.refused.insert(key, version);
            }
            None => {
                self.refused.remove(&key);
            }
        }
    }

    fn delete(&mut self, kv: &KeyValue) {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        self.set.remove(&key);
        self.refused.remove(&key);
    }

    /// Publishes a sync; the set itself only when it changed (it is copied each time).
    fn publish_set(&self, changed: bool) {
        let revision = self.revision;
        let fresh = changed.then(|| {
            Arc::new(FleetSet {
                revision,
                entries: self.set.values().cloned().collect(),
            })
        });
        self.publish.send_modify(|p| {
            p.connected = true;
            p.last_error.clear();
            p.last_sync = Some(SystemTime::now());
            match (fresh, &mut p.set) {
                (Some(set), slot) => *slot = Some(set),
                (None, Some(set)) if set.revision != revision => {
                    *set = Arc::new(FleetSet {
                        revision,
                        entries: set.entries.clone(),
                    });
                }
                (None, _) => {}
            }
        });
    }
}

/// Runs `work` while answering every change that arrives with `refusal`; `None` when the
/// daemon is gone.
async fn refuse_changes_during<T>(
    requests: &mut mpsc::Receiver<Request>,
    refusal: &str,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Some(out),
            request = requests.recv() => {
                let request = request?;
                let _ = request.reply.send(Err(ChangeFailed::Rejected(refusal.to_owned())));
            }
        }
    }
}

/// Writes one change to etcd and answers with the revision after it. Several deletes go in
/// one transaction, so a failure leaves every key as it was.
async fn carry_out(mut client: Client, request: Request) {
    let call = async move {
        match request.change {
            Change::Put { key, value } => client
                .put(key, value, None)
                .await
                .map(|r| r.header().map_or(0, |h| h.revision())),
            Change::Delete { keys } => {
                let deletes: Vec<TxnOp> =
                    keys.into_iter().map(|k| TxnOp::delete(k, None)).collect();
                client
                    .txn(Txn::new().and_then(deletes))
                    .await
                    .map(|r| r.header().map_or(0, |h| h.revision()))
            }
        }
    };
    let result = match tokio::time::timeout(WRITE_TIMEOUT, call).await {
        Ok(Ok(revision)) => Ok(revision),
        Ok(Err(err)) => Err(ChangeFailed::Rejected(err.to_string())),
        Err(_) => Err(ChangeFailed::Unanswered(WRITE_TIMEOUT)),
    };
    let _ = request.reply.send(result);
}

/// `call` within `limit`; its error or the timeout as one line.
async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
    }
}
