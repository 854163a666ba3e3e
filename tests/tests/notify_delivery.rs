//! Evidence reports when delivery goes wrong: a receiver answering 500 is retried with
//! backoff until it answers 2xx, a receiver that accepts and never answers stalls delivery
//! only (not the control socket), and reports beyond `max_queued` are dropped oldest first.

use std::time::{Duration, Instant};

use tests::{
    agent::{Lab, RELAY, SUBSCRIBER, wait_for},
    mail::silent::SilentServer,
    metrics::value,
    notify::{
        WEBHOOK_SECRET, check_report, closed_port, infect, infect_from, reports, scrape, start,
        start_with,
    },
    webhook,
};

fn notifications(text: &str, result: &str) -> f64 {
    value(text, "egress_notifications_total", &[("result", result)])
        .unwrap_or_else(|| panic!("no egress_notifications_total{{result={result}}}:\n{text}"))
}

/// A receiver answering 500 is retried with backoff, and the report is delivered once, when
/// it answers 2xx.
#[test]
fn notify_a_500_from_the_receiver_is_retried_until_a_2xx() {
    let lab = Lab::new();
    let receiver = webhook::Receiver::start_failing(&lab.rtr, "127.0.0.1:0", WEBHOOK_SECRET, 2)
        .unwrap_or_else(|err| panic!("{err}"));
    let agent = start(&lab, &receiver.url());
    infect(&lab);
    wait_for("a 500 answered", 60, || receiver.refused() >= 1);
    let rows = reports(&agent);
    assert_eq!(rows[0]["state"], "queued", "{rows:?}");
    assert!(
        rows[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{rows:?}"
    );
    // Backoff: 1 s, then 2 s.
    wait_for("the report after two 500s", 30, || {
        !receiver.deliveries().is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(receiver.refused(), 2);
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert!(deliveries[0].signature_valid);
    let report = check_report(&deliveries[0].body);
    let rows = reports(&agent);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["report_id"], report["report_id"]);
    assert_eq!(rows[0]["state"], "delivered", "{rows:?}");
    assert_eq!(rows[0]["attempts"], 3, "{rows:?}");
    let text = scrape(&lab);
    assert_eq!(notifications(&text, "failed_attempt"), 2.0, "{text}");
    assert_eq!(notifications(&text, "delivered"), 1.0, "{text}");
    assert_eq!(value(&text, "egress_notifications_queued", &[]), Some(0.0));
}

/// A receiver that accepts the connection and never answers holds up delivery only: the
/// control socket answers `status`, `reports` and `top` promptly all the while.
#[test]
fn notify_a_receiver_that_never_answers_does_not_slow_the_control_socket() {
    let lab = Lab::new();
    let silent = SilentServer::start(&lab.rtr, &["127.0.0.1:0".parse().expect("addr")]);
    let agent = start_with(
        &lab,
        &format!("http://{}/egress", silent.addresses()[0]),
        "timeout_seconds = 30\n",
    );
    infect(&lab);
    wait_for("the agent to connect to the receiver", 60, || {
        silent.accepted() >= 1
    });
    let stuck_since = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        for command in [&["status"][..], &["reports", "--json"], &["top", "--json"]] {
            let began = Instant::now();
            agent.cli_ok(command);
            slowest = slowest.max(began.elapsed());
        }
    }
    assert!(
        stuck_since.elapsed() < Duration::from_secs(25),
        "the checks must run while the delivery is stuck"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "the control socket took {slowest:?} while delivery was stuck"
    );
    // Still stuck in the first try: no answer, so no outcome yet.
    let rows = reports(&agent);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["state"], "queued", "{rows:?}");
    assert_eq!(rows[0]["attempts"], 0, "{rows:?}");
    assert_eq!(silent.accepted(), 1);
    assert!(agent.log_text().contains("suspected_bot"));
}

/// Beyond `max_queued` the oldest undelivered reports are dropped and counted
/// (`egress_notifications_total{result="dropped"}`); the newest is still delivered.
#[test]
fn notify_reports_beyond_max_queued_are_dropped_oldest_first_and_counted() {
    let lab = Lab::new();
    // Nothing listening: the receiver is down.
    let port = closed_port(&lab);
    let agent = start_with(
        &lab,
        &format!("http://127.0.0.1:{port}/egress"),
        "timeout_seconds = 2\nmax_queued = 1\n",
    );
    infect(&lab);
    wait_for("the first report", 60, || reports(&agent).len() == 1);
    let text = scrape(&lab);
    assert_eq!(notifications(&text, "dropped"), 0.0, "{text}");
    assert_eq!(value(&text, "egress_notifications_queued", &[]), Some(1.0));
    infect_from(&lab, RELAY);
    wait_for("the second report", 60, || reports(&agent).len() == 2);
    let rows = reports(&agent);
    assert_eq!(rows[0]["subscriber"], SUBSCRIBER, "{rows:?}");
    assert_eq!(rows[0]["state"], "dropped", "{rows:?}");
    assert_eq!(rows[1]["subscriber"], RELAY, "{rows:?}");
    assert_eq!(rows[1]["state"], "queued", "{rows:?}");
    let text = scrape(&lab);
    assert_eq!(notifications(&text, "dropped"), 1.0, "{text}");
    assert_eq!(value(&text, "egress_notifications_queued", &[]), Some(1.0));

    let receiver = webhook::start(&lab.rtr, &format!("127.0.0.1:{port}"), WEBHOOK_SECRET);
    wait_for("the queued report once the receiver is back", 90, || {
        !receiver.deliveries().is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    let deliveries = receiver.deliveries();
    assert_eq!(
        deliveries.len(),
        1,
        "the dropped report was sent: {deliveries:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&deliveries[0].body).expect("JSON");
    assert_eq!(body["report_id"], rows[1]["report_id"]);
    let rows = reports(&agent);
    assert_eq!(rows[0]["state"], "dropped", "{rows:?}");
    assert_eq!(rows[1]["state"], "delivered", "{rows:?}");
}
