//! The inbound scene: the ISP's primary MX (behind the edge router) may be reached on TCP/25
//! only by its spam checker, a filtering service on the Internet. A real knot serves
//! isp.example with MX 10 mx1 (the primary) and MX 20 mx2 (the spam checker); a real Postfix on
//! the Internet sends to it. With `xdp-inbound` on the router's uplink and the two addresses
//! in the inbound lists, the sender's SYNs to the primary are dropped, Postfix falls back to
//! the spam checker, and the spam checker (allowed) delivers to the primary MX.

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};
use egress_lab::{knot::Knot, postfix::Mta};

use super::{
    agent::Agent,
    lab::Lab,
    mail::{Mailbox, Send, parse_v4, swaks, wait_listening},
    narrate::{Narrator, swaks_outcome},
};
use crate::netns::{Netns, address};

pub const PRIMARY_MX: &str = "192.0.2.30";
/// The spam checker is a filtering service on the Internet side, so its deliveries cross the
/// uplink and the operator sees them counted as `allowed_sender`.
pub const SPAM_CHECKER: &str = "203.0.113.40";
const SENDER: &str = "198.51.100.2";
const NAMESERVER: &str = "198.51.100.53";
const DOMAIN: &str = "isp.example";
const CHECKER_NAME: &str = "mx2.isp.example";
const DELIVERY: Duration = Duration::from_secs(90);

fn zone() -> String {
    format!(
        "$ORIGIN {DOMAIN}.\n$TTL 60\n\
         @ SOA ns hostmaster 1 3600 600 86400 60\n\
         @ NS ns\nns A {NAMESERVER}\n\
         @ MX 10 mx1\n@ MX 20 mx2\n\
         mx1 A {PRIMARY_MX}\nmx2 A {SPAM_CHECKER}\n"
    )
}

pub fn only_the_spam_checker_reaches_the_primary_mx(
    lab: &Lab,
    agent: &Agent,
    dir: &Path,
    narrator: Narrator,
) -> Result<()> {
    narrator.chapter(
        "9. Inbound: only the spam checker may reach the ISP's primary MX; everyone else falls back to it",
    );
    let dir = dir.join("inbound");
    let plumbing = narrator.plumbing();
    address(&lab.relay, "lo", &format!("{PRIMARY_MX}/32"))?;
    address(&lab.internet, "lo", &format!("{SPAM_CHECKER}/32"))?;
    address(&lab.internet, "lo", &format!("{NAMESERVER}/32"))?;
    narrator.say(&format!(
        "  isp.example's DNS (knot on {NAMESERVER}): MX 10 mx1 = {PRIMARY_MX} (the primary MX, inside the ISP),\n\
         \x20 MX 20 mx2 = {SPAM_CHECKER} (the spam checker, a filtering service that forwards what is clean)."
    ));
    let _knot = Knot::start(
        &lab.internet,
        &dir.join("knot"),
        NAMESERVER,
        &[(DOMAIN.to_owned(), zone())],
        plumbing.into(),
    )?;
    narrator.say("  Starting the primary MX (smtp-sink), the spam checker and an Internet sender (both Postfix) ...");
    let primary = Mailbox::start_at(&lab.relay, &dir.join("primary"), PRIMARY_MX, narrator)?;
    let checker = Mta {
        hostname: CHECKER_NAME,
        address: SPAM_CHECKER,
        nameserver: NAMESERVER,
        extra: &format!(
            "mynetworks = 127.0.0.0/8\nrelay_domains = {DOMAIN}\n\
             transport_maps = inline:{{ {DOMAIN}=relay:[{PRIMARY_MX}]:25 }}\n\
             smtpd_relay_restrictions = reject_unauth_destination\n"
        ),
    }
    .start(&lab.internet, &dir.join("checker"), plumbing.into())?;
    wait_listening(&lab.internet, SPAM_CHECKER, "the spam checker")?;
    let sender = Mta {
        hostname: "mta.sender.example",
        address: SENDER,
        nameserver: NAMESERVER,
        extra: "mynetworks = 127.0.0.0/8 198.51.100.0/24\nrelay_domains =\n\
                smtpd_relay_restrictions = permit_mynetworks, reject\n",
    }
    .start(&lab.internet, &dir.join("sender"), plumbing.into())?;
    wait_listening(&lab.internet, SENDER, "the Internet sender")?;

    narrator.say("  The operator protects the primary MX and allows the spam checker (xdp-inbound is on the uplink):");
    agent.cli(&[
        "protected-mx",
        "add",
        &format!("{PRIMARY_MX}/32"),
        "--comment",
        "primary MX",
    ])?;
    agent.cli(&[
        "mx-sender",
        "add",
        &format!("{SPAM_CHECKER}/32"),
        "--comment",
        "spam checker",
    ])?;

    narrator.say("  A direct connection from the Internet to port 25 of each MX:");
    if can_connect(&lab.internet, SENDER, PRIMARY_MX)? {
        bail!("the Internet reached the primary MX on 25 although it is protected");
    }
    narrator.ok(&format!(
        "{SENDER} → {PRIMARY_MX}:25 (primary MX): no answer, the SYN was dropped on the uplink"
    ));
    if !can_connect(&lab.internet, SPAM_CHECKER, PRIMARY_MX)? {
        bail!("the spam checker could not reach the primary MX on 25");
    }
    narrator.ok(&format!(
        "{SPAM_CHECKER} → {PRIMARY_MX}:25 from the spam checker: connected"
    ));

    let token = format!("inbound-{}", std::process::id());
    narrator.say(&format!(
        "  The Internet sender's Postfix is given a message for postmaster@{DOMAIN}:"
    ));
    let sent = swaks(
        &Send {
            from_ns: &lab.internet,
            server: format!("{SENDER}:25"),
            from: "alice@sender.example",
            to: &format!("postmaster@{DOMAIN}"),
            subject: format!("hello from the Internet ({token})"),
        },
        narrator.runner(),
    )?;
    if !sent.delivered {
        bail!(
            "the sender's Postfix refused the message:\n{}",
            sent.transcript
        );
    }
    narrator.show(&swaks_outcome(&sent.transcript));
    let message = primary.wait_for(&token, DELIVERY)?.with_context(|| {
        format!(
            "the message never reached the primary MX\n--- sender:\n{}\n--- spam checker:\n{}",
            sender.log(),
            checker.log()
        )
    })?;
    let sender_log = sender.log();
    let tried_primary = format!("connect to mx1.{DOMAIN}[{PRIMARY_MX}]:25: Connection timed out");
    let via_checker = format!("relay={CHECKER_NAME}[{SPAM_CHECKER}]:25");
    narrator.say("  The sender's Postfix log:");
    narrator.show(&lines_with(&sender_log, &[&tried_primary, &via_checker]));
    if !sender_log.contains(&tried_primary) || !sender_log.contains(&via_checker) {
        bail!("the sender should have tried the primary MX, then the spam checker:\n{sender_log}");
    }
    narrator.ok("Postfix tried mx1, got no answer, and handed the message to mx2, as SMTP intends");
    narrator.say("  The message as the primary MX stored it (newest Received first):");
    narrator.show(&received_headers(&message));
    if !message.contains(&format!("X-Client-Addr: {SPAM_CHECKER}"))
        || !message.contains(&format!("by {CHECKER_NAME}"))
    {
        bail!("the message did not arrive by way of the spam checker:\n{message}");
    }
    narrator.ok("it arrived through the spam checker, which delivered it to the primary MX itself");

    operator_sees_the_counters(lab, agent, narrator)
}

/// `status`'s inbound lines and the inbound counters on /metrics.
fn operator_sees_the_counters(lab: &Lab, agent: &Agent, narrator: Narrator) -> Result<()> {
    narrator.say("  What the operator sees: egress-agent status (inbound lines) and /metrics");
    let status = agent.cli(&["status"])?;
    narrator.show(
        &status
            .lines()
            .filter(|line| line.starts_with("inbound"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let metrics = agent.metrics(lab)?;
    let counters: Vec<&str> = metrics
        .lines()
        .filter(|line| {
            line.starts_with("egress_inbound_smtp_packets_total")
                || line.starts_with("egress_allowlist_entries{kind=\"protected_mx\"}")
                || line.starts_with("egress_allowlist_entries{kind=\"mx_sender\"}")
        })
        .collect();
    narrator.show(&counters.join("\n"));
    for verdict in ["dropped", "allowed_sender"] {
        let counted = counters.iter().any(|line| {
            line.contains(&format!("verdict=\"{verdict}\""))
                && line
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<f64>().ok())
                    .is_some_and(|n| n > 0.0)
        });
        if !counted {
            bail!(
                "egress_inbound_smtp_packets_total{{verdict=\"{verdict}\"}} should be above 0:\n{metrics}"
            );
        }
    }
    narrator.ok("the drops at the primary MX and the spam checker's allowed packets are counted");
    Ok(())
}

/// Whether a connect() from `from` (inside the Internet namespace) to `to`:25 succeeds within
/// 2 s; a dropped SYN is a timeout.
fn can_connect(ns: &Netns, from: &str, to: &str) -> Result<bool> {
    let local = SocketAddr::from((parse_v4(from)?, 0));
    let remote = SocketAddr::from((parse_v4(to)?, 25));
    Ok(ns.within(|| -> std::io::Result<bool> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&local.into())?;
        Ok(socket
            .connect_timeout(&remote.into(), Duration::from_secs(2))
            .is_ok())
    })??)
}

/// The log lines containing one of `needles`.
fn lines_with(log: &str, needles: &[&str]) -> String {
    log.lines()
        .filter(|line| needles.iter().any(|n| line.contains(n)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The Received headers (with their continuation lines) and smtp-sink's X-Client-Addr.
fn received_headers(message: &str) -> String {
    let mut out = Vec::new();
    let mut in_received = false;
    for line in message.lines().take_while(|line| !line.is_empty()) {
        let continuation = line.starts_with([' ', '\t']);
        in_received = line.starts_with("Received:") || (in_received && continuation);
        if in_received || line.starts_with("X-Client-Addr") {
            out.push(line);
        }
    }
    out.join("\n")
}
