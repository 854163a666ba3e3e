//! Spoofed traffic through the lab: TCP SYNs with forged sources written straight onto the
//! subscriber's veth with an AF_PACKET socket (the subscriber's IP stack would refuse them),
//! addressed to the router's MAC so they take the real path through XDP; and a packet-socket
//! counter on the internet side that sees whatever the router forwarded.

use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use super::Lab;
use crate::{
    netns::{Netns, exec_ok, in_netns},
    packet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, Eth, Ipv4, Ipv6, PROTO_TCP, Tcp},
};

/// A distinct source in 100.64.0.0/10 (shared address space, as behind a CGNAT) per `n`.
pub fn ipv4_source(n: u32) -> [u8; 4] {
    assert!(n < (1 << 22) - 2, "100.64.0.0/10 has no host number {n}");
    (0x6440_0000 | (n + 1)).to_be_bytes()
}

/// An address in its own /64 of 2001:db8::/32 per `n`, so /64 aggregation cannot fold them.
pub fn ipv6_source(n: u32) -> [u8; 16] {
    let mut address = [0u8; 16];
    address[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    address[4..8].copy_from_slice(&n.to_be_bytes());
    address[15] = 1;
    address
}

/// The MAC address of `interface` in `ns`.
pub fn mac_of(ns: &Netns, interface: &str) -> [u8; 6] {
    let out = exec_ok(ns, &["ip", "-j", "link", "show", "dev", interface]);
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j link");
    let text = links[0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no MAC address for {interface} in {}", ns.name()));
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex MAC byte"))
        .collect();
    bytes.try_into().expect("six-byte MAC")
}

/// An AF_PACKET socket bound to one interface of one namespace.
pub struct PacketSocket {
    fd: OwnedFd,
    interface: String,
}

impl PacketSocket {
    /// Opens it inside `ns` (the socket stays in that namespace); `protocol` 0 receives
    /// nothing, `ETH_P_ALL` everything.
    pub fn open(ns: &Netns, interface: &str, protocol: u16) -> PacketSocket {
        let fd = in_netns(ns, || {
            let name = std::ffi::CString::new(interface).expect("interface name");
            // SAFETY: if_nametoindex reads a NUL-terminated string.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert_ne!(ifindex, 0, "no interface {interface} in {}", ns.name());
            let protocol = protocol.to_be();
            // SAFETY: plain socket(2); the fd is owned right away.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
            assert!(
                raw >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: raw is a fresh, valid descriptor.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: sockaddr_ll is plain old data; zero is a valid start.
            let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            address.sll_family = libc::AF_PACKET as u16;
            address.sll_protocol = protocol;
            address.sll_ifindex = i32::try_from(ifindex).expect("ifindex fits i32");
            // SAFETY: address is a valid sockaddr_ll of the given length.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const address).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(
                rc,
                0,
                "bind to {interface}: {}",
                std::io::Error::last_os_error()
            );
            fd
        });
        PacketSocket {
            fd,
            interface: interface.to_owned(),
        }
    }

    /// Writes one frame; a full device queue (ENOBUFS) is waited out, so every frame goes out
    /// exactly once. Returns how many times it had to wait.
    pub fn send(&self, frame: &[u8]) -> u32 {
        for waits in 0..10_000 {
            // SAFETY: frame is a valid buffer of its length.
            let sent =
                unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if sent == frame.len() as isize {
                return waits;
            }
            let err = std::io::Error::last_os_error();
            assert!(
                matches!(err.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)),
                "send on {}: {err}",
                self.interface
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        panic!("{} stayed full for 2 s", self.interface);
    }

    /// The next frame not sent by this host, or None after `timeout`.
    fn receive(&self, buffer: &mut [u8], timeout: Duration) -> Option<usize> {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&raw mut poll, 1, millis) } <= 0 {
            return None;
        }
        // SAFETY: sockaddr_ll is plain old data.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buffer and from are valid for the lengths given.
        let len = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                0,
                (&raw mut from).cast(),
                &raw mut from_len,
            )
        };
        let outgoing = from.sll_pkttype == libc::PACKET_OUTGOING;
        usize::try_from(len).ok().filter(|_| !outgoing)
    }
}

/// Writes spoofed TCP SYNs from the subscriber namespace to the router's subscriber-facing MAC.
pub struct Spoofer {
    socket: PacketSocket,
    router: [u8; 6],
    own: [u8; 6],
    /// How often a full device queue had to be waited out.
    pub waits: u64,
}

impl Spoofer {
    pub fn new(lab: &Lab) -> Spoofer {
        Spoofer {
            socket: PacketSocket::open(&lab.sub, &lab.sub_if, 0),
            router: mac_of(&lab.rtr, &lab.rtr_sub_if),
            own: mac_of(&lab.sub, &lab.sub_if),
            waits: 0,
        }
    }

    pub fn syn_v4(&mut self, source: [u8; 4], destination: [u8; 4], port: u16) {
        let mut frame = Eth::new().ipv4(Ipv4::new(source, destination).tcp(Tcp::syn(port)));
        // A correct header checksum, so a leaked packet would really be forwarded.
        frame[24..26].fill(0);
        let checksum = ipv4_header_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&checksum.to_be_bytes());
        self.send(frame);
    }

    pub fn syn_v6(&mut self, source: [u8; 16], destination: [u8; 16], port: u16) {
        self.send(Eth::new().ipv6(Ipv6::new(source, destination).tcp(Tcp::syn(port))));
    }

    fn send(&mut self, mut frame: Vec<u8>) {
        frame[..6].copy_from_slice(&self.router);
        frame[6..12].copy_from_slice(&self.own);
        self.waits += u64::from(self.socket.send(&frame));
    }
}

fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    !(((folded & 0xffff) + (folded >> 16)) as u16)
}

/// Counts TCP SYNs arriving on the internet side, per destination port, until finished.
pub struct SynTally {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(u16, u64)>>,
}

impl SynTally {
    /// Starts counting on the internet namespace's interface.
    pub fn start(lab: &Lab) -> SynTally {
        let socket = PacketSocket::open(&lab.net, &lab.net_if, libc::ETH_P_ALL as u16);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut counts: Vec<(u16, u64)> = Vec::new();
            let mut buffer = [0u8; 2048];
            while !stopping.load(Ordering::Relaxed) {
                let Some(len) = socket.receive(&mut buffer, Duration::from_millis(100)) else {
                    continue;
                };
                if let Some(port) = syn_port(&buffer[..len]) {
                    match counts.iter_mut().find(|(p, _)| *p == port) {
                        Some((_, count)) => *count += 1,
                        None => counts.push((port, 1)),
                    }
                }
            }
            counts
        });
        SynTally { stop, thread }
    }

    /// Stops counting; the number of SYNs seen to each port.
    pub fn finish(self) -> Vec<(u16, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("SYN tally thread panicked")
    }
}

/// The destination port of an untagged IPv4 or IPv6 (no extension headers) TCP SYN.
fn syn_port(frame: &[u8]) -> Option<u16> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let tcp = match ethertype {
        ETHERTYPE_IPV4 if *frame.get(23)? == PROTO_TCP => 14 + usize::from(frame[14] & 0x0f) * 4,
        ETHERTYPE_IPV6 if *frame.get(20)? == PROTO_TCP => 54,
        _ => return None,
    };
    let header = frame.get(tcp..tcp + 14)?;
    (header[13] & 0x02 != 0).then(|| u16::from_be_bytes([header[2], header[3]]))
}
