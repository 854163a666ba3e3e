//! A config list of prefixes (`allow.exempt` and the other allowlist keys), held compactly:
//! a million entries cost 18 MB as parsed prefixes, not a heap string each. Shared by clones
//! (the telemetry keeps a copy of the config), so a copy costs a reference count.

use std::{fmt, sync::Arc};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::prefix::{self, PrefixError};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixList {
    prefixes: Arc<Vec<IpNet>>,
    /// The first entry that is not a prefix, with its index: reported by `validate`, which
    /// names the key.
    first_invalid: Option<(usize, PrefixError)>,
}

impl PrefixList {
    pub fn iter(&self) -> impl ExactSizeIterator<Item = IpNet> + '_ {
        self.prefixes.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty() && self.first_invalid.is_none()
    }

    pub fn contains(&self, prefix: &IpNet) -> bool {
        self.prefixes.contains(prefix)
    }

    /// `key[i]: why` for the first entry that is not a canonical prefix.
    pub fn check(&self, key: &str) -> Result<(), (String, String)> {
        match &self.first_invalid {
            Some((index, err)) => Err((format!("{key}[{index}]"), err.to_string())),
            None => Ok(()),
        }
    }
}

/// Builds a list one entry at a time, as the config text is read.
#[derive(Default)]
pub struct PrefixListBuilder {
    prefixes: Vec<IpNet>,
    first_invalid: Option<(usize, PrefixError)>,
    seen: usize,
}

impl PrefixListBuilder {
    pub fn push(&mut self, text: &str) {
        match prefix::parse(text) {
            Ok(net) => self.prefixes.push(net),
            Err(err) => {
                self.first_invalid.get_or_insert((self.seen, err));
            }
        }
        self.seen += 1;
    }

    pub fn finish(mut self) -> PrefixList {
        self.prefixes.shrink_to_fit();
        PrefixList {
            prefixes: Arc::new(self.prefixes),
            first_invalid: self.first_invalid,
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for PrefixList {
    fn from_iter<I: IntoIterator<Item = S>>(texts: I) -> PrefixList {
        let mut builder = PrefixListBuilder::default();
        for text in texts {
            builder.push(text.as_ref());
        }
        builder.finish()
    }
}

impl Serialize for PrefixList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.prefixes.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for PrefixList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PrefixList, D::Error> {
        deserializer.deserialize_seq(ListVisitor)
    }
}

struct ListVisitor;

impl<'de> de::Visitor<'de> for ListVisitor {
    type Value = PrefixList;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a list of IP prefixes as strings")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<PrefixList, A::Error> {
        let mut builder = PrefixListBuilder::default();
        while let Some(text) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
            builder.push(&text);
        }
        Ok(builder.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_valid_prefixes_and_names_the_first_invalid_one() {
        let list: PrefixList = [
            "192.0.2.1",
            "198.51.100.0/24",
            "nonsense",
            "2001:db8::/32",
            "x",
        ]
        .into_iter()
        .collect();
        assert_eq!(list.len(), 3);
        assert!(list.contains(&"192.0.2.1/32".parse().expect("prefix")));
        let (key, why) = list.check("allow.exempt").expect_err("an invalid entry");
        assert_eq!(key, "allow.exempt[2]");
        assert!(why.contains("nonsense"), "{why}");
    }

    #[test]
    fn round_trips_through_json_in_canonical_form() {
        let list: PrefixList = ["192.0.2.1", "2001:db8::/32"].into_iter().collect();
        let json = serde_json::to_string(&list).expect("serialise");
        assert_eq!(json, r#"["192.0.2.1/32","2001:db8::/32"]"#);
        let back: PrefixList = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, list);
        assert!(back.check("k").is_ok());
    }
}
