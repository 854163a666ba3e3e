//! `guard.*`: what DNS says the mail hosts are, compared with what the dataplane enforces.

use ipnet::IpNet;

use super::{
    GuardInputs,
    checks::{PRIMARY_MX_PROTECTED, SPAM_CHECKERS_ALLOWED, SUBMISSION_RELAYS_ALLOWLISTED},
    report::Row,
    resolver::Dns,
};
use crate::config::MailConfig;

pub const INBOUND_NOT_CONFIGURED: &str = "inbound rules not configured";

pub async fn checks(dns: &Dns, mail: &MailConfig, guard: &GuardInputs) -> Vec<Row> {
    let mut rows = Vec::new();
    let sets = [
        (
            PRIMARY_MX_PROTECTED,
            &mail.primary_mx,
            guard.protected_mx.as_deref(),
            "[inbound] protected_mx",
        ),
        (
            SPAM_CHECKERS_ALLOWED,
            &mail.spam_checkers,
            guard.mx_senders.as_deref(),
            "[inbound] mx_senders",
        ),
        (
            SUBMISSION_RELAYS_ALLOWLISTED,
            &mail.submission_hosts,
            Some(guard.relays.as_slice()),
            "the relay allowlist",
        ),
    ];
    for (check, hosts, list, list_name) in sets {
        for host in hosts {
            let addresses = match dns.addresses(host).await {
                Ok(addresses) if addresses.is_empty() => {
                    rows.push(Row::fail(check, host, "no A or AAAA record to compare"));
                    continue;
                }
                Ok(addresses) => addresses,
                Err(err) => {
                    rows.push(Row::fail(check, host, err));
                    continue;
                }
            };
            for address in addresses {
                let target = address.to_string();
                rows.push(match list {
                    None => Row::warn(check, target, INBOUND_NOT_CONFIGURED),
                    Some(list) if contains(list, address) => {
                        Row::pass(check, target, format!("{host}: in {list_name}"))
                    }
                    Some(_) if check == SUBMISSION_RELAYS_ALLOWLISTED => Row::fail(
                        check,
                        target,
                        format!("{host}: not in {list_name}: it cannot deliver on port 25"),
                    ),
                    Some(_) => Row::fail(check, target, format!("{host}: not in {list_name}")),
                });
            }
        }
    }
    rows
}

fn contains(list: &[IpNet], address: std::net::IpAddr) -> bool {
    list.iter().any(|prefix| prefix.contains(&address))
}
