//! `cargo xtask bench --quick` end to end against the real kernel: every row is produced, the
//! JSON is written, every timed case took the path it claims (the bench checks each program
//! return value and fails otherwise), the agent rows ran against the real agent, and no
//! packet was misjudged during its reload. No figure is asserted: timings belong to the
//! bench, never to tests.

use std::path::PathBuf;

use serde_json::Value;
use xtask::bench::{BenchArgs, run};

const CASES: &[&str] = &[
    "empty XDP program",
    "fast path IPv4 TCP/80",
    "fast path IPv4 UDP/53",
    "fast path IPv6 TCP/80",
    "allowed SMTP from relay IPv4",
    "allowed SMTP from relay IPv6",
    "allowed SMTP from exempt IPv4",
    "blocked SYN tracked subscriber IPv4",
    "blocked SYN tracked subscriber IPv4 with pools",
    "blocked SYN tracked subscriber IPv6",
    "blocked SYN new subscriber IPv4",
    "blocked SYN new subscriber IPv6",
    "xdp-filter (default features), port 25 rule, same TCP/80 packets",
    "xdp-filter (default features), port 25 rule, same SMTP SYNs",
    "ours / xdp-filter (default features), TCP/80 packets",
    "ours / xdp-filter (default features), SMTP SYNs",
    "veth drop rate, drop-all XDP program (the setup's ceiling), xdp-frame sender",
    "veth drop rate, ours (native XDP), xdp-frame sender",
    "veth drop rate, nftables netdev ingress, xdp-frame sender",
    "veth drop rate, ours / nftables, xdp-frame sender",
    "veth drop rate, ours with pools (native XDP), xdp-frame sender",
    "veth drop rate, ours with pools / nftables, xdp-frame sender",
    "veth drop rate, ours (native XDP), AF_PACKET sender",
    "veth drop rate, ours (generic XDP), AF_PACKET sender",
    "veth drop rate, nftables netdev ingress, AF_PACKET sender",
    "growth",
    "working set: ours, blocked SYN IPv4, 64 sources",
    "working set: ours, blocked SYN IPv4, 4096 sources",
    "working set: ours with pools, blocked SYN IPv4, 64 sources",
    "working set: ours with pools, blocked SYN IPv4, 4096 sources",
    "working set: ours / smallest floor",
    "working set: ours with pools / smallest floor",
    "setup: write 10000 pool records",
    "working set: floor, our key and record",
    "working set: floor, 4-byte key",
    "agent peak RSS, 10k tracked subscribers",
    "agent /metrics scrape, 10k tracked subscribers",
    "agent reload of 1k prefixes (SIGHUP to status)",
    "agent reload of 1k prefixes: packets misjudged",
    "agent reload of 1k prefixes, one replaced (SIGHUP to effect)",
    "agent reload of 1k prefixes, one replaced: packets misjudged",
    "agent drift check of 1k allowlist entries",
    "agent drift check of 1k entries: longest control-request wait",
    "inbound: non-SMTP (TCP/80 to the primary MX)",
    "inbound: SMTP SYN to an unprotected host",
    "inbound: SMTP SYN to the primary MX from a spam checker",
    "inbound: SMTP SYN to the primary MX from anyone else",
    "inbound: throttled SYN to the spam checker",
    "inbound: floor, 4-byte key",
    "inbound: throttled SYN / floor",
    "RADIUS Interim-Update ingest, 10k open sessions",
    "agent peak RSS, RADIUS ingest with 10k open sessions",
    "`who ADDR --at TIME`, 10k sessions and 90 days of history",
    "flag to webhook delivery latency, p99 of 5 flags",
    "fleet propagation, `relay add` on 1 of 3 routers, p50",
    "fleet propagation, `relay add` on 1 of 3 routers, p99",
    "fleet propagation, `relay remove` on another router, p99",
];

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn quick_bench_produces_every_row_and_the_json() {
    let dir =
        TempDir(std::env::temp_dir().join(format!("egress-bench-quick-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("create a temporary directory");
    let object = dir.0.join("egress.bpf.o");
    std::fs::write(&object, egress_agent::EBPF_OBJECT).expect("write the eBPF object");
    let json = dir.0.join("bench.json");

    run(BenchArgs {
        quick: true,
        json: Some(json.clone()),
        object: Some(object),
        agent: Some(tests::agent::binary()),
        only: None,
        traceability: false,
    })
    .expect("cargo xtask bench --quick must run to completion");

    let text = std::fs::read_to_string(&json).expect("the bench writes its JSON where it is told");
    let document: Value = serde_json::from_str(&text).expect("the bench JSON parses");
    assert_eq!(document["meta"]["quick"], Value::Bool(true));
    let rows = document["rows"].as_array().expect("rows is an array");
    for case in CASES {
        assert!(
            rows.iter().any(|row| row["case"]
                .as_str()
                .is_some_and(|name| name.starts_with(case))),
            "no row for {case:?} in {text}"
        );
    }
    for row in rows {
        let case = &row["case"];
        let median = row["median"].as_f64();
        assert!(
            median.is_some_and(f64::is_finite),
            "{case}: every row is measured, with a finite median: {row}"
        );
        assert!(
            row["spread"].as_f64().is_some_and(f64::is_finite),
            "{case}: no spread"
        );
        assert!(
            row["met"].is_boolean() || row["met"].is_null(),
            "{case}: bad verdict"
        );
        assert!(row["target"].is_string(), "{case}: no target");
    }
    // Every timed case has all three readings: rotated over varied frames with repeat (the
    // headline), one frame repeated, and every frame cold.
    for row in rows.iter().filter(|row| {
        row["unit"] == "ns"
            && row["case"].as_str().is_some_and(|c| {
                !c.starts_with("empty")
                    && !c.starts_with("working set")
                    && !c.contains("new subscriber")
                    // A difference of two rows above, each measured three ways.
                    && !c.contains(" - ")
            })
    }) {
        for reading in ["hot_median", "cold_median"] {
            assert!(
                row[reading].as_f64().is_some_and(f64::is_finite),
                "{}: no {reading}, so it was not measured three ways: {row}",
                row["case"]
            );
        }
    }
    // Correctness, not timing: no packet may be misjudged while the agent reloads.
    let misjudged: Vec<&Value> = rows
        .iter()
        .filter(|row| {
            row["case"]
                .as_str()
                .is_some_and(|c| c.ends_with("packets misjudged"))
        })
        .collect();
    assert_eq!(
        misjudged.len(),
        2,
        "two reloads, two misjudged rows: {text}"
    );
    for row in misjudged {
        assert_eq!(
            row["median"].as_f64(),
            Some(0.0),
            "packets misjudged during a reload: {row}"
        );
    }
}
