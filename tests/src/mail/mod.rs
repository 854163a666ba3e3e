//! The ISP's mail set-up for the audit tests: a namespace with an authoritative DNS server
//! (knot) and a Postfix smart relay (Dovecot SASL, TLS from a test CA), all on documentation
//! addresses on the namespace's loopback, and `egress-agent audit` run inside it.

pub mod dovecot;
pub mod knot;
pub mod mx_lab;
pub mod postfix;
pub mod silent;
pub mod zone_server;
pub mod zones;

use std::{
    collections::BTreeMap,
    net::{SocketAddr, TcpStream},
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use egress_lab::{LabError, Netns};
use serde_json::Value;

use crate::netns::{TestNetns as _, exec_ok};

/// The authoritative server's address, and the relay's (also the submission host).
pub const DNS: &str = "192.0.2.53";
pub const RELAY: &str = "192.0.2.25";
pub const RELAY_V6: &str = "2001:db8:1::25";
pub const MX1: &str = "192.0.2.30";
pub const MX2: &str = "192.0.2.40";

/// The `[mail]` section of the audit tests' config: the ISP of [`zones::Zones`], audited
/// through the lab's DNS. Keys appended after it still belong to `[mail]`.
pub const MAIL_SECTION: &str = r#"
[mail]
domains = ["isp.example"]
submission_hosts = ["smtp.isp.example"]
primary_mx = ["mx1.isp.example"]
spam_checkers = ["mx2.isp.example"]
resolver = "192.0.2.53:53"
audit_interval_seconds = 0
"#;

/// `[allow] relays` with both of the relay's addresses.
pub const BOTH_RELAYS: &str = "[allow]\nrelays = [\"192.0.2.25/32\", \"2001:db8:1::25/128\"]\n";

/// A namespace whose loopback carries every address of the mail set-up.
pub fn mail_netns() -> Netns {
    let ns = Netns::new("mail");
    for address in [DNS, RELAY, MX1, MX2] {
        exec_ok(
            &ns,
            &["ip", "addr", "add", &format!("{address}/32"), "dev", "lo"],
        );
    }
    exec_ok(
        &ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{RELAY_V6}/128"),
            "dev",
            "lo",
            "nodad",
        ],
    );
    ns
}

/// egress-lab's result, or a panic naming what failed (the lab server's log included).
pub fn lab<T>(result: Result<T, LabError>) -> T {
    result.unwrap_or_else(|err| panic!("mail lab: {err}"))
}

/// Waits (20 s at most: a hang guard) until every one of `listeners` accepts TCP inside `ns`;
/// on timeout the panic shows `log()`, the server's own account of why.
pub fn wait_listening(ns: &Netns, listeners: &[SocketAddr], what: &str, log: impl Fn() -> String) {
    let start = Instant::now();
    loop {
        let up = ns
            .within(|| {
                listeners.iter().all(|address| {
                    TcpStream::connect_timeout(address, Duration::from_millis(300)).is_ok()
                })
            })
            .unwrap_or(false);
        if up {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} not listening on {listeners:?} within 20 s:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `egress-agent audit --config CONFIG --json` inside `ns`: exit code and rows.
pub fn run_audit(ns: &Netns, config: &Path) -> (i32, Vec<Value>, Output) {
    let output = ns
        .command(crate::agent::binary())
        .arg("audit")
        .arg("--config")
        .arg(config)
        .arg("--json")
        .output()
        .expect("cannot run egress-agent audit");
    let rows: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "audit printed no JSON ({err}, {}): stdout {} stderr {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), rows, output)
}

/// [`run_audit`] that must finish within `limit`: killed and a panic past it. Returns the
/// exit code, the rows and how long the audit took.
pub fn run_audit_within(ns: &Netns, config: &Path, limit: Duration) -> (i32, Vec<Value>, Duration) {
    let start = Instant::now();
    let mut child = ns
        .command(crate::agent::binary())
        .arg("audit")
        .arg("--config")
        .arg(config)
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run egress-agent audit");
    let stdout = read_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_in_background(child.stderr.take().expect("piped stderr"));
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .expect("cannot wait for egress-agent audit")
        {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "egress-agent audit still running after {limit:?}; stderr so far: {}",
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = start.elapsed();
    let stdout = stdout.join().expect("stdout reader");
    let rows: Vec<Value> = serde_json::from_slice(&stdout).unwrap_or_else(|err| {
        panic!(
            "audit printed no JSON ({err}): stdout {} stderr {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr.join().unwrap_or_default())
        )
    });
    (status.code().unwrap_or(-1), rows, took)
}

/// Reads `pipe` to its end on a thread, so a child never blocks on a full pipe.
fn read_in_background(
    mut pipe: impl std::io::Read + Send + 'static,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// (check, target) -> result, for assertions.
pub fn verdicts(rows: &[Value]) -> BTreeMap<(String, String), String> {
    rows.iter()
        .map(|row| {
            let field = |name: &str| row[name].as_str().unwrap_or_default().to_owned();
            ((field("check"), field("target")), field("result"))
        })
        .collect()
}

/// The rows whose check starts with one of `prefixes` and whose result is `fail`.
pub fn failing(rows: &[Value], prefixes: &[&str]) -> Vec<(String, String)> {
    verdicts(rows)
        .into_iter()
        .filter(|((check, _), result)| {
            result == "fail" && prefixes.iter().any(|p| check.starts_with(p))
        })
        .map(|(key, _)| key)
        .collect()
}

/// Every row, one per line, for failure messages.
pub fn show(rows: &[Value]) -> String {
    rows.iter()
        .map(|row| {
            format!(
                "{} {} {} {}",
                row["check"].as_str().unwrap_or_default(),
                row["target"].as_str().unwrap_or_default(),
                row["result"].as_str().unwrap_or_default(),
                row["detail"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("egress-test-{prefix}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
