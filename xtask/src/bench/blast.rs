//! A bounded AF_PACKET sender: pushes prebuilt frames out of one interface with `sendmmsg`
//! until a deadline or a packet budget, whichever comes first.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

const BATCH: usize = 64;
const PACKET_QDISC_BYPASS: libc::c_int = 20;

/// Sends `frames` round-robin on `ifname` (in the calling thread's network namespace).
/// Returns how many the kernel accepted.
pub fn blast(ifname: &str, frames: &[Vec<u8>], until: Instant, budget: u64) -> Result<u64> {
    if frames.is_empty() {
        bail!("nothing to send on {ifname}");
    }
    let socket = packet_socket(ifname)?;
    let mut iovecs: Vec<libc::iovec> = vec![
        libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0
        };
        BATCH
    ];
    // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
    let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let (mut sent, mut next) = (0u64, 0usize);
    while sent < budget && Instant::now() < until {
        for (iovec, header) in iovecs.iter_mut().zip(headers.iter_mut()) {
            let frame = &frames[next % frames.len()];
            next += 1;
            *iovec = libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            };
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: headers point at iovecs that point at frames, all alive for the call.
        let rc =
            unsafe { libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), BATCH as u32, 0) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR) => continue,
                _ => return Err(err).with_context(|| format!("sendmmsg on {ifname}")),
            }
        }
        sent += rc as u64;
    }
    Ok(sent)
}

fn packet_socket(ifname: &str) -> Result<OwnedFd> {
    let name = CString::new(ifname).with_context(|| format!("interface name {ifname:?}"))?;
    // SAFETY: plain libc calls with valid arguments; the fd is owned right away.
    unsafe {
        let ifindex = libc::if_nametoindex(name.as_ptr());
        if ifindex == 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("no interface {ifname}"));
        }
        // Protocol 0: transmit only, the socket receives nothing.
        let raw = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if raw < 0 {
            return Err(io::Error::last_os_error()).context("AF_PACKET socket");
        }
        let socket = OwnedFd::from_raw_fd(raw);
        let mut address: libc::sockaddr_ll = std::mem::zeroed();
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = ifindex as i32;
        let rc = libc::bind(
            raw,
            (&raw const address).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        if rc != 0 {
            return Err(io::Error::last_os_error()).with_context(|| format!("binding to {ifname}"));
        }
        let on: libc::c_int = 1;
        // Best effort: without it the frames only pass veth's noqueue qdisc.
        libc::setsockopt(
            raw,
            libc::SOL_PACKET,
            PACKET_QDISC_BYPASS,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
        Ok(socket)
    }
}
