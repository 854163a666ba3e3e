//! The drift check of a big allowlist runs beside the daemon: control requests sent while
//! it reads and compares 300,000 entries are answered before it finishes (on the daemon's
//! loop they would wait for it), and a change made meanwhile is applied and kept.

use tests::agent::{
    Agent, AgentFiles, Lab,
    allowlists::{allow, many_exempt},
    wait_for,
};

const PREFIXES: u32 = 300_000;

/// Drift checks started and finished so far, from the agent's log.
fn checks(agent: &Agent) -> (usize, usize) {
    let log = agent.log_text();
    let started = log.matches("drift check started").count();
    let finished = log
        .lines()
        .filter(|l| l.contains("drift check") && l.contains("seconds="))
        .count();
    (started, finished)
}

#[test]
fn control_requests_are_answered_while_a_big_drift_check_runs() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, &allow(&many_exempt(PREFIXES)));
    let agent = Agent::start(&lab, files);
    let wanted = u64::from(PREFIXES) + 64 + 1;
    assert_eq!(
        agent.status()["allowlist_entries"]["exempt"].as_u64(),
        Some(wanted)
    );

    let (started_before, _) = checks(&agent);
    wait_for("a drift check of the big allowlist to start", 120, || {
        checks(&agent).0 > started_before
    });
    let (_, finished_before) = checks(&agent);
    let mut answered_during = 0;
    let mut added = false;
    while checks(&agent).1 == finished_before {
        let out = agent.cli(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status during the drift check: {out:?}"
        );
        if checks(&agent).1 == finished_before {
            answered_during += 1;
        }
        // Applied on the daemon's loop meanwhile (a full reconcile of the big list).
        if !added {
            agent.cli_ok(&[
                "relay",
                "add",
                "192.0.2.11",
                "--comment",
                "during the check",
            ]);
            added = true;
        }
    }
    assert!(
        answered_during >= 1,
        "no control request was answered while the drift check ran:\n{}",
        agent.log_text()
    );
    println!("{answered_during} status requests answered during the drift check");

    // The change made during the check overtook it: the check's report is dropped, nothing
    // is reverted or counted as drift.
    assert!(
        agent.cli_ok(&["relay", "list"]).contains("192.0.2.11/32"),
        "the relay added during the check is gone"
    );
    let status = agent.status();
    assert_eq!(status["allowlist_drift"]["relay"], 0, "{status}");
    assert_eq!(status["allowlist_drift"]["exempt"], 0, "{status}");
}
