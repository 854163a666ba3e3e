//! Least privilege: with bpffs mounted, the agent runs with only CAP_BPF, CAP_NET_ADMIN and
//! CAP_PERFMON, attaches and enforces; the control socket turns away non-root peers, whether
//! the file mode stops them or (socket opened up) the peer-credential check does.
use std::process::Command;

use tests::agent::{
    Agent, AgentFiles, Lab, Launch, RELAY, SUBSCRIBER, binary,
    traffic::{connects, smtp_listener},
};

const CAPS: &str = "-all,+bpf,+net_admin,+perfmon";
/// CAP_NET_ADMIN (12), CAP_PERFMON (38), CAP_BPF (39).
const EXPECTED_CAP_EFF: u64 = (1 << 12) | (1 << 38) | (1 << 39);
const NOBODY: &str = "65534";

fn capability_set(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    u64::from_str_radix(hex.trim(), 16).expect("hex capability set")
}

fn as_nobody(program: &str, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("cannot run setpriv (util-linux)")
}

const RAW_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b'{"request":"allow_add","kind":"relay","prefix":"192.0.2.2"}\n')
print(s.makefile().read(), end="")
"#;

#[test]
fn agent_enforces_with_three_capabilities_and_refuses_non_root_peers() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    files.write_config(&lab, "");
    let wrapper = [
        "setpriv".to_owned(),
        format!("--inh-caps={CAPS}"),
        format!("--ambient-caps={CAPS}"),
        format!("--bounding-set={CAPS}"),
        "--".to_owned(),
    ];
    let launch = Launch {
        wrapper: wrapper.to_vec(),
        ..Launch::default()
    };
    let agent = Agent::start_with(&lab, files, launch);
    // nsenter and setpriv exec in place, so the child is the agent itself.
    assert_eq!(
        capability_set(agent.pid(), "CapEff:"),
        EXPECTED_CAP_EFF,
        "the agent runs with exactly CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON"
    );
    assert_eq!(capability_set(agent.pid(), "CapBnd:"), EXPECTED_CAP_EFF);
    for attachment in agent.status()["attachments"]
        .as_array()
        .expect("attachments")
    {
        assert_eq!(attachment["attached"], true, "{attachment}");
    }
    assert!(!connects(&lab, SUBSCRIBER), "enforcing");
    agent.cli_ok(&["relay", "add", RELAY]);
    assert!(connects(&lab, RELAY), "allowlist changes work too");
    let before = agent.allowlists();

    // The socket is 0600: another user cannot even connect.
    let bin = binary();
    let out = as_nobody(
        bin.to_str().expect("utf-8"),
        &["relay", "add", SUBSCRIBER, "--socket", agent.files.socket()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");

    // Opened up, the socket still checks the peer's credentials.
    for dir in [&agent.files.dir, &agent.files.socket] {
        let mode = if dir.is_dir() { 0o755 } else { 0o666 };
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod");
    }
    let out = as_nobody(
        "/usr/bin/python3",
        &["-c", RAW_CLIENT, agent.files.socket()],
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "no JSON reply for a non-root peer ({err}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"], "refused");
    assert!(
        reply["message"]
            .as_str()
            .unwrap_or("")
            .contains("root only"),
        "{reply}"
    );
    assert_eq!(agent.allowlists(), before, "nothing changed");
    assert!(!connects(&lab, SUBSCRIBER));
}
