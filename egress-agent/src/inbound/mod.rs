//! The inbound step: only the spam checkers reach the primary MX (`hook = "xdp-inbound"`).
//!
//! This module owns the `[inbound]` and `[inbound.throttle]` config, its validation, the inbound
//! program's config entry and its metrics. The prefix lists (`protected_mx`, `mx_senders`,
//! `throttle.destinations`) ride on the allowlist machinery as kinds of their own, so the CLI,
//! persistence, add-before-remove reconcile and drift checks are those of `relay`.

pub mod hosts;
pub mod maps;
pub mod metrics;
pub mod status;

use egress_common::{
    Mode,
    inbound::{DEFAULT_MAX_SOURCES, InboundConfig},
};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Hook, ModeSetting, PrefixList};

/// `[inbound]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundSettings {
    #[serde(default = "default_ports")]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub protected_mx: PrefixList,
    #[serde(default)]
    pub mx_senders: PrefixList,
    #[serde(default)]
    pub throttle: ThrottleSettings,
}

/// `[inbound.throttle]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSettings {
    #[serde(default)]
    pub destinations: PrefixList,
    #[serde(default = "default_syn_per_second")]
    pub syn_per_second: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
    #[serde(default = "default_max_sources")]
    pub max_sources: u32,
}

fn default_ports() -> Vec<u16> {
    vec![25]
}
fn default_syn_per_second() -> u32 {
    10
}
fn default_burst() -> u32 {
    40
}
fn default_max_sources() -> u32 {
    DEFAULT_MAX_SOURCES
}

impl Default for InboundSettings {
    fn default() -> Self {
        InboundSettings {
            ports: default_ports(),
            protected_mx: PrefixList::default(),
            mx_senders: PrefixList::default(),
            throttle: ThrottleSettings::default(),
        }
    }
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            destinations: PrefixList::default(),
            syn_per_second: default_syn_per_second(),
            burst: default_burst(),
            max_sources: default_max_sources(),
        }
    }
}

/// Submission ports (RFC 6409, RFC 8314): never refused inbound either.
const SUBMISSION_PORTS: [u16; 2] = [587, 465];

type Problem = (String, String);

fn problem<T>(key: &str, text: String) -> Result<T, Problem> {
    Err((key.to_owned(), text))
}

/// Checks `[inbound]`, `[inbound.throttle]` and the `xdp-inbound` interfaces: errors name the key.
pub fn validate(config: &Config) -> Result<(), Problem> {
    let inbound = &config.inbound;
    if inbound.ports.is_empty() {
        return problem(
            "inbound.ports",
            "is empty: list at least one port (normally 25)".into(),
        );
    }
    for (i, port) in inbound.ports.iter().enumerate() {
        let key = format!("inbound.ports[{i}]");
        if *port == 0 {
            return problem(&key, "port 0 is not a valid TCP port".into());
        }
        if SUBMISSION_PORTS.contains(port) {
            return problem(
                &key,
                format!("port {port} is mail submission (RFC 6409/8314) and must never be refused"),
            );
        }
    }
    for (key, list) in [
        ("inbound.protected_mx", &inbound.protected_mx),
        ("inbound.mx_senders", &inbound.mx_senders),
        (
            "inbound.throttle.destinations",
            &inbound.throttle.destinations,
        ),
    ] {
        list.check(key)?;
    }
    let throttle = &inbound.throttle;
    for (key, value) in [
        ("inbound.throttle.syn_per_second", throttle.syn_per_second),
        ("inbound.throttle.burst", throttle.burst),
        ("inbound.throttle.max_sources", throttle.max_sources),
    ] {
        if value == 0 {
            return problem(key, "must be at least 1".into());
        }
    }
    if throttle.syn_per_second > 1_000_000_000 {
        return problem(
            "inbound.throttle.syn_per_second",
            format!(
                "{} is above one SYN per nanosecond",
                throttle.syn_per_second
            ),
        );
    }
    // One XDP program per interface: the subscriber-side and the inbound rules cannot share one.
    for (i, interface) in config.interfaces.iter().enumerate() {
        if interface.hook == Hook::XdpInbound
            && config
                .interfaces
                .iter()
                .any(|other| other.name == interface.name && other.hook == Hook::Xdp)
        {
            return problem(
                &format!("interface[{i}].hook"),
                format!(
                    "`{}` carries hook = \"xdp\" already; an interface's XDP ingress holds one \
                     program (xdp-inbound may share an interface with tc-egress)",
                    interface.name
                ),
            );
        }
    }
    Ok(())
}

/// The inbound program's config entry for `config`; `flags` (which lists are empty) are the
/// reconcile's, kept by `maps::write_config`.
pub fn dataplane_config(config: &Config) -> InboundConfig {
    let throttle = &config.inbound.throttle;
    let (interval_ns, tolerance_ns) =
        InboundConfig::throttle(throttle.syn_per_second.max(1), throttle.burst.max(1));
    InboundConfig {
        mode: match config.mode {
            ModeSetting::Enforce => Mode::Enforce as u32,
            ModeSetting::Monitor => Mode::Monitor as u32,
        },
        flags: 0,
        interval_ns,
        tolerance_ns,
        clock_ns: 0,
    }
}

/// `inbound.ports` as the program's load-time port set.
pub fn port_set(config: &Config) -> egress_common::PortSet {
    config
        .inbound
        .ports
        .iter()
        .fold(egress_common::PortSet::EMPTY, |set, port| set.with(*port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<(), Problem> {
        let config: Config = toml::from_str(text).expect("the TOML parses");
        validate(&config)
    }

    #[test]
    fn defaults_are_the_specs() {
        let config: Config = toml::from_str("").expect("empty config parses");
        assert_eq!(config.inbound.ports, vec![25]);
        assert_eq!(config.inbound.throttle.max_sources, 262_144);
        assert_eq!(
            (
                config.inbound.throttle.syn_per_second,
                config.inbound.throttle.burst
            ),
            (10, 40)
        );
        assert_eq!(validate(&config), Ok(()));
    }

    #[test]
    fn refusals_name_the_key_and_value() {
        let cases = [
            ("[inbound]\nports = [25, 587]", "inbound.ports[1]", "587"),
            ("[inbound]\nports = [465]", "inbound.ports[0]", "465"),
            ("[inbound]\nports = []", "inbound.ports", "empty"),
            (
                "[inbound]\nprotected_mx = [\"192.0.2.300/32\"]",
                "inbound.protected_mx[0]",
                "192.0.2.300",
            ),
            (
                "[inbound]\nmx_senders = [\"::ffff:192.0.2.40\"]",
                "inbound.mx_senders[0]",
                "IPv4-mapped",
            ),
            (
                "[inbound.throttle]\ndestinations = [\"x\"]",
                "inbound.throttle.destinations[0]",
                "x",
            ),
            (
                "[inbound.throttle]\nburst = 0",
                "inbound.throttle.burst",
                "at least 1",
            ),
            (
                "[inbound.throttle]\nmax_sources = 0",
                "inbound.throttle.max_sources",
                "at least 1",
            ),
            (
                "[[interface]]\nname = \"up0\"\nhook = \"xdp\"\n[[interface]]\nname = \"up0\"\nhook = \"xdp-inbound\"",
                "interface[1].hook",
                "up0",
            ),
        ];
        for (text, key, value) in cases {
            let (got_key, why) = parsed(text).expect_err(text);
            assert_eq!(got_key, key, "{text}");
            assert!(why.contains(value), "{text}: {why}");
        }
    }

    #[test]
    fn tc_egress_and_xdp_inbound_share_an_interface() {
        let text = "[[interface]]\nname = \"up0\"\nhook = \"tc-egress\"\n\
                    [[interface]]\nname = \"up0\"\nhook = \"xdp-inbound\"\n\
                    [inbound]\nprotected_mx = [\"192.0.2.30/32\"]\nmx_senders = [\"192.0.2.40\"]";
        assert_eq!(parsed(text), Ok(()));
    }
}
