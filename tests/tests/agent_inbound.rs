//! `xdp-inbound` driven as an operator would: the agent binary with a real config on the
//! router's uplink (beside `tc-egress`), real TCP from the Internet side to a primary MX and an
//! unprotected host behind the router, the CLI (`protected-mx`, `mx-sender`), persistence, a
//! restart under a stream of connection attempts, SIGHUP reload, metrics and `detach`.

use std::{
    net::{SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use socket2::{Domain, Socket, Type};
use tests::{
    agent::{Agent, AgentFiles, Lab, RELAY, SERVER, cli, wait_for},
    netns::{addr, in_netns},
};

/// The primary MX and an unprotected host, behind the router (the lab's subscriber side).
const MX: &str = RELAY;
const HOST: &str = tests::agent::EXEMPT;
/// A filtering service on the Internet side, allowed to reach the primary MX.
const CHECKER: &str = "198.51.100.40";
/// Any other sender on the Internet side.
const OTHER: &str = SERVER;
const OTHER2: &str = "198.51.100.3";

fn inbound_config(protected: &str) -> String {
    format!(
        "[inbound]\nprotected_mx = [{protected}]\nmx_senders = [\"{CHECKER}/32\"]\n\n\
         [inbound.throttle]\ndestinations = [\"{HOST}/32\"]\nsyn_per_second = 1000\nburst = 1000\n"
    )
}

fn write(files: &AgentFiles, lab: &Lab, protected: &str) {
    files.write_config_for(
        &[
            (&lab.rtr_up_if, "tc-egress"),
            (&lab.rtr_up_if, "xdp-inbound"),
        ],
        &inbound_config(protected),
    );
}

fn connects(lab: &Lab, source: &str, destination: &str, port: u16) -> bool {
    tests::agent::traffic::connects_between(&lab.net, source, destination, port)
}

fn listen(lab: &Lab, address: &str, port: u16) -> TcpListener {
    in_netns(&lab.sub, || {
        TcpListener::bind((address, port))
            .unwrap_or_else(|err| panic!("bind {address}:{port}: {err}"))
    })
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scrape(lab: &Lab) -> String {
    let (code, body) = in_netns(&lab.rtr, || {
        tests::metrics::http_get("127.0.0.1:9725".parse().expect("address"), "/metrics")
    });
    assert_eq!(code, 200, "{body}");
    body
}

fn sample(metrics: &str, line_start: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {line_start} in:\n{metrics}"))
}

#[test]
fn only_the_spam_checker_reaches_the_primary_mx_through_restart_reload_and_detach() {
    let lab = Lab::new();
    for extra in [CHECKER, OTHER2] {
        addr(&lab.net, &lab.net_if, &format!("{extra}/24"));
    }
    let _listeners: Vec<TcpListener> = [(MX, 25), (MX, 587), (MX, 80), (HOST, 25)]
        .into_iter()
        .map(|(a, p)| listen(&lab, a, p))
        .collect();
    let files = AgentFiles::new();
    write(&files, &lab, &format!("\"{MX}/32\""));
    let check = cli(&["check-config", "--config", files.config()]);
    assert!(check.status.success(), "{}", stderr(&check));
    let mut agent = Agent::start(&lab, files);

    // The rules.
    assert!(
        !connects(&lab, OTHER, MX, 25),
        "direct connect to the primary MX on 25"
    );
    assert!(
        connects(&lab, CHECKER, MX, 25),
        "the spam checker reaches the primary MX"
    );
    assert!(
        connects(&lab, OTHER, MX, 587),
        "587 to the primary MX still works"
    );
    assert!(
        connects(&lab, OTHER, MX, 80),
        "80 to the primary MX still works"
    );
    assert!(
        connects(&lab, OTHER, HOST, 25),
        "an unprotected host is reachable on 25"
    );

    // Status: both hooks on the uplink, the lists' fill.
    let status = agent.status();
    let hooks: Vec<&str> = status["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .filter(|a| a["interface"] == lab.rtr_up_if.as_str() && a["attached"] == true)
        .filter_map(|a| a["hook"].as_str())
        .collect();
    assert!(
        hooks.contains(&"tc-egress") && hooks.contains(&"xdp-inbound"),
        "{status}"
    );
    assert_eq!(status["allowlist_entries"]["protected_mx"], 1, "{status}");
    assert_eq!(status["allowlist_entries"]["mx_sender"], 1, "{status}");
    let text = agent.cli_ok(&["status"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("inbound on") && l.contains(&lab.rtr_up_if)),
        "{text}"
    );

    // Metrics.
    let metrics = scrape(&lab);
    assert!(
        sample(
            &metrics,
            "egress_inbound_smtp_packets_total{verdict=\"dropped\",family=\"ipv4\"}"
        ) >= 1,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "egress_inbound_smtp_packets_total{verdict=\"allowed_sender\",family=\"ipv4\"}"
        ) >= 1,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "egress_allowlist_entries{kind=\"protected_mx\"}"),
        1
    );
    assert_eq!(
        sample(&metrics, "egress_allowlist_entries{kind=\"mx_sender\"}"),
        1
    );
    assert_eq!(sample(&metrics, "egress_inbound_throttled_sources "), 0);

    // CLI: relay's rules.
    agent.cli_ok(&["mx-sender", "add", OTHER, "--comment", "filtering service"]);
    agent.cli_ok(&["mx-sender", "add", OTHER]);
    assert!(
        connects(&lab, OTHER, MX, 25),
        "an mx-sender added by the CLI passes"
    );
    let list: serde_json::Value =
        serde_json::from_str(&agent.cli_ok(&["mx-sender", "list", "--json"])).expect("JSON");
    let entries = list.as_array().expect("a JSON array");
    assert_eq!(entries.len(), 2, "{list}");
    assert!(
        entries.iter().any(|e| e["prefix"] == format!("{OTHER}/32")
            && e["source"] == "cli"
            && e["comment"] == "filtering service"
            && e["kind"] == "mx_sender"),
        "{list}"
    );
    let refused = agent.cli(&["mx-sender", "remove", CHECKER]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("inbound.mx_senders"),
        "{}",
        stderr(&refused)
    );
    let bad = agent.cli(&["protected-mx", "add", "::ffff:192.0.2.10"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    agent.cli_ok(&["protected-mx", "add", HOST, "--comment", "second MX"]);
    assert!(
        !connects(&lab, OTHER2, HOST, 25),
        "a protected-mx added by the CLI is refused"
    );
    let table = agent.cli_ok(&["protected-mx", "list"]);
    assert!(
        table.contains("PREFIX") && table.contains(&format!("{HOST}/32")),
        "{table}"
    );

    // Restart under a stream of connection attempts from a non-sender: none gets through.
    let stop = Arc::new(AtomicBool::new(false));
    let (leaks, attempts) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stream = {
        let (stop, leaks, attempts) = (stop.clone(), leaks.clone(), attempts.clone());
        let net = lab.net.path().to_owned();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&net).expect("open the Internet namespace");
            // SAFETY: setns on this thread only, with a namespace fd we own.
            assert_eq!(
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) },
                0
            );
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 2000 {
                n += 1;
                let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
                socket
                    .bind(&SocketAddr::new(OTHER2.parse().expect("ip"), 0).into())
                    .expect("bind");
                let target = SocketAddr::new(MX.parse().expect("ip"), 25);
                if socket
                    .connect_timeout(&target.into(), Duration::from_millis(50))
                    .is_ok()
                {
                    leaks.fetch_add(1, Ordering::Relaxed);
                }
                attempts.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    wait_for("attempts before the restart", 10, || {
        attempts.load(Ordering::Relaxed) > 5
    });
    agent.stop_with(libc::SIGKILL);
    let during = attempts.load(Ordering::Relaxed);
    agent.restart(&lab);
    wait_for("attempts after the restart", 10, || {
        attempts.load(Ordering::Relaxed) > during + 5
    });
    stop.store(true, Ordering::Relaxed);
    stream.join().expect("the attempt stream");
    assert_eq!(
        leaks.load(Ordering::Relaxed),
        0,
        "connections leaked during the restart"
    );
    assert!(
        connects(&lab, OTHER, MX, 25),
        "the CLI mx-sender survived the restart"
    );
    assert!(
        !connects(&lab, OTHER2, HOST, 25),
        "the CLI protected-mx survived the restart"
    );

    // Reload: the config no longer protects the primary MX.
    write(&agent.files, &lab, "");
    agent.signal(libc::SIGHUP);
    wait_for("the reload to lift the guard", 20, || {
        connects(&lab, OTHER2, MX, 25)
    });
    assert!(
        !connects(&lab, OTHER2, HOST, 25),
        "the CLI entry stays after the reload"
    );

    // Detach: the guard is gone with its pins.
    let pin_dir = agent.files.pin_dir.clone();
    let out = cli(&["detach", "--config", agent.files.config()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !pin_dir.exists(),
        "pins left behind in {}",
        pin_dir.display()
    );
    assert!(connects(&lab, OTHER2, HOST, 25), "no guard after detach");
}

#[test]
fn a_bad_inbound_config_names_file_key_and_value() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config_for(
        &[(&lab.rtr_up_if, "xdp-inbound")],
        "[inbound]\nports = [25, 587]\n",
    );
    let out = cli(&["check-config", "--config", files.config()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains(files.config())
            && message.contains("inbound.ports[1]")
            && message.contains("587"),
        "{message}"
    );
}
