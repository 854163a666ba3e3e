//! The kernel side the agent owns: bpffs, the loaded object, pinned maps and pinned links.

pub mod allowlist_maps;
pub mod attach;
pub mod bpffs;
pub mod capacity;
pub mod features;
pub mod host_table;
pub mod layout;
pub mod maps;
pub mod netlink;
pub mod pools;
pub mod source_filter;
pub mod source_hosts;
pub mod source_index;
pub mod tc_legacy;
pub mod tc_netlink;
pub mod teardown;

use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, Xdp},
};
use egress_common::{DataplaneConfig, Mode, PortSet, inbound::names as inbound_names, names};

use crate::{
    EBPF_OBJECT,
    config::{Config, InterfaceConfig, ModeSetting},
    paths::PinLayout,
    status::Attachment,
};

pub use attach::{AttachError, Replace};

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error(transparent)]
    Bpffs(#[from] bpffs::BpffsError),
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error("loading the eBPF object: {0}")]
    Load(Box<aya::EbpfError>),
    #[error("loading program {name}: {source}")]
    Program {
        name: &'static str,
        source: Box<aya::programs::ProgramError>,
    },
    #[error(transparent)]
    Maps(#[from] maps::MapsError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error("cannot create {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Settings baked into the loaded object; changing them needs a new load.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LoadSettings {
    blocked_ports: Vec<u16>,
    max_tracked: u32,
    allowlist_capacity: u32,
    inbound_ports: Vec<u16>,
    max_sources: u32,
    pools: egress_common::pools::PoolTable,
}

impl LoadSettings {
    fn of(config: &Config) -> Self {
        LoadSettings {
            blocked_ports: config.blocked_ports.clone(),
            max_tracked: config.subscribers.max_tracked,
            allowlist_capacity: capacity::allowlist_capacity(),
            inbound_ports: config.inbound.ports.clone(),
            max_sources: config.inbound.throttle.max_sources,
            pools: pools::table(&config.subscribers),
        }
    }
}

/// The loaded programs and the pins they use. Maps live in bpffs; the programs are referenced
/// by pinned links, so dropping this leaves enforcement in place.
pub struct Dataplane {
    pins: PinLayout,
    ebpf: Ebpf,
    settings: LoadSettings,
}

impl Dataplane {
    /// Mounts bpffs if needed, recreates incompatible map pins, loads the object with the
    /// configured ports and capacity, and pins (or reuses) every map. Attaches nothing.
    pub fn load(config: &Config) -> Result<Dataplane, DataplaneError> {
        let pins = PinLayout::new(&config.pin_dir);
        bpffs::ensure(pins.root())?;
        std::fs::create_dir_all(pins.maps_dir()).map_err(|source| DataplaneError::Dir {
            path: pins.maps_dir(),
            source,
        })?;
        let settings = LoadSettings::of(config);
        let mut specs = layout::required(
            EBPF_OBJECT,
            settings.max_tracked,
            settings.allowlist_capacity,
        )?;
        let pool_slots = pools::record_slots(&settings.pools);
        for spec in &mut specs {
            if spec.name == inbound_names::BUCKETS {
                spec.max_entries = settings.max_sources;
            } else if spec.name == names::POOL_RECORDS_V4 {
                spec.max_entries = pool_slots;
            }
        }
        pools::forget_other_pools(&pins, &settings.pools)?;
        layout::remove_incompatible(&pins, &specs)?;
        layout::remove_retired(&pins)?;

        let ports = settings
            .blocked_ports
            .iter()
            .fold(PortSet::EMPTY, |set, port| set.with(*port));
        let inbound_ports = crate::inbound::port_set(config);
        let mut loader = EbpfLoader::new();
        loader
            .override_global(names::BLOCKED_PORTS, &ports, true)
            .map_max_entries(names::SUBSCRIBERS, settings.max_tracked)
            .override_global(inbound_names::PORTS, &inbound_ports, true)
            .map_max_entries(inbound_names::BUCKETS, settings.max_sources)
            .map_max_entries(names::POOL_RECORDS_V4, pool_slots);
        for name in capacity::sized_by_capacity() {
            loader.map_max_entries(name, settings.allowlist_capacity);
        }
        for spec in &specs {
            loader.map_pin_path(spec.name.as_str(), pins.map(&spec.name));
        }
        let mut ebpf = loader
            .load(EBPF_OBJECT)
            .map_err(|e| DataplaneError::Load(Box::new(e)))?;
        load_programs(&mut ebpf)?;
        pools::write_table(&pins, &settings.pools)?;
        tracing::info!(pin_dir = %pins.root().display(), blocked_ports = ?settings.blocked_ports,
            max_tracked = settings.max_tracked, allowlist_capacity = settings.allowlist_capacity,
            "eBPF object loaded, maps pinned");
        Ok(Dataplane {
            pins,
            ebpf,
            settings,
        })
    }

    pub fn pins(&self) -> &PinLayout {
        &self.pins
    }

    /// Entries each allowlist map of the loaded object holds at most.
    pub fn allowlist_capacity(&self) -> u32 {
        self.settings.allowlist_capacity
    }

    /// True when `config` changes something baked in at load time.
    pub fn needs_reload(&self, config: &Config) -> bool {
        self.settings != LoadSettings::of(config)
            || self.pins.root() != std::path::Path::new(&config.pin_dir)
    }

    /// Writes mode and detection settings into the config map, mode and throttle settings into
    /// the inbound one.
    pub fn apply_settings(&self, config: &Config) -> Result<(), DataplaneError> {
        maps::write_config(&self.pins, &dataplane_config(config))?;
        crate::inbound::maps::write_config(&self.pins, &crate::inbound::dataplane_config(config))?;
        Ok(())
    }

    /// Attaches (or adopts) our program on `interface`.
    pub fn ensure_attached(
        &mut self,
        interface: &InterfaceConfig,
        replace: Replace,
        reattach: bool,
    ) -> Result<Attachment, AttachError> {
        attach::ensure(&mut self.ebpf, &self.pins, interface, replace, reattach)
    }
}

fn load_programs(ebpf: &mut Ebpf) -> Result<(), DataplaneError> {
    let err = |name| {
        move |source| DataplaneError::Program {
            name,
            source: Box::new(source),
        }
    };
    let missing = |name| DataplaneError::Program {
        name,
        source: Box::new(aya::programs::ProgramError::NotLoaded),
    };
    let xdp: &mut Xdp = ebpf
        .program_mut(names::XDP_PROGRAM)
        .ok_or_else(|| missing(names::XDP_PROGRAM))?
        .try_into()
        .map_err(err(names::XDP_PROGRAM))?;
    xdp.load().map_err(err(names::XDP_PROGRAM))?;
    let tc: &mut SchedClassifier = ebpf
        .program_mut(names::TC_PROGRAM)
        .ok_or_else(|| missing(names::TC_PROGRAM))?
        .try_into()
        .map_err(err(names::TC_PROGRAM))?;
    tc.load().map_err(err(names::TC_PROGRAM))?;
    let inbound: &mut Xdp = ebpf
        .program_mut(inbound_names::PROGRAM)
        .ok_or_else(|| missing(inbound_names::PROGRAM))?
        .try_into()
        .map_err(err(inbound_names::PROGRAM))?;
    inbound.load().map_err(err(inbound_names::PROGRAM))?;
    Ok(())
}

/// The dataplane's view of the config.
pub fn dataplane_config(config: &Config) -> DataplaneConfig {
    let prefix_len = u32::from(config.subscribers.ipv6_prefix_len);
    DataplaneConfig {
        mode: match config.mode {
            ModeSetting::Enforce => Mode::Enforce as u32,
            ModeSetting::Monitor => Mode::Monitor as u32,
        },
        ipv6_prefix_len: prefix_len,
        ipv6_mask: egress_common::config::ipv6_mask(prefix_len),
        window_ns: config
            .detection
            .window_seconds
            .saturating_mul(1_000_000_000),
        attempts_threshold: config.detection.attempts_threshold,
        destination_bits_threshold: crate::estimate::bits_threshold(
            config.detection.distinct_destinations_threshold,
        ),
        // Kept from the map by `maps::write_config`; the allowlist reconcile owns them.
        allowlist_flags: 0,
        reserved: 0,
    }
}
