//! One real etcd member (Debian's `/usr/bin/etcd`, v3 API, checked with `etcdctl`) inside a
//! lab namespace, for the bench and the demo. The member keeps its data directory across
//! [`EtcdMember::stop`] and [`EtcdMember::start`], so a restart is the same cluster (what a
//! fail-static demo needs); dropping it kills the process. The caller owns the directory.
//!
//! ```no_run
//! use egress_lab::{Echo, Netns, etcd::EtcdMember};
//! # fn main() -> Result<(), egress_lab::LabError> {
//! let ns = Netns::unique("etcd", Echo::Quiet)?;
//! let dir = std::env::temp_dir().join("egress-etcd-example");
//! let mut etcd = EtcdMember::new(&ns, "192.0.2.100", &dir);
//! etcd.start()?;
//! etcd.wait_healthy(std::time::Duration::from_secs(30))?;
//! # Ok(()) }
//! ```

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::{LabError, Netns, command::describe};

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";

/// A single-member etcd cluster listening on `http://ADDRESS:2379` in a namespace.
pub struct EtcdMember {
    netns_path: PathBuf,
    address: String,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl EtcdMember {
    /// A member in `ns` on `address` (already configured there), keeping its data and log in
    /// `dir`. Nothing runs until [`EtcdMember::start`].
    pub fn new(ns: &Netns, address: &str, dir: &Path) -> EtcdMember {
        EtcdMember {
            netns_path: ns.path(),
            address: address.to_owned(),
            data_dir: dir.join("member.etcd"),
            log: dir.join("etcd.log"),
            child: None,
        }
    }

    /// `http://ADDRESS:2379`, for `[fleet] etcd_endpoints`.
    pub fn client_url(&self) -> String {
        format!("http://{}:2379", self.address)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The command that starts it (for narration).
    pub fn command(&self) -> Command {
        let peer = format!("http://{}:2380", self.address);
        let client = self.client_url();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns_path.display()))
            .arg(ETCD)
            .args(["--name", "m0", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("m0={peer}")])
            .args(["--initial-cluster-state", "new"])
            // Short raft timers: one member elects itself at once after a restart.
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"]);
        cmd
    }

    /// Starts the member (a restart keeps its data) without waiting for it to answer.
    pub fn start(&mut self) -> Result<(), LabError> {
        if self.child.is_some() {
            return Ok(());
        }
        if !Path::new(ETCD).is_file() {
            return Err(LabError::Missing {
                program: ETCD.into(),
                package: "etcd-server",
            });
        }
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LabError::File {
                path: dir.to_owned(),
                source,
            })?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| LabError::File {
                path: self.log.clone(),
                source,
            })?;
        let mut cmd = self.command();
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().map_err(|source| LabError::Start {
            command: describe(&cmd),
            source,
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills the member (SIGKILL: etcd is simply gone, as when its host dies) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until a read through the member succeeds; fails with its log after `timeout`.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.etcdctl(&["get", "--prefix", "/egress-health"])?;
            if out.status.success() {
                return Ok(());
            }
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait().ok().flatten().is_some(),
                None => true,
            };
            if exited || Instant::now() > deadline {
                return Err(LabError::NotReady {
                    what: format!("etcd on {}", self.client_url()),
                    why: if exited {
                        "exited".to_owned()
                    } else {
                        "did not answer in time".to_owned()
                    },
                    log: std::fs::read_to_string(&self.log).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `etcdctl` (v3) command against this member, run from its namespace.
    pub fn etcdctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns_path.display()))
            .arg(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.client_url()))
            .args(["--dial-timeout=2s", "--command-timeout=5s"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `etcdctl ARGS` and returns its output whatever the exit status.
    pub fn etcdctl(&self, args: &[&str]) -> Result<Output, LabError> {
        let mut cmd = self.etcdctl_command(args);
        cmd.output().map_err(|source| LabError::Start {
            command: describe(&cmd),
            source,
        })
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        self.stop();
    }
}
