//! `subscribers.pools` on the real agent: pool subscribers are recorded in their slots (not
//! in the LRU map), shown by `subscriber`, `top`, `status` and `/metrics` like any other, kept
//! across a restart and forgotten when the pools change; a spoofed source outside the pools
//! is counted and recorded in the LRU map.
use std::net::Ipv4Addr;

use tests::{
    agent::{Agent, AgentFiles, Lab, SUBSCRIBER, spoof::Spoofer, subscriber_record, wait_for},
    notify::scrape,
};

const SERVER: [u8; 4] = [198, 51, 100, 2];
const SPOOFED: [u8; 4] = [100, 64, 0, 9];

fn pools_config(pools: &str) -> String {
    format!("[subscribers]\nmax_tracked = 4096\npools = [{pools}]\n")
}

fn record(agent: &Agent, address: &str) -> Option<serde_json::Value> {
    let out = agent.cli(&["subscriber", address, "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("subscriber --json"))
}

/// The value of an unlabelled sample.
fn metric(lab: &Lab, name: &str) -> f64 {
    let text = scrape(lab);
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

#[test]
fn pool_subscribers_are_recorded_shown_kept_and_forgotten_when_the_pools_change() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, &pools_config("\"192.0.2.0/24\""));
    let mut agent = Agent::start(&lab, files);
    let pin_dir = agent.files.pin_dir.clone();
    let subscriber: Ipv4Addr = SUBSCRIBER.parse().expect("address");
    let mut spoofer = Spoofer::new(&lab);
    for _ in 0..5 {
        spoofer.syn_v4(subscriber.octets(), SERVER, 25);
    }
    wait_for("the pool subscriber's five attempts", 10, || {
        record(&agent, SUBSCRIBER).is_some_and(|r| r["attempts"] == 5)
    });
    let first = record(&agent, SUBSCRIBER).expect("record");
    assert_eq!(
        subscriber_record(&pin_dir, subscriber),
        None,
        "a pool subscriber has no LRU record"
    );
    let top = agent.cli_ok(&["top", "--json"]);
    assert!(
        top.contains(SUBSCRIBER),
        "top lists the pool subscriber: {top}"
    );
    assert_eq!(agent.status()["pool_addresses"], 256);
    assert_eq!(
        metric(&lab, "egress_tracked_subscribers_max"),
        4096.0 + 256.0
    );
    assert_eq!(metric(&lab, "egress_smtp_outside_pools_total"), 0.0);

    for _ in 0..3 {
        spoofer.syn_v4(SPOOFED, SERVER, 25);
    }
    wait_for("the spoofed SYNs counted outside the pools", 10, || {
        metric(&lab, "egress_smtp_outside_pools_total") == 3.0
    });
    let spoofed = subscriber_record(&pin_dir, Ipv4Addr::from(SPOOFED)).expect("an LRU record");
    assert_eq!(spoofed.attempts, 3);

    assert!(agent.stop_with(libc::SIGTERM).success(), "SIGTERM exits 0");
    agent.restart(&lab);
    let kept = record(&agent, SUBSCRIBER).expect("the pool record survives a restart");
    assert_eq!(
        kept["first_seen"], first["first_seen"],
        "the same record after a restart"
    );
    assert_eq!(kept["attempts"], 5);

    agent
        .files
        .write_config(&lab, &pools_config("\"203.0.113.0/25\""));
    agent.signal(libc::SIGHUP);
    wait_for("the reload with new pools", 20, || {
        agent.status()["pool_addresses"] == 128
    });
    assert!(
        agent.log_text().contains("subscribers.pools changed"),
        "the log says the pools' records start over:\n{}",
        agent.log_text()
    );
    assert_eq!(
        record(&agent, SUBSCRIBER),
        None,
        "the old pools' records are gone"
    );
    spoofer.syn_v4(subscriber.octets(), SERVER, 25);
    wait_for(
        "the subscriber, now outside the pools, in the LRU map",
        10,
        || subscriber_record(&pin_dir, subscriber).is_some(),
    );
}
