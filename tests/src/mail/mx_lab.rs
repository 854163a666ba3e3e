//! Real mail servers for namespace tests: Postfix MTAs (egress-lab's instances) and
//! smtp-sink as a final MX storing each message (the lab's DNS is [`super::knot`]). Each is
//! stopped on drop, also when the test panics.
//!
//! Postfix resolves through libc, which reads /etc/resolv.conf; egress-lab starts each MTA's
//! master in its own mount namespace (`unshare -m`) with the lab's resolv.conf bind-mounted
//! there, so its smtp client asks the lab's knot and nothing on the host changes.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use egress_lab::{
    Echo,
    postfix::{Mta, chown_postfix},
};

use super::{lab, wait_listening};
use crate::netns::Netns;

fn mkdir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|err| panic!("create {}: {err}", path.display()));
}

/// A Postfix MTA (smtpd on `address:25`) whose resolver is the lab's `nameserver`:
/// egress-lab's [`Mta`], waited for until smtpd listens.
pub struct Postfix(egress_lab::postfix::Postfix);

impl Postfix {
    /// `extra` is appended to main.cf (relay domains, transports, mynetworks).
    pub fn start(
        ns: &Netns,
        dir: &Path,
        hostname: &str,
        address: &str,
        nameserver: &str,
        extra: &str,
    ) -> Postfix {
        let mta = Mta {
            hostname,
            address,
            nameserver,
            extra,
        };
        let postfix = lab(mta.start(ns, dir, Echo::Quiet));
        let smtpd: SocketAddr = format!("{address}:25").parse().expect("smtpd address");
        wait_listening(ns, &[smtpd], &format!("Postfix {hostname}"), || {
            postfix.log()
        });
        Postfix(postfix)
    }

    /// Postfix's log of this instance.
    pub fn log(&self) -> String {
        self.0.log()
    }
}

/// A child process killed and reaped on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, log: &Path, what: &str) -> Daemon {
    let out = fs::File::create(log).unwrap_or_else(|err| panic!("{}: {err}", log.display()));
    let err = out.try_clone().expect("clone log handle");
    Daemon(
        cmd.stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}")),
    )
}

/// smtp-sink on `address:25`, storing each message (with its X-Client-Addr and Received
/// headers) as one file in `dir`.
pub struct Sink {
    dir: PathBuf,
    _daemon: Daemon,
}

impl Sink {
    pub fn start(ns: &Netns, dir: &Path, address: &str) -> Sink {
        let store = dir.join("store");
        mkdir(&store);
        lab(chown_postfix(&store, Echo::Quiet));
        let mut cmd = ns.command("smtp-sink");
        cmd.args(["-u", "postfix", "-d"])
            .arg(store.join("message."))
            .args([&format!("{address}:25"), "100"]);
        let daemon = spawn(&mut cmd, &dir.join("smtp-sink.log"), "smtp-sink");
        let listen: SocketAddr = format!("{address}:25").parse().expect("sink address");
        let log = dir.join("smtp-sink.log");
        wait_listening(ns, &[listen], "smtp-sink", || {
            fs::read_to_string(&log).unwrap_or_default()
        });
        Sink {
            dir: store,
            _daemon: daemon,
        }
    }

    /// The stored message containing `token`, waiting up to `seconds`.
    pub fn wait_for(&self, token: &str, seconds: u64) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let found = fs::read_dir(&self.dir)
                .expect("list the sink's store")
                .filter_map(|entry| fs::read_to_string(entry.ok()?.path()).ok())
                .find(|text| text.contains(token));
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
