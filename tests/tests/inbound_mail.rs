//! End to end with real mail servers: an Internet-side Postfix sends to a domain whose MX
//! records (served by knot in the lab) list the primary MX first and the spam checker second.
//! Without the guard the message goes straight to the primary MX; with `xdp-inbound` on the
//! router's uplink the sender's connection to the primary MX is refused (dropped SYNs), it falls
//! back to the spam checker in the same delivery, and the spam checker delivers to the primary
//! MX directly. After the agent is stopped and detached, mail goes direct again.
//!
//! Internet ns: sender Postfix 198.51.100.2, knot 198.51.100.53 — router ns (agent, inbound
//! hook on the uplink) — ISP ns: primary MX (smtp-sink) 192.0.2.10, spam checker (Postfix
//! relaying the domain to the primary MX) 192.0.2.20.

use std::{path::PathBuf, process::Output};

use tests::{
    agent::{Agent, AgentFiles, EXEMPT, Lab, RELAY, SERVER},
    mail::{
        knot,
        mx_lab::{Postfix, Sink},
    },
    netns::{Netns, addr},
};

const DOMAIN: &str = "inbound.example";
const PRIMARY_MX: &str = RELAY;
const SPAM_CHECKER: &str = EXEMPT;
const SENDER: &str = SERVER;
const NAMESERVER: &str = "198.51.100.53";
const CHECKER_NAME: &str = "checker.inbound.example";
const DELIVERY_SECONDS: u64 = 90;

fn zone() -> String {
    format!(
        "$ORIGIN {DOMAIN}.\n$TTL 60\n\
         @ SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 60 60 600 60\n\
         @ NS ns\nns A {NAMESERVER}\n\
         @ MX 10 mx1\n@ MX 20 checker\n\
         mx1 A {PRIMARY_MX}\nchecker A {SPAM_CHECKER}\n"
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "egress-test-inbound-mail-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Removes the test's temp dirs on drop.
struct Dirs(Vec<PathBuf>);

impl Drop for Dirs {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Submits one message to the sender's Postfix with swaks (from the Internet ns).
fn submit(net: &Netns, subject: &str) {
    let out = net
        .command("swaks")
        .args(["--server", &format!("{SENDER}:25")])
        .args(["--from", "alice@sender.example"])
        .args(["--to", &format!("postmaster@{DOMAIN}")])
        .args(["--header", &format!("Subject: {subject}")])
        .args(["--body", "inbound_mail test"])
        .args(["--timeout", "30"])
        .output()
        .expect("run swaks");
    assert!(
        out.status.success(),
        "the sender's Postfix refused the message:\n{}",
        text(&out)
    );
}

/// The message's headers (before the first empty line).
fn headers(message: &str) -> &str {
    message.split("\n\n").next().unwrap_or(message)
}

fn received_by_checker(message: &str) -> bool {
    headers(message)
        .lines()
        .any(|l| l.contains(&format!("by {CHECKER_NAME}")))
}

/// smtp-sink's record of the client that handed it the message.
fn client_addr(message: &str) -> Option<&str> {
    headers(message)
        .lines()
        .find_map(|l| l.strip_prefix("X-Client-Addr: "))
        .map(str::trim)
}

#[test]
fn the_guard_sends_internet_mail_through_the_spam_checker() {
    let lab = Lab::new();
    addr(&lab.net, &lab.net_if, &format!("{NAMESERVER}/24"));
    let dirs = Dirs(
        ["knot", "mx", "checker", "sender"]
            .iter()
            .map(|n| temp_dir(n))
            .collect(),
    );
    let [knot_dir, mx_dir, checker_dir, sender_dir] = [0, 1, 2, 3].map(|i| dirs.0[i].clone());

    let _knot = knot::serve(
        &lab.net,
        &knot_dir,
        NAMESERVER,
        &[(DOMAIN.to_owned(), zone())],
    );
    let primary = Sink::start(&lab.sub, &mx_dir, PRIMARY_MX);
    let checker = Postfix::start(
        &lab.sub,
        &checker_dir,
        CHECKER_NAME,
        SPAM_CHECKER,
        NAMESERVER,
        &format!(
            "mynetworks = 127.0.0.0/8\nrelay_domains = {DOMAIN}\n\
             transport_maps = inline:{{ {DOMAIN}=relay:[{PRIMARY_MX}]:25 }}\n\
             smtpd_relay_restrictions = reject_unauth_destination\n"
        ),
    );
    let sender = Postfix::start(
        &lab.net,
        &sender_dir,
        "mta.sender.example",
        SENDER,
        NAMESERVER,
        "mynetworks = 127.0.0.0/8 198.51.100.0/24\nrelay_domains =\n\
         smtpd_relay_restrictions = permit_mynetworks, reject\n",
    );
    let logs = || {
        format!(
            "--- sender log:\n{}\n--- spam checker log:\n{}",
            sender.log(),
            checker.log()
        )
    };

    // Without the guard: straight to the primary MX.
    submit(&lab.net, "unguarded-7f3a");
    let message = primary
        .wait_for("unguarded-7f3a", DELIVERY_SECONDS)
        .unwrap_or_else(|| panic!("unguarded message never reached the primary MX\n{}", logs()));
    assert_eq!(client_addr(&message), Some(SENDER), "{message}");
    assert!(!received_by_checker(&message), "{message}");

    // With the guard on the router's uplink.
    let files = AgentFiles::new();
    files.write_config_for(
        &[(&lab.rtr_up_if, "xdp-inbound")],
        &format!(
            "[inbound]\nprotected_mx = [\"{PRIMARY_MX}/32\"]\nmx_senders = [\"{SPAM_CHECKER}/32\"]\n"
        ),
    );
    let agent = Agent::start(&lab, files);
    submit(&lab.net, "guarded-91c4");
    let message = primary
        .wait_for("guarded-91c4", DELIVERY_SECONDS)
        .unwrap_or_else(|| {
            panic!(
                "guarded message never reached the primary MX\n{}\n--- agent:\n{}",
                logs(),
                agent.log_text()
            )
        });
    assert!(
        received_by_checker(&message),
        "no Received header from the spam checker:\n{message}"
    );
    assert_eq!(
        client_addr(&message),
        Some(SPAM_CHECKER),
        "the spam checker must hand the message to the primary MX itself:\n{message}"
    );
    let sender_log = sender.log();
    assert!(
        sender_log.contains(&format!(
            "connect to mx1.{DOMAIN}[{PRIMARY_MX}]:25: Connection timed out"
        )) && sender_log.contains(&format!("relay={CHECKER_NAME}[{SPAM_CHECKER}]:25")),
        "the sender should have tried the primary MX and fallen back to the spam checker:\n{}",
        logs()
    );
    assert!(
        checker
            .log()
            .contains(&format!("relay={PRIMARY_MX}[{PRIMARY_MX}]:25")),
        "{}",
        logs()
    );

    // The agent gone (detached on drop): straight to the primary MX again.
    drop(agent);
    submit(&lab.net, "detached-5be2");
    let message = primary
        .wait_for("detached-5be2", DELIVERY_SECONDS)
        .unwrap_or_else(|| {
            panic!(
                "message after detach never reached the primary MX\n{}",
                logs()
            )
        });
    assert_eq!(client_addr(&message), Some(SENDER), "{message}");
    assert!(!received_by_checker(&message), "{message}");
}
