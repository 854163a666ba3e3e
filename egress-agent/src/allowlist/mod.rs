//! The allowlist the agent wants in the kernel: entries from the config file plus entries the
//! operator added through the CLI (persisted under `state_dir`).

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

/// Prefixes of one kind from the config file. The config has been validated, so entries that
/// do not parse cannot occur; they are skipped rather than trusted.
pub fn config_prefixes(config: &Config, kind: AllowKind) -> Vec<IpNet> {
    let list = match kind {
        AllowKind::Relay => &config.allow.relays,
        AllowKind::Exempt => &config.allow.exempt,
        AllowKind::Destination => &config.allow.destinations,
        AllowKind::ProtectedMx => &config.inbound.protected_mx,
        AllowKind::MxSender => &config.inbound.mx_senders,
        AllowKind::ThrottleDestination => &config.inbound.throttle.destinations,
    };
    list.iter()
        .filter_map(|text| crate::prefix::parse(text).ok())
        .collect()
}

/// Every entry of the desired state: config entries first, then CLI entries not already in
/// the config.
pub fn entries(config: &Config, cli: &[Entry]) -> Vec<Entry> {
    // A set, not a scan of `all`: allowlists reach millions of entries. Sized up front so a
    // reload of millions does not rehash and copy its way there.
    let configured: Vec<(AllowKind, Vec<IpNet>)> = AllowKind::ALL
        .into_iter()
        .map(|kind| (kind, config_prefixes(config, kind)))
        .collect();
    let total = configured.iter().map(|(_, list)| list.len()).sum::<usize>() + cli.len();
    let mut seen: HashSet<(AllowKind, IpNet)> = HashSet::with_capacity(total);
    let mut all = Vec::with_capacity(total);
    for (kind, prefixes) in configured {
        for prefix in prefixes {
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
    pub fn from_entries(entries: &[Entry]) -> Desired {
        let contents = |target: Target| {
            let mut bits: Vec<(IpNet, u32)> = entries
                .iter()
                .filter(|entry| entry.kind.target() == target)
                .map(|entry| (entry.prefix, entry.kind.bit()))
                .collect();
            // Sorted and merged first: a BTreeMap built from sorted pairs is filled in one
            // pass instead of a million tree inserts.
            bits.sort_unstable();
            bits.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    kept.1 |= later.1;
                }
                same
            });
            bits.into_iter().collect::<MapContents>()
        };
        Desired {
            sources: contents(Target::Sources),
            destinations: contents(Target::Destinations),
            protected_mx: contents(Target::ProtectedMx),
            mx_senders: contents(Target::MxSenders),
            throttled: contents(Target::Throttled),
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
