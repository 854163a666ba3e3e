//! The evidence-report tests' set-up, shared by `notify_webhook.rs` and `notify_delivery.rs`:
//! an agent with identity and a webhook, a subscriber with a RADIUS session, the blocked SYNs
//! that flag it, and the checks on the report it sends.

use std::{
    net::{IpAddr, SocketAddr, TcpListener},
    time::Duration,
};

use socket2::{Domain, Socket, Type};

use crate::{
    agent::{Agent, AgentFiles, Lab, SUBSCRIBER},
    metrics::http_get,
    netns::in_netns,
    radius::radclient_ok,
};

/// The RADIUS accounting secret between the test's radclient and the agent.
pub const RADIUS_SECRET: &str = "radius-secret";
/// The secret the agent signs reports with; receivers verify `X-Egress-Signature` under it.
pub const WEBHOOK_SECRET: &[u8] = b"webhook-secret";
/// Where the agent serves `/metrics`, inside the router namespace.
pub const METRICS: &str = "127.0.0.1:9725";
/// Every top-level field of a report (schema version 1), no more and no fewer.
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
pub fn start(lab: &Lab, url: &str) -> Agent {
    start_with(lab, url, "timeout_seconds = 2\n")
}

/// Like `start`, with `notify` (TOML) ending the `[notify]` table.
pub fn start_with(lab: &Lab, url: &str, notify: &str) -> Agent {
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

/// A loopback port in the router namespace with nothing listening: a receiver that is down,
/// until the test starts one there.
pub fn closed_port(lab: &Lab) -> u16 {
    in_netns(&lab.rtr, || {
        TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    })
}

/// Eight blocked SYNs to eight destinations, through XDP: enough to flag the subscriber.
pub fn infect(lab: &Lab) {
    infect_from(lab, SUBSCRIBER);
}

/// Eight blocked SYNs from `source` (an address of the subscriber namespace).
pub fn infect_from(lab: &Lab, source: &str) {
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

/// The agent's report queue and history, as `reports --json` lists them.
pub fn reports(agent: &Agent) -> Vec<serde_json::Value> {
    serde_json::from_str(&agent.cli_ok(&["reports", "--json"])).expect("reports --json")
}

/// The agent's `/metrics` text, fetched from inside the router namespace.
pub fn scrape(lab: &Lab) -> String {
    in_netns(&lab.rtr, || {
        http_get(METRICS.parse().expect("addr"), "/metrics")
    })
    .1
}

/// Parses a delivered report and checks it against the spec and the lab's subscriber: the
/// exact field set, its RADIUS identity, the thresholds and the sampled destinations.
pub fn check_report(body: &str) -> serde_json::Value {
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
