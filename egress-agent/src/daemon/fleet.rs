//! The daemon's side of `[fleet]`: the applied fleet set is part of the desired state; a new
//! set from the worker is applied through the same all-or-nothing, add-before-remove path as
//! reloads and CLI changes, then persisted with its revision; CLI changes go to etcd.

use std::sync::Arc;

use tokio::sync::{oneshot, watch};

use super::Agent;
use crate::{
    allowlist::{self, AllowKind, Desired, Entry},
    clock,
    config::{Config, FleetConfig},
    control::{ErrorKind, Response},
    fleet::{self, Change, Fleet, FleetSet, FleetStatus, Published, snapshot},
    paths::StateLayout,
};

/// How long a CLI change waits for etcd's answer before the operator is told it failed.
const CHANGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The worker handle and what this agent enforces from the fleet.
pub struct FleetLink {
    handle: Fleet,
    /// The set in the maps now, as persisted in `fleet.json`.
    applied: FleetSet,
    layout: StateLayout,
    key_prefix: String,
    /// Sets that could not be applied (an overflowing map); the worker counts bad keys.
    apply_errors: u64,
    /// The last set the maps refused, not retried until the fleet changes.
    refused: Option<Arc<FleetSet>>,
}

impl FleetLink {
    /// Loads the persisted set (enforced before the first sync) and starts the worker.
    pub fn start(
        config: &FleetConfig,
        layout: StateLayout,
    ) -> Result<FleetLink, super::DaemonError> {
        let applied = snapshot::load(&layout)?;
        let handle = Fleet::start(config)?;
        Ok(FleetLink {
            handle,
            applied,
            layout,
            key_prefix: config.key_prefix.clone(),
            apply_errors: 0,
            refused: None,
        })
    }

    pub fn applied(&self) -> &FleetSet {
        &self.applied
    }

    pub fn updates(&self) -> watch::Receiver<Published> {
        self.handle.updates.clone()
    }

    fn keys_of(&self, kind: AllowKind, prefix: ipnet::IpNet) -> Vec<String> {
        self.applied
            .entries
            .iter()
            .filter(|e| e.entry.kind == kind && e.entry.prefix == prefix)
            .map(|e| e.key.clone())
            .collect()
    }
}

/// The fleet part of `status` before the first word from the worker.
pub fn initial_status(config: &FleetConfig, applied: &FleetSet) -> FleetStatus {
    FleetStatus {
        key_prefix: config.key_prefix.clone(),
        endpoints: config.etcd_endpoints.clone(),
        endpoint: config.etcd_endpoints.first().cloned().unwrap_or_default(),
        applied_revision: applied.revision,
        ..FleetStatus::default()
    }
}

impl Agent {
    /// Config entries, then CLI entries, then the fleet's: the desired state. `fleet`
    /// overrides the applied set (for a set being tried).
    pub(super) fn compose(
        &self,
        config: &Config,
        cli: &[Entry],
        fleet: Option<&FleetSet>,
    ) -> Desired {
        let fleet = fleet.or(self.fleet.as_ref().map(FleetLink::applied));
        let fleet_entries = fleet.into_iter().flat_map(FleetSet::allowlist_entries);
        Desired::build(config, cli.iter().chain(fleet_entries))
    }

    /// Whether `prefix` is in `kind`'s allowlist from any source: config, CLI or fleet.
    pub(super) fn holds(&self, kind: AllowKind, prefix: ipnet::IpNet) -> bool {
        let fleet = self.fleet.as_ref().map(FleetLink::applied);
        self.config().prefix_list(kind).contains(&prefix)
            || self
                .store
                .entries()
                .iter()
                .chain(fleet.into_iter().flat_map(FleetSet::allowlist_entries))
                .any(|entry| entry.kind == kind && entry.prefix == prefix)
    }

    /// Whether CLI changes of `kind` go to etcd.
    pub(super) fn fleet_manages(&self, kind: AllowKind) -> bool {
        self.fleet.is_some() && fleet::KINDS.contains(&kind)
    }

    /// A new state from the worker: its set applied when it differs, the status updated.
    pub fn fleet_update(&mut self, published: &Published) {
        if let Some(set) = &published.set {
            self.apply_fleet_set(set);
        }
        let Some(link) = &self.fleet else { return };
        let (revision, apply_errors) = (link.applied.revision, link.apply_errors);
        self.update_status(|status| {
            let Some(fleet) = status.fleet.as_mut() else {
                return;
            };
            fleet.connected = published.connected;
            fleet.endpoint.clone_from(&published.endpoint);
            fleet.applied_revision = revision;
            fleet.sync_errors = published.sync_errors + apply_errors;
            fleet.last_error.clone_from(&published.last_error);
            if let Some(time) = published.last_sync {
                fleet.last_sync = clock::rfc3339(time);
                fleet.last_sync_unix_seconds = fleet::unix_seconds(time);
            }
        });
    }

    /// Applies `set` when its entries differ from the applied ones, and persists it. The
    /// same entries at a later revision (a progress answer, writes elsewhere in etcd) only
    /// move the applied revision; a set the maps refused is not retried until it changes.
    fn apply_fleet_set(&mut self, set: &Arc<FleetSet>) {
        let Some(link) = self.fleet.as_mut() else {
            return;
        };
        if link.applied.same_entries(set) {
            link.applied.revision = set.revision;
            return;
        }
        if link.refused.as_ref().is_some_and(|r| r.same_entries(set)) {
            return;
        }
        let desired = self.compose(self.config(), self.store.entries(), Some(set.as_ref()));
        let result = self.reconcile_desired(desired);
        let Some(link) = self.fleet.as_mut() else {
            return;
        };
        if let Err(err) = result {
            tracing::error!(revision = set.revision, %err,
                "fleet: cannot apply the fleet set; the previous one stays enforced");
            link.apply_errors += 1;
            link.refused = Some(Arc::clone(set));
            return;
        }
        tracing::info!(
            revision = set.revision,
            entries = set.entries.len(),
            "fleet: applied"
        );
        link.refused = None;
        link.applied = FleetSet::clone(set);
        if let Err(err) = snapshot::save(&link.layout, &link.applied) {
            tracing::error!(%err, "fleet: cannot persist the applied set");
        }
    }

    /// `relay add` and the like with `[fleet]`: written to etcd, applied when it comes back.
    pub(super) fn fleet_add(
        &mut self,
        kind: AllowKind,
        text: &str,
        comment: String,
        reply: oneshot::Sender<Response>,
    ) -> bool {
        let prefix = match crate::prefix::parse(text) {
            Ok(prefix) => prefix,
            Err(err) => return refuse(reply, ErrorKind::Invalid, err.to_string()),
        };
        let Some(link) = &self.fleet else {
            return refuse(reply, ErrorKind::Internal, "no [fleet] configured".into());
        };
        if !link.keys_of(kind, prefix).is_empty() {
            let _ = reply.send(Response::ok(
                format!(
                    "{prefix} is already in the fleet's {} allowlist",
                    kind.as_str()
                ),
                serde_json::Value::Null,
            ));
            return false;
        }
        let value = fleet::Value {
            comment,
            added: clock::now_rfc3339(),
            added_by: fleet::router_name(),
        };
        let mut trial = link.applied.clone();
        trial.entries.push(fleet::FleetEntry {
            key: fleet::key(&link.key_prefix, kind, prefix),
            entry: Entry {
                prefix,
                kind,
                source: allowlist::Source::Fleet,
                comment: value.comment.clone(),
                added: value.added.clone(),
                added_by: value.added_by.clone(),
            },
        });
        let desired = self.compose(self.config(), self.store.entries(), Some(&trial));
        if let Err(err) = self.check_capacity_of(desired) {
            return refuse(reply, ErrorKind::Refused, err.to_string());
        }
        let change = Change::Put {
            key: fleet::key(&link.key_prefix, kind, prefix),
            value: fleet::encode(&value),
        };
        let done = format!("added {prefix} to the fleet's {} allowlist", kind.as_str());
        self.send_to_etcd(change, done, reply)
    }

    /// `relay remove` and the like with `[fleet]`: a local CLI entry (from before the fleet)
    /// is removed here first, so migrating an entry is `add` then `remove`; else the fleet's
    /// entry is deleted in etcd. Config entries stay, as without a fleet.
    pub(super) fn fleet_remove(
        &mut self,
        kind: AllowKind,
        text: &str,
        reply: oneshot::Sender<Response>,
    ) -> bool {
        let prefix = match crate::prefix::parse(text) {
            Ok(prefix) => prefix,
            Err(err) => return refuse(reply, ErrorKind::Invalid, err.to_string()),
        };
        let local = self
            .store
            .entries()
            .iter()
            .any(|e| e.kind == kind && e.prefix == prefix);
        let keys = self
            .fleet
            .as_ref()
            .map(|link| link.keys_of(kind, prefix))
            .unwrap_or_default();
        if local || keys.is_empty() {
            // The path without a fleet: local entries, and the refusals for config entries
            // and unknown prefixes.
            let _ = reply.send(self.allow_remove(kind, text));
            return false;
        }
        let mut done = format!(
            "removed {prefix} from the fleet's {} allowlist",
            kind.as_str()
        );
        if self.config().prefix_list(kind).contains(&prefix) {
            done.push_str("; the config file's entry stays");
        }
        self.send_to_etcd(Change::Delete { keys }, done, reply)
    }

    /// Hands `change` to the worker and answers `reply` when etcd has (or has not) taken it;
    /// the daemon goes on meanwhile.
    fn send_to_etcd(&self, change: Change, done: String, reply: oneshot::Sender<Response>) -> bool {
        let Some(link) = &self.fleet else {
            return false;
        };
        let answer = match link.handle.submit(change) {
            Ok(answer) => answer,
            Err(why) => {
                return refuse(reply, ErrorKind::Internal, why.to_string());
            }
        };
        tokio::spawn(async move {
            let response = match tokio::time::timeout(CHANGE_TIMEOUT, answer).await {
                Ok(Ok(Ok(revision))) => {
                    tracing::info!(revision, "fleet: {done}");
                    Response::ok(
                        format!(
                            "{done} (etcd revision {revision}); every router of the fleet applies it"
                        ),
                        serde_json::json!({ "revision": revision }),
                    )
                }
                Ok(Ok(Err(why))) => Response::error(
                    ErrorKind::Internal,
                    format!("cannot change the fleet: {why}"),
                ),
                Ok(Err(_)) => Response::error(
                    ErrorKind::Internal,
                    "the fleet thread stopped; nothing changed",
                ),
                Err(_) => Response::error(
                    ErrorKind::Internal,
                    format!(
                        "etcd did not answer within {} s; the change may or may not have been made",
                        CHANGE_TIMEOUT.as_secs()
                    ),
                ),
            };
            let _ = reply.send(response);
        });
        false
    }
}

/// Answers a request with a refusal; the daemon goes on.
fn refuse(reply: oneshot::Sender<Response>, kind: ErrorKind, message: String) -> bool {
    let _ = reply.send(Response::error(kind, message));
    false
}
