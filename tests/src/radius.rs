//! FreeRADIUS's own `radclient` (Debian `freeradius-utils`) sending accounting to the agent,
//! with FreeRADIUS's dictionary, and raw datagrams for what no NAS would send.

use std::{
    net::UdpSocket,
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use crate::netns::{Netns, in_netns};

/// Sends one Accounting-Request with `attributes` (radclient's `Attr = value, ...` syntax)
/// from inside `ns` to `server` (`host:port`); returns radclient's result: success means an
/// Accounting-Response came back and its authenticator checked out under `secret`.
pub fn radclient(ns: &Netns, server: &str, secret: &str, attributes: &str, dir: &Path) -> Output {
    assert!(
        Path::new("/usr/bin/radclient").exists(),
        "radclient is missing: install freeradius-utils (cargo xtask setup)"
    );
    let file = dir.join(format!(
        "radclient-{}.txt",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::write(&file, format!("{attributes}\n")).expect("write radclient input");
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .args(["radclient", "-r", "1", "-t", "2", "-f"])
        .arg(&file)
        .args([server, "acct", secret])
        .output()
        .expect("cannot run radclient");
    let _ = std::fs::remove_file(&file);
    out
}

/// Like `radclient`, asserting that the agent answered.
pub fn radclient_ok(ns: &Netns, server: &str, secret: &str, attributes: &str, dir: &Path) {
    let out = radclient(ns, server, secret, attributes, dir);
    assert!(
        out.status.success(),
        "radclient got no valid Accounting-Response for `{attributes}`:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends raw datagrams from `ns`'s loopback to `server` (no answer expected).
pub fn send_raw(ns: &Netns, server: &str, datagrams: &[Vec<u8>]) {
    in_netns(ns, || {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        for datagram in datagrams {
            socket.send_to(datagram, server).expect("send");
        }
    });
}
