//! Helpers for the metrics tests: the dataplane loaded with its maps pinned where the agent pins
//! them (so telemetry reads them exactly as in production), the telemetry server run in-process,
//! an HTTP GET, an exposition parser, `promtool`, and a real Prometheus server.

pub mod exposition;
pub mod logs;
pub mod prometheus;

pub use exposition::{Sample, samples, value};

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::Array,
    programs::{TestRun, TestRunOptions, Xdp},
};
use egress_agent::{
    config::Config,
    paths::PinLayout,
    status::AgentStatus,
    telemetry::{self, TelemetryContext},
};
use egress_common::{DataplaneConfig, PortSet, names};

use crate::{
    dataplane::Policy,
    packet::{Eth, Ipv4, Ipv6, Tcp},
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

const MAP_NAMES: [&str; 8] = [
    names::CONFIG,
    names::COUNTERS,
    names::SOURCES_V4,
    names::SOURCES_V6,
    names::DESTINATIONS_V4,
    names::DESTINATIONS_V6,
    names::SUBSCRIBERS,
    names::EVENTS,
];

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Mounts bpffs at /sys/fs/bpf when it is not mounted (tests run as root).
pub fn ensure_bpffs() {
    let mounted = Command::new("mountpoint")
        .args(["-q", "/sys/fs/bpf"])
        .status()
        .expect("run mountpoint");
    if !mounted.success() {
        let status = Command::new("mount")
            .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount bpffs at /sys/fs/bpf (root?)"
        );
    }
}

/// The eBPF object with every map pinned under a unique directory in /sys/fs/bpf, removed on drop.
pub struct PinnedDataplane {
    ebpf: Ebpf,
    pins: PinLayout,
}

impl PinnedDataplane {
    /// Loads the XDP program for port 25 with `max_tracked` subscriber slots and applies
    /// `policy`'s config (allowlists stay empty).
    pub fn load(policy: &Policy, max_tracked: u32) -> PinnedDataplane {
        ensure_bpffs();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let root = PathBuf::from(format!(
            "/sys/fs/bpf/egress-test-metrics-{}-{id}",
            std::process::id()
        ));
        let pins = PinLayout::new(&root);
        std::fs::create_dir_all(pins.maps_dir())
            .unwrap_or_else(|err| panic!("create {}: {err}", pins.maps_dir().display()));
        let paths: Vec<(&str, PathBuf)> = MAP_NAMES.iter().map(|n| (*n, pins.map(n))).collect();
        let ports = PortSet::EMPTY.with(25);
        let mut loader = EbpfLoader::new();
        loader
            .override_global(names::BLOCKED_PORTS, &ports, true)
            .map_max_entries(names::SUBSCRIBERS, max_tracked);
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut dataplane = PinnedDataplane {
            ebpf: loader
                .load(egress_agent::EBPF_OBJECT)
                .expect("the embedded eBPF object loads with pinned maps (root?)"),
            pins,
        };
        dataplane
            .xdp()
            .load()
            .expect("the verifier accepts the XDP program");
        dataplane.configure(&policy.config());
        dataplane
    }

    pub fn pins(&self) -> &PinLayout {
        &self.pins
    }

    /// The loaded object, for tests that fill maps directly.
    pub fn ebpf(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    pub fn configure(&mut self, config: &DataplaneConfig) {
        let map = self.ebpf.map_mut(names::CONFIG).expect("EGRESS_CONFIG map");
        let mut array: Array<_, DataplaneConfig> = Array::try_from(map).expect("array map");
        array.set(0, config, 0).expect("write EGRESS_CONFIG[0]");
    }

    fn xdp(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(names::XDP_PROGRAM)
            .expect("XDP program")
            .try_into()
            .expect("an XDP program")
    }

    /// Runs `frame` through the XDP program once; the XDP verdict.
    pub fn send(&mut self, frame: &[u8]) -> u32 {
        let options = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        };
        self.xdp()
            .test_run(options)
            .expect("BPF_PROG_TEST_RUN of the XDP program")
            .return_value
    }

    /// A telemetry context over these pins, as the daemon would build it.
    pub fn context(&self, config: Config, status: AgentStatus) -> TelemetryContext {
        TelemetryContext::new(self.pins.clone(), status, config)
    }
}

impl Drop for PinnedDataplane {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(self.pins.root()) {
            eprintln!("warning: remove {}: {err}", self.pins.root().display());
        }
    }
}

/// The configuration with every key at its default (as from an empty file).
pub fn default_config() -> Config {
    serde_json::from_str("{}").expect("every config key has a default")
}

/// A SYN to port 25.
pub fn syn_v4(source: [u8; 4], destination: [u8; 4]) -> Vec<u8> {
    Eth::new().ipv4(Ipv4::new(source, destination).tcp(Tcp::syn(25)))
}

pub fn syn_v6(source: [u8; 16], destination: [u8; 16]) -> Vec<u8> {
    Eth::new().ipv6(Ipv6::new(source, destination).tcp(Tcp::syn(25)))
}

/// The `i`-th of up to 512 distinct documentation destinations.
pub fn destination(i: usize) -> [u8; 4] {
    assert!(i < 512, "only 512 documentation destinations");
    let byte = (i % 256) as u8;
    if i < 256 {
        [198, 51, 100, byte]
    } else {
        [203, 0, 113, byte]
    }
}

/// `telemetry::run` on a runtime of its own, on 127.0.0.1 with a free port; stopped on drop.
pub struct Served {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    pub fn start(ctx: TelemetryContext) -> Served {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                let addr = listener.local_addr().expect("local address");
                ready_tx.send(addr).expect("report address");
                tokio::select! {
                    result = telemetry::run_with_listener(listener, ctx) => {
                        panic!("telemetry stopped: {result:?}")
                    }
                    _ = stopped => {}
                }
            });
        });
        let addr = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the metrics server starts");
        Served {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn scrape(&self) -> String {
        let (status, body) = http_get(self.addr, "/metrics");
        assert_eq!(status, 200, "GET /metrics answered {status}: {body}");
        body
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A plain HTTP/1.1 GET: status code and body.
pub fn http_get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|err| panic!("connect to {addr}: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set timeout");
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|err| panic!("read response from {addr}{target}: {err}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    (status, body.to_owned())
}

/// Runs `promtool check metrics` on the exposition; panics with its complaints.
pub fn promtool_check_metrics(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is required (Debian package `prometheus`)");
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(text.as_bytes())
        .expect("write exposition to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics rejected the exposition:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// deploy/prometheus: the shipped rules, their unit tests and the scrape example.
pub fn prometheus_deploy_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

/// Runs `promtool ARGS` in deploy/prometheus and fails the test with its output unless it succeeds.
pub fn promtool(args: &[&str]) {
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(prometheus_deploy_dir())
        .output()
        .expect("promtool is required (Debian package `prometheus`)");
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
