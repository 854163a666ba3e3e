//! The allowlist the agent wants in the kernel: entries from the config file plus entries the
//! operator added through the CLI (persisted under `state_dir`).

pub mod merge;
pub mod store;

use std::collections::{BTreeMap, HashSet};

use egress_common::allow_kind;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{config::Config, status::ByKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllowKind {
    Relay,
    Exempt,
    Destination,
    /// `[inbound] protected_mx`: the primary MX (inbound program, destination).
    #[serde(rename = "protected_mx")]
    ProtectedMx,
    /// `[inbound] mx_senders`: the spam checkers (inbound program, source).
    #[serde(rename = "mx_sender")]
    MxSender,
    /// `[inbound.throttle] destinations` (config only).
    #[serde(rename = "throttle_destination")]
    ThrottleDestination,
}

/// The kernel map pair (IPv4 and IPv6 tries) a kind's prefixes live in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Sources,
    Destinations,
    ProtectedMx,
    MxSenders,
    Throttled,
}

impl Target {
    const COUNT: usize = 5;
}

impl AllowKind {
    pub const ALL: [AllowKind; 6] = [
        AllowKind::Relay,
        AllowKind::Exempt,
        AllowKind::Destination,
        AllowKind::ProtectedMx,
        AllowKind::MxSender,
        AllowKind::ThrottleDestination,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AllowKind::Relay => "relay",
            AllowKind::Exempt => "exempt",
            AllowKind::Destination => "destination",
            AllowKind::ProtectedMx => "protected_mx",
            AllowKind::MxSender => "mx_sender",
            AllowKind::ThrottleDestination => "throttle_destination",
        }
    }

    /// The bit this kind sets in an allowlist map value.
    pub const fn bit(self) -> u32 {
        match self {
            AllowKind::Relay => allow_kind::RELAY,
            AllowKind::Exempt => allow_kind::EXEMPT,
            AllowKind::Destination => allow_kind::DESTINATION,
            AllowKind::ProtectedMx => allow_kind::PROTECTED_MX,
            AllowKind::MxSender => allow_kind::MX_SENDER,
            AllowKind::ThrottleDestination => allow_kind::THROTTLE_DESTINATION,
        }
    }

    /// Relays and exempt customers are matched on the source; destinations on the destination.
    pub const fn is_source(self) -> bool {
        matches!(self, AllowKind::Relay | AllowKind::Exempt)
    }

    /// Where the kind's prefixes go: the outbound tries or one of the inbound program's.
    pub const fn target(self) -> Target {
        match self {
            AllowKind::Relay | AllowKind::Exempt => Target::Sources,
            AllowKind::Destination => Target::Destinations,
            AllowKind::ProtectedMx => Target::ProtectedMx,
            AllowKind::MxSender => Target::MxSenders,
            AllowKind::ThrottleDestination => Target::Throttled,
        }
    }

    /// The config key listing this kind.
    pub const fn config_key(self) -> &'static str {
        match self {
            AllowKind::Relay => "allow.relays",
            AllowKind::Exempt => "allow.exempt",
            AllowKind::Destination => "allow.destinations",
            AllowKind::ProtectedMx => "inbound.protected_mx",
            AllowKind::MxSender => "inbound.mx_senders",
            AllowKind::ThrottleDestination => "inbound.throttle.destinations",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Config,
    Cli,
    /// From etcd (`[fleet]`), shared by every router of the fleet.
    Fleet,
}

impl Source {
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Cli => "cli",
            Source::Fleet => "fleet",
        }
    }
}

/// One allowlist entry as `relay list` / `exempt list` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub prefix: IpNet,
    pub kind: AllowKind,
    pub source: Source,
    #[serde(default)]
    pub comment: String,
    /// RFC 3339 for CLI entries; empty for config entries.
    #[serde(default)]
    pub added: String,
    /// Fleet entries: the router whose CLI added it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub added_by: String,
}

/// Every entry of the desired state: config entries first, then CLI entries not already in
/// the config.
pub fn entries(config: &Config, cli: &[Entry]) -> Vec<Entry> {
    // A set, not a scan of `all`: allowlists reach millions of entries. Sized up front so a
    // reload of millions does not rehash and copy its way there.
    let total = AllowKind::ALL
        .into_iter()
        .map(|kind| config.prefix_list(kind).len())
        .sum::<usize>()
        + cli.len();
    let mut seen: HashSet<(AllowKind, IpNet)> = HashSet::with_capacity(total);
    let mut all = Vec::with_capacity(total);
    for kind in AllowKind::ALL {
        for prefix in config.prefix_list(kind).iter() {
            if seen.insert((kind, prefix)) {
                all.push(Entry {
                    prefix,
                    kind,
                    source: Source::Config,
                    comment: String::new(),
                    added: String::new(),
                    added_by: String::new(),
                });
            }
        }
    }
    for entry in cli {
        if seen.insert((entry.kind, entry.prefix)) {
            all.push(entry.clone());
        }
    }
    all
}

/// What one allowlist map should hold: prefix -> OR of kind bits.
pub type MapContents = BTreeMap<IpNet, u32>;

/// Desired contents of the source map and the destination map, and of the inbound lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub sources: MapContents,
    pub destinations: MapContents,
    pub protected_mx: MapContents,
    pub mx_senders: MapContents,
    pub throttled: MapContents,
}

impl Desired {
    /// The config's lists and `entries` (CLI, fleet) merged per map, without an [`Entry`] per
    /// config prefix: a million of them would cost a hundred bytes each.
    pub fn build<'e>(config: &Config, entries: impl IntoIterator<Item = &'e Entry>) -> Desired {
        let mut pairs: [Vec<(IpNet, u32)>; Target::COUNT] = Default::default();
        for kind in AllowKind::ALL {
            let list = config.prefix_list(kind);
            let target = &mut pairs[kind.target() as usize];
            target.reserve(list.len());
            target.extend(list.iter().map(|prefix| (prefix, kind.bit())));
        }
        for entry in entries {
            pairs[entry.kind.target() as usize].push((entry.prefix, entry.kind.bit()));
        }
        let [sources, destinations, protected_mx, mx_senders, throttled] = pairs.map(merge);
        Desired {
            sources,
            destinations,
            protected_mx,
            mx_senders,
            throttled,
        }
    }

    /// Number of entries of each kind.
    pub fn counts(&self) -> ByKind {
        let count = |map: &MapContents, kind: AllowKind| {
            map.values().filter(|bits| *bits & kind.bit() != 0).count() as u64
        };
        ByKind {
            relay: count(&self.sources, AllowKind::Relay),
            exempt: count(&self.sources, AllowKind::Exempt),
            destination: count(&self.destinations, AllowKind::Destination),
            protected_mx: count(&self.protected_mx, AllowKind::ProtectedMx),
            mx_sender: count(&self.mx_senders, AllowKind::MxSender),
            throttle_destination: count(&self.throttled, AllowKind::ThrottleDestination),
        }
    }
}

/// One map's contents from (prefix, kind bit) pairs: sorted and merged first, so the tree is
/// filled in one pass instead of a million inserts.
fn merge(mut pairs: Vec<(IpNet, u32)>) -> MapContents {
    pairs.sort_unstable();
    pairs.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 |= later.1;
        }
        same
    });
    pairs.into_iter().collect()
}
