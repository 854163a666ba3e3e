//! Which XDP program an interface runs, and in which mode, asked over rtnetlink (the kernel
//! reports it in the IFLA_XDP attribute of RTM_NEWLINK); and removing a foreign program that
//! was attached through netlink. aya exposes neither.

use std::{io, mem::size_of};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLM_F_ACK: u16 = 4;
const NLA_F_NESTED: u16 = 0x8000;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_FLAGS: u16 = 3;
const XDP_FLAGS_SKB_MODE: u32 = 2;
const XDP_FLAGS_DRV_MODE: u32 = 4;
const XDP_FLAGS_HW_MODE: u32 = 8;
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
    let reply = transact(&link_message(RTM_GETLINK, NLM_F_REQUEST, ifindex, &[]))?;
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
pub(super) fn attributes(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
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

/// Detaches whatever XDP program is attached through netlink in `mode` (as `xdp_state`
/// reports it). Fails with EBUSY when the program holds the hook through a bpf_link, which only
/// its owner can release.
pub fn detach_xdp(ifindex: u32, mode: Option<&str>) -> io::Result<()> {
    let modes: &[u32] = match mode {
        Some("skb") => &[XDP_FLAGS_SKB_MODE],
        Some("hw") => &[XDP_FLAGS_HW_MODE],
        Some("multi") => &[XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE],
        _ => &[XDP_FLAGS_DRV_MODE],
    };
    for flags in modes {
        let mut xdp = Vec::new();
        push_attribute(&mut xdp, IFLA_XDP_FD, &(-1i32).to_ne_bytes());
        push_attribute(&mut xdp, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
        let mut attrs = Vec::new();
        push_attribute(&mut attrs, IFLA_XDP | NLA_F_NESTED, &xdp);
        transact(&link_message(
            RTM_SETLINK,
            NLM_F_REQUEST | NLM_F_ACK,
            ifindex,
            &attrs,
        ))?;
    }
    Ok(())
}

pub(super) fn push_attribute(buffer: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buffer.extend_from_slice(&(len as u16).to_ne_bytes());
    buffer.extend_from_slice(&kind.to_ne_bytes());
    buffer.extend_from_slice(payload);
    buffer.resize((buffer.len() + 3) & !3, 0);
}

/// A netlink message with an ifinfomsg for `ifindex` followed by `attrs`.
fn link_message(kind: u16, flags: u16, ifindex: u32, attrs: &[u8]) -> Vec<u8> {
    let total = (NLMSG_HEADER + IFINFOMSG + attrs.len()) as u32;
    let mut message = Vec::with_capacity(total as usize);
    message.extend_from_slice(&total.to_ne_bytes());
    message.extend_from_slice(&kind.to_ne_bytes());
    message.extend_from_slice(&flags.to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    message.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    message.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    message.extend_from_slice(&0u16.to_ne_bytes()); // device type
    message.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes()); // flags
    message.extend_from_slice(&0u32.to_ne_bytes()); // change mask
    message.extend_from_slice(attrs);
    message
}

/// Sends one request and returns the reply: RTM_NEWLINK data, or an empty Vec for a
/// successful acknowledgement; a kernel error becomes the io::Error.
fn transact(request: &[u8]) -> io::Result<Vec<u8>> {
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
            if code == 0 {
                Ok(Vec::new())
            } else {
                Err(io::Error::from_raw_os_error(-code))
            }
        }
        other => Err(io::Error::other(format!(
            "unexpected netlink reply type {other}"
        ))),
    }
}
