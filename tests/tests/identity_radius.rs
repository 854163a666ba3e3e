//! RADIUS accounting from FreeRADIUS's own `radclient` into the real agent: Start, Interim,
//! Stop and Accounting-On for IPv4 and IPv6 sessions; `who` now and in the past, across a
//! restart; a wrong secret, an unknown client and garbage change nothing and are counted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tests::{
    agent::{Agent, AgentFiles, Lab},
    metrics::{http_get, promtool_check_metrics, value},
    netns::in_netns,
    radius::{radclient, radclient_ok, send_raw},
};

const SECRET: &str = "s3cret-for-tests";
const LOCAL: &str = "127.0.0.1:1813";
const METRICS: &str = "127.0.0.1:9725";

fn rfc3339(unix: u64) -> String {
    egress_agent::clock::rfc3339(UNIX_EPOCH + Duration::from_secs(unix))
}

fn scrape(lab: &Lab) -> String {
    let (status, text) = in_netns(&lab.rtr, || {
        http_get(METRICS.parse().expect("addr"), "/metrics")
    });
    assert_eq!(status, 200, "{text}");
    text
}

fn requests(text: &str, result: &str) -> f64 {
    value(text, "egress_radius_requests_total", &[("result", result)])
        .unwrap_or_else(|| panic!("no egress_radius_requests_total{{result={result}}}:\n{text}"))
}

fn who(agent: &Agent, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["who"];
    all.extend(args);
    all.push("--json");
    serde_json::from_str::<Vec<serde_json::Value>>(&agent.cli_ok(&all)).expect("who --json")
}

fn users(agent: &Agent, args: &[&str]) -> Vec<String> {
    who(agent, args)
        .iter()
        .map(|s| s["user_name"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn identity_radclient_sessions_answer_who_across_restart_and_bad_packets_are_counted() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    let secret_file = files.dir.join("radius.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret");
    files.write_config(
        &lab,
        &format!(
            "[metrics]\nlisten = \"{METRICS}\"\n\n[identity]\nradius_listen = \"0.0.0.0:1813\"\n\
             radius_clients = [\"127.0.0.1/32\"]\nradius_secret_file = \"{}\"\nretention_days = 90\n",
            secret_file.display()
        ),
    );
    let mut agent = Agent::start(&lab, files);
    let dir = agent.files.dir.clone();
    let send = |attributes: &str| radclient_ok(&lab.rtr, LOCAL, SECRET, attributes, &dir);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let t0 = now - 7200;
    let common = "NAS-Identifier = \"bng-1\", NAS-IP-Address = 192.0.2.1";
    send(&format!(
        "Acct-Status-Type = Start, Acct-Session-Id = \"v4-alice\", User-Name = \"alice@isp\", \
         Calling-Station-Id = \"00-11-22-33-44-55\", NAS-Port-Id = \"eth1.100:7\", \
         Framed-IP-Address = 100.64.0.7, Event-Timestamp = {t0}, {common}"
    ));
    send(&format!(
        "Acct-Status-Type = Start, Acct-Session-Id = \"v6-bob\", User-Name = \"bob@isp\", \
         Framed-IPv6-Prefix = 2001:db8:1:2::/64, Delegated-IPv6-Prefix = 2001:db8:9::/56, \
         Event-Timestamp = {t0}, {common}"
    ));
    // A retransmitted Start is a duplicate: answered, stored once.
    send(&format!(
        "Acct-Status-Type = Start, Acct-Session-Id = \"v4-alice\", User-Name = \"alice@isp\", \
         Framed-IP-Address = 100.64.0.7, Event-Timestamp = {t0}, {common}"
    ));
    send(&format!(
        "Acct-Status-Type = Interim-Update, Acct-Session-Id = \"v4-alice\", Acct-Session-Time = 600, \
         Framed-IP-Address = 100.64.0.7, Event-Timestamp = {}, {common}",
        t0 + 600
    ));

    let alice = who(&agent, &["100.64.0.7"]);
    assert_eq!(alice.len(), 1, "{alice:?}");
    assert_eq!(alice[0]["user_name"], "alice@isp");
    assert_eq!(alice[0]["calling_station_id"], "00-11-22-33-44-55");
    assert_eq!(alice[0]["nas_identifier"], "bng-1");
    assert_eq!(alice[0]["nas_ip_address"], "192.0.2.1");
    assert_eq!(alice[0]["nas_port_id"], "eth1.100:7");
    assert_eq!(alice[0]["acct_session_id"], "v4-alice");
    assert_eq!(alice[0]["start"], rfc3339(t0));
    assert_eq!(alice[0]["end"], serde_json::Value::Null);
    // IPv6: an address in the framed /64 and one in the delegated /56.
    assert_eq!(users(&agent, &["2001:db8:1:2::99"]), ["bob@isp"]);
    assert_eq!(users(&agent, &["2001:db8:9:42::1"]), ["bob@isp"]);
    assert!(users(&agent, &["2001:db8:7::1"]).is_empty());

    // Stop; then someone else gets the address.
    send(&format!(
        "Acct-Status-Type = Stop, Acct-Session-Id = \"v4-alice\", Acct-Session-Time = 1200, \
         Framed-IP-Address = 100.64.0.7, Event-Timestamp = {}, {common}",
        t0 + 1200
    ));
    let human = agent.cli_ok(&["who", "100.64.0.7"]);
    assert!(
        human
            .trim()
            .starts_with("no session known for 100.64.0.7 at 20"),
        "{human}"
    );
    assert_eq!(human.lines().count(), 1, "{human}");
    assert!(who(&agent, &["100.64.0.7"]).is_empty());
    send(&format!(
        "Acct-Status-Type = Start, Acct-Session-Id = \"v4-carol\", User-Name = \"carol@isp\", \
         Framed-IP-Address = 100.64.0.7, Event-Timestamp = {}, {common}",
        t0 + 3600
    ));
    let at = |offset: u64| rfc3339(t0 + offset);
    assert_eq!(
        users(&agent, &["100.64.0.7", "--at", &at(300)]),
        ["alice@isp"]
    );
    assert!(users(&agent, &["100.64.0.7", "--at", &at(2000)]).is_empty());
    assert_eq!(users(&agent, &["100.64.0.7"]), ["carol@isp"]);
    let table = agent.cli_ok(&["who", "100.64.0.7", "--at", &at(300)]);
    assert!(
        table.contains("alice@isp") && table.contains("eth1.100:7"),
        "{table}"
    );

    // Bad input: none of it answered, none of it stored, each counted.
    let before = scrape(&lab);
    let wrong = radclient(
        &lab.rtr,
        LOCAL,
        "not-the-secret",
        &format!(
            "Acct-Status-Type = Start, Acct-Session-Id = \"evil\", User-Name = \"mallory\", Framed-IP-Address = 100.64.0.66, {common}"
        ),
        &dir,
    );
    assert!(
        !wrong.status.success(),
        "a request under a wrong secret must go unanswered"
    );
    let foreign = radclient(
        &lab.sub,
        "192.0.2.1:1813",
        SECRET,
        &format!(
            "Acct-Status-Type = Start, Acct-Session-Id = \"evil2\", User-Name = \"mallory\", Framed-IP-Address = 100.64.0.66, {common}"
        ),
        &dir,
    );
    assert!(
        !foreign.status.success(),
        "a client outside radius_clients must go unanswered"
    );
    let mut truncated = vec![4u8, 1, 0, 60];
    truncated.extend([0u8; 30]);
    send_raw(
        &lab.rtr,
        LOCAL,
        &[
            b"garbage".to_vec(),
            truncated,
            vec![4u8; 5000],
            vec![0xff; 20],
        ],
    );
    agent::wait(|| requests(&scrape(&lab), "malformed") >= requests(&before, "malformed") + 4.0);
    let after = scrape(&lab);
    promtool_check_metrics(&after);
    // radclient -r 1: one datagram each.
    assert_eq!(
        requests(&after, "bad_authenticator") - requests(&before, "bad_authenticator"),
        1.0
    );
    assert_eq!(
        requests(&after, "unknown_client") - requests(&before, "unknown_client"),
        1.0
    );
    assert_eq!(
        requests(&after, "malformed") - requests(&before, "malformed"),
        4.0
    );
    assert_eq!(requests(&after, "stored"), 5.0, "{after}");
    assert_eq!(requests(&after, "duplicate"), 1.0, "{after}");
    assert_eq!(
        value(&after, "egress_identity_sessions_open", &[]),
        Some(2.0)
    );
    assert!(users(&agent, &["100.64.0.66"]).is_empty());
    assert!(
        !after.contains("alice") && !after.contains("carol"),
        "identity in metrics:\n{after}"
    );

    // Across a restart: the history is on disk.
    agent.stop_with(libc::SIGTERM);
    agent.restart(&lab);
    assert_eq!(
        users(&agent, &["100.64.0.7", "--at", &at(300)]),
        ["alice@isp"]
    );
    assert_eq!(users(&agent, &["100.64.0.7"]), ["carol@isp"]);
    assert_eq!(
        value(&scrape(&lab), "egress_identity_sessions_open", &[]),
        Some(2.0)
    );

    // The NAS reboots: Accounting-On closes everything it had open.
    send(&format!(
        "Acct-Status-Type = Accounting-On, Event-Timestamp = {}, {common}",
        now - 10
    ));
    assert!(users(&agent, &["100.64.0.7"]).is_empty());
    assert!(users(&agent, &["2001:db8:1:2::99"]).is_empty());
    assert_eq!(
        users(&agent, &["2001:db8:1:2::99", "--at", &at(300)]),
        ["bob@isp"]
    );
    assert_eq!(
        value(&scrape(&lab), "egress_identity_sessions_open", &[]),
        Some(0.0)
    );

    // Bad CLI input: one line on stderr, exit 2.
    let out = agent.cli(&["who", "100.64.0.7", "--at", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = agent.cli(&["who", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(agent.is_running(), "{}", agent.log_text());

    // A reload cannot restart the listener: it is refused and the old config stays.
    let config = std::fs::read_to_string(&agent.files.config).expect("config");
    std::fs::write(
        &agent.files.config,
        config.replace("retention_days = 90", "retention_days = 30"),
    )
    .expect("config");
    agent.signal(libc::SIGHUP);
    tests::agent::wait_for("the refused reload", 10, || {
        agent
            .log_text()
            .contains("changing [identity] needs a restart")
    });
    assert_eq!(
        users(&agent, &["100.64.0.7", "--at", &at(300)]),
        ["alice@isp"]
    );
}

/// Accounting-Off (the NAS shutting down) closes every session that NAS had open, like
/// Accounting-On, at its Event-Timestamp: `who` finds them no more now, still before; another
/// NAS's session stays open.
#[test]
fn identity_radclient_accounting_off_closes_the_nas_open_sessions() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    let secret_file = files.dir.join("radius.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret");
    files.write_config(
        &lab,
        &format!(
            "[metrics]\nlisten = \"{METRICS}\"\n\n[identity]\nradius_listen = \"0.0.0.0:1813\"\n\
             radius_clients = [\"127.0.0.1/32\"]\nradius_secret_file = \"{}\"\n",
            secret_file.display()
        ),
    );
    let agent = Agent::start(&lab, files);
    let dir = agent.files.dir.clone();
    let send = |attributes: &str| radclient_ok(&lab.rtr, LOCAL, SECRET, attributes, &dir);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let t0 = now - 3600;
    let bng1 = "NAS-Identifier = \"bng-1\", NAS-IP-Address = 192.0.2.1";
    let bng2 = "NAS-Identifier = \"bng-2\", NAS-IP-Address = 192.0.2.5";
    send(&format!(
        "Acct-Status-Type = Start, Acct-Session-Id = \"off-dave\", User-Name = \"dave@isp\", \
         Framed-IP-Address = 100.64.1.1, Event-Timestamp = {t0}, {bng1}"
    ));
    send(&format!(
        "Acct-Status-Type = Start, Acct-Session-Id = \"off-erin\", User-Name = \"erin@isp\", \
         Framed-IPv6-Prefix = 2001:db8:2:3::/64, Event-Timestamp = {t0}, {bng1}"
    ));
    send(&format!(
        "Acct-Status-Type = Start, Acct-Session-Id = \"off-frank\", User-Name = \"frank@isp\", \
         Framed-IP-Address = 100.64.1.2, Event-Timestamp = {t0}, {bng2}"
    ));
    assert_eq!(users(&agent, &["100.64.1.1"]), ["dave@isp"]);
    assert_eq!(users(&agent, &["2001:db8:2:3::1"]), ["erin@isp"]);
    assert_eq!(
        value(&scrape(&lab), "egress_identity_sessions_open", &[]),
        Some(3.0)
    );

    let off = now - 600;
    send(&format!(
        "Acct-Status-Type = Accounting-Off, Event-Timestamp = {off}, {bng1}"
    ));
    assert!(users(&agent, &["100.64.1.1"]).is_empty());
    assert!(users(&agent, &["2001:db8:2:3::1"]).is_empty());
    let closed = who(&agent, &["100.64.1.1", "--at", &rfc3339(off - 60)]);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0]["user_name"], "dave@isp");
    assert_eq!(closed[0]["end"], rfc3339(off), "{closed:?}");
    assert!(users(&agent, &["100.64.1.1", "--at", &rfc3339(off + 60)]).is_empty());
    assert_eq!(
        users(&agent, &["2001:db8:2:3::1", "--at", &rfc3339(off - 60)]),
        ["erin@isp"]
    );
    // The other NAS is not touched.
    assert_eq!(users(&agent, &["100.64.1.2"]), ["frank@isp"]);
    assert_eq!(
        value(&scrape(&lab), "egress_identity_sessions_open", &[]),
        Some(1.0)
    );
}

mod agent {
    /// Polls for up to 10 s (a hang guard, not a timing check).
    pub fn wait(mut condition: impl FnMut() -> bool) {
        tests::agent::wait_for("the agent to count the datagrams", 10, &mut condition);
    }
}
