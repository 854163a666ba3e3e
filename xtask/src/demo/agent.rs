//! egress-agent on the lab's edge router: its config, the daemon, and the operator's CLI.

use std::{
    fs,
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{
    interrupt::{self, wait_until},
    lab::{self, Lab},
    narrate::Narrator,
    process::Daemon,
};
use crate::{
    cmd::{Runner, describe},
    netns::Netns,
};

const METRICS_LISTEN: &str = "127.0.0.1:9725";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Field order is teardown order: detach first (in Drop), then the daemon is stopped.
#[derive(Debug)]
pub struct Agent {
    bin: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    pin_dir: PathBuf,
    log: PathBuf,
    runner: Runner,
    daemon: Daemon,
}

impl Agent {
    /// The edge router's agent, with `extra` TOML tables appended to its config.
    pub fn start(
        bin: &Path,
        lab: &Lab,
        dir: &Path,
        tag: u32,
        extra: &str,
        narrator: Narrator,
    ) -> Result<Agent> {
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/egress-demo-{tag}"));
        let mut text = config_text(lab, &pin_dir, &dir.join("state"), &Agent::socket_in(dir));
        text.push('\n');
        text.push_str(extra);
        Agent::start_in(bin, &lab.router, dir, pin_dir, &text, narrator)
    }

    /// The control socket of an agent kept in `dir`: configs given to
    /// [`Agent::start_in`] must name it.
    pub fn socket_in(dir: &Path) -> PathBuf {
        dir.join("egress.sock")
    }

    /// An agent in `router` with config `text` (pinning under `pin_dir`, its control socket
    /// at [`Agent::socket_in`]`(dir)`), its files in `dir`.
    pub fn start_in(
        bin: &Path,
        router: &Netns,
        dir: &Path,
        pin_dir: PathBuf,
        text: &str,
        narrator: Narrator,
    ) -> Result<Agent> {
        let runner = narrator.runner();
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let config = dir.join("egress.toml");
        let socket = Agent::socket_in(dir);
        fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
        runner.run(
            Command::new(bin)
                .arg("check-config")
                .arg("--config")
                .arg(&config),
        )?;
        let log = dir.join("agent.log");
        let mut cmd = router.command(bin);
        cmd.arg("run").arg("--config").arg(&config);
        let daemon = Daemon::spawn("egress-agent", &mut cmd, &log, runner)?;
        let mut agent = Agent {
            bin: bin.to_path_buf(),
            config,
            socket,
            pin_dir,
            log,
            runner,
            daemon,
        };
        let ready = wait_until(
            READY_TIMEOUT,
            "egress-agent to answer on its socket",
            || {
                if !agent.daemon.is_running() {
                    bail!("egress-agent exited");
                }
                Ok(agent.try_cli(&["status"])?.status.success())
            },
        );
        if let Err(err) = ready {
            bail!("{err:#}; its log:\n{}", agent.log_text());
        }
        Ok(agent)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).arg("--socket").arg(&self.socket);
        cmd
    }

    fn try_cli(&self, args: &[&str]) -> Result<std::process::Output> {
        Runner::quiet().output(&mut self.command(args))
    }

    /// Runs an operator command (echoed like the others) and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let mut cmd = self.command(args);
        let out = self.runner.output(&mut cmd)?;
        interrupt::check()?;
        if !out.status.success() {
            bail!(
                "`{}` failed ({}): {}",
                describe(&cmd),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a command without echo (it is polled) and returns what it printed.
    pub fn quiet_cli(&self, args: &[&str]) -> Result<String> {
        Runner::quiet().capture(&mut self.command(args))
    }

    /// `top --json`, without echo: it is polled.
    pub fn top(&self) -> Result<Vec<Value>> {
        let out = self.try_cli(&["top", "--json"])?;
        if !out.status.success() {
            bail!(
                "egress-agent top failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let rows: Value = serde_json::from_slice(&out.stdout).context("egress-agent top --json")?;
        match rows {
            Value::Array(rows) => Ok(rows),
            other => bail!("egress-agent top --json printed {other}, not a list"),
        }
    }

    /// The Prometheus exposition, fetched from inside the router (metrics are on loopback).
    pub fn metrics(&self, lab: &Lab) -> Result<String> {
        let response = lab.router.within(|| -> Result<String> {
            let mut stream = TcpStream::connect(METRICS_LISTEN)
                .with_context(|| format!("cannot connect to the metrics on {METRICS_LISTEN}"))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        })??;
        match response.split_once("\r\n\r\n") {
            Some((head, body))
                if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") =>
            {
                Ok(body.to_owned())
            }
            _ => bail!("GET http://{METRICS_LISTEN}/metrics answered:\n{response}"),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let detach = self.runner.run(
            Command::new(&self.bin)
                .arg("detach")
                .arg("--config")
                .arg(&self.config),
        );
        if let Err(err) = detach {
            eprintln!("warning: cleaning up: {err:#}");
        }
        self.daemon.stop();
        if self.pin_dir.exists()
            && let Err(err) = fs::remove_dir_all(&self.pin_dir)
        {
            eprintln!("warning: cannot remove {}: {err}", self.pin_dir.display());
        }
    }
}

fn config_text(lab: &Lab, pin_dir: &Path, state_dir: &Path, socket: &Path) -> String {
    let ifs = &lab.interfaces;
    format!(
        r#"# The demo's edge router (generated by cargo xtask demo).
mode = "enforce"
blocked_ports = [25]
pin_dir = "{pin_dir}"
state_dir = "{state_dir}"

[[interface]]
name = "{clean}"
hook = "xdp"

[[interface]]
name = "{infected}"
hook = "xdp"

[[interface]]
name = "{uplink}"
hook = "tc-egress"

# The same uplink's ingress: the inbound rules (the lists are filled by the CLI in chapter 8).
[[interface]]
name = "{uplink}"
hook = "xdp-inbound"

[allow]
relays = ["{relay}/32"]

[detection]
# Low thresholds so a short burst is enough to flag a subscriber in the demo.
window_seconds = 120
attempts_threshold = 10
distinct_destinations_threshold = 5

[metrics]
listen = "{METRICS_LISTEN}"

[control]
socket = "{socket}"
"#,
        pin_dir = pin_dir.display(),
        state_dir = state_dir.display(),
        socket = socket.display(),
        clean = ifs.to_clean,
        infected = ifs.to_infected,
        uplink = ifs.uplink,
        relay = lab::RELAY,
    )
}
