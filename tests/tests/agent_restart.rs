//! Enforcement does not depend on the agent process: across SIGTERM, kill -9 and restarts,
//! while a subscriber keeps sending port-25 SYNs, not one SYN reaches the internet side and
//! the subscriber's counters keep counting.
use std::{net::Ipv4Addr, thread::sleep, time::Duration};

use tests::agent::{
    Agent, AgentFiles, Lab, SUBSCRIBER, subscriber_record, time_scale,
    traffic::{SynCounter, SynStream, smtp_listener},
    wait_for,
};

#[test]
fn no_syn_leaks_across_sigterm_kill_and_restart() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    files.write_config(&lab, "");
    let mut agent = Agent::start(&lab, files);
    let pin_dir = agent.files.pin_dir.clone();
    let subscriber: Ipv4Addr = SUBSCRIBER.parse().expect("address");

    // Slow machines (the 6.1 VM under TCG) restart slowly: the stream covers every restart.
    let scale = time_scale() as f64;
    let counter = SynCounter::start(&lab, 9.0 * scale);
    let stream = SynStream::start(&lab, SUBSCRIBER, 7.0 * scale);
    wait_for("the stream's first SYN counted", 10, || {
        subscriber_record(&pin_dir, subscriber).is_some()
    });
    let before = subscriber_record(&pin_dir, subscriber).expect("subscriber recorded");
    assert!(before.attempts > 0);

    assert!(agent.stop_with(libc::SIGTERM).success(), "SIGTERM exits 0");
    sleep(Duration::from_millis(500));
    agent.restart(&lab);
    sleep(Duration::from_millis(500));
    agent.stop_with(libc::SIGKILL);
    sleep(Duration::from_millis(500));
    let during = subscriber_record(&pin_dir, subscriber).expect("record kept after kill -9");
    assert!(
        during.attempts > before.attempts,
        "counting goes on without an agent"
    );
    agent.restart(&lab);

    let started = stream.finish();
    let leaked = counter.finish();
    assert!(
        started > 50,
        "the stream sent too few SYNs to mean anything: {started}"
    );
    assert_eq!(
        leaked, 0,
        "SYNs reached the internet side (of {started} connection attempts)"
    );
    let after = subscriber_record(&pin_dir, subscriber).expect("record kept after restarts");
    assert!(
        after.attempts >= during.attempts,
        "subscriber counters were reset"
    );
    assert_eq!(
        after.first_seen_ns, before.first_seen_ns,
        "the record was recreated"
    );
    let status = agent.status();
    assert!(status["counters"]["dropped_ipv4"].as_u64().unwrap_or(0) >= after.attempts);
}
