//! A fleet of routers sharing their allowlists through etcd (v3, `[fleet]`): the agent
//! applies the set it watches under `key_prefix`, and its CLI changes go there. Enforcement
//! never waits for etcd: the last applied set is persisted with its revision and enforced at
//! start, and stays enforced while etcd is away.
//!
//! The etcd client runs on its own thread ([`worker`]); the daemon sees [`Published`] states
//! on a watch channel and sends [`Change`]s, and owns applying and persisting (`daemon::fleet`).

mod keys;
pub mod metrics;
pub mod snapshot;
mod validate;
mod worker;

use std::{path::PathBuf, time::SystemTime};

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

pub use keys::{FleetEntry, KINDS, Value, encode, key};
pub use snapshot::FleetSet;
pub use validate::validate;
pub use worker::{Change, ChangeFailed, Published};

use crate::config::FleetConfig;

/// CLI changes waiting for the worker; more are refused at once rather than queued.
const MAX_PENDING_CHANGES: usize = 64;
/// HTTP/2 pings on the etcd connection: a dead member or a cut link is noticed within
/// about twice this.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("fleet.{key}: cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the fleet thread: {0}")]
    Thread(std::io::Error),
}

/// `status`'s view of the fleet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub key_prefix: String,
    pub endpoints: Vec<String>,
    /// The endpoint in use, or last tried.
    pub endpoint: String,
    pub connected: bool,
    /// The etcd revision of the set enforced now.
    pub applied_revision: i64,
    /// RFC 3339; empty before the first sync.
    pub last_sync: String,
    #[serde(default)]
    pub last_sync_unix_seconds: u64,
    /// Keys or values refused, and changes that could not be applied.
    pub sync_errors: u64,
    /// Why the agent is disconnected; empty when connected.
    #[serde(default)]
    pub last_error: String,
}

/// The daemon's handle on the worker thread.
pub struct Fleet {
    requests: mpsc::Sender<worker::Request>,
    pub updates: watch::Receiver<Published>,
}

impl Fleet {
    /// Reads the credentials and starts the worker thread; it connects in the background.
    pub fn start(config: &FleetConfig) -> Result<Fleet, FleetError> {
        let settings = worker::Settings {
            endpoints: config.etcd_endpoints.clone(),
            key_prefix: config.key_prefix.clone(),
            options: connect_options(config)?,
        };
        let (publish, updates) = watch::channel(Published::default());
        let (requests, incoming) = mpsc::channel(MAX_PENDING_CHANGES);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(FleetError::Thread)?;
        std::thread::Builder::new()
            .name("fleet".into())
            .spawn(move || runtime.block_on(worker::Worker::new(settings, publish, incoming).run()))
            .map_err(FleetError::Thread)?;
        Ok(Fleet { requests, updates })
    }

    /// Hands `change` to the worker; its answer (etcd's revision after it) comes on the
    /// receiver. Refused at once when the worker is busy or gone.
    pub fn submit(
        &self,
        change: Change,
    ) -> Result<oneshot::Receiver<Result<i64, ChangeFailed>>, ChangeFailed> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .try_send(worker::Request { change, reply })
            .map_err(|err| {
                ChangeFailed::Rejected(
                    match err {
                        mpsc::error::TrySendError::Full(_) => "too many fleet changes in flight",
                        mpsc::error::TrySendError::Closed(_) => "the fleet thread stopped",
                    }
                    .to_owned(),
                )
            })?;
        Ok(answer)
    }
}

fn connect_options(config: &FleetConfig) -> Result<ConnectOptions, FleetError> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(std::time::Duration::from_secs(2))
        .with_keep_alive(KEEP_ALIVE, KEEP_ALIVE)
        .with_keep_alive_while_idle(true)
        .with_require_leader(true);
    if let (Some(user), Some(file)) = (&config.username, &config.password_file) {
        let password = read("password_file", file)?;
        let password = String::from_utf8_lossy(&password).trim_end().to_owned();
        options = options.with_user(user.clone(), password);
    }
    if let Some(ca) = &config.ca_file {
        let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read("ca_file", ca)?));
        if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
            tls = tls.identity(Identity::from_pem(
                read("cert_file", cert)?,
                read("key_file", key)?,
            ));
        }
        options = options.with_tls(tls);
    }
    Ok(options)
}

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, FleetError> {
    std::fs::read(path).map_err(|source| FleetError::Read {
        key,
        path: path.into(),
        source,
    })
}

/// What `added_by` says for this router's CLI changes: its host name.
pub fn router_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// Seconds since the Unix epoch (0 before it, which a synced time never is).
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
