//! A change that would overflow an allowlist map fails as a whole with a clear error: by CLI
//! (refused, exit 2) and by config reload (the old config stays, including its mode). The
//! capacity is shrunk to 4 through the agent's test hook so the map fills with a few entries.
use tests::agent::{
    Agent, AgentFiles, Lab, Launch, RELAY, SUBSCRIBER,
    kernel::map_len,
    traffic::{connects, smtp_listener},
    wait_for,
};

const CAPACITY: &str = "4";

fn relays(list: &[&str]) -> String {
    let quoted: Vec<String> = list.iter().map(|p| format!("\"{p}\"")).collect();
    format!("[allow]\nrelays = [{}]", quoted.join(", "))
}

#[test]
fn allowlist_overflow_fails_whole_by_cli_and_by_reload() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    let three = ["203.0.113.1/32", "203.0.113.2/32", "203.0.113.3/32"];
    files.write_config(&lab, &relays(&three));
    let launch = Launch {
        env: vec![("EGRESS_TEST_ALLOWLIST_CAPACITY".into(), CAPACITY.into())],
        ..Launch::default()
    };
    let agent = Agent::start_with(&lab, files, launch);
    let map = agent.files.pin_dir.join("maps/EGRESS_SOURCES_V4");

    agent.cli_ok(&["relay", "add", RELAY]);
    assert_eq!(map_len(&map), 4, "the map is full");
    assert!(connects(&lab, RELAY));
    let before = agent.allowlists();

    // CLI: the fifth entry is refused; nothing is persisted or inserted.
    let out = agent.cli(&["relay", "add", "203.0.113.9"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("EGRESS_SOURCES_V4") && stderr.contains("at most 4"),
        "names the map and its capacity: {stderr}"
    );
    assert_eq!(agent.allowlists(), before);
    assert_eq!(map_len(&map), 4);
    // IPv6 has its own map: it still has room.
    agent.cli_ok(&["relay", "add", "2001:db8::25"]);
    agent.cli_ok(&["relay", "remove", "2001:db8::25"]);
    let before = agent.allowlists();

    // Reload: five config relays plus the CLI one overflow; the mode change in the same file
    // must not be applied either.
    let five = [
        "203.0.113.1/32",
        "203.0.113.2/32",
        "203.0.113.3/32",
        "203.0.113.4/32",
        "203.0.113.5/32",
    ];
    agent.files.write_config(&lab, &relays(&five));
    let text = std::fs::read_to_string(&agent.files.config).expect("config");
    std::fs::write(&agent.files.config, format!("mode = \"monitor\"\n{text}")).expect("write");
    agent.signal(libc::SIGHUP);
    wait_for("the failed reload", 10, || {
        agent.status()["config_last_reload_successful"] == false
    });
    let status = agent.status();
    assert_eq!(status["mode"], "enforce", "nothing partially applied");
    assert_eq!(agent.allowlists(), before);
    assert_eq!(map_len(&map), 4);
    assert!(!connects(&lab, SUBSCRIBER), "still enforcing");
    assert!(
        agent.log_text().contains("holds at most 4"),
        "the log says why:\n{}",
        agent.log_text()
    );

    // A swap that ends within capacity succeeds even though the map is full.
    let swapped = ["203.0.113.1/32", "203.0.113.2/32", "203.0.113.7/32"];
    agent.files.write_config(&lab, &relays(&swapped));
    agent.signal(libc::SIGHUP);
    wait_for("the swap to be applied", 10, || {
        agent.cli_ok(&["relay", "list"]).contains("203.0.113.7/32")
    });
    assert_eq!(agent.status()["config_last_reload_successful"], true);
    assert_eq!(map_len(&map), 4);
    assert!(connects(&lab, RELAY), "the CLI relay kept passing");
}
