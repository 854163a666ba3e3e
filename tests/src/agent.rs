//! Running the real `egress-agent` binary in a lab of namespaces.
//!
//! The lab: subscriber ns (`192.0.2.0/24`: subscriber .2, relay .10, exempt .20) — router ns
//! (agent: XDP on the subscriber side, tcx egress on the uplink) — internet ns
//! (`198.51.100.2`, a TCP listener on port 25). Every agent gets its own pin directory under
//! /sys/fs/bpf/egress-test-*, state directory, socket and config; dropping it kills the
//! process and runs `egress-agent detach`, so nothing stays pinned after a test.

pub mod allowlists;
pub mod foreign;
pub mod kernel;
mod lab;
pub mod mutate;
pub mod spoof;
pub mod traffic;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

pub use lab::Lab;

pub const SUBSCRIBER: &str = "192.0.2.2";
pub const RELAY: &str = "192.0.2.10";
pub const EXEMPT: &str = "192.0.2.20";
pub const SERVER: &str = "198.51.100.2";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Multiplies the hang guards of slow environments: `EGRESS_TEST_TIME_SCALE` (default 1; the
/// 6.1 VM under TCG sets it, where loading the object alone takes tens of seconds).
pub fn time_scale() -> u64 {
    std::env::var("EGRESS_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes every agent this test process starts run `path` (the package test runs the packaged
/// binary); `EGRESS_AGENT_BIN` does the same from outside.
pub fn use_binary(path: PathBuf) {
    BINARY
        .set(path)
        .expect("use_binary is called once, before any agent starts");
}

/// The agent binary: the one given to `use_binary` or in `EGRESS_AGENT_BIN`, else the one
/// next to the test executable (target/debug/egress-agent).
pub fn binary() -> PathBuf {
    if let Some(path) = BINARY.get() {
        return path.clone();
    }
    if let Some(path) = std::env::var_os("EGRESS_AGENT_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("egress-agent"))
        .expect("test executable has no grandparent directory");
    assert!(
        path.exists(),
        "{} not found: build it first (`cargo build -p egress-agent`, or `cargo xtask test`)",
        path.display()
    );
    path
}

/// Runs the CLI with `args` (no namespace needed: it talks over the socket or bpffs).
pub fn cli(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .output()
        .expect("cannot run egress-agent")
}

/// Polls `condition` every 100 ms for up to `seconds` (a hang guard, not a timing check).
pub fn wait_for(what: &str, seconds: u64, condition: impl FnMut() -> bool) {
    if !wait_until(seconds, condition) {
        panic!(
            "timed out after {} s waiting for {what}",
            seconds * time_scale()
        );
    }
}

/// Like [`wait_for`], but says whether `condition` came true, so the caller can report what
/// it saw last.
pub fn wait_until(seconds: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds * time_scale());
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Paths of one agent instance.
pub struct AgentFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub pin_dir: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
}

impl AgentFiles {
    pub fn new() -> AgentFiles {
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("egress-test-{id}"));
        std::fs::create_dir_all(&dir).expect("create test dir");
        AgentFiles {
            config: dir.join("egress.toml"),
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/egress-test-{id}")),
            state_dir: dir.join("state"),
            socket: dir.join("egress.sock"),
            dir,
        }
    }

    pub fn socket(&self) -> &str {
        self.socket.to_str().expect("utf-8 socket path")
    }

    pub fn config(&self) -> &str {
        self.config.to_str().expect("utf-8 config path")
    }

    /// A config for `lab` with `extra` TOML appended (e.g. an `[allow]` table; keys before any
    /// table header land in `[control]`).
    pub fn write_config(&self, lab: &Lab, extra: &str) {
        self.write_config_for(
            &[(&lab.rtr_sub_if, "xdp"), (&lab.rtr_up_if, "tc-egress")],
            extra,
        );
    }

    /// XDP on the subscriber side only: no tcx backstop, so traffic shows what XDP does.
    pub fn write_xdp_only_config(&self, lab: &Lab, extra: &str) {
        self.write_config_for(&[(&lab.rtr_sub_if, "xdp")], extra);
    }

    /// A config attaching `hook` to each `(interface, hook)`, then `extra`.
    pub fn write_config_for(&self, interfaces: &[(&str, &str)], extra: &str) {
        let mut text = format!(
            "pin_dir = \"{}\"\nstate_dir = \"{}\"\n\n",
            self.pin_dir.display(),
            self.state_dir.display(),
        );
        for (name, hook) in interfaces {
            text += &format!("[[interface]]\nname = \"{name}\"\nhook = \"{hook}\"\n\n");
        }
        text += &format!(
            "[control]\nsocket = \"{}\"\n\n{extra}\n",
            self.socket.display()
        );
        std::fs::write(&self.config, text).expect("write config");
    }
}

impl Default for AgentFiles {
    fn default() -> Self {
        AgentFiles::new()
    }
}

/// How to start the agent beyond the defaults: extra environment, and a command that wraps
/// the binary inside the router namespace (e.g. `setpriv ... --`).
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub env: Vec<(String, String)>,
    pub wrapper: Vec<String>,
}

/// A running `egress-agent run` in the router namespace.
pub struct Agent {
    child: Option<Child>,
    pub files: AgentFiles,
    log: PathBuf,
    launch: Launch,
    /// The router namespace the agent runs in: `detach` on drop runs there too, where a
    /// legacy TC filter (kernels without tcx) can be reached.
    netns: Option<PathBuf>,
}

impl Agent {
    /// Starts the agent and waits until its control socket answers.
    pub fn start(lab: &Lab, files: AgentFiles) -> Agent {
        Agent::start_with(lab, files, Launch::default())
    }

    /// Like `start`, with extra environment or a wrapper command.
    pub fn start_with(lab: &Lab, files: AgentFiles, launch: Launch) -> Agent {
        let mut agent = Agent {
            child: None,
            log: files.dir.join("agent.log"),
            files,
            launch,
            netns: None,
        };
        agent.restart(lab);
        agent
    }

    /// Starts the agent again with other environment or wrapper (a different TC attach
    /// method, say).
    pub fn restart_with(&mut self, lab: &Lab, launch: Launch) {
        self.launch = launch;
        self.restart(lab);
    }

    /// Starts the agent again (after `signal` or `kill`).
    pub fn restart(&mut self, lab: &Lab) {
        assert!(self.child.is_none(), "agent is still running");
        self.netns = Some(lab.rtr.path().to_owned());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", lab.rtr.path().display()))
            .args(&self.launch.wrapper)
            .arg(binary())
            .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
            .args(["run", "--config", self.files.config()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start nsenter egress-agent run");
        self.child = Some(child);
        let ready_in = 20 * time_scale();
        let deadline = Instant::now() + Duration::from_secs(ready_in);
        loop {
            if cli(&["status", "--socket", self.files.socket()])
                .status
                .success()
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!("agent exited during start ({status}):\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "agent not ready in {ready_in} s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent not running").id()
    }

    /// Sends `signal` (e.g. libc::SIGHUP) without waiting.
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child.
        let rc = unsafe { libc::kill(self.pid() as i32, signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// Sends `signal` and waits for the process to exit; returns its exit status.
    pub fn stop_with(&mut self, signal: i32) -> std::process::ExitStatus {
        self.signal(signal);
        let mut child = self.child.take().expect("agent not running");
        let deadline = Instant::now() + Duration::from_secs(10 * time_scale());
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The agent's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs the CLI against this agent's socket: `args` then `--socket PATH`.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--socket", self.files.socket()]);
        cli(&all)
    }

    /// Like `cli`, asserting success; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "egress-agent {args:?} failed ({}): {}\nagent log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `status --json` parsed.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.cli_ok(&["status", "--json"])).expect("status --json is JSON")
    }

    /// The status entry of one interface's attachment.
    pub fn attachment(&self, interface: &str) -> serde_json::Value {
        let status = self.status();
        status["attachments"]
            .as_array()
            .and_then(|all| all.iter().find(|a| a["interface"] == interface).cloned())
            .unwrap_or_else(|| panic!("no attachment for {interface} in status: {status}"))
    }

    /// `relay list --json` and `exempt list --json`, to compare state before and after.
    pub fn allowlists(&self) -> (String, String) {
        (
            self.cli_ok(&["relay", "list", "--json"]),
            self.cli_ok(&["exempt", "list", "--json"]),
        )
    }

    /// Whether the agent process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let pin_dir = self.files.pin_dir.to_str().unwrap_or_default().to_owned();
        let mut detach = Command::new("nsenter");
        if let Some(netns) = &self.netns {
            detach.arg(format!("--net={}", netns.display()));
        }
        let out = detach
            .arg(binary())
            .args([
                "detach",
                "--pin-dir",
                &pin_dir,
                "--socket",
                self.files.socket(),
            ])
            .output()
            .expect("cannot run egress-agent detach");
        if !out.status.success() {
            eprintln!(
                "warning: detach failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_dir_all(&self.files.dir);
    }
}

/// The dataplane's record of an IPv4 subscriber, read from the pinned map.
pub fn subscriber_record(
    pin_dir: &Path,
    address: std::net::Ipv4Addr,
) -> Option<egress_common::SubscriberRecord> {
    use aya::maps::{HashMap, Map, MapData};
    use egress_common::{SubscriberKey, SubscriberRecord, names};
    let path = pin_dir.join("maps").join(names::SUBSCRIBERS);
    let data = MapData::from_pin(&path)
        .unwrap_or_else(|err| panic!("open pinned {}: {err}", path.display()));
    let map: HashMap<MapData, SubscriberKey, SubscriberRecord> =
        HashMap::try_from(Map::from_map_data(data).expect("subscriber map type"))
            .expect("subscriber map layout");
    let mut key = SubscriberKey {
        family: 4,
        prefix_len: 32,
        ..SubscriberKey::default()
    };
    key.addr[..4].copy_from_slice(&address.octets());
    map.get(&key, 0).ok()
}
