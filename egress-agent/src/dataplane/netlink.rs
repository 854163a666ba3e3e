//! Which XDP program an interface runs, and in which mode, asked over rtnetlink (the kernel
//! reports it in the IFLA_XDP attribute of RTM_NEWLINK). aya does not expose this query.

use std::{io, mem::size_of};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HEADER: usize = 16;
const IFINFOMSG: usize = 16;

/// The XDP program an interface runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpState {
    /// 0 when no program is attached.
    pub prog_id: u32,
    /// `native`, `skb`, `hw` or `multi`; None when nothing is attached.
    pub mode: Option<&'static str>,
}

pub fn xdp_state(ifindex: u32) -> io::Result<XdpState> {
    let reply = request_link(ifindex)?;
    let mut state = XdpState::default();
    let attrs = reply.get(NLMSG_HEADER + IFINFOMSG..).unwrap_or(&[]);
    for (kind, payload) in attributes(attrs) {
        if kind != IFLA_XDP {
            continue;
        }
        for (inner, value) in attributes(payload) {
            match inner {
                IFLA_XDP_ATTACHED => {
                    state.mode = match value.first() {
                        Some(1) => Some("native"),
                        Some(2) => Some("skb"),
                        Some(3) => Some("hw"),
                        Some(4) => Some("multi"),
                        _ => None,
                    };
                }
                IFLA_XDP_PROG_ID if value.len() >= 4 => {
                    state.prog_id = u32::from_ne_bytes([value[0], value[1], value[2], value[3]]);
                }
                _ => {}
            }
        }
    }
    Ok(state)
}

/// Iterates over (type, payload) of netlink attributes.
fn attributes(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if bytes.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([bytes[0], bytes[1]]) as usize;
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > bytes.len() {
            return None;
        }
        let payload = &bytes[4..len];
        let advance = (len + 3) & !3;
        bytes = bytes.get(advance..).unwrap_or(&[]);
        Some((kind, payload))
    })
}

/// Sends RTM_GETLINK for one interface and returns the RTM_NEWLINK reply.
fn request_link(ifindex: u32) -> io::Result<Vec<u8>> {
    // SAFETY: plain socket creation; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);

    let total = (NLMSG_HEADER + IFINFOMSG) as u32;
    let mut request = Vec::with_capacity(total as usize);
    request.extend_from_slice(&total.to_ne_bytes());
    request.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    request.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    request.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    request.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    request.extend_from_slice(&0u16.to_ne_bytes()); // device type
    request.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes()); // flags
    request.extend_from_slice(&0u32.to_ne_bytes()); // change mask

    // SAFETY: zeroed sockaddr_nl addressed to the kernel; the buffer outlives the call.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    let sent = unsafe {
        libc::sendto(
            fd,
            request.as_ptr().cast(),
            request.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buffer = vec![0u8; 65536];
    // SAFETY: the buffer is valid for its full length.
    let received = unsafe { libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), 0) };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    buffer.truncate(received as usize);
    if buffer.len() < NLMSG_HEADER {
        return Err(io::Error::other("short netlink reply"));
    }
    let kind = u16::from_ne_bytes([buffer[4], buffer[5]]);
    match kind {
        RTM_NEWLINK => Ok(buffer),
        NLMSG_ERROR if buffer.len() >= NLMSG_HEADER + 4 => {
            let code = i32::from_ne_bytes([buffer[16], buffer[17], buffer[18], buffer[19]]);
            Err(io::Error::from_raw_os_error(-code))
        }
        other => Err(io::Error::other(format!(
            "unexpected netlink reply type {other}"
        ))),
    }
}
