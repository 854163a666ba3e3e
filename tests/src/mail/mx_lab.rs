//! Real mail servers for namespace tests: Postfix instances with their own config and queue
//! directories, smtp-sink as a final MX storing each message, and knot as the lab's
//! authoritative DNS server. Each is stopped on drop, also when the test panics.
//!
//! Postfix resolves through libc, which reads /etc/resolv.conf; each instance's master is
//! started in its own mount namespace (`unshare -m`) with the lab's resolv.conf bind-mounted
//! there, so its smtp client asks the lab's knot and nothing on the host changes.

use std::{
    fs,
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{agent::wait_for, netns::Netns};

const MASTER_EXIT_WAIT: Duration = Duration::from_secs(5);

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
}

fn mkdir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|err| panic!("create {}: {err}", path.display()));
}

fn chown_postfix(path: &Path) {
    let status = Command::new("chown")
        .arg("postfix")
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown postfix {}", path.display());
}

/// Waits until `address` accepts TCP inside `ns`.
fn wait_listening(ns: &Netns, address: SocketAddr, what: &str) {
    wait_for(what, 30, || {
        crate::netns::in_netns(ns, || {
            TcpStream::connect_timeout(&address, Duration::from_millis(300)).is_ok()
        })
    });
}

/// A Postfix instance (smtpd on `address:25`, no chroot, nothing local) whose resolver is the
/// lab's `nameserver`.
pub struct Postfix {
    netns: PathBuf,
    config_dir: PathBuf,
    master_pid_file: PathBuf,
    maillog: PathBuf,
}

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
        let config_dir = dir.join("etc");
        let (queue, data) = (dir.join("queue"), dir.join("data"));
        for path in [&config_dir, &queue, &data] {
            mkdir(path);
        }
        chown_postfix(&data);
        let maillog = dir.join("maillog");
        let resolv = dir.join("resolv.conf");
        write(&resolv, &format!("nameserver {nameserver}\n"));
        write(
            &config_dir.join("main.cf"),
            &format!(
                "compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {maillog}
maillog_file_prefixes = {dir}
myhostname = {hostname}
inet_interfaces = {address}
inet_protocols = ipv4
smtp_bind_address = {address}
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
smtpd_peername_lookup = no
smtp_host_lookup = dns
# A dropped SYN must fail fast so the next MX is tried in the same delivery.
smtp_connect_timeout = 5s
smtp_connection_cache_on_demand = no
minimal_backoff_time = 5s
maximal_backoff_time = 10s
queue_run_delay = 5s
{extra}
",
                queue = queue.display(),
                data = data.display(),
                maillog = maillog.display(),
                dir = dir.display(),
            ),
        );
        write(
            &config_dir.join("master.cf"),
            &format!("{MASTER_CF}{}", egress_lab::postfix::MASTER_SERVICES),
        );
        let postfix = Postfix {
            netns: ns.path(),
            master_pid_file: queue.join("pid").join("master.pid"),
            config_dir,
            maillog,
        };
        // The master (and every daemon it forks) keeps the mount namespace with the lab's
        // resolv.conf; the host's file is untouched.
        let script = format!(
            "mount --bind '{}' /etc/resolv.conf && exec postfix -c '{}' start",
            resolv.display(),
            postfix.config_dir.display()
        );
        let out = ns
            .command("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .output()
            .expect("run postfix start");
        assert!(
            out.status.success(),
            "postfix start ({hostname}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let smtpd: SocketAddr = format!("{address}:25").parse().expect("smtpd address");
        wait_listening(ns, smtpd, &format!("Postfix {hostname} on {smtpd}"));
        postfix
    }

    /// Postfix's log of this instance.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.maillog).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let master = fs::read_to_string(&self.master_pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok());
        let _ = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg("postfix")
            .arg("-c")
            .arg(&self.config_dir)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(pid) = master {
            egress_lab::postfix::stop_master(pid, MASTER_EXIT_WAIT);
        }
    }
}

/// smtpd on 25 for the instance's address (the shared services follow).
const MASTER_CF: &str = "\
smtp      inet  n       -       n       -       -       smtpd
";

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
        chown_postfix(&store);
        let mut cmd = ns.command("smtp-sink");
        cmd.args(["-u", "postfix", "-d"])
            .arg(store.join("message."))
            .args([&format!("{address}:25"), "100"]);
        let daemon = spawn(&mut cmd, &dir.join("smtp-sink.log"), "smtp-sink");
        let listen: SocketAddr = format!("{address}:25").parse().expect("sink address");
        wait_listening(ns, listen, &format!("smtp-sink on {listen}"));
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

/// knotd serving one zone on `address:53`, from files in a temp dir.
pub struct Knot {
    _daemon: Daemon,
}

impl Knot {
    pub fn start(ns: &Netns, dir: &Path, address: &str, zone: &str, zone_text: &str) -> Knot {
        let db = dir.join("db");
        mkdir(&db);
        write(&dir.join(format!("{zone}.zone")), zone_text);
        let config = dir.join("knot.conf");
        write(
            &config,
            &format!(
                "server:\n    listen: {address}@53\n    rundir: \"{dir}\"\n    user: root:root\n\
                 database:\n    storage: \"{db}\"\n\
                 control:\n    listen: \"{dir}/knot.sock\"\n\
                 log:\n  - target: stderr\n    any: info\n\
                 zone:\n  - domain: {zone}\n    storage: \"{dir}\"\n    file: \"{zone}.zone\"\n",
                dir = dir.display(),
                db = db.display(),
            ),
        );
        let mut cmd = ns.command("knotd");
        cmd.arg("-c").arg(&config);
        let log = dir.join("knotd.log");
        let daemon = spawn(&mut cmd, &log, "knotd");
        let knot = Knot { _daemon: daemon };
        let mut last = String::new();
        let answered = (0..100).any(|_| {
            let out = ns
                .command("kdig")
                .args([&format!("@{address}"), zone, "SOA", "+short", "+time=1"])
                .output()
                .expect("run kdig");
            last = String::from_utf8_lossy(&out.stdout).into_owned();
            if last.trim().is_empty() {
                std::thread::sleep(Duration::from_millis(200));
                return false;
            }
            true
        });
        assert!(
            answered,
            "knotd never answered for {zone} on {address}; log:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        knot
    }
}
