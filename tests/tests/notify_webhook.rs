//! Evidence reports end to end: a subscriber with a RADIUS session sends real SYNs through
//! the XDP program, is flagged, and a signed report naming it reaches a real HTTP receiver;
//! with the receiver down the report waits, survives `kill -9` and a restart, and arrives
//! exactly once when the receiver is back.

use std::time::Duration;

use tests::{
    agent::{Agent, Lab, RELAY, SUBSCRIBER, wait_for},
    metrics::value,
    notify::{
        RADIUS_SECRET, WEBHOOK_SECRET, check_report, closed_port, infect, infect_from, reports,
        scrape, start,
    },
    radius::radclient_ok,
    webhook,
};

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
    let port = closed_port(&lab);
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
