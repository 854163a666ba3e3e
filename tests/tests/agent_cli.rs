//! The CLI's contract: exit codes and one-line messages for bad input, a missing agent,
//! config checks that name the key, and `detach` leaving nothing behind.
use std::process::Output;

use tests::agent::{Agent, AgentFiles, Lab, cli};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_fails(out: &Output, code: i32, needle: &str) {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {text}");
    assert!(
        text.contains(needle),
        "stderr should mention {needle:?}: {text}"
    );
    assert_eq!(text.trim().lines().count(), 1, "one line on stderr: {text}");
}

#[test]
fn check_config_accepts_good_and_names_the_key_of_bad_files() {
    let files = AgentFiles::new();
    let path = files.dir.join("check.toml");
    let path_str = path.to_str().expect("utf-8");
    std::fs::write(
        &path,
        "mode = \"enforce\"\n[allow]\nrelays = [\"192.0.2.10\"]\n",
    )
    .expect("write");
    let out = cli(&["check-config", "--config", path_str]);
    assert!(out.status.success(), "{}", stderr(&out));

    for (text, key) in [
        ("blocked_ports = [25, 465]", "blocked_ports[1]"),
        ("[allow]\nrelays = [\"10.1.2.3/8\"]", "allow.relays[0]"),
        ("[allow]\nexempt = [\"0.0.0.0/0\"]", "allow.exempt[0]"),
        (
            "[subscribers]\nipv6_prefix_len = 129",
            "subscribers.ipv6_prefix_len",
        ),
        (
            "[subscribers]\npools = [\"2001:db8::/48\"]",
            "subscribers.pools[0]",
        ),
        (
            "[subscribers]\npools = [\"100.64.0.0/16\", \"100.64.8.0/24\"]",
            "subscribers.pools[1]",
        ),
        (
            "[subscribers]\npools = [\"100.0.0.0/8\"]",
            "subscribers.pools",
        ),
        (
            "[subscribers]\npools = [\"100.64.0.1/16\"]",
            "subscribers.pools[0]",
        ),
        ("mode = \"block\"", "mode"),
        ("bogus_key = 1", "bogus_key"),
    ] {
        std::fs::write(&path, text).expect("write");
        let out = cli(&["check-config", "--config", path_str]);
        assert_fails(&out, 2, key);
        assert!(
            stderr(&out).contains(path_str),
            "names the file: {}",
            stderr(&out)
        );
    }
    let out = cli(&["check-config", "--config", "/nonexistent/egress.toml"]);
    assert_ne!(out.status.code(), Some(0));
    std::fs::remove_dir_all(&files.dir).expect("cleanup");
}

#[test]
fn cli_errors_have_clear_messages_and_exit_codes() {
    let missing = "/nonexistent/egress.sock";
    for args in [
        vec!["relay", "list", "--socket", missing],
        vec!["status", "--socket", missing],
        vec!["top", "-n", "5", "--socket", missing],
    ] {
        assert_fails(&cli(&args), 1, missing);
    }

    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, "[allow]\nrelays = [\"192.0.2.10/32\"]");
    let agent = Agent::start(&lab, files);

    assert_fails(&agent.cli(&["relay", "add", "10.1.2.3/8"]), 2, "10.0.0.0/8");
    assert_fails(&agent.cli(&["relay", "add", "0.0.0.0/0"]), 2, "0.0.0.0/0");
    assert_fails(&agent.cli(&["exempt", "add", "::/0"]), 2, "::/0");
    assert_fails(
        &agent.cli(&["relay", "add", "not-an-address"]),
        2,
        "not-an-address",
    );
    assert_fails(
        &agent.cli(&["relay", "remove", "192.0.2.10"]),
        2,
        "config file",
    );
    assert_fails(&agent.cli(&["subscriber", "nonsense"]), 2, "nonsense");
    assert_eq!(
        agent.cli(&["relay", "frobnicate"]).status.code(),
        Some(2),
        "clap usage error"
    );

    // Adding twice succeeds and changes nothing.
    agent.cli_ok(&["relay", "add", "198.51.100.64/26"]);
    agent.cli_ok(&["relay", "add", "198.51.100.64/26"]);
    let list = agent.cli_ok(&["relay", "list", "--json"]);
    let entries: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert_eq!(entries.as_array().map(Vec::len), Some(2), "{list}");

    // Bare IPv6 address means /128.
    agent.cli_ok(&["exempt", "add", "2001:db8::25"]);
    assert!(
        agent
            .cli_ok(&["exempt", "list"])
            .contains("2001:db8::25/128")
    );

    // The control socket is 0600 and malformed requests change nothing.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&agent.files.socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for garbage in [
        &b"{\"request\":\"nope\"}\n"[..],
        b"not json\n",
        &vec![b'x'; 70_000],
    ] {
        use std::io::{Read as _, Write as _};
        let mut stream =
            std::os::unix::net::UnixStream::connect(&agent.files.socket).expect("connect");
        let _ = stream.write_all(garbage);
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        assert!(
            reply.contains("\"ok\":false"),
            "error response expected: {reply}"
        );
    }
    let status = agent.status();
    assert_eq!(status["allowlist_entries"]["relay"], 2, "{status}");
}

fn bpftool(args: &[&str]) -> String {
    let out = std::process::Command::new("bpftool")
        .args(args)
        .output()
        .expect("bpftool is needed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn detach_leaves_no_program_link_or_pin() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, "");
    let agent = Agent::start(&lab, files);
    let pin_dir = agent.files.pin_dir.clone();

    // Link and program ids of this agent, found through its pins.
    let links_before = bpftool(&["link", "show", "--json"]);
    let status = agent.status();
    assert_eq!(status["attachments"][0]["attached"], true, "{status}");
    let link_pin = pin_dir.join("links/xdp").join(&lab.rtr_sub_if);
    let link = bpftool(&[
        "link",
        "show",
        "pinned",
        link_pin.to_str().expect("utf-8"),
        "--json",
    ]);
    let link: serde_json::Value = serde_json::from_str(&link).expect("bpftool json");
    let prog_id = link["prog_id"].as_u64().expect("link has a program");
    let link_id = link["id"].as_u64().expect("link id");
    assert!(links_before.contains(&format!("\"id\":{link_id}")));

    let out = cli(&["detach", "--config", agent.files.config()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !pin_dir.exists(),
        "pin dir {} must be gone",
        pin_dir.display()
    );

    // The kernel frees programs asynchronously; give it a bounded moment.
    let mut gone = false;
    for _ in 0..50 {
        let progs = bpftool(&["prog", "show", "--json"]);
        let links = bpftool(&["link", "show", "--json"]);
        if !progs.contains(&format!("\"id\":{prog_id},"))
            && !links.contains(&format!("\"id\":{link_id},"))
        {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        gone,
        "program {prog_id} or link {link_id} still loaded after detach"
    );
    assert!(
        cli(&["status", "--socket", agent.files.socket()])
            .status
            .code()
            == Some(1),
        "agent exited"
    );
}
