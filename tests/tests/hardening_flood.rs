//! Spoofed flood through the real agent (issue 7 item 3): 200,000 distinct forged sources,
//! 100,000 IPv4 from 100.64.0.0/10 and 100,000 IPv6 each in its own /64, send SYNs to port 25
//! across the lab. Every one is dropped by XDP (none reaches the internet side, the agent's
//! counters account for all), the subscriber map stays within `max_tracked`, the labelled
//! series stay capped, a scrape still completes and is valid, the agent's memory stays
//! bounded, the event log keeps to its rate limit, and the agent still answers.

use std::time::{Duration, Instant};

use egress_agent::telemetry::limiter::{BURST, LINES_PER_SECOND};
use tests::{
    agent::{
        Agent, AgentFiles, Lab,
        spoof::{Spoofer, SynTally, ipv4_source, ipv6_source},
    },
    metrics::{http_get, promtool_check_metrics, samples, value},
    netns::{addr, exec_ok, in_netns},
};

const METRICS: &str = "127.0.0.1:9725";
const SOURCES_PER_FAMILY: u32 = 100_000;
const MAX_TRACKED: u64 = 4096;
const MAX_SERIES: usize = 50;
/// A port nobody blocks: spoofed SYNs to it must cross the router, proving the internet-side
/// tally would see a leak.
const CANARY_PORT: u16 = 2525;
const CANARIES: u32 = 10;
const SERVER_V4: [u8; 4] = [198, 51, 100, 2];
const SERVER_V6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
];
/// Generous: the agent keeps no per-source state beyond the bounded map it scans.
const MAX_RSS_KIB: u64 = 64 * 1024;

fn scrape(lab: &Lab, agent: &Agent) -> String {
    let (status, text) = in_netns(&lab.rtr, || {
        http_get(METRICS.parse().expect("addr"), "/metrics")
    });
    assert_eq!(status, 200, "{text}\nagent log:\n{}", agent.log_text());
    text
}

fn dropped(text: &str, family: &str) -> u64 {
    value(
        text,
        "egress_smtp_packets_total",
        &[("verdict", "dropped"), ("family", family)],
    )
    .unwrap_or(0.0) as u64
}

/// The router forwards leaks like any packet: IPv6 to the server, and no reverse-path check
/// on the forged IPv4 sources.
fn make_leaks_routable(lab: &Lab) {
    addr(&lab.rtr, &lab.rtr_up_if, "2001:db8:ff::1/64");
    addr(&lab.net, &lab.net_if, "2001:db8:ff::2/64");
    for interface in ["all", "default", lab.rtr_sub_if.as_str()] {
        let setting = format!("net.ipv4.conf.{interface}.rp_filter=0");
        exec_ok(&lab.rtr, &["sysctl", "-qw", &setting]);
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[test]
fn agent_survives_200000_spoofed_sources_with_bounded_state_metrics_memory_and_logs() {
    let lab = Lab::new();
    make_leaks_routable(&lab);
    let files = AgentFiles::new();
    files.write_xdp_only_config(
        &lab,
        &format!(
            "[subscribers]\nmax_tracked = {MAX_TRACKED}\n\n\
             [metrics]\nlisten = \"{METRICS}\"\nmax_subscriber_series = {MAX_SERIES}\n"
        ),
    );
    let started = Instant::now();
    let mut agent = Agent::start(&lab, files);
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", agent.pid())).expect("comm");
    assert_eq!(comm.trim(), "egress-agent", "the child is the agent itself");

    let tally = SynTally::start(&lab);
    let mut spoofer = Spoofer::new(&lab);
    for n in 0..CANARIES {
        spoofer.syn_v4(ipv4_source(n), SERVER_V4, CANARY_PORT);
        spoofer.syn_v6(ipv6_source(n), SERVER_V6, CANARY_PORT);
    }
    let flood_deadline = Instant::now() + Duration::from_secs(60);
    for n in 0..SOURCES_PER_FAMILY {
        spoofer.syn_v4(ipv4_source(n), SERVER_V4, 25);
        spoofer.syn_v6(ipv6_source(n), SERVER_V6, 25);
        assert!(
            Instant::now() < flood_deadline,
            "hang guard: flood still sending at source #{n}"
        );
    }
    eprintln!(
        "flood sent in {:?} ({} waits on a full queue)",
        started.elapsed(),
        spoofer.waits
    );

    // Every SYN is counted as dropped (XDP may still be draining the veth ring: bounded wait).
    let expected = u64::from(SOURCES_PER_FAMILY);
    let poll_deadline = Instant::now() + Duration::from_secs(20);
    let mut text = scrape(&lab, &agent);
    while (dropped(&text, "ipv4") < expected || dropped(&text, "ipv6") < expected)
        && Instant::now() < poll_deadline
    {
        std::thread::sleep(Duration::from_millis(200));
        text = scrape(&lab, &agent);
    }
    assert_eq!(dropped(&text, "ipv4"), expected, "IPv4 drops:\n{text}");
    assert_eq!(dropped(&text, "ipv6"), expected, "IPv6 drops:\n{text}");

    // Nothing to port 25 crossed the router, while the canaries did.
    // The canaries went out before the flood, so they have long crossed by now.
    let seen = tally.finish();
    let count = |port: u16| seen.iter().find(|(p, _)| *p == port).map_or(0, |(_, c)| *c);
    assert_eq!(
        count(25),
        0,
        "port-25 SYNs reached the internet side: {seen:?}"
    );
    assert_eq!(
        count(CANARY_PORT),
        u64::from(2 * CANARIES),
        "the canary SYNs must cross the router, or a zero above proves nothing: {seen:?}"
    );

    // The subscriber map stays within max_tracked, yet was really filled.
    let tracked = value(&text, "egress_tracked_subscribers", &[]).expect("tracked gauge") as u64;
    assert!(
        (MAX_TRACKED / 2..=MAX_TRACKED).contains(&tracked),
        "{tracked} tracked subscribers after 200,000 sources, max_tracked {MAX_TRACKED}"
    );
    assert_eq!(
        value(&text, "egress_tracked_subscribers_max", &[]),
        Some(MAX_TRACKED as f64)
    );
    let status = agent.status();
    let in_status = status["subscribers_tracked"]
        .as_u64()
        .expect("subscribers_tracked");
    assert!(in_status <= MAX_TRACKED, "status: {status}");
    assert_eq!(status["max_tracked"], MAX_TRACKED, "{status}");

    // Labelled series stay capped, and the whole exposition stays small and valid.
    let all = samples(&text);
    for name in [
        "egress_subscriber_smtp_attempts_total",
        "egress_subscriber_distinct_destinations",
    ] {
        let labelled = all
            .iter()
            .filter(|s| s.name == name && s.labels.contains_key("subscriber"))
            .count();
        assert!(
            (1..=MAX_SERIES).contains(&labelled),
            "{labelled} series of {name}, cap {MAX_SERIES}"
        );
    }
    assert!(all.len() < 400, "{} samples in one scrape", all.len());
    promtool_check_metrics(&text);

    // Bounded memory.
    let (rss, peak) = (
        proc_status_kib(agent.pid(), "VmRSS:"),
        proc_status_kib(agent.pid(), "VmHWM:"),
    );
    eprintln!("agent RSS {rss} KiB, peak {peak} KiB");
    assert!(
        peak < MAX_RSS_KIB,
        "agent peak RSS {peak} KiB, bound {MAX_RSS_KIB} KiB"
    );

    // The event log keeps to its rate limit; the rest is counted as suppressed.
    let suppressed = value(&text, "egress_events_suppressed_total", &[]).unwrap_or(0.0);
    assert!(
        suppressed > 0.0,
        "no suppressed events after the flood:\n{text}"
    );
    let log = agent.log_text();
    let allowed = BURST + LINES_PER_SECOND * started.elapsed().as_secs_f64() + 1.0;
    let lines = log
        .lines()
        .filter(|l| l.contains("first_seen") || l.contains("flagged"))
        .count();
    eprintln!(
        "{lines} subscriber log lines (limit {allowed:.0}), {suppressed} suppressed, {tracked} tracked"
    );
    assert!(lines >= 1, "no first_seen line at all:\n{log}");
    assert!(
        lines as f64 <= allowed,
        "{lines} subscriber log lines, rate limit allows {allowed:.0}"
    );

    assert!(agent.is_running(), "agent died:\n{}", agent.log_text());
    agent.cli_ok(&["status"]);
}
