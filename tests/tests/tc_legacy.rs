//! TC without tcx: the agent attaches its TC program as a direct-action cls_bpf filter on a
//! clsact qdisc (what kernels before 6.6, Debian 12's 6.1 among them, get). On this machine's
//! kernel the path is forced with `EGRESS_TC_ATTACH=legacy`; in the 6.1 VM it is what the
//! probe picks. TC only (no XDP on the subscriber side), so traffic shows what the filter does.
use std::{
    thread::sleep,
    time::{Duration, Instant},
};

use tests::{
    agent::{
        Agent, AgentFiles, Lab, Launch, RELAY, SUBSCRIBER,
        kernel::tcx_egress_programs,
        time_scale,
        traffic::{SynCounter, SynStream, connects, smtp_listener},
        wait_for,
    },
    netns::{Netns, exec_ok},
};

const PRIORITY: u64 = 1;
const HANDLE: &str = "0x25";

fn legacy() -> Launch {
    Launch {
        env: vec![("EGRESS_TC_ATTACH".into(), "legacy".into())],
        wrapper: Vec::new(),
    }
}

/// `tc -j ARGS` in `ns`, parsed.
fn tc_json(ns: &Netns, args: &[&str]) -> Vec<serde_json::Value> {
    let mut argv = vec!["tc", "-j"];
    argv.extend(args);
    let out = exec_ok(ns, &argv);
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("tc {args:?} printed no JSON list: {err}"))
}

/// The filters (not the per-priority headers) on the egress hook of `interface`.
fn egress_filters(ns: &Netns, interface: &str) -> Vec<serde_json::Value> {
    tc_json(ns, &["filter", "show", "dev", interface, "egress"])
        .into_iter()
        .filter(|f| f.get("options").is_some())
        .collect()
}

/// The program id of our filter (priority 1, handle 0x25, egress_tc), if it is there.
fn our_filter(ns: &Netns, interface: &str) -> Option<u64> {
    egress_filters(ns, interface)
        .iter()
        .find(|f| {
            f["pref"] == PRIORITY
                && f["kind"] == "bpf"
                && f["options"]["handle"] == HANDLE
                && f["options"]["bpf_name"] == "egress_tc"
        })
        .map(|f| {
            assert_eq!(f["options"]["direct-action"], true, "direct action: {f}");
            f["options"]["prog"]["id"].as_u64().expect("prog id")
        })
}

fn has_clsact(ns: &Netns, interface: &str) -> bool {
    tc_json(ns, &["qdisc", "show", "dev", interface])
        .iter()
        .any(|q| q["kind"] == "clsact")
}

fn assert_legacy_attached(agent: &Agent, interface: &str) {
    let a = agent.attachment(interface);
    assert_eq!(a["attached"], true, "{a}");
    assert_eq!(a["mode"], "tc-legacy", "{a}");
    assert_eq!(a["method"], "tc-legacy", "{a}");
}

#[test]
fn legacy_filter_enforces_survives_restarts_and_upgrades_without_a_gap() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    let relays = format!("[allow]\nrelays = [\"{RELAY}/32\"]\n");
    files.write_config_for(&[(&lab.rtr_up_if, "tc-egress")], &relays);
    let mut agent = Agent::start_with(&lab, files, legacy());
    let up = lab.rtr_up_if.clone();

    assert_legacy_attached(&agent, &up);
    assert!(has_clsact(&lab.rtr, &up), "egress added a clsact qdisc");
    let first = our_filter(&lab.rtr, &up).expect("our cls_bpf filter at prio 1 handle 0x25");
    assert_eq!(egress_filters(&lab.rtr, &up).len(), 1, "exactly one filter");
    assert!(
        !connects(&lab, SUBSCRIBER),
        "port 25 blocked through the filter"
    );
    assert!(connects(&lab, RELAY), "the relay passes");
    assert!(
        agent.cli_ok(&["status"]).contains("tc-legacy"),
        "the human status names the method"
    );

    // A continuous port-25 SYN stream across SIGTERM, restart, kill -9, restart and an
    // upgrade (a new program: blocked_ports changes) swapped into the same filter.
    // The stream must outlast every event below (slow under TCG: scaled).
    let stream_seconds = 30 * time_scale();
    let counter = SynCounter::start(&lab, (stream_seconds + 2) as f64);
    let stream = SynStream::start(&lab, SUBSCRIBER, stream_seconds as f64);
    let began = Instant::now();
    sleep(Duration::from_millis(500));
    assert!(agent.stop_with(libc::SIGTERM).success(), "SIGTERM exits 0");
    assert_eq!(
        our_filter(&lab.rtr, &up),
        Some(first),
        "the filter holds the program without the agent"
    );
    sleep(Duration::from_millis(500));
    agent.restart(&lab);
    let adopted = our_filter(&lab.rtr, &up).expect("filter after restart");
    assert_ne!(adopted, first, "the restarted agent swapped its program in");
    assert_eq!(egress_filters(&lab.rtr, &up).len(), 1, "adopted, not added");
    assert!(agent.log_text().contains("adopted our cls_bpf filter"));
    agent.stop_with(libc::SIGKILL);
    sleep(Duration::from_millis(500));
    agent.restart(&lab);
    let before_upgrade = our_filter(&lab.rtr, &up).expect("filter after kill -9");

    let config = std::fs::read_to_string(&agent.files.config).expect("config");
    std::fs::write(
        &agent.files.config,
        format!("blocked_ports = [25, 2525]\n{config}"),
    )
    .expect("write config");
    agent.signal(libc::SIGHUP);
    wait_for("the upgraded program in the filter", 60, || {
        our_filter(&lab.rtr, &up).is_some_and(|id| id != before_upgrade)
    });
    let events = began.elapsed();
    assert_eq!(egress_filters(&lab.rtr, &up).len(), 1, "replaced in place");
    assert_legacy_attached(&agent, &up);

    let started = stream.finish();
    let leaked = counter.finish();
    assert!(
        events < Duration::from_secs(stream_seconds - 1),
        "restarts and upgrade took {events:?}, longer than the SYN stream"
    );
    assert!(started > 50, "too few SYNs to mean anything: {started}");
    assert_eq!(leaked, 0, "SYNs reached the internet side (of {started})");
    assert!(
        !connects(&lab, SUBSCRIBER),
        "still blocked after the upgrade"
    );
    assert!(connects(&lab, RELAY), "the relay still passes");

    // detach removes the filter and the qdisc egress added; nothing else was there.
    agent.cli_ok(&["detach", "--config", agent.files.config()]);
    assert_eq!(our_filter(&lab.rtr, &up), None, "filter removed");
    assert!(!has_clsact(&lab.rtr, &up), "egress's qdisc removed");
    assert!(connects(&lab, SUBSCRIBER), "enforcement ends with detach");
}

#[test]
fn foreign_filters_and_qdiscs_are_kept_and_reported() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let (sub, up) = (lab.rtr_sub_if.clone(), lab.rtr_up_if.clone());
    // Someone else's clsact on the subscriber side before egress starts.
    exec_ok(&lab.rtr, &["tc", "qdisc", "add", "dev", &sub, "clsact"]);
    let files = AgentFiles::new();
    files.write_config_for(&[(&sub, "tc-egress"), (&up, "tc-egress")], "");
    let agent = Agent::start_with(&lab, files, legacy());
    assert_legacy_attached(&agent, &sub);
    assert_legacy_attached(&agent, &up);
    assert!(our_filter(&lab.rtr, &sub).is_some() && our_filter(&lab.rtr, &up).is_some());

    // Another tool's filter next to ours on the uplink (a later priority).
    exec_ok(
        &lab.rtr,
        &[
            "tc", "filter", "add", "dev", &up, "egress", "prio", "10", "u32", "match", "u32", "0",
            "0", "flowid", "1:1",
        ],
    );
    wait_for("the foreign filter in status", 10, || {
        agent.attachment(&up)["foreign_filters"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    });
    let filters = agent.attachment(&up)["foreign_filters"].to_string();
    assert!(filters.contains("prio 10"), "{filters}");
    assert!(agent.cli_ok(&["status"]).contains("foreign filter on"));
    wait_for("the foreign filter in the log", 10, || {
        agent.log_text().contains("foreign TC filter on the hook")
    });
    assert!(
        !connects(&lab, SUBSCRIBER),
        "ours runs first: port 25 still blocked"
    );

    let out = agent.cli_ok(&["detach", "--config", agent.files.config()]);
    assert_eq!(our_filter(&lab.rtr, &up), None, "our filter removed: {out}");
    assert_eq!(
        our_filter(&lab.rtr, &sub),
        None,
        "our filter removed: {out}"
    );
    assert!(
        egress_filters(&lab.rtr, &up)
            .iter()
            .any(|f| f["pref"] == 10),
        "the foreign filter stays"
    );
    assert!(
        has_clsact(&lab.rtr, &up),
        "qdisc kept: a foreign filter is on it"
    );
    assert!(
        has_clsact(&lab.rtr, &sub),
        "a qdisc egress did not add stays"
    );
    assert!(
        !agent.files.pin_dir.exists(),
        "pin dir {} removed",
        agent.files.pin_dir.display()
    );
}

/// What is attached on the uplink's egress: our cls_bpf filter's program, the tcx programs,
/// and how many filters sit at our priority (ours or not).
fn attachments(lab: &Lab, interface: &str) -> (Option<u64>, Vec<u32>, usize) {
    let at_our_priority = egress_filters(&lab.rtr, interface)
        .iter()
        .filter(|f| f["pref"] == PRIORITY)
        .count();
    (
        our_filter(&lab.rtr, interface),
        tcx_egress_programs(&lab.rtr, interface),
        at_our_priority,
    )
}

/// Exactly one attachment of ours, by tcx link: no filter of ours left.
fn assert_only_tcx(agent: &Agent, lab: &Lab, interface: &str, when: &str) {
    let (filter, tcx, all) = attachments(lab, interface);
    assert_eq!(filter, None, "{when}: our cls_bpf filter removed");
    assert_eq!(tcx.len(), 1, "{when}: exactly one tcx program: {tcx:?}");
    assert_eq!(all, 0, "{when}: no filter left at our priority");
    let pin = agent.files.pin_dir.join("links/tc-egress").join(interface);
    assert!(pin.exists(), "{when}: tcx link pinned at {}", pin.display());
    let a = agent.attachment(interface);
    assert_eq!(
        (a["attached"].clone(), a["method"].clone()),
        (true.into(), "tcx".into()),
        "{a}"
    );
}

/// Exactly one attachment of ours, by cls_bpf filter: no tcx link left.
fn assert_only_legacy(agent: &Agent, lab: &Lab, interface: &str, when: &str) {
    let (filter, tcx, _) = attachments(lab, interface);
    assert!(filter.is_some(), "{when}: our cls_bpf filter is there");
    assert!(tcx.is_empty(), "{when}: our tcx link removed: {tcx:?}");
    let pin = agent.files.pin_dir.join("links/tc-egress").join(interface);
    assert!(
        !pin.exists(),
        "{when}: tcx link pin {} removed",
        pin.display()
    );
    assert_legacy_attached(agent, interface);
}

/// Host kernel only (it needs tcx; the 6.1 VM skips it): an agent restarted with the other TC
/// attach method removes its own old attachment once the new one enforces, never a foreign
/// filter or a qdisc egress did not add, with port-25 SYNs streaming all along.
#[test]
fn switching_between_tcx_and_legacy_across_restarts_leaves_one_attachment() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    let relays = format!("[allow]\nrelays = [\"{RELAY}/32\"]\n");
    files.write_config_for(&[(&lab.rtr_up_if, "tc-egress")], &relays);
    let mut agent = Agent::start_with(&lab, files, legacy());
    let up = lab.rtr_up_if.clone();
    assert_only_legacy(&agent, &lab, &up, "legacy start");
    assert!(has_clsact(&lab.rtr, &up), "egress added a clsact qdisc");

    let stream_seconds = 40 * time_scale();
    let counter = SynCounter::start(&lab, (stream_seconds + 2) as f64);
    let stream = SynStream::start(&lab, SUBSCRIBER, stream_seconds as f64);
    let began = Instant::now();
    sleep(Duration::from_millis(500));

    // legacy -> tcx: the filter and the qdisc egress added go.
    assert!(agent.stop_with(libc::SIGTERM).success());
    agent.restart_with(&lab, Launch::default());
    assert_only_tcx(&agent, &lab, &up, "legacy -> tcx");
    assert!(!has_clsact(&lab.rtr, &up), "egress's own qdisc removed");
    assert!(agent.log_text().contains("removed our cls_bpf filter"));

    // tcx -> legacy: the pinned tcx link goes once the filter is in place.
    assert!(agent.stop_with(libc::SIGTERM).success());
    agent.restart_with(&lab, legacy());
    assert_only_legacy(&agent, &lab, &up, "tcx -> legacy");
    assert!(agent.log_text().contains("removed our tcx link"));

    // Another tool's filter beside ours: on the next switch it and the qdisc it sits on stay.
    exec_ok(
        &lab.rtr,
        &[
            "tc", "filter", "add", "dev", &up, "egress", "prio", "10", "u32", "match", "u32", "0",
            "0", "flowid", "1:1",
        ],
    );
    agent.stop_with(libc::SIGKILL);
    agent.restart_with(&lab, Launch::default());
    assert_only_tcx(&agent, &lab, &up, "legacy -> tcx beside a foreign filter");
    assert!(
        egress_filters(&lab.rtr, &up)
            .iter()
            .any(|f| f["pref"] == 10),
        "the foreign filter stays"
    );
    assert!(
        has_clsact(&lab.rtr, &up),
        "qdisc kept: a foreign filter is on it"
    );
    let events = began.elapsed();

    let started = stream.finish();
    let leaked = counter.finish();
    assert!(
        events < Duration::from_secs(stream_seconds - 1),
        "three switches took {events:?}, longer than the SYN stream"
    );
    assert!(started > 50, "too few SYNs to mean anything: {started}");
    assert_eq!(leaked, 0, "SYNs reached the internet side (of {started})");
    assert!(connects(&lab, RELAY), "the relay passes");

    agent.cli_ok(&["detach", "--config", agent.files.config()]);
    assert_eq!(
        attachments(&lab, &up).1,
        Vec::<u32>::new(),
        "tcx link detached"
    );
    assert!(
        egress_filters(&lab.rtr, &up)
            .iter()
            .any(|f| f["pref"] == 10),
        "detach keeps the foreign filter"
    );
}
