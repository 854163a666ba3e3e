//! Evidence reports end to end: a subscriber with a RADIUS session sends real SYNs through
//! the XDP program, is flagged, and a signed report naming it reaches a real HTTP receiver;
//! with the receiver down the report waits, survives `kill -9` and a restart, and arrives
//! exactly once when the receiver is back.

use std::{
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use socket2::{Domain, Socket, Type};

use tests::{
    agent::{Agent, AgentFiles, Lab, RELAY, SUBSCRIBER, wait_for},
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
    start_with(lab, url, "timeout_seconds = 2\n")
}

/// Like `start`, with `notify` (TOML) ending the `[notify]` table.
fn start_with(lab: &Lab, url: &str, notify: &str) -> Agent {
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
             [notify]\nwebhook_url = \"{url}\"\nsecret_file = \"{}\"\n{notify}",
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
    infect_from(lab, SUBSCRIBER);
}

/// Eight blocked SYNs from `source` (an address of the subscriber namespace).
fn infect_from(lab: &Lab, source: &str) {
    let source: IpAddr = source.parse().expect("source");
    in_netns(&lab.sub, || {
        for i in 0..8 {
            let server: SocketAddr = format!("198.51.100.{}:25", 10 + i).parse().expect("addr");
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            socket
                .bind(&SocketAddr::new(source, 0).into())
                .expect("bind the source");
            let connected = socket.connect_timeout(&server.into(), Duration::from_millis(300));
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

fn reports_since(agent: &Agent, since: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&agent.cli_ok(&["reports", "--since", since, "--json"]))
        .expect("reports --since --json")
}

fn notifications(text: &str, result: &str) -> f64 {
    value(text, "egress_notifications_total", &[("result", result)])
        .unwrap_or_else(|| panic!("no egress_notifications_total{{result={result}}}:\n{text}"))
}

fn rfc3339_plus_ms(time: &str, ms: i64) -> String {
    let at = egress_agent::history::parse_rfc3339(time).expect("RFC 3339");
    let moved = if ms >= 0 {
        at + Duration::from_millis(ms.unsigned_abs())
    } else {
        at - Duration::from_millis(ms.unsigned_abs())
    };
    egress_agent::clock::rfc3339(moved)
}

/// `reports --since TIME` lists the reports flagged at or after TIME only, in the table and
/// in `--json`.
#[test]
fn notify_reports_since_lists_only_the_reports_flagged_from_then() {
    let lab = Lab::new();
    let receiver = webhook::start(&lab.rtr, "127.0.0.1:0", WEBHOOK_SECRET);
    let agent = start(&lab, &receiver.url());
    infect(&lab);
    wait_for("the first report", 60, || reports(&agent).len() == 1);
    // Past the next detection scans, so the second flag is later by whole seconds.
    std::thread::sleep(Duration::from_secs(4));
    infect_from(&lab, RELAY);
    wait_for("the second report", 60, || reports(&agent).len() == 2);
    let all = reports(&agent);
    let (first, second) = (&all[0], &all[1]);
    assert_eq!(first["subscriber"], SUBSCRIBER, "{all:?}");
    assert_eq!(second["subscriber"], RELAY, "{all:?}");
    let (first_at, second_at) = (
        first["flagged_at"].as_str().expect("flagged_at"),
        second["flagged_at"].as_str().expect("flagged_at"),
    );
    assert!(first_at < second_at, "{all:?}");

    let ids = |rows: Vec<serde_json::Value>| -> Vec<String> {
        rows.iter()
            .map(|r| r["report_id"].as_str().expect("id").to_owned())
            .collect()
    };
    let (first_id, second_id) = (
        first["report_id"].as_str().expect("id").to_owned(),
        second["report_id"].as_str().expect("id").to_owned(),
    );
    assert_eq!(
        ids(reports_since(&agent, &rfc3339_plus_ms(first_at, -60_000))),
        [first_id.clone(), second_id.clone()]
    );
    assert_eq!(
        ids(reports_since(&agent, first_at)),
        [first_id.clone(), second_id.clone()]
    );
    assert_eq!(
        ids(reports_since(&agent, &rfc3339_plus_ms(first_at, 1))),
        std::slice::from_ref(&second_id)
    );
    assert_eq!(
        ids(reports_since(&agent, second_at)),
        std::slice::from_ref(&second_id)
    );
    assert!(reports_since(&agent, &rfc3339_plus_ms(second_at, 1)).is_empty());

    let table = agent.cli_ok(&["reports", "--since", &rfc3339_plus_ms(first_at, 1)]);
    assert!(
        table.contains(&second_id) && !table.contains(&first_id),
        "{table}"
    );
    let none = agent.cli_ok(&["reports", "--since", &rfc3339_plus_ms(second_at, 1)]);
    assert_eq!(none.trim(), "no reports");
    let out = agent.cli(&["reports", "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
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

/// Accepts connections and holds them, reading nothing and answering nothing, until dropped.
struct Silent {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Silent {
    fn start(lab: &Lab) -> Silent {
        let listener = in_netns(&lab.rtr, || TcpListener::bind("127.0.0.1:0")).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (held, stopping) = (Arc::clone(&accepted), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.lock().expect("lock").push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Silent {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.lock().expect("lock").len()
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A receiver that accepts the connection and never answers holds up delivery only: the
/// control socket answers `status`, `reports` and `top` promptly all the while.
#[test]
fn notify_a_receiver_that_never_answers_does_not_slow_the_control_socket() {
    let lab = Lab::new();
    let silent = Silent::start(&lab);
    let agent = start_with(
        &lab,
        &format!("http://{}/egress", silent.addr),
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
    let port = in_netns(&lab.rtr, || {
        TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    });
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

/// When the flagged address has passed to another subscriber, `subscriber ADDR` and `top`
/// show who held it when flagged and who holds it now; the report keeps the identity then.
#[test]
fn notify_identity_now_is_shown_when_the_address_moved_to_someone_else() {
    let lab = Lab::new();
    let receiver = webhook::start(&lab.rtr, "127.0.0.1:0", WEBHOOK_SECRET);
    let agent = start(&lab, &receiver.url());
    infect(&lab);
    wait_for("the report at the webhook", 60, || {
        !receiver.deliveries().is_empty()
    });
    let one: serde_json::Value =
        serde_json::from_str(&agent.cli_ok(&["subscriber", SUBSCRIBER, "--json"])).expect("json");
    assert_eq!(one["identity"]["user_name"], "infected@isp", "{one}");
    assert!(one["identity_now"].is_null(), "same session now: {one}");

    // The session ends and the address goes to someone else.
    let send = |attributes: &str| {
        radclient_ok(
            &lab.rtr,
            "127.0.0.1:1813",
            RADIUS_SECRET,
            attributes,
            &agent.files.dir,
        );
    };
    send(&format!(
        "Acct-Status-Type = Stop, Acct-Session-Id = \"sess-infected\", User-Name = \"infected@isp\", \
         NAS-Identifier = \"bng-1\", Framed-IP-Address = {SUBSCRIBER}"
    ));
    std::thread::sleep(Duration::from_millis(20));
    send(&format!(
        "Acct-Status-Type = Start, Acct-Session-Id = \"sess-next\", User-Name = \"next@isp\", \
         Calling-Station-Id = \"02-00-00-00-00-09\", NAS-Identifier = \"bng-1\", \
         Framed-IP-Address = {SUBSCRIBER}"
    ));
    std::thread::sleep(Duration::from_millis(20));
    let one: serde_json::Value =
        serde_json::from_str(&agent.cli_ok(&["subscriber", SUBSCRIBER, "--json"])).expect("json");
    assert_eq!(one["suspected_bot"], true, "{one}");
    assert_eq!(one["identity"]["user_name"], "infected@isp", "{one}");
    assert_eq!(one["identity_now"]["user_name"], "next@isp", "{one}");
    assert_eq!(one["identity_now"]["acct_session_id"], "sess-next", "{one}");
    let table = agent.cli_ok(&["subscriber", SUBSCRIBER]);
    assert!(
        table.contains("infected@isp")
            && table
                .lines()
                .any(|l| l.contains("identity_now") && l.contains("next@isp")),
        "{table}"
    );
    let top: Vec<serde_json::Value> =
        serde_json::from_str(&agent.cli_ok(&["top", "--json"])).expect("top --json");
    assert_eq!(top[0]["identity"]["user_name"], "infected@isp", "{top:?}");
    assert_eq!(top[0]["identity_now"]["user_name"], "next@isp", "{top:?}");
    let top = agent.cli_ok(&["top"]);
    assert!(top.contains("infected@isp (now: next@isp)"), "{top}");
    // `who` now names the new holder; the report keeps the one flagged.
    let now: Vec<serde_json::Value> =
        serde_json::from_str(&agent.cli_ok(&["who", SUBSCRIBER, "--json"])).expect("who");
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0]["user_name"], "next@isp");
    let rows = reports(&agent);
    assert_eq!(rows[0]["report"]["identity"]["user_name"], "infected@isp");
}
