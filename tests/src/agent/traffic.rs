//! Real TCP traffic through the lab: single connections, and a bounded stream of port-25 SYNs
//! counted on the internet side with a packet socket.

use std::{
    net::{IpAddr, SocketAddr, TcpListener},
    process::{Child, Stdio},
    time::Duration,
};

use socket2::{Domain, Socket, Type};

use super::{Lab, SERVER};
use crate::netns::{Netns, in_netns};

/// A port-25 listener in the internet namespace (the kernel completes handshakes).
pub fn smtp_listener(lab: &Lab) -> TcpListener {
    listener(lab, 25)
}

/// A TCP listener on `port` of the server in the internet namespace.
pub fn listener(lab: &Lab, port: u16) -> TcpListener {
    in_netns(&lab.net, || {
        TcpListener::bind((SERVER, port))
            .unwrap_or_else(|err| panic!("bind {SERVER}:{port} in the internet namespace: {err}"))
    })
}

/// Whether a TCP connection from `source` (in the subscriber namespace) to the server's
/// port 25 is established within 2 s.
pub fn connects(lab: &Lab, source: &str) -> bool {
    connects_to(lab, source, 25)
}

/// Whether a TCP connection from `source` to the server's `port` is established within 2 s.
pub fn connects_to(lab: &Lab, source: &str, port: u16) -> bool {
    connects_between(&lab.sub, source, SERVER, port)
}

/// Whether a TCP connection from `source` to `destination:port`, opened inside `ns`, is
/// established within 2 s.
pub fn connects_between(ns: &Netns, source: &str, destination: &str, port: u16) -> bool {
    let source: IpAddr = source.parse().expect("source address");
    let destination: IpAddr = destination.parse().expect("destination address");
    in_netns(ns, || {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .expect("bind source address");
        socket
            .connect_timeout(
                &SocketAddr::new(destination, port).into(),
                Duration::from_secs(2),
            )
            .is_ok()
    })
}

/// Counts TCP SYNs to port 25 arriving on `interface` in the internet namespace for
/// `seconds`; `finish` returns the count.
pub struct SynCounter(Child);

const COUNTER: &str = r#"
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.settimeout(0.2)
print("ready", flush=True)
end, syns = time.time() + float(sys.argv[2]), 0
while time.time() < end:
    try:
        frame, meta = s.recvfrom(4096)
    except socket.timeout:
        continue
    if meta[2] == 4 or len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        continue
    if len(sys.argv) > 3 and frame[26:30] != socket.inet_aton(sys.argv[3]):
        continue
    tcp = 14 + (frame[14] & 15) * 4
    if len(frame) >= tcp + 14 and struct.unpack("!H", frame[tcp+2:tcp+4])[0] == 25 and frame[tcp+13] & 2:
        syns += 1
print(syns, flush=True)
"#;

impl SynCounter {
    pub fn start(lab: &Lab, seconds: f64) -> SynCounter {
        let mut child = python(&lab.net, COUNTER, &[&lab.net_if, &seconds.to_string()]);
        wait_ready(&mut child, "SYN counter");
        SynCounter(child)
    }

    /// Like `start`, counting only SYNs from the IPv4 `source`.
    pub fn start_from(lab: &Lab, seconds: f64, source: &str) -> SynCounter {
        let args = [lab.net_if.as_str(), &seconds.to_string(), source];
        let mut child = python(&lab.net, COUNTER, &args);
        wait_ready(&mut child, "SYN counter");
        SynCounter(child)
    }

    pub fn finish(self) -> u64 {
        let text = printed(self.0);
        text.lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("SYN counter printed no count: {text:?}"))
    }
}

/// Opens non-blocking connections from the subscriber to port 25, one every 10 ms, for
/// `seconds` (each sends a SYN); `finish` returns how many were started.
pub struct SynStream(Child);

const SENDER: &str = r#"
import socket, sys, time
end, started, open_ = time.time() + float(sys.argv[3]), 0, []
while time.time() < end and started < 20000:
    s = socket.socket(); s.setblocking(False); s.bind((sys.argv[1], 0))
    try:
        s.connect((sys.argv[2], 25))
    except BlockingIOError:
        pass
    open_.append(s); started += 1
    if len(open_) > 100:
        open_.pop(0).close()
    time.sleep(0.01)
print(started, flush=True)
"#;

impl SynStream {
    pub fn start(lab: &Lab, source: &str, seconds: f64) -> SynStream {
        SynStream(python(
            &lab.sub,
            SENDER,
            &[source, SERVER, &seconds.to_string()],
        ))
    }

    pub fn finish(self) -> u64 {
        let text = printed(self.0);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("SYN stream printed no count: {text:?}"))
    }
}

/// `python3 -c SCRIPT ARGS...` inside `ns`, stdout piped.
fn python(ns: &Netns, script: &str, args: &[&str]) -> Child {
    ns.command("python3")
        .args(["-c", script])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start python3 (Debian package python3-scapy brings it)")
}

/// What `child` printed on stdout, once it exited.
fn printed(child: Child) -> String {
    let out = child.wait_with_output().expect("python3 output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_ready(child: &mut Child, what: &str) {
    use std::io::BufRead as _;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).expect("read ready line");
    assert_eq!(line.trim(), "ready", "{what} did not start");
    child.stdout = Some(reader.into_inner());
}
