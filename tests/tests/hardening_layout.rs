//! Program and map lifecycle: a pinned map with an incompatible layout is recreated (loudly),
//! the pin of a map earlier versions had is removed, and the agent enforces; a reload that changes `blocked_ports` swaps the program in the
//! same link (no gap on port 25) and blocks the new port.
use std::{thread::sleep, time::Duration};

use tests::agent::{
    Agent, AgentFiles, Lab, SUBSCRIBER,
    kernel::{bpftool, pinned_link},
    traffic::{SynCounter, SynStream, connects, connects_to, listener, smtp_listener},
    wait_for,
};

/// Creates and pins a map with `bpftool`, as another program or an earlier version would.
fn pin_map(path: &std::path::Path, kind: &str, key: u32, value: u32, entries: u32, name: &str) {
    let (key, value, entries) = (key.to_string(), value.to_string(), entries.to_string());
    let out = bpftool(&[
        "map",
        "create",
        path.to_str().expect("utf-8"),
        "type",
        kind,
        "key",
        &key,
        "value",
        &value,
        "entries",
        &entries,
        "name",
        name,
    ]);
    assert!(
        out.status.success(),
        "bpftool map create {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn incompatible_pinned_map_is_recreated() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    files.write_config(&lab, "");
    let maps = files.pin_dir.join("maps");
    std::fs::create_dir_all(&maps).expect("create the pin directory on bpffs");
    // The dataplane config map is a 1-entry array of DataplaneConfig; this one has 8-byte values.
    let wrong = maps.join("EGRESS_CONFIG");
    pin_map(&wrong, "array", 4, 8, 1, "EGRESS_CONFIG");

    // The one-level index's long-prefix hash, as an earlier version pinned it.
    let retired = maps.join(egress_common::names::RETIRED[0]);
    pin_map(&retired, "hash", 8, 4, 16, "EGRESS_SOURCE_L");

    let agent = Agent::start(&lab, files);
    let log = agent.log_text();
    assert!(!retired.exists(), "the retired pin is removed");
    assert!(
        log.contains("retired map pin removed"),
        "and logged:
{log}"
    );
    assert!(
        log.contains("incompatible layout") && log.contains("EGRESS_CONFIG"),
        "the log says which map is recreated:\n{log}"
    );
    let value_size = tests::agent::kernel::bpftool_json(&[
        "map",
        "show",
        "pinned",
        wrong.to_str().expect("utf-8"),
    ])["bytes_value"]
        .as_u64();
    assert_eq!(
        value_size,
        Some(std::mem::size_of::<egress_common::DataplaneConfig>() as u64)
    );
    assert!(
        !connects(&lab, SUBSCRIBER),
        "enforcing with the recreated map"
    );
}

#[test]
fn blocked_ports_reload_swaps_the_program_without_a_gap() {
    let lab = Lab::new();
    let _smtp = smtp_listener(&lab);
    let _other = listener(&lab, 2525);
    let files = AgentFiles::new();
    // XDP only: the tcx backstop would hide a gap on the XDP side.
    files.write_xdp_only_config(&lab, "");
    let agent = Agent::start(&lab, files);
    let link_pin = agent.files.pin_dir.join("links/xdp").join(&lab.rtr_sub_if);
    let (link_before, prog_before) = pinned_link(&link_pin);
    assert!(connects_to(&lab, SUBSCRIBER, 2525), "2525 open at first");

    let counter = SynCounter::start(&lab, 6.0);
    let stream = SynStream::start(&lab, SUBSCRIBER, 4.0);
    sleep(Duration::from_millis(500));
    let text = std::fs::read_to_string(&agent.files.config).expect("config");
    std::fs::write(
        &agent.files.config,
        format!("blocked_ports = [25, 2525]\n{text}"),
    )
    .expect("write config");
    agent.signal(libc::SIGHUP);
    wait_for("the program reload", 10, || {
        agent.log_text().contains("program reloaded")
    });
    let started = stream.finish();
    let leaked = counter.finish();
    assert!(started > 50, "too few SYNs to mean anything: {started}");
    assert_eq!(leaked, 0, "port-25 SYNs leaked during the program swap");

    let (link_after, prog_after) = pinned_link(&link_pin);
    assert_eq!(link_after, link_before, "the same link: never detached");
    assert_ne!(prog_after, prog_before, "a new program runs in it");
    assert_eq!(agent.status()["config_last_reload_successful"], true);
    assert!(!connects_to(&lab, SUBSCRIBER, 2525), "2525 blocked now");
    assert!(!connects(&lab, SUBSCRIBER), "25 still blocked");
}
