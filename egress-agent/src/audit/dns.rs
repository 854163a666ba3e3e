//! `dns.*` (except SPF): MX records of the mail domains and hosts, reverse DNS of the relays.

use std::net::IpAddr;

use super::{
    checks::{
        MX_HOST_HAS_MX, MX_NOT_CNAME, MX_PRESENT, MX_RESOLVES, PRIMARY_MX_PREFERRED, RELAY_FCRDNS,
        RELAY_PTR,
    },
    report::Row,
    resolver::{Dns, normalise},
};
use crate::config::MailConfig;

pub async fn checks(dns: &Dns, mail: &MailConfig, relays: &[IpAddr]) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut mx_hosts: Vec<String> = Vec::new();
    let mut per_domain = Vec::new();
    for domain in &mail.domains {
        let records = dns.mx(domain).await;
        if let Ok(records) = &records {
            mx_hosts.extend(records.iter().map(|(_, host)| host.clone()));
        }
        rows.push(mx_present(domain, &records));
        per_domain.push((domain, records));
    }
    mx_hosts.extend(
        mail.primary_mx
            .iter()
            .chain(&mail.spam_checkers)
            .map(|h| normalise(h)),
    );
    mx_hosts.retain(|host| !host.is_empty());
    dedup(&mut mx_hosts);
    for host in &mx_hosts {
        rows.push(match dns.cname(host).await {
            Ok(Some(target)) => Row::fail(
                MX_NOT_CNAME,
                host,
                format!("is an alias (CNAME) for {target}: an MX must name the host itself (RFC 2181 10.3)"),
            ),
            Ok(None) => Row::pass(MX_NOT_CNAME, host, "not an alias"),
            Err(err) => Row::fail(MX_NOT_CNAME, host, err),
        });
    }
    for host in &mx_hosts {
        rows.push(match dns.addresses(host).await {
            Ok(addresses) if addresses.is_empty() => Row::fail(
                MX_RESOLVES,
                host,
                "no A or AAAA record: mail cannot reach it",
            ),
            Ok(addresses) => Row::pass(MX_RESOLVES, host, join(&addresses)),
            Err(err) => Row::fail(MX_RESOLVES, host, err),
        });
    }
    for (domain, records) in &per_domain {
        rows.push(match records {
            Ok(records) => primary_mx_preferred(domain, records, mail),
            Err(err) => Row::fail(PRIMARY_MX_PREFERRED, *domain, err.clone()),
        });
    }
    let mut own_names: Vec<String> = mail
        .primary_mx
        .iter()
        .chain(&mail.spam_checkers)
        .map(|h| normalise(h))
        .collect();
    dedup(&mut own_names);
    for host in &own_names {
        rows.push(match dns.mx(host).await {
            Ok(records) if records.is_empty() => Row::fail(
                MX_HOST_HAS_MX,
                host,
                format!(
                    "no MX record for {host} itself: mail to postmaster@{host} has nowhere to go"
                ),
            ),
            Ok(records) => Row::pass(MX_HOST_HAS_MX, host, describe_mx(&records)),
            Err(err) => Row::fail(MX_HOST_HAS_MX, host, err),
        });
    }
    for relay in relays {
        let target = relay.to_string();
        let names = dns.ptr(*relay).await;
        rows.push(match &names {
            Ok(names) if names.is_empty() => Row::fail(RELAY_PTR, &target, "no PTR record"),
            Ok(names) => Row::pass(RELAY_PTR, &target, names.join(", ")),
            Err(err) => Row::fail(RELAY_PTR, &target, err.clone()),
        });
        rows.push(fcrdns(dns, *relay, names).await);
    }
    rows
}

fn mx_present(domain: &str, records: &Result<Vec<(u16, String)>, String>) -> Row {
    match records {
        Err(err) => Row::fail(MX_PRESENT, domain, err.clone()),
        Ok(records) if records.is_empty() => Row::fail(MX_PRESENT, domain, "no MX records"),
        Ok(records) if records.len() == 1 && records[0].1.is_empty() => Row::warn(
            MX_PRESENT,
            domain,
            "null MX (RFC 7505): the domain accepts no mail",
        ),
        Ok(records) => Row::pass(MX_PRESENT, domain, describe_mx(records)),
    }
}

fn primary_mx_preferred(domain: &str, records: &[(u16, String)], mail: &MailConfig) -> Row {
    let fail = |why: String| Row::fail(PRIMARY_MX_PREFERRED, domain, why);
    if mail.primary_mx.is_empty() {
        return Row::warn(
            PRIMARY_MX_PREFERRED,
            domain,
            "no mail.primary_mx configured",
        );
    }
    let Some((lowest, lowest_host)) = records.first() else {
        return fail("no MX records".into());
    };
    let preference_of = |host: &String| {
        let host = normalise(host);
        records.iter().find(|(_, mx)| *mx == host).map(|(p, _)| *p)
    };
    let Some((primary_pref, primary)) = mail
        .primary_mx
        .iter()
        .filter_map(|host| preference_of(host).map(|p| (p, normalise(host))))
        .min()
    else {
        return fail(format!(
            "no primary MX ({}) among the MX records: {}",
            mail.primary_mx.join(", "),
            describe_mx(records)
        ));
    };
    if primary_pref > *lowest {
        return fail(format!(
            "primary MX {primary} has preference {primary_pref}, but {lowest_host} is more preferred ({lowest})"
        ));
    }
    let mut checkers = Vec::new();
    for checker in &mail.spam_checkers {
        let checker = normalise(checker);
        match preference_of(&checker) {
            None => return fail(format!("spam checker {checker} is not an MX of {domain}")),
            Some(pref) if pref <= primary_pref => {
                return fail(format!(
                    "spam checker {checker} (preference {pref}) is not less preferred than primary MX {primary} ({primary_pref})"
                ));
            }
            Some(pref) => checkers.push(format!("{checker} ({pref})")),
        }
    }
    let checkers = if checkers.is_empty() {
        "no spam checker configured".to_owned()
    } else {
        format!("then {}", checkers.join(", "))
    };
    Row::pass(
        PRIMARY_MX_PREFERRED,
        domain,
        format!("{primary} ({primary_pref}) first, {checkers}"),
    )
}

async fn fcrdns(dns: &Dns, relay: IpAddr, names: Result<Vec<String>, String>) -> Row {
    let target = relay.to_string();
    let names = match names {
        Ok(names) if names.is_empty() => {
            return Row::fail(RELAY_FCRDNS, &target, "no PTR record to confirm");
        }
        Ok(names) => names,
        Err(err) => return Row::fail(RELAY_FCRDNS, &target, err),
    };
    let mut seen = Vec::new();
    for name in &names {
        match dns.addresses(name).await {
            Ok(addresses) if addresses.contains(&relay) => {
                return Row::pass(
                    RELAY_FCRDNS,
                    &target,
                    format!("{name} resolves back to {relay}"),
                );
            }
            Ok(addresses) if addresses.is_empty() => seen.push(format!("{name} has no address")),
            Ok(addresses) => seen.push(format!("{name} resolves to {}", join(&addresses))),
            Err(err) => seen.push(err),
        }
    }
    Row::fail(
        RELAY_FCRDNS,
        &target,
        format!("no PTR name resolves back to {relay}: {}", seen.join("; ")),
    )
}

fn describe_mx(records: &[(u16, String)]) -> String {
    records
        .iter()
        .map(|(pref, host)| format!("{pref} {host}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Removes repeats, keeping the first occurrence's position.
pub(super) fn dedup(items: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|item| seen.insert(item.clone()));
}
