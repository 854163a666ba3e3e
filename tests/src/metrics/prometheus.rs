//! A real Prometheus server (Debian `prometheus`) for one test: its own config and data
//! directory, listening on a free loopback port, scraping one target every second; killed and
//! cleaned up on drop. It runs in the host's network namespace, or inside a lab namespace to
//! scrape an agent whose metrics listen on that namespace's loopback.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use super::http_get;

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

pub struct PrometheusServer {
    child: Child,
    dir: PathBuf,
    pub addr: SocketAddr,
    /// `/run/netns/NAME` when the server runs in a lab namespace.
    netns: Option<PathBuf>,
}

impl PrometheusServer {
    /// Starts Prometheus scraping `http://target/metrics` as job `egress`; waits (bounded) until
    /// it is ready.
    pub fn start(target: SocketAddr) -> PrometheusServer {
        PrometheusServer::launch(None, &scrape_config(&[target]))
    }

    /// [`PrometheusServer::start`] inside the network namespace at `netns` (`/run/netns/NAME`,
    /// entered with `nsenter --net=`); queries are made from inside it too.
    pub fn start_in(netns: &Path, target: SocketAddr) -> PrometheusServer {
        PrometheusServer::launch(Some(netns.to_owned()), &scrape_config(&[target]))
    }

    /// Inside `netns`, scraping every one of `targets` (job `egress`, one `instance` each).
    pub fn start_in_scraping(netns: &Path, targets: &[SocketAddr]) -> PrometheusServer {
        PrometheusServer::launch(Some(netns.to_owned()), &scrape_config(targets))
    }

    /// Inside `netns`, with a whole `prometheus.yml` of the test's own (e.g. federation).
    pub fn start_in_with_config(netns: &Path, config: &str) -> PrometheusServer {
        PrometheusServer::launch(Some(netns.to_owned()), config)
    }

    fn launch(netns: Option<PathBuf>, config: &str) -> PrometheusServer {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "egress-test-prometheus-{}-{id}",
            std::process::id()
        ));
        std::fs::create_dir_all(dir.join("data"))
            .unwrap_or_else(|err| panic!("create {}: {err}", dir.display()));
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)
            .unwrap_or_else(|err| panic!("write {}: {err}", config_path.display()));
        let addr = inside(netns.as_deref(), free_loopback_port);
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("create log file");
        let mut command = match &netns {
            Some(path) => {
                let mut nsenter = Command::new("nsenter");
                nsenter
                    .arg(format!("--net={}", path.display()))
                    .arg("prometheus");
                nsenter
            }
            None => Command::new("prometheus"),
        };
        let child = command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the `prometheus` binary is required (Debian package `prometheus`)");
        let mut server = PrometheusServer {
            child,
            dir,
            addr,
            netns,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}): {}", self.log());
            }
            let addr = self.addr;
            let ready = inside(self.netns.as_deref(), || {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                    && http_get(addr, "/-/ready").0 == 200
            });
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "prometheus did not become ready within 60 s: {}",
            self.log()
        );
    }

    /// `/api/v1/query` of an instant vector: every result's metric labels and value.
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let (status, body) = self.get(&format!("/api/v1/query?query={}", encode(promql)));
        assert_eq!(status, 200, "query {promql} answered {status}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("query answer is JSON");
        assert_eq!(json["status"], "success", "query {promql}: {body}");
        json["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("query {promql}: no result array in {body}"))
            .iter()
            .map(|r| {
                let value = r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("query {promql}: bad value in {r}"));
                (r["metric"].clone(), value)
            })
            .collect()
    }

    /// Polls `promql` (bounded: 60 s) until it returns at least one result.
    pub fn wait_for(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let results = self.query(promql);
            if !results.is_empty() {
                return results;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus returned nothing for {promql} within 60 s; targets: {}; log: {}",
                self.get("/api/v1/targets").1,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn get(&self, target: &str) -> (u16, String) {
        let addr = self.addr;
        inside(self.netns.as_deref(), || http_get(addr, target))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The test config: every second, job `egress` scraping `targets`.
fn scrape_config(targets: &[SocketAddr]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "{GLOBAL}scrape_configs:\n  - job_name: egress\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    )
}

/// The `global:` block of every test config: scrape and evaluate every second.
pub const GLOBAL: &str =
    "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n";

/// A loopback address with a port nobody listens on right now.
pub fn free_loopback_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address")
}

/// Runs `f` inside the network namespace at `netns`, or here when there is none.
fn inside<T: Send>(netns: Option<&Path>, f: impl FnOnce() -> T + Send) -> T {
    match netns {
        Some(path) => egress_lab::within(path, f)
            .unwrap_or_else(|err| panic!("prometheus lab namespace: {err}")),
        None => f(),
    }
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
