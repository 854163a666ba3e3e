//! Bringing the kernel's allowlist tries in line with the desired state.
//!
//! Order matters for traffic in flight: every entry to add (or widen) goes in first, then
//! entries to remove go out, so a relay that stays allowed is never briefly blocked and a
//! prefix being removed never lets more through than before. A failed insert (a full map)
//! rolls back what this call inserted: the change is all-or-nothing.

use aya::maps::{LpmTrie, MapData, MapError, lpm_trie::Key};
use egress_common::names;
use ipnet::IpNet;

use super::maps::{MapsError, map_error, open};
use crate::{allowlist::MapContents, paths::PinLayout};

/// Source (relay, exempt) or destination tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Sources,
    Destinations,
}

impl Direction {
    const fn map_names(self) -> (&'static str, &'static str) {
        match self {
            Direction::Sources => (names::SOURCES_V4, names::SOURCES_V6),
            Direction::Destinations => (names::DESTINATIONS_V4, names::DESTINATIONS_V6),
        }
    }
}

/// Counts of what a reconcile changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub inserted: u64,
    pub removed: u64,
}

struct Tries {
    v4: LpmTrie<MapData, [u8; 4], u32>,
    v6: LpmTrie<MapData, [u8; 16], u32>,
    names: (&'static str, &'static str),
}

impl Tries {
    fn open(pins: &PinLayout, direction: Direction) -> Result<Tries, MapsError> {
        let names = direction.map_names();
        Ok(Tries {
            v4: LpmTrie::try_from(open(pins, names.0)?).map_err(map_error(pins, names.0))?,
            v6: LpmTrie::try_from(open(pins, names.1)?).map_err(map_error(pins, names.1))?,
            names,
        })
    }

    fn read(&self) -> Result<MapContents, MapError> {
        let mut contents = MapContents::new();
        for item in self.v4.iter() {
            let (key, value) = item?;
            let net = ipnet::Ipv4Net::new(key.data().into(), key.prefix_len() as u8)
                .map_err(|_| MapError::KeyNotFound)?;
            contents.insert(IpNet::V4(net), value);
        }
        for item in self.v6.iter() {
            let (key, value) = item?;
            let net = ipnet::Ipv6Net::new(key.data().into(), key.prefix_len() as u8)
                .map_err(|_| MapError::KeyNotFound)?;
            contents.insert(IpNet::V6(net), value);
        }
        Ok(contents)
    }

    fn name_of(&self, prefix: &IpNet) -> &'static str {
        match prefix {
            IpNet::V4(_) => self.names.0,
            IpNet::V6(_) => self.names.1,
        }
    }

    fn insert(&mut self, prefix: &IpNet, value: u32) -> Result<(), MapError> {
        match prefix {
            IpNet::V4(net) => self.v4.insert(
                &Key::new(net.prefix_len().into(), net.network().octets()),
                value,
                0,
            ),
            IpNet::V6(net) => self.v6.insert(
                &Key::new(net.prefix_len().into(), net.network().octets()),
                value,
                0,
            ),
        }
    }

    fn remove(&mut self, prefix: &IpNet) -> Result<(), MapError> {
        match prefix {
            IpNet::V4(net) => self
                .v4
                .remove(&Key::new(net.prefix_len().into(), net.network().octets())),
            IpNet::V6(net) => self
                .v6
                .remove(&Key::new(net.prefix_len().into(), net.network().octets())),
        }
    }
}

/// What the tries of `direction` hold now.
pub fn read(pins: &PinLayout, direction: Direction) -> Result<MapContents, MapsError> {
    let tries = Tries::open(pins, direction)?;
    tries
        .read()
        .map_err(map_error(pins, direction.map_names().0))
}

/// Makes the tries of `direction` hold exactly `desired`.
pub fn reconcile(
    pins: &PinLayout,
    direction: Direction,
    desired: &MapContents,
) -> Result<Applied, MapsError> {
    let mut tries = Tries::open(pins, direction)?;
    let current = tries
        .read()
        .map_err(map_error(pins, direction.map_names().0))?;
    let mut inserted: Vec<(IpNet, Option<u32>)> = Vec::new();
    for (prefix, value) in desired {
        let before = current.get(prefix).copied();
        if before == Some(*value) {
            continue;
        }
        if let Err(source) = tries.insert(prefix, *value) {
            roll_back(&mut tries, &inserted);
            let name = tries.name_of(prefix);
            return Err(map_error(pins, name)(source));
        }
        inserted.push((*prefix, before));
    }
    let mut applied = Applied {
        inserted: inserted.len() as u64,
        removed: 0,
    };
    for prefix in current.keys().filter(|p| !desired.contains_key(p)) {
        let name = tries.name_of(prefix);
        tries.remove(prefix).map_err(map_error(pins, name))?;
        applied.removed += 1;
    }
    Ok(applied)
}

fn roll_back(tries: &mut Tries, inserted: &[(IpNet, Option<u32>)]) {
    for (prefix, before) in inserted.iter().rev() {
        let result = match before {
            Some(value) => tries.insert(prefix, *value),
            None => tries.remove(prefix),
        };
        if let Err(err) = result {
            tracing::error!(%prefix, %err, "cannot roll back allowlist insert");
        }
    }
}
