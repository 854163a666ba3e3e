//! `dns.spf_authorises_relay` (RFC 7208 `check_host()`, evaluated by mail-auth) and
//! `dns.spf_within_limits` (the DNS-querying terms and void lookups of the whole record tree,
//! counted here: the evaluator only says "permerror" once a limit is crossed, and the
//! operator needs the numbers before that happens).

use std::net::IpAddr;

use mail_auth::{SpfResult, spf::verify::SpfParameters};

use super::{
    checks::{SPF_AUTHORISES_RELAY, SPF_WITHIN_LIMITS},
    report::Row,
    resolver::Dns,
};
use crate::config::MailConfig;

/// RFC 7208 4.6.4.
const MAX_DNS_TERMS: usize = 10;
const MAX_VOID_LOOKUPS: usize = 2;
/// Records followed through include/redirect before the walk gives up (loops).
const MAX_RECORDS: usize = 30;

pub async fn checks(dns: &Dns, mail: &MailConfig, relays: &[IpAddr]) -> Vec<Row> {
    let evaluator = dns.spf_evaluator();
    let mut rows = Vec::new();
    for domain in &mail.domains {
        for relay in relays {
            let target = format!("{domain}/{relay}");
            if dns.is_unreachable() {
                rows.push(Row::fail(
                    SPF_AUTHORISES_RELAY,
                    target,
                    super::resolver::UNREACHABLE,
                ));
                continue;
            }
            let postmaster = format!("postmaster@{domain}");
            // An IPv4-mapped relay address is evaluated as the IPv4 address (RFC 7208 5).
            let params = SpfParameters::new(
                relay.to_canonical(),
                domain,
                domain,
                "egress-audit",
                &postmaster,
            );
            let output = evaluator.check_host(params.into()).await;
            rows.push(match output.result() {
                SpfResult::Pass => Row::pass(SPF_AUTHORISES_RELAY, target, "SPF pass"),
                other => Row::fail(
                    SPF_AUTHORISES_RELAY,
                    target,
                    format!(
                        "SPF {}: the record of {domain} does not authorise {relay}",
                        result_name(other)
                    ),
                ),
            });
        }
    }
    for domain in &mail.domains {
        rows.push(within_limits(dns, domain).await);
    }
    rows
}

/// RFC 7208 `check_host()` for one identity, as a receiver would run it: the MAIL FROM
/// address, or `postmaster@HELO` when MAIL FROM is empty. Returns the result's name.
pub async fn evaluate(dns: &Dns, ip: IpAddr, helo: &str, mail_from: &str) -> &'static str {
    let evaluator = dns.spf_evaluator();
    // RFC 7208 5: an IPv4-mapped IPv6 client is an IPv4 client (ip4:, A records); mail-auth
    // takes the address as given, so it would match ip6: and AAAA instead.
    let ip = ip.to_canonical();
    let sender = if mail_from.is_empty() {
        format!("postmaster@{helo}")
    } else if mail_from.contains('@') {
        mail_from.to_owned()
    } else {
        format!("postmaster@{mail_from}")
    };
    let params = if mail_from.is_empty() {
        SpfParameters::verify_ehlo(ip, helo, "unknown")
    } else {
        SpfParameters::verify_mail_from(ip, helo, "unknown", &sender)
    };
    result_name(evaluator.check_host(params.into()).await.result())
}

pub fn result_name(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

async fn within_limits(dns: &Dns, domain: &str) -> Row {
    let mut count = Count::default();
    match spf_record(dns, domain).await {
        Ok(Some(record)) => walk(dns, domain, record, &mut count).await,
        Ok(None) => return Row::fail(SPF_WITHIN_LIMITS, domain, "no SPF record (v=spf1)"),
        Err(err) => return Row::fail(SPF_WITHIN_LIMITS, domain, err),
    }
    let detail = format!(
        "{} DNS-querying terms (limit {MAX_DNS_TERMS}), {} void lookups (limit {MAX_VOID_LOOKUPS}){}",
        count.terms,
        count.voids,
        if count.notes.is_empty() {
            String::new()
        } else {
            format!("; {}", count.notes.join("; "))
        }
    );
    if count.terms > MAX_DNS_TERMS || count.voids > MAX_VOID_LOOKUPS || count.broken {
        Row::fail(SPF_WITHIN_LIMITS, domain, detail)
    } else {
        Row::pass(SPF_WITHIN_LIMITS, domain, detail)
    }
}

#[derive(Default)]
struct Count {
    terms: usize,
    voids: usize,
    records: usize,
    /// A term that makes the record a permerror whatever the counts.
    broken: bool,
    notes: Vec<String>,
}

/// The `v=spf1` record of `domain` (none, or an error when there are several: RFC 7208 4.5).
async fn spf_record(dns: &Dns, domain: &str) -> Result<Option<String>, String> {
    let records: Vec<String> = dns
        .txt(domain)
        .await?
        .into_iter()
        .filter(|txt| {
            let lower = txt.to_ascii_lowercase();
            lower == "v=spf1" || lower.starts_with("v=spf1 ")
        })
        .collect();
    match records.len() {
        0 => Ok(None),
        1 => Ok(records.into_iter().next()),
        n => Err(format!(
            "{n} SPF records at {domain}: permerror (RFC 7208 4.5)"
        )),
    }
}

/// Counts the terms of `record` (published at `domain`) and of every record it includes or
/// redirects to. Targets with macros are counted but not followed (they depend on the sender).
async fn walk(dns: &Dns, domain: &str, record: String, count: &mut Count) {
    let mut pending = vec![(domain.to_owned(), record)];
    while let Some((domain, record)) = pending.pop() {
        count.records += 1;
        if count.records > MAX_RECORDS {
            count.broken = true;
            count.notes.push("include/redirect loop".into());
            return;
        }
        let terms: Vec<String> = record
            .split_ascii_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect();
        let has_all = terms.iter().any(|t| {
            t.trim_start_matches(['+', '-', '~', '?'])
                .eq_ignore_ascii_case("all")
        });
        for term in terms {
            let term = term.trim_start_matches(['+', '-', '~', '?']);
            let lower = term.to_ascii_lowercase();
            let (name, arg) = match lower.find([':', '=', '/']) {
                Some(at) => (&lower[..at], &term[at + 1..]),
                None => (lower.as_str(), ""),
            };
            let separator = lower[name.len()..].chars().next();
            let explicit = (separator == Some(':') || separator == Some('='))
                .then(|| arg.split('/').next().unwrap_or_default().to_owned());
            let target = explicit.clone().unwrap_or_else(|| domain.clone());
            let followable = !target.contains('%');
            match name {
                "include" | "redirect" => {
                    count.terms += 1;
                    if name == "redirect" && has_all {
                        continue;
                    }
                    if !followable {
                        continue;
                    }
                    match spf_record(dns, &target).await {
                        Ok(Some(next)) => pending.push((target, next)),
                        Ok(None) => {
                            count.voids +=
                                usize::from(dns.txt(&target).await.is_ok_and(|t| t.is_empty()));
                            count.broken = true;
                            count
                                .notes
                                .push(format!("{name}:{target} has no SPF record (permerror)"));
                        }
                        Err(err) => {
                            count.broken = true;
                            count.notes.push(err);
                        }
                    }
                }
                "a" | "mx" | "exists" => {
                    count.terms += 1;
                    if !followable {
                        continue;
                    }
                    let answers = if name == "mx" {
                        dns.mx(&target).await.map(|r| r.len())
                    } else {
                        dns.addresses(&target).await.map(|r| r.len())
                    };
                    if answers.is_ok_and(|n| n == 0) {
                        count.voids += 1;
                        count
                            .notes
                            .push(format!("{name}:{target} is a void lookup"));
                    }
                }
                "ptr" => {
                    count.terms += 1;
                    count.notes.push("ptr is deprecated (RFC 7208 5.5)".into());
                }
                _ => {}
            }
        }
    }
}
