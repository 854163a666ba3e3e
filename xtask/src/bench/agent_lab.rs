//! The real `egress-agent run` for the agent rows: in a throwaway namespace with a veth pair
//! (XDP on one end), its own pin directory, state directory, control socket and config, and
//! `/metrics` on the namespace's loopback. Dropping it stops the agent and runs
//! `egress-agent detach`, so nothing stays pinned.

use std::{
    fmt::Write as _,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::netns::{Netns, veth};

use super::{frames, lab};

const METRICS: &str = "127.0.0.1:9725";

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

pub struct BenchAgent {
    binary: PathBuf,
    child: Option<Child>,
    dir: PathBuf,
    pub config: PathBuf,
    pub pin_dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    pub interface: String,
    max_tracked: u32,
    /// TOML appended to every config this agent is given.
    extra: String,
    pub netns: Netns,
}

impl BenchAgent {
    /// Starts the agent with the relay prefix and `exempt` allowed, and waits for its socket.
    pub fn start(binary: &Path, max_tracked: u32, exempt: &[(Ipv4Addr, u8)]) -> Result<Self> {
        BenchAgent::start_with(binary, max_tracked, exempt, "")
    }

    /// Like [`BenchAgent::start`] with `extra` TOML appended to the config (a `[fleet]`
    /// table); several agents can run at once, each with its own names.
    pub fn start_with(
        binary: &Path,
        max_tracked: u32,
        exempt: &[(Ipv4Addr, u8)],
        extra: &str,
    ) -> Result<Self> {
        if !binary.is_file() {
            bail!(
                "the agent binary {} does not exist: build it (`cargo build -p egress-agent`) or pass --agent",
                binary.display()
            );
        }
        let netns = lab::namespace("agent")?;
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let interface = format!("ea{}", id.replace('-', "x"));
        veth(
            &netns,
            &interface,
            &netns,
            &format!("eb{}", id.replace('-', "x")),
        )?;
        let dir = std::env::temp_dir().join(format!("egress-bench-agent-{id}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut agent = BenchAgent {
            binary: binary.to_owned(),
            child: None,
            config: dir.join("egress.toml"),
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/egress-bench-{id}")),
            socket: dir.join("egress.sock"),
            log: dir.join("agent.log"),
            dir,
            interface,
            max_tracked,
            extra: extra.to_owned(),
            netns,
        };
        agent.write_config(exempt)?;
        let log = std::fs::File::create(&agent.log)
            .with_context(|| format!("creating {}", agent.log.display()))?;
        let child = agent
            .netns
            .command(&agent.binary)
            .args(["run", "--config"])
            .arg(&agent.config)
            // Every drift check's duration, also for the small allowlist of a quick run.
            .env("RUST_LOG", "info,egress_agent::daemon::drift=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} run", agent.binary.display()))?;
        agent.child = Some(child);
        agent.wait_until("the agent answers on its control socket", 60, |agent| {
            Ok(agent.status().is_ok())
        })?;
        Ok(agent)
    }

    /// Writes the config: relays, `exempt`, XDP on the lab interface.
    pub fn write_config(&self, exempt: &[(Ipv4Addr, u8)]) -> Result<()> {
        let (relay, relay_len) = frames::RELAY_PREFIX_V4;
        let mut text = format!(
            "mode = \"enforce\"\npin_dir = \"{}\"\nstate_dir = \"{}\"\n\n\
             [[interface]]\nname = \"{}\"\nhook = \"xdp\"\n\n\
             [subscribers]\nmax_tracked = {}\n\n[metrics]\nlisten = \"{METRICS}\"\n\n\
             [control]\nsocket = \"{}\"\n\n[allow]\nrelays = [\"{relay}/{relay_len}\"]\nexempt = [\n",
            self.pin_dir.display(),
            self.dir.join("state").display(),
            self.interface,
            self.max_tracked,
            self.socket.display(),
        );
        for (address, len) in exempt {
            let _ = writeln!(text, "\"{address}/{len}\",");
        }
        text.push_str("]\n\n");
        text.push_str(&self.extra);
        std::fs::write(&self.config, text)
            .with_context(|| format!("writing {}", self.config.display()))
    }

    pub fn pid(&self) -> Result<i32> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("the agent is not running"))?;
        Ok(child.id() as i32)
    }

    /// `egress-agent status --json`, parsed.
    pub fn status(&self) -> Result<serde_json::Value> {
        let text = self.cli(&["status", "--json"])?;
        serde_json::from_str(&text).with_context(|| format!("parsing `status --json`: {text}"))
    }

    /// Runs a CLI command against this agent and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.binary)
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .with_context(|| format!("running {} {}", self.binary.display(), args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "`egress-agent {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// One `GET /metrics`, read to the end: the body size and the wall time it took.
    /// One `GET /metrics`: the whole answer and the wall time from connect to its end.
    pub fn scrape(&self) -> Result<(String, Duration)> {
        self.netns.within(|| {
            let started = Instant::now();
            let mut stream = TcpStream::connect(METRICS)
                .with_context(|| format!("connecting to the agent's metrics on {METRICS}"))?;
            stream.set_read_timeout(Some(Duration::from_secs(60)))?;
            stream.write_all(
                b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            )?;
            let mut body = Vec::new();
            stream
                .read_to_end(&mut body)
                .context("reading the /metrics answer")?;
            let took = started.elapsed();
            if !body.starts_with(b"HTTP/1.1 200") {
                bail!(
                    "GET /metrics answered {:?}",
                    String::from_utf8_lossy(&body[..body.len().min(80)])
                );
            }
            Ok((String::from_utf8_lossy(&body).into_owned(), took))
        })?
    }

    /// A field of `/proc/PID/status` in KiB (`VmHWM`, `VmRSS`).
    pub fn memory_kib(&self, field: &str) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid()?);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        text.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no {field} in {path}"))
    }

    /// Polls `done` every 20 ms for up to `seconds`; a failure names `what` and shows the log.
    pub fn wait_until(
        &self,
        what: &str,
        seconds: u64,
        mut done: impl FnMut(&Self) -> Result<bool>,
    ) -> Result<Duration> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(seconds) {
            if done(self).unwrap_or(false) {
                return Ok(started.elapsed());
            }
            self.check_alive()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "timed out after {seconds} s waiting until {what}; agent log:\n{}",
            self.log_tail()
        )
    }

    fn check_alive(&self) -> Result<()> {
        let pid = self.pid()?;
        if Path::new(&format!("/proc/{pid}/status")).exists() {
            Ok(())
        } else {
            bail!("the agent exited; its log:\n{}", self.log_tail())
        }
    }

    /// The agent's whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for BenchAgent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let detached = Command::new(&self.binary)
            .arg("detach")
            .arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&self.socket)
            .output();
        if !detached.is_ok_and(|out| out.status.success()) {
            eprintln!(
                "warning: `egress-agent detach --config {}` failed; removing {}",
                self.config.display(),
                self.pin_dir.display()
            );
            let _ = std::fs::remove_dir_all(&self.pin_dir);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
