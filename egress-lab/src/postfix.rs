//! What every lab Postfix instance shares (demo relay, test MTAs): the master.cf services it
//! needs, nothing chrooted, and stopping its master for good.

use std::{
    path::Path,
    time::{Duration, Instant},
};

/// master.cf lines after an instance's own `inet` listeners.
pub const MASTER_SERVICES: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
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
