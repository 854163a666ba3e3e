//! The daemon's state and how it changes: start, reload, allowlist changes.

use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;

use crate::{
    allowlist::{Desired, Entry, store::Store},
    config::{self, Config, ConfigError},
    control::server::ServerError,
    dataplane::{
        AttachError, Dataplane, DataplaneError, Replace,
        allowlist_maps::{self, Direction},
        attach, capacity,
        maps::MapsError,
    },
    paths::{PinLayout, StateLayout},
    status::{AgentStatus, Attachment},
    telemetry::{self, TelemetryContext},
};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    StateFile(#[from] crate::state_file::StateFileError),
    #[error(transparent)]
    Maps(#[from] MapsError),
    #[error(transparent)]
    Control(#[from] ServerError),
    #[error("{file}: {source}")]
    Capacity {
        file: PathBuf,
        source: capacity::CapacityError,
    },
    #[error("cannot install signal handler: {source}")]
    Signal { source: std::io::Error },
    #[error(transparent)]
    Traceability(#[from] crate::traceability::TraceError),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
}

pub struct Agent {
    config_path: PathBuf,
    config: Config,
    dataplane: Dataplane,
    pub(super) store: Store,
    pub(super) context: TelemetryContext,
    telemetry: Option<JoinHandle<()>>,
    /// Last attach error per interface and hook, so the periodic check logs each once.
    attach_errors: std::collections::HashMap<(String, config::Hook), String>,
    /// What the allowlist maps were last brought in line with: the drift check compares
    /// against it instead of rebuilding it from the config every round (a million entries).
    pub(super) applied: Option<std::sync::Arc<Desired>>,
    /// Whether the maps hold `applied` exactly, so a change can be diffed against it in memory
    /// instead of reading every map back. False after a change failed partway and once drift
    /// is found: the next reconcile reads the maps.
    pub(super) maps_hold_applied: bool,
    /// Counts the changes applied to the maps; a drift check against an older one is stale.
    pub(super) generation: u64,
    /// `[fleet]`: the etcd worker and the fleet set enforced now.
    pub(super) fleet: Option<super::fleet::FleetLink>,
}

impl Agent {
    /// Loads, fills the maps, then attaches: in that order, so the first packet our program
    /// sees is judged against the full policy.
    pub fn start(config_path: &Path) -> Result<Agent, DaemonError> {
        let config = config::load(config_path)?;
        // Before the dataplane is touched: a missing credential file changes nothing. The
        // persisted fleet set is enforced below, before the first word from etcd.
        let fleet = config
            .fleet
            .as_ref()
            .map(|settings| {
                super::fleet::FleetLink::start(settings, StateLayout::new(&config.state_dir))
            })
            .transpose()?;
        let features = crate::dataplane::features::get();
        let dataplane = Dataplane::load(&config)?;
        dataplane.apply_settings(&config)?;
        let store = Store::load(&StateLayout::new(&config.state_dir))?;
        let mut status =
            AgentStatus::new(config.mode, &config.pin_dir, config.subscribers.max_tracked);
        status.pool_addresses = crate::dataplane::pools::table(&config.subscribers).addresses();
        status.kernel = features.kernel.clone();
        status.missing_kernel_features = features.missing_lines();
        if let (Some(settings), Some(link)) = (&config.fleet, &fleet) {
            status.fleet = Some(super::fleet::initial_status(settings, link.applied()));
        }
        let traceability = crate::traceability::Traceability::start(&config)?;
        let context = TelemetryContext::new(dataplane.pins().clone(), status, config.clone())
            .with_traceability(traceability);
        let mut agent = Agent {
            config_path: config_path.to_owned(),
            config,
            dataplane,
            store,
            context,
            telemetry: None,
            attach_errors: std::collections::HashMap::new(),
            applied: None,
            maps_hold_applied: false,
            generation: 0,
            fleet,
        };
        agent.reconcile_allowlists(None)?;
        agent.remove_unconfigured_links();
        agent.attach_all(Replace::Program);
        tracing::info!(config = %config_path.display(), mode = agent.config.mode.as_str(), "agent started");
        Ok(agent)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn spawn_telemetry(&mut self) {
        let context = self.context.clone();
        self.telemetry = Some(tokio::spawn(async move {
            if let Err(err) = telemetry::run(context).await {
                tracing::error!(%err, "telemetry stopped");
            }
        }));
    }

    pub fn stop_telemetry(&mut self) {
        if let Some(task) = self.telemetry.take() {
            task.abort();
        }
    }

    /// Refuses a desired state (`config`, CLI entries `cli`, the applied fleet set) that would
    /// overflow an allowlist map; returns it when it fits.
    pub(super) fn check_capacity(
        &self,
        config: &Config,
        cli: &[Entry],
    ) -> Result<Desired, capacity::CapacityError> {
        self.check_capacity_of(self.compose(config, cli, None))
    }

    /// Refuses `desired` when it would overflow an allowlist map; returns it otherwise.
    pub(super) fn check_capacity_of(
        &self,
        desired: Desired,
    ) -> Result<Desired, capacity::CapacityError> {
        capacity::check(&desired, self.dataplane.allowlist_capacity())?;
        crate::inbound::maps::check_capacity(&desired)?;
        Ok(desired)
    }

    /// Makes the kernel maps match the desired state; `cli` overrides the stored CLI entries
    /// (for a change being tried). Adds before removing within each map.
    pub(super) fn reconcile_allowlists(&mut self, cli: Option<&[Entry]>) -> Result<(), MapsError> {
        let desired = self.compose(&self.config, cli.unwrap_or(self.store.entries()), None);
        self.reconcile_desired(desired)
    }

    /// `[fleet]`: the worker's states, for the event loop.
    pub fn fleet_updates(&self) -> Option<tokio::sync::watch::Receiver<crate::fleet::Published>> {
        self.fleet.as_ref().map(super::fleet::FleetLink::updates)
    }

    /// Makes the kernel maps hold `desired`, already built by the caller (a reload builds it
    /// once for the capacity check and the reconcile: millions of entries).
    pub(super) fn reconcile_desired(&mut self, desired: Desired) -> Result<(), MapsError> {
        let capacity = self.dataplane.allowlist_capacity();
        // Checked for every map before touching any, so an overflow changes nothing.
        capacity::check(&desired, capacity)?;
        crate::inbound::maps::check_capacity(&desired)?;
        // Until this change succeeds, what the maps hold is unknown.
        let held = if std::mem::take(&mut self.maps_hold_applied) {
            self.applied.clone()
        } else {
            None
        };
        let held = held.as_deref();
        let pins = self.dataplane.pins();
        let sources = allowlist_maps::reconcile(
            pins,
            Direction::Sources,
            &desired.sources,
            held.map(|held| &held.sources),
            capacity,
        )?;
        let destinations = allowlist_maps::reconcile(
            pins,
            Direction::Destinations,
            &desired.destinations,
            held.map(|held| &held.destinations),
            capacity,
        )?;
        let inbound = crate::inbound::maps::reconcile(pins, &desired, held)?;
        if sources.inserted + sources.removed + destinations.inserted + destinations.removed > 0 {
            tracing::info!(
                inserted = sources.inserted + destinations.inserted,
                removed = sources.removed + destinations.removed,
                "allowlist maps updated"
            );
        }
        if inbound.inserted + inbound.removed > 0 {
            tracing::info!(
                inserted = inbound.inserted,
                removed = inbound.removed,
                "inbound lists updated"
            );
        }
        self.update_status(|status| status.allowlist_entries = desired.counts());
        self.applied = Some(std::sync::Arc::new(desired));
        self.maps_hold_applied = true;
        self.generation += 1;
        Ok(())
    }

    pub(super) fn update_status(&self, change: impl FnOnce(&mut AgentStatus)) {
        match self.context.status.write() {
            Ok(mut status) => change(&mut status),
            Err(poisoned) => change(&mut poisoned.into_inner()),
        }
    }

    fn attach_all(&mut self, replace: Replace) {
        let mut attachments = Vec::new();
        for interface in self.config.interfaces.clone() {
            let attachment = self.attach_one(&interface, replace);
            super::watch::log_foreign_filters(&attachment);
            if attachment.foreign_program {
                super::watch::log_foreign(&attachment);
            } else if !attachment.attached && super::watch::interface_missing(&interface.name) {
                tracing::warn!(interface = %interface.name, hook = interface.hook.as_str(),
                    "interface not present; will attach when it appears");
            }
            attachments.push(attachment);
        }
        self.update_status(|status| status.attachments = attachments);
    }

    pub(super) fn attach_one(
        &mut self,
        interface: &config::InterfaceConfig,
        replace: Replace,
    ) -> Attachment {
        match self
            .dataplane
            .ensure_attached(interface, replace, self.config.control.reattach)
        {
            Ok(attachment) => {
                self.attach_errors
                    .remove(&(interface.name.clone(), interface.hook));
                attachment
            }
            Err(err) => {
                let foreign_program = matches!(err, AttachError::Foreign { .. });
                let message = err.to_string();
                let key = (interface.name.clone(), interface.hook);
                if self.attach_errors.get(&key) != Some(&message) {
                    tracing::error!(err = %message, "attach failed");
                    self.attach_errors.insert(key, message);
                }
                Attachment {
                    interface: interface.name.clone(),
                    hook: interface.hook,
                    mode: String::new(),
                    attached: false,
                    foreign_program,
                    method: String::new(),
                    foreign_filters: Vec::new(),
                }
            }
        }
    }

    /// Link pins for interfaces no longer configured are removed (this detaches them), and so
    /// are our legacy TC filters there.
    fn remove_unconfigured_links(&self) {
        let pins = self.dataplane.pins();
        for interface in crate::dataplane::tc_legacy::recorded(pins) {
            let configured = self
                .config
                .interfaces
                .iter()
                .any(|i| i.name == interface && i.hook == config::Hook::TcEgress);
            if configured {
                continue;
            }
            match crate::dataplane::tc_legacy::remove(pins, &interface) {
                Ok(removal) => tracing::info!(%interface, hook = "tc-egress", ?removal,
                    "detached: interface no longer configured"),
                Err(err) => tracing::error!(%interface, %err, "cannot remove our cls_bpf filter"),
            }
        }
        for hook in config::Hook::ALL {
            let Ok(dir) = std::fs::read_dir(pins.hook_dir(hook.as_str())) else {
                continue;
            };
            for entry in dir.flatten() {
                let interface = PinLayout::link_interface(&entry.file_name().to_string_lossy());
                let configured = self
                    .config
                    .interfaces
                    .iter()
                    .any(|i| i.name == interface && i.hook == hook);
                if configured {
                    continue;
                }
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => tracing::info!(%interface, hook = hook.as_str(),
                        "detached: interface no longer configured"),
                    Err(err) => tracing::error!(%interface, %err, "cannot remove link pin"),
                }
            }
        }
    }

    /// SIGHUP: re-read the config and apply the difference; a bad config changes nothing.
    pub fn reload(&mut self) {
        tracing::info!(config = %self.config_path.display(), "SIGHUP: reloading config");
        match self.try_reload() {
            Ok(()) => {
                self.update_status(|status| status.config_last_reload_successful = true);
                tracing::info!("config reloaded");
            }
            Err(err) => {
                self.update_status(|status| status.config_last_reload_successful = false);
                tracing::error!(%err, "config reload failed; the previous config stays in force");
            }
        }
    }

    fn try_reload(&mut self) -> Result<(), DaemonError> {
        let new = config::load(&self.config_path)?;
        for (key, old, now) in [
            ("pin_dir", &self.config.pin_dir, &new.pin_dir),
            ("state_dir", &self.config.state_dir, &new.state_dir),
            (
                "control.socket",
                &self.config.control.socket,
                &new.control.socket,
            ),
        ] {
            if old != now {
                return Err(ConfigError::Invalid {
                    file: self.config_path.clone(),
                    key: key.to_owned(),
                    problem: format!("changing it from `{old}` to `{now}` needs a restart"),
                }
                .into());
            }
        }
        // The listener and delivery threads are started with the agent.
        for (key, changed) in [
            ("identity", self.config.identity != new.identity),
            ("notify", self.config.notify != new.notify),
            ("fleet", self.config.fleet != new.fleet),
        ] {
            if changed {
                return Err(ConfigError::Invalid {
                    file: self.config_path.clone(),
                    key: key.to_owned(),
                    problem: format!("changing [{key}] needs a restart"),
                }
                .into());
            }
        }
        // The whole change is checked before anything is touched.
        let desired = self
            .check_capacity(&new, self.store.entries())
            .map_err(|source| DaemonError::Capacity {
                file: self.config_path.clone(),
                source,
            })?;
        let reload_program = self.dataplane.needs_reload(&new);
        let new_dataplane = if reload_program {
            Some(Dataplane::load(&new)?)
        } else {
            None
        };
        let target = new_dataplane.as_ref().unwrap_or(&self.dataplane);
        target.apply_settings(&new)?;
        let old = std::mem::replace(&mut self.config, new);
        if let Err(err) = self.reconcile_desired(desired) {
            if let Err(restore) = self.dataplane.apply_settings(&old) {
                tracing::error!(%restore, "cannot restore the previous dataplane settings");
            }
            self.config = old;
            return Err(err.into());
        }
        if let Some(dataplane) = new_dataplane {
            self.dataplane = dataplane;
            tracing::info!(
                "program reloaded for new blocked_ports/max_tracked; links updated atomically"
            );
        }
        self.remove_unconfigured_links();
        self.attach_all(if reload_program {
            Replace::Program
        } else {
            Replace::Keep
        });
        let listen_changed = old.metrics.listen != self.config.metrics.listen;
        self.publish_config();
        if listen_changed {
            self.stop_telemetry();
            self.spawn_telemetry();
        }
        Ok(())
    }

    fn publish_config(&self) {
        let config = self.config.clone();
        match self.context.config.write() {
            Ok(mut shared) => *shared = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        self.update_status(|status| {
            status.mode = self.config.mode;
            status.max_tracked = self.config.subscribers.max_tracked;
            status.pool_addresses =
                crate::dataplane::pools::table(&self.config.subscribers).addresses();
        });
    }

    /// Periodic: vanished interfaces are marked, returning ones re-attached, foreign
    /// programs reported (and replaced when `control.reattach`).
    pub fn check_interfaces(&mut self) {
        let before = self.status_snapshot().attachments;
        let mut now = Vec::new();
        for interface in self.config.interfaces.clone() {
            let attachment = self.attach_one(&interface, Replace::Keep);
            if let Some(previous) = before
                .iter()
                .find(|a| a.interface == attachment.interface && a.hook == attachment.hook)
            {
                super::watch::log_transition(previous, &attachment);
            }
            now.push(attachment);
        }
        self.update_status(|status| status.attachments = now);
    }

    pub(super) fn status_snapshot(&self) -> AgentStatus {
        telemetry::status_snapshot(&self.context)
    }

    pub(super) fn dataplane(&self) -> &Dataplane {
        &self.dataplane
    }

    /// `detach` through the socket: remove everything; the caller then exits.
    pub(super) fn detach_everything(
        &mut self,
    ) -> Result<crate::dataplane::teardown::Removed, crate::dataplane::teardown::TeardownError>
    {
        for interface in &self.config.interfaces {
            if let Err(err) = attach::remove(self.dataplane.pins(), &interface.name, interface.hook)
            {
                tracing::error!(interface = %interface.name, %err, "cannot remove link pin");
            }
        }
        crate::dataplane::teardown::remove_all(self.dataplane.pins())
    }
}
