//! Evidence reports end to end: a subscriber with a RADIUS session sends real SYNs through
//! the XDP program, is flagged, and a signed report naming it reaches a real HTTP receiver;
//! with the receiver down the report waits, survives `kill -9` and a restart, and arrives
//! exactly once when the receiver is back.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use tests::{
    agent::{Agent, AgentFiles, Lab, SUBSCRIBER, wait_for},
    metrics::{http_get, value},
    netns::in_netns,
    radius::radclient_ok,
    webhook,
};

const RADIUS_SECRET: &str = "radius-secret";
const WEBHOOK_SECRET: &[u8] = b"webhook-secret";
const METRICS: &str = "127.0.0.1:9725";
const SPEC_FIELDS: [&str; 16] = [
    "version",
    "kind",
    "report_id",
    "router",
    "subscriber",
    "family",
    "identity",
    "flagged_at",
    "first_seen",
    "last_seen",
    "attempts_total",
    "attempts_in_window",
    "window_seconds",
    "distinct_destinations_estimate",
    "sample_destinations",
    "thresholds",
];

/// An agent with identity and a webhook at `url`; the subscriber holds a RADIUS session.
fn start(lab: &Lab, url: &str) -> Agent {
    let files = AgentFiles::new();
    let radius_secret = files.dir.join("radius.secret");
    let webhook_secret = files.dir.join("webhook.secret");
    std::fs::write(&radius_secret, RADIUS_SECRET).expect("secret");
    std::fs::write(&webhook_secret, WEBHOOK_SECRET).expect("secret");
    files.write_xdp_only_config(
        lab,
        &format!(
            "[metrics]\nlisten = \"{METRICS}\"\n\n\
             [detection]\nwindow_seconds = 300\nattempts_threshold = 5\ndistinct_destinations_threshold = 50\n\n\
             [identity]\nradius_listen = \"127.0.0.1:1813\"\nradius_clients = [\"127.0.0.1/32\"]\n\
             radius_secret_file = \"{}\"\n\n\
             [notify]\nwebhook_url = \"{url}\"\nsecret_file = \"{}\"\ntimeout_seconds = 2\n",
            radius_secret.display(),
            webhook_secret.display()
        ),
    );
    let agent = Agent::start(lab, files);
    radclient_ok(
        &lab.rtr,
        "127.0.0.1:1813",
        RADIUS_SECRET,
        &format!(
            "Acct-Status-Type = Start, Acct-Session-Id = \"sess-infected\", User-Name = \"infected@isp\", \
             Calling-Station-Id = \"02-00-00-00-00-02\", NAS-Identifier = \"bng-1\", \
             Framed-IP-Address = {SUBSCRIBER}"
        ),
        &agent.files.dir,
    );
    agent
}

/// Eight blocked SYNs to eight destinations, through XDP.
fn infect(lab: &Lab) {
    in_netns(&lab.sub, || {
        for i in 0..8 {
            let server: SocketAddr = format!("198.51.100.{}:25", 10 + i).parse().expect("addr");
            let connected = TcpStream::connect_timeout(&server, Duration::from_millis(300));
            assert!(connected.is_err(), "SYN to {server} must be dropped");
        }
    });
}

fn reports(agent: &Agent) -> Vec<serde_json::Value> {
    serde_json::from_str(&agent.cli_ok(&["reports", "--json"])).expect("reports --json")
}

fn scrape(lab: &Lab) -> String {
    in_netns(&lab.rtr, || {
        http_get(METRICS.parse().expect("addr"), "/metrics")
    })
    .1
}

fn check_report(body: &str) -> serde_json::Value {
    let report: serde_json::Value = serde_json::from_str(body).expect("report is JSON");
    let keys: Vec<&str> = report
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = SPEC_FIELDS.to_vec();
    expected.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, expected, "{report}");
    assert_eq!(report["version"], 1);
    assert_eq!(report["kind"], "suspected_bot");
    assert_eq!(report["subscriber"], SUBSCRIBER);
    assert_eq!(report["family"], "ipv4");
    assert_eq!(report["identity"]["user_name"], "infected@isp", "{report}");
    assert_eq!(report["identity"]["acct_session_id"], "sess-infected");
    assert_eq!(
        report["identity"]["calling_station_id"],
        "02-00-00-00-00-02"
    );
    assert!(
        report["attempts_total"].as_u64().expect("attempts") >= 5,
        "{report}"
    );
    assert_eq!(report["window_seconds"], 300);
    assert_eq!(report["thresholds"]["attempts_threshold"], 5);
    let samples = report["sample_destinations"].as_array().expect("samples");
    assert!(!samples.is_empty() && samples.len() <= 16, "{report}");
    for sample in samples {
        let text = sample.as_str().expect("address");
        assert!(text.starts_with("198.51.100."), "{report}");
    }
    assert!(!report["router"].as_str().expect("router").is_empty());
    report
}

#[test]
fn notify_flagged_subscriber_report_reaches_the_webhook_signed_with_its_identity() {
    let lab = Lab::new();
    let receiver = webhook::start(&lab.rtr, "127.0.0.1:0", WEBHOOK_SECRET);
    let agent = start(&lab, &receiver.url());
    infect(&lab);
    wait_for("the report at the webhook", 60, || {
        !receiver.deliveries().is_empty()
    });
    std::thread::sleep(Duration::from_secs(4));
    let deliveries = receiver.deliveries();
    assert_eq!(
        deliveries.len(),
        1,
        "one report per flag transition: {deliveries:?}"
    );
    assert!(
        deliveries[0].signature_valid,
        "X-Egress-Signature does not verify"
    );
    assert_eq!(deliveries[0].path, "/egress");
    let report = check_report(&deliveries[0].body);

    let rows = reports(&agent);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["state"], "delivered");
    assert_eq!(rows[0]["report_id"], report["report_id"]);
    let listing = agent.cli_ok(&["reports"]);
    assert!(
        listing.contains("infected@isp") && listing.contains("delivered"),
        "{listing}"
    );

    let top: Vec<serde_json::Value> =
        serde_json::from_str(&agent.cli_ok(&["top", "--json"])).expect("top --json");
    assert_eq!(top[0]["identity"]["user_name"], "infected@isp", "{top:?}");
    assert!(agent.cli_ok(&["top"]).contains("infected@isp"));
    let one: serde_json::Value =
        serde_json::from_str(&agent.cli_ok(&["subscriber", SUBSCRIBER, "--json"])).expect("json");
    assert_eq!(one["identity"]["user_name"], "infected@isp");
    let log = agent.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("suspected_bot") && l.contains("infected@isp")),
        "flag log line without identity:\n{log}"
    );
    let text = scrape(&lab);
    assert_eq!(
        value(
            &text,
            "egress_notifications_total",
            &[("result", "delivered")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "egress_notifications_queued", &[]), Some(0.0));
}

#[test]
fn notify_report_survives_an_outage_and_kill_9_then_arrives_exactly_once() {
    let lab = Lab::new();
    // A port with nothing listening: the receiver is down.
    let port = in_netns(&lab.rtr, || {
        TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    });
    let url = format!("http://127.0.0.1:{port}/egress");
    let mut agent = start(&lab, &url);
    infect(&lab);
    wait_for("a failed delivery attempt", 60, || {
        reports(&agent)
            .first()
            .is_some_and(|r| r["state"] == "queued" && r["attempts"].as_u64() >= Some(1))
    });
    let text = scrape(&lab);
    assert!(
        value(
            &text,
            "egress_notifications_total",
            &[("result", "failed_attempt")]
        ) >= Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "egress_notifications_queued", &[]), Some(1.0));
    let queued = reports(&agent);

    agent.stop_with(libc::SIGKILL);
    agent.restart(&lab);
    let after = reports(&agent);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["report_id"], queued[0]["report_id"]);
    assert_eq!(after[0]["state"], "queued");

    let receiver = webhook::start(&lab.rtr, &format!("127.0.0.1:{port}"), WEBHOOK_SECRET);
    wait_for("the report once the receiver is back", 90, || {
        !receiver.deliveries().is_empty()
    });
    // The restarted agent saw the same flag again: still one report, delivered once.
    std::thread::sleep(Duration::from_secs(6));
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert!(deliveries[0].signature_valid);
    let report = check_report(&deliveries[0].body);
    assert_eq!(report["report_id"], queued[0]["report_id"]);
    let rows = reports(&agent);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["state"], "delivered");
}

/// Regression: the dataplane moves a flagged subscriber's flag stamp with every packet over a
/// threshold, so a restarted agent once took the same, still active flag for a new one and
/// sent a second report under a new id. One flag transition is one report, across `kill -9`
/// and a graceful restart alike.
#[test]
fn notify_a_restarted_agent_does_not_report_a_still_active_flag_again() {
    let lab = Lab::new();
    let receiver = webhook::start(&lab.rtr, "127.0.0.1:0", WEBHOOK_SECRET);
    let mut agent = start(&lab, &receiver.url());
    infect(&lab);
    wait_for("the report at the webhook", 60, || {
        !receiver.deliveries().is_empty()
    });
    let first = check_report(&receiver.deliveries()[0].body);
    for (how, signal) in [("kill -9", libc::SIGKILL), ("graceful", libc::SIGTERM)] {
        // More blocked SYNs while still flagged: the same transition, a newer flag stamp.
        infect(&lab);
        agent.stop_with(signal);
        agent.restart(&lab);
        infect(&lab);
        // Two detection scans (every 3 s) after the restart, and time for a delivery.
        std::thread::sleep(Duration::from_secs(8));
        let deliveries = receiver.deliveries();
        assert_eq!(
            deliveries.len(),
            1,
            "after a {how} restart the same flag was reported again: {deliveries:?}"
        );
        let rows = reports(&agent);
        assert_eq!(rows.len(), 1, "after a {how} restart: {rows:?}");
        assert_eq!(rows[0]["report_id"], first["report_id"]);
        assert_eq!(rows[0]["state"], "delivered");
    }
}
