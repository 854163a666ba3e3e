//! A real Alertmanager (Debian `prometheus-alertmanager`) and a real Prometheus loading the
//! shipped alert rules, both inside a lab namespace, for one test; killed and cleaned up on
//! drop. Alertmanager routes every alert to one webhook URL.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    metrics::{http_get, prometheus::free_loopback_port},
    netns::{Netns, in_netns},
};

/// One server process in a namespace, its files in a temporary directory.
pub struct Server {
    child: Child,
    dir: PathBuf,
    pub addr: SocketAddr,
    name: &'static str,
}

impl Server {
    fn launch(
        ns: &Netns,
        name: &'static str,
        dir: PathBuf,
        args: Vec<String>,
        addr: SocketAddr,
    ) -> Server {
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", ns.path().display()))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        let mut server = Server {
            child,
            dir,
            addr,
            name,
        };
        server.wait_ready(ns);
        server
    }

    fn wait_ready(&mut self, ns: &Netns) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}): {}", self.name, self.log());
            }
            let addr = self.addr;
            let ready = in_netns(ns, || {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                    && http_get(addr, "/-/ready").0 == 200
            });
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{} not ready within 60 s: {}", self.name, self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", self.name))).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "egress-test-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Alertmanager routing every alert to `webhook_url`, at once (no grouping delay).
pub fn alertmanager(ns: &Netns, webhook_url: &str) -> Server {
    let dir = temp_dir("alertmanager");
    let config = format!(
        "route:\n  receiver: abuse-desk\n  group_by: ['alertname', 'subscriber']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: abuse-desk\n    webhook_configs:\n      - url: '{webhook_url}'\n        send_resolved: false\n"
    );
    std::fs::write(dir.join("alertmanager.yml"), config).expect("write config");
    let addr = in_netns(ns, free_loopback_port);
    let args = vec![
        "prometheus-alertmanager".to_owned(),
        format!("--config.file={}", dir.join("alertmanager.yml").display()),
        format!("--storage.path={}", dir.join("data").display()),
        format!("--web.listen-address={addr}"),
        "--cluster.listen-address=".to_owned(),
    ];
    assert!(
        Path::new("/usr/bin/prometheus-alertmanager").exists(),
        "prometheus-alertmanager is missing (cargo xtask setup installs it)"
    );
    Server::launch(ns, "alertmanager", dir, args, addr)
}

/// Prometheus scraping `target` every second with the shipped rules, alerting `alertmanager`.
pub fn prometheus_with_rules(ns: &Netns, target: SocketAddr, alertmanager: SocketAddr) -> Server {
    let dir = temp_dir("prometheus-rules");
    let rules =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/egress.rules.yml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - '{}'\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{alertmanager}']\n\
         scrape_configs:\n  - job_name: egress\n    static_configs:\n      - targets: ['{target}']\n",
        rules.display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
    let addr = in_netns(ns, free_loopback_port);
    let args = vec![
        "prometheus".to_owned(),
        format!("--config.file={}", dir.join("prometheus.yml").display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address={addr}"),
    ];
    Server::launch(ns, "prometheus", dir, args, addr)
}
