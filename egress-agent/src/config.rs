//! The configuration file (`/etc/egress/egress.toml`): every key of the spec, with defaults.
//! Parsing is strict (unknown keys are errors); `validate` checks the meaning.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{allowlist::AllowKind, paths};

mod load;
pub mod mail;
mod prefix_arrays;
pub mod prefix_list;
mod validate;

pub use load::{ConfigError, load, parse};
pub use mail::{MailConfig, TestAccount};
pub use prefix_list::PrefixList;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub mode: ModeSetting,
    #[serde(default = "default_blocked_ports")]
    pub blocked_ports: Vec<u16>,
    #[serde(default = "default_pin_dir")]
    pub pin_dir: String,
    #[serde(default = "default_state_dir")]
    pub state_dir: String,
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<InterfaceConfig>,
    #[serde(default)]
    pub allow: AllowConfig,
    #[serde(default)]
    pub subscribers: SubscribersConfig,
    #[serde(default)]
    pub detection: DetectionConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default)]
    pub inbound: crate::inbound::InboundSettings,
    /// The mail set-up `egress-agent audit` checks; absent: no audit.
    #[serde(default)]
    pub mail: Option<MailConfig>,
    /// RADIUS accounting and the session history (absent: no identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityConfig>,
    /// Evidence reports delivered to the abuse desk's webhook (absent: stored only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyConfig>,
    /// The allowlists from etcd, shared by a fleet of routers (absent: local only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetConfig>,
}

impl Config {
    /// The list of prefixes the config gives for `kind` (its key: `kind.config_key()`).
    pub fn prefix_list(&self, kind: AllowKind) -> &PrefixList {
        match kind {
            AllowKind::Relay => &self.allow.relays,
            AllowKind::Exempt => &self.allow.exempt,
            AllowKind::Destination => &self.allow.destinations,
            AllowKind::ProtectedMx => &self.inbound.protected_mx,
            AllowKind::MxSender => &self.inbound.mx_senders,
            AllowKind::ThrottleDestination => &self.inbound.throttle.destinations,
        }
    }

    fn prefix_list_mut(&mut self, kind: AllowKind) -> &mut PrefixList {
        match kind {
            AllowKind::Relay => &mut self.allow.relays,
            AllowKind::Exempt => &mut self.allow.exempt,
            AllowKind::Destination => &mut self.allow.destinations,
            AllowKind::ProtectedMx => &mut self.inbound.protected_mx,
            AllowKind::MxSender => &mut self.inbound.mx_senders,
            AllowKind::ThrottleDestination => &mut self.inbound.throttle.destinations,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeSetting {
    #[default]
    Enforce,
    Monitor,
}

impl ModeSetting {
    /// The spelling of the config file and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            ModeSetting::Enforce => "enforce",
            ModeSetting::Monitor => "monitor",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    pub name: String,
    pub hook: Hook,
    #[serde(default)]
    pub xdp_mode: XdpModeSetting,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Hook {
    #[serde(rename = "xdp")]
    Xdp,
    #[serde(rename = "tc-egress")]
    TcEgress,
    /// Ingress of an uplink: the inbound rules (only the spam checkers reach the primary MX).
    #[serde(rename = "xdp-inbound")]
    XdpInbound,
}

impl Hook {
    pub const ALL: [Hook; 3] = [Hook::Xdp, Hook::TcEgress, Hook::XdpInbound];
}

impl Hook {
    pub const fn as_str(self) -> &'static str {
        match self {
            Hook::Xdp => "xdp",
            Hook::TcEgress => "tc-egress",
            Hook::XdpInbound => "xdp-inbound",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeSetting {
    #[default]
    Auto,
    Native,
    Skb,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowConfig {
    #[serde(default)]
    pub relays: PrefixList,
    #[serde(default)]
    pub exempt: PrefixList,
    #[serde(default)]
    pub destinations: PrefixList,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribersConfig {
    #[serde(default = "default_ipv6_prefix_len")]
    pub ipv6_prefix_len: u8,
    #[serde(default = "default_max_tracked")]
    pub max_tracked: u32,
    /// The operator's own IPv4 subscriber ranges: one record slot per address, outside the
    /// LRU map (`egress_common::pools`).
    #[serde(default)]
    pub pools: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionConfig {
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u64,
    #[serde(default = "default_attempts_threshold")]
    pub attempts_threshold: u64,
    #[serde(default = "default_distinct_destinations_threshold")]
    pub distinct_destinations_threshold: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_max_subscriber_series")]
    pub max_subscriber_series: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    #[serde(default = "default_socket")]
    pub socket: String,
    #[serde(default = "default_true")]
    pub reattach: bool,
}

fn default_blocked_ports() -> Vec<u16> {
    vec![25]
}
fn default_pin_dir() -> String {
    paths::DEFAULT_PIN_DIR.to_owned()
}
fn default_state_dir() -> String {
    paths::DEFAULT_STATE_DIR.to_owned()
}
fn default_ipv6_prefix_len() -> u8 {
    64
}
fn default_max_tracked() -> u32 {
    egress_common::DEFAULT_MAX_TRACKED
}
fn default_window_seconds() -> u64 {
    300
}
fn default_attempts_threshold() -> u64 {
    20
}
fn default_distinct_destinations_threshold() -> u64 {
    5
}
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9725))
}
fn default_max_subscriber_series() -> usize {
    1000
}
fn default_socket() -> String {
    paths::DEFAULT_SOCKET.to_owned()
}
fn default_true() -> bool {
    true
}

impl Default for SubscribersConfig {
    fn default() -> Self {
        SubscribersConfig {
            ipv6_prefix_len: default_ipv6_prefix_len(),
            max_tracked: default_max_tracked(),
            pools: Vec::new(),
        }
    }
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            window_seconds: default_window_seconds(),
            attempts_threshold: default_attempts_threshold(),
            distinct_destinations_threshold: default_distinct_destinations_threshold(),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
            max_subscriber_series: default_max_subscriber_series(),
        }
    }
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: default_socket(),
            reattach: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    #[serde(default = "default_radius_listen")]
    pub radius_listen: SocketAddr,
    /// Prefixes allowed to send accounting; others are ignored and counted.
    #[serde(default)]
    pub radius_clients: Vec<String>,
    pub radius_secret_file: String,
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub webhook_url: String,
    /// HMAC-SHA256 key for `X-Egress-Signature`; without it reports go unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    #[serde(default = "default_max_queued")]
    pub max_queued: u64,
}

/// `[fleet]`: the etcd cluster holding the fleet's allowlists, and where in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// `http://` or `https://` URLs; tried in order, the next one when one fails.
    pub etcd_endpoints: Vec<String>,
    /// The fleet's key space: entries live at `<key_prefix>/<kind>/<prefix>`.
    pub key_prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// TLS: the CA that signed the members' certificates, and our client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

fn default_radius_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1813))
}
fn default_retention_days() -> u32 {
    90
}
fn default_timeout_seconds() -> u64 {
    5
}
fn default_max_queued() -> u64 {
    100_000
}

impl Config {
    /// How long history and evidence are kept (`identity.retention_days`, default 90).
    pub fn retention_days(&self) -> u32 {
        self.identity
            .as_ref()
            .map_or_else(default_retention_days, |identity| identity.retention_days)
    }
}
