//! `egress-agent audit`: the ISP's mail set-up checked against the approach (spec: "Audit of
//! the mail set-up"). DNS (`dns.*`), SPF (`dns.spf_*`), the relay and submission service
//! (`smtp.*`) and the dataplane's own lists (`guard.*`) each have a module; every check
//! produces rows of a [`Report`]. Everything here is network I/O: the daemon runs it on its
//! own task, never on the event loop.

pub mod checks;
mod dns;
mod guard;
pub mod report;
pub mod resolver;
pub mod schedule;
mod smtp;
pub mod spf;

use std::{
    net::IpAddr,
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use ipnet::IpNet;

pub use report::{Outcome, Report, Row};

use crate::{
    allowlist::{AllowKind, Entry},
    config::{Config, MailConfig},
};

/// What the `guard.*` checks compare DNS with: the dataplane's allowlists and inbound rules.
/// The inbound lists are `None` until `[inbound]` is configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardInputs {
    pub relays: Vec<IpNet>,
    pub protected_mx: Option<Vec<IpNet>>,
    pub mx_senders: Option<Vec<IpNet>>,
}

/// Everything one audit run needs, read before it starts.
#[derive(Clone, Debug)]
pub struct AuditInputs {
    pub mail: MailConfig,
    /// The host entries (/32, /128) of the relay allowlist: the relays audited.
    pub relays: Vec<IpAddr>,
    pub guard: GuardInputs,
    /// The test account's password, read from `password_file`.
    pub password: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{file}: [mail] is missing: the audit needs at least `domains`")]
    NoMailSection { file: PathBuf },
    #[error("cannot read mail.test_account.password_file {path}: {source}")]
    Password {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Resolver(String),
}

impl AuditInputs {
    /// The inputs from a loaded config and the relays added through the CLI.
    pub fn from_config(
        config: &Config,
        config_file: &std::path::Path,
        cli_entries: &[Entry],
    ) -> Result<AuditInputs, AuditError> {
        let mail = config
            .mail
            .clone()
            .ok_or_else(|| AuditError::NoMailSection {
                file: config_file.to_owned(),
            })?;
        let entries = crate::allowlist::entries(config, cli_entries);
        let relays_allowed: Vec<IpNet> = entries
            .iter()
            .filter(|entry| entry.kind == AllowKind::Relay)
            .map(|entry| entry.prefix)
            .collect();
        let relays = relays_allowed
            .iter()
            .filter(|prefix| prefix.prefix_len() == prefix.max_prefix_len())
            .map(IpNet::addr)
            .collect();
        let password = match &mail.test_account {
            Some(account) => {
                let path = PathBuf::from(&account.password_file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| AuditError::Password { path, source })?;
                Some(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            None => None,
        };
        let (protected_mx, mx_senders) = inbound_lists(&entries);
        Ok(AuditInputs {
            mail,
            relays,
            guard: GuardInputs {
                relays: relays_allowed,
                protected_mx,
                mx_senders,
            },
            password,
        })
    }
}

/// The inbound rules' lists (`[inbound] protected_mx`, `mx_senders`), config and CLI; `None`
/// when neither has an entry: no inbound rules, and the `guard.*` rows say so.
fn inbound_lists(entries: &[Entry]) -> (Option<Vec<IpNet>>, Option<Vec<IpNet>>) {
    let of_kind = |kind| -> Vec<IpNet> {
        entries
            .iter()
            .filter(|entry| entry.kind == kind)
            .map(|entry| entry.prefix)
            .collect()
    };
    let protected_mx = of_kind(AllowKind::ProtectedMx);
    let mx_senders = of_kind(AllowKind::MxSender);
    if protected_mx.is_empty() && mx_senders.is_empty() {
        return (None, None);
    }
    (Some(protected_mx), Some(mx_senders))
}

/// Runs every check once, in the order of the spec's table.
pub async fn run(inputs: &AuditInputs) -> Result<Report, AuditError> {
    let dns = resolver::Dns::new(inputs.mail.resolver_addr()).map_err(AuditError::Resolver)?;
    if let Some(domain) = inputs.mail.domains.first() {
        dns.preflight(domain).await;
    }
    let mut rows = dns::checks(&dns, &inputs.mail, &inputs.relays).await;
    rows.extend(spf::checks(&dns, &inputs.mail, &inputs.relays).await);
    rows.extend(smtp::checks(&dns, inputs).await);
    rows.extend(guard::checks(&dns, &inputs.mail, &inputs.guard).await);
    let finished_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or_default();
    Ok(Report { rows, finished_at })
}
