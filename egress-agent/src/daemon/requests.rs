//! Answering control requests. Allowlist changes are persisted before the map changes, and
//! undone on disk if the map refuses them. `status`, `top` and `subscriber` only read the
//! pinned maps (the latter two may scan up to `max_tracked` records): they are answered from
//! the blocking pool, so they never stall signals, reloads or other requests on the daemon's
//! single thread.

use std::{collections::BTreeMap, net::IpAddr};

use tokio::sync::oneshot;

use super::Agent;
use crate::{
    allowlist::{self, AllowKind, Entry, Source},
    clock,
    control::{ErrorKind, Request, Response, protocol::StatusView},
    dataplane::maps,
    prefix,
    telemetry::{self, TelemetryContext},
};

impl Agent {
    /// Answers `request` on `reply` (now, or when its scan is done); returns whether the daemon
    /// must stop (after `detach`). A requester that went away needs no answer.
    pub fn handle(&mut self, request: Request, reply: oneshot::Sender<Response>) -> bool {
        let (response, stop) = match request {
            Request::AllowAdd {
                kind,
                prefix,
                comment,
            } if self.fleet_manages(kind) => return self.fleet_add(kind, &prefix, comment, reply),
            Request::AllowRemove { kind, prefix } if self.fleet_manages(kind) => {
                return self.fleet_remove(kind, &prefix, reply);
            }
            Request::AllowAdd {
                kind,
                prefix,
                comment,
            } => (self.allow_add(kind, &prefix, comment), false),
            Request::AllowRemove { kind, prefix } => (self.allow_remove(kind, &prefix), false),
            Request::AllowList { kind } => (self.allow_list(kind), false),
            Request::Status {} => return self.scan(reply, status),
            Request::Top { n } => return self.scan(reply, move |context| top(context, n)),
            Request::Subscriber { address } => match parse_address(&address) {
                Ok(address) => {
                    return self.scan(reply, move |context| subscriber(context, address));
                }
                Err(refusal) => (refusal, false),
            },
            Request::Who { address, at } => {
                return self.scan(reply, move |context| {
                    super::trace::who(context, &address, at)
                });
            }
            Request::Reports { since } => {
                return self.scan(reply, move |context| super::trace::reports(context, since));
            }
            Request::Detach {} => match self.detach_everything() {
                Ok(removed) => {
                    tracing::info!(links = ?removed.links, maps = ?removed.maps, "detached on request; exiting");
                    (
                        Response::ok(
                            "detached: programs, links and pins removed; the agent exits",
                            serde_json::json!({ "pid": std::process::id() }),
                        ),
                        true,
                    )
                }
                Err(err) => (Response::error(ErrorKind::Internal, err.to_string()), false),
            },
        };
        let _ = reply.send(response);
        stop
    }

    /// Answers from the blocking pool; a scan never stops the daemon.
    fn scan(
        &self,
        reply: oneshot::Sender<Response>,
        answer: impl FnOnce(&TelemetryContext) -> Response + Send + 'static,
    ) -> bool {
        let context = self.context.clone();
        tokio::task::spawn_blocking(move || {
            let _ = reply.send(answer(&context));
        });
        false
    }

    fn allow_add(&mut self, kind: AllowKind, text: &str, comment: String) -> Response {
        if kind == AllowKind::ThrottleDestination {
            return Response::error(
                ErrorKind::Invalid,
                "throttle destinations come from the config file only (inbound.throttle.destinations)"
                    .to_owned(),
            );
        }
        let prefix = match prefix::parse(text) {
            Ok(prefix) => prefix,
            Err(err) => return Response::error(ErrorKind::Invalid, err.to_string()),
        };
        if self.holds(kind, prefix) {
            return Response::ok(
                format!("{prefix} is already in the {} allowlist", kind.as_str()),
                serde_json::Value::Null,
            );
        }
        let mut entries = self.store.entries().to_vec();
        entries.push(Entry {
            prefix,
            kind,
            source: Source::Cli,
            comment,
            added: clock::now_rfc3339(),
            added_by: String::new(),
        });
        self.change_cli_entries(
            entries,
            format!("added {prefix} to the {} allowlist", kind.as_str()),
        )
    }

    pub(super) fn allow_remove(&mut self, kind: AllowKind, text: &str) -> Response {
        let prefix = match prefix::parse(text) {
            Ok(prefix) => prefix,
            Err(err) => return Response::error(ErrorKind::Invalid, err.to_string()),
        };
        if self.config().prefix_list(kind).contains(&prefix) {
            return Response::error(
                ErrorKind::Refused,
                format!(
                    "{prefix} comes from the config file ({}, {}); remove it there and reload",
                    self.config_path().display(),
                    kind.config_key()
                ),
            );
        }
        let before = self.store.entries().len();
        let entries: Vec<Entry> = self
            .store
            .entries()
            .iter()
            .filter(|e| !(e.kind == kind && e.prefix == prefix))
            .cloned()
            .collect();
        if entries.len() == before {
            return Response::error(
                ErrorKind::Invalid,
                format!("{prefix} is not in the {} allowlist", kind.as_str()),
            );
        }
        self.change_cli_entries(
            entries,
            format!("removed {prefix} from the {} allowlist", kind.as_str()),
        )
    }

    /// Persist, then apply; on a map error put the old list back on disk.
    fn change_cli_entries(&mut self, entries: Vec<Entry>, done: String) -> Response {
        if let Err(err) = self.check_capacity(self.config(), &entries) {
            return Response::error(ErrorKind::Refused, err.to_string());
        }
        let previous = self.store.entries().to_vec();
        if let Err(err) = self.store.replace(entries) {
            return Response::error(ErrorKind::Internal, err.to_string());
        }
        if let Err(err) = self.reconcile_allowlists(None) {
            let restored = self.store.replace(previous);
            let _ = self.reconcile_allowlists(None);
            if let Err(disk) = restored {
                tracing::error!(%disk, "cannot restore the allowlist state file");
            }
            return Response::error(ErrorKind::Internal, format!("{err}; nothing changed"));
        }
        tracing::info!("{done}");
        Response::ok(done, serde_json::Value::Null)
    }

    /// Config and CLI entries, then every fleet entry: a prefix both in the config and in
    /// the fleet is listed twice, once per source.
    fn allow_list(&self, kind: AllowKind) -> Response {
        let mut entries: Vec<Entry> = allowlist::entries(self.config(), self.store.entries())
            .into_iter()
            .filter(|e| e.kind == kind)
            .collect();
        if let Some(link) = &self.fleet {
            entries.extend(
                link.applied()
                    .allowlist_entries()
                    .filter(|e| e.kind == kind)
                    .cloned(),
            );
        }
        Response::data(&entries)
    }
}

/// Answered from the blocking pool like a scan: it reads the counters and the census, and
/// must not wait behind (or hold up) the daemon's loop.
fn status(context: &TelemetryContext) -> Response {
    let counters = match maps::read_counters(&context.pins) {
        Ok(counters) => counters
            .into_iter()
            .map(|(counter, value)| (counter.name().to_owned(), value))
            .collect(),
        Err(err) => {
            tracing::warn!(%err, "cannot read counters");
            BTreeMap::new()
        }
    };
    let subscribers_tracked = telemetry::tracked_subscribers(context).unwrap_or_else(|err| {
        tracing::warn!(%err, "cannot count subscribers");
        0
    });
    Response::data(&StatusView {
        agent: telemetry::status_snapshot(context),
        counters,
        subscribers_tracked,
    })
}

fn parse_address(text: &str) -> Result<IpAddr, Response> {
    text.trim()
        .parse()
        .map_err(|_| Response::error(ErrorKind::Invalid, format!("`{text}` is not an IP address")))
}

fn top(context: &TelemetryContext, n: usize) -> Response {
    telemetry::top(context, n).map_or_else(internal, |views| Response::data(&views))
}

fn subscriber(context: &TelemetryContext, address: IpAddr) -> Response {
    match telemetry::find(context, address) {
        Ok(Some(view)) => Response::data(&view),
        Ok(None) => Response::error(
            ErrorKind::NotFound,
            format!("no record for subscriber {address}"),
        ),
        Err(err) => internal(err),
    }
}

fn internal(err: impl std::fmt::Display) -> Response {
    Response::error(ErrorKind::Internal, err.to_string())
}
