//! Lab Postfix instances (the demo's relay, the tests' smart relay and MTAs): each with its
//! own config, queue and data directories under one temp dir, nothing chrooted, nothing
//! local, started inside a lab namespace and stopped for good on drop (its master waited
//! for, killed if it lingers), also when the caller panics or fails.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{Echo, LabError, Netns, command, write_file as write};

/// How long the master gets to exit after `postfix stop` before it is killed.
const MASTER_EXIT_WAIT: Duration = Duration::from_secs(5);

/// master.cf lines after an instance's own `inet` listeners.
pub const MASTER_SERVICES: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// Where one instance keeps its files, all under `dir`.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    pub config_dir: PathBuf,
    pub queue: PathBuf,
    pub data: PathBuf,
    pub maillog: PathBuf,
}

impl Layout {
    /// Creates the directories; `data` belongs to postfix, which writes its caches there.
    pub fn create(dir: &Path, echo: Echo) -> Result<Layout, LabError> {
        let layout = Layout {
            dir: dir.to_path_buf(),
            config_dir: dir.join("etc"),
            queue: dir.join("queue"),
            data: dir.join("data"),
            maillog: dir.join("maillog"),
        };
        for path in [&layout.config_dir, &layout.queue, &layout.data] {
            fs::create_dir_all(path).map_err(|source| LabError::File {
                path: path.clone(),
                source,
            })?;
        }
        chown_postfix(&layout.data, echo)?;
        Ok(layout)
    }

    /// The main.cf settings every lab instance shares: its own directories and log, and no
    /// local delivery, aliases or reverse lookups of clients. Callers append their own.
    pub fn main_cf_base(&self, hostname: &str) -> String {
        format!(
            "compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {maillog}
maillog_file_prefixes = {dir}
myhostname = {hostname}
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
smtpd_peername_lookup = no
",
            queue = self.queue.display(),
            data = self.data.display(),
            maillog = self.maillog.display(),
            dir = self.dir.display(),
        )
    }

    /// Writes main.cf and master.cf (`listeners`, then [`MASTER_SERVICES`]).
    pub fn write_config(&self, main_cf: &str, listeners: &str) -> Result<(), LabError> {
        write(&self.config_dir.join("main.cf"), main_cf)?;
        write(
            &self.config_dir.join("master.cf"),
            &format!("{listeners}{MASTER_SERVICES}"),
        )
    }
}

/// A running instance; dropping it stops it.
#[derive(Debug)]
pub struct Postfix {
    /// `postfix stop` must run in the instance's namespace: it checks inet_interfaces.
    netns: PathBuf,
    config_dir: PathBuf,
    master_pid_file: PathBuf,
    maillog: PathBuf,
    echo: Echo,
}

impl Postfix {
    /// `postfix start` inside `ns` with the config `layout` holds. With `resolv`, the master
    /// (and every daemon it forks) runs in its own mount namespace with that file over
    /// /etc/resolv.conf, so its smtp client asks the lab's DNS and the host's file is untouched.
    pub fn start(
        ns: &Netns,
        layout: &Layout,
        resolv: Option<&Path>,
        echo: Echo,
    ) -> Result<Postfix, LabError> {
        let mut cmd = match resolv {
            None => {
                let mut cmd = ns.command("postfix");
                cmd.arg("-c").arg(&layout.config_dir).arg("start");
                cmd
            }
            Some(resolv) => {
                let script = format!(
                    "mount --bind '{}' /etc/resolv.conf && exec postfix -c '{}' start",
                    resolv.display(),
                    layout.config_dir.display()
                );
                let mut cmd = ns.command("unshare");
                cmd.args(["-m", "--propagation", "private", "sh", "-c", &script]);
                cmd
            }
        };
        let postfix = Postfix {
            netns: ns.path(),
            config_dir: layout.config_dir.clone(),
            master_pid_file: layout.queue.join("pid").join("master.pid"),
            maillog: layout.maillog.clone(),
            echo,
        };
        // Built first: a start that fails half-way (master up, a check failed) is stopped too.
        command::checked(&mut cmd, echo)?;
        Ok(postfix)
    }

    /// Postfix's own log of this instance (what happened to each message).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.maillog).unwrap_or_default()
    }

    pub fn maillog(&self) -> &Path {
        &self.maillog
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let master = fs::read_to_string(&self.master_pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok());
        let mut stop = Command::new("nsenter");
        stop.arg(format!("--net={}", self.netns.display()))
            .arg("postfix")
            .arg("-c")
            .arg(&self.config_dir)
            .arg("stop");
        // Nothing started (or already stopped) is not worth a warning; a master left is.
        let _ = command::output(&mut stop, self.echo);
        if let Some(pid) = master
            && stop_master(pid, MASTER_EXIT_WAIT)
        {
            eprintln!(
                "warning: Postfix master {pid} ({}) did not stop; killed it",
                self.config_dir.display()
            );
        }
    }
}

/// An MTA on `address:25` (smtpd, no chroot, nothing local) whose smtp client resolves MX
/// records through the lab's `nameserver` and gives up on a silent MX after 5 s, so a dropped
/// SYN sends the delivery to the next MX at once. The inbound tests and the demo's inbound
/// scene: the Internet sender and the spam checker. `extra` is appended to main.cf (relay
/// domains, transports, mynetworks). The caller waits for smtpd to listen.
pub struct Mta<'a> {
    pub hostname: &'a str,
    pub address: &'a str,
    pub nameserver: &'a str,
    pub extra: &'a str,
}

impl Mta<'_> {
    pub fn start(&self, ns: &Netns, dir: &Path, echo: Echo) -> Result<Postfix, LabError> {
        let layout = Layout::create(dir, echo)?;
        let resolv = dir.join("resolv.conf");
        write(&resolv, &format!("nameserver {}\n", self.nameserver))?;
        let main_cf = format!(
            "{base}inet_interfaces = {address}
inet_protocols = ipv4
smtp_bind_address = {address}
smtp_host_lookup = dns
# A dropped SYN must fail fast so the next MX is tried in the same delivery.
smtp_connect_timeout = 5s
smtp_connection_cache_on_demand = no
minimal_backoff_time = 5s
maximal_backoff_time = 10s
queue_run_delay = 5s
{extra}
",
            base = layout.main_cf_base(self.hostname),
            address = self.address,
            extra = self.extra,
        );
        layout.write_config(&main_cf, MTA_LISTENER)?;
        Postfix::start(ns, &layout, Some(&resolv), echo)
    }
}

/// smtpd on 25 for an [`Mta`]'s address (the shared services follow).
const MTA_LISTENER: &str = "\
smtp      inet  n       -       n       -       -       smtpd
";

/// Waits up to `wait` for the master `pid` to exit after `postfix stop`, then kills it (its
/// children follow it out). Returns whether it had to be killed.
pub fn stop_master(pid: i32, wait: Duration) -> bool {
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    let start = Instant::now();
    while alive() && start.elapsed() < wait {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !alive() {
        return false;
    }
    // SAFETY: kill() on the pid Postfix recorded for a master the caller started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    true
}

/// Hands `path` to the postfix user (smtp-sink's store, a queue's private/, data/).
pub fn chown_postfix(path: &Path, echo: Echo) -> Result<(), LabError> {
    command::checked(Command::new("chown").arg("postfix").arg(path), echo).map(drop)
}
