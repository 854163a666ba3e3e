//! Dovecot as the smart relay's SASL server: an auth-only instance (no mail protocols) with
//! its own config, run and state directories in a temp dir, one passwd-file account, and its
//! auth socket where Postfix's smtpd looks for it (`smtpd_sasl_type = dovecot`). Dovecot
//! reads only the config it is given, unlike Debian's Cyrus SASL, which opened /etc/sasldb2
//! whatever `cyrus_sasl_config_path` said. Stopped (and waited for) on drop.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use egress_lab::Netns;

/// How long Dovecot's master gets to take its auth and log processes down after SIGTERM.
const EXIT_WAIT: Duration = Duration::from_secs(5);

pub struct Dovecot {
    child: Child,
    pub log: PathBuf,
}

impl Dovecot {
    /// Serves `user` / `password` on the unix socket `socket` (owned by postfix, 0660).
    pub fn start(ns: &Netns, dir: &Path, socket: &Path, user: &str, password: &str) -> Dovecot {
        for sub in ["run", "state"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path)
                .unwrap_or_else(|err| panic!("create {}: {err}", path.display()));
        }
        let passwd = dir.join("passwd");
        write(&passwd, &format!("{user}:{{PLAIN}}{password}\n"));
        let log = dir.join("dovecot.log");
        let conf = dir.join("dovecot.conf");
        write(
            &conf,
            &format!(
                "base_dir = {run}
state_dir = {state}
log_path = {log}
protocols = none
ssl = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {socket} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
",
                run = dir.join("run").display(),
                state = dir.join("state").display(),
                log = log.display(),
                passwd = passwd.display(),
                socket = socket.display(),
            ),
        );
        let child = ns
            .command("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start dovecot (dovecot-core; `cargo xtask setup`)");
        let mut dovecot = Dovecot { child, log };
        dovecot.wait_ready(socket);
        dovecot
    }

    /// The auth socket exists (a hang guard, not a timing check).
    fn wait_ready(&mut self, socket: &Path) {
        let start = Instant::now();
        while !socket.exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dovecot exited ({status}): {}", self.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "dovecot made no auth socket {} within 10 s: {}",
                socket.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its auth and log children; SIGKILL would orphan them.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill() on the pid of the child this struct spawned and has not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let start = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && start.elapsed() < EXIT_WAIT {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
}
