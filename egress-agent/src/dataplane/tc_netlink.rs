//! The rtnetlink requests of the legacy TC attach that aya does not offer: listing the filters
//! of a clsact hook (to tell ours from foreign ones) and deleting the clsact qdisc. Attaching,
//! replacing and deleting our filter go through aya.

use std::{io, mem::size_of};

use super::netlink::{attributes, push_attribute};

const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HEADER: usize = 16;
const TCMSG: usize = 20;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_TAG: u16 = 10;
const TCA_BPF_ID: u16 = 11;

/// The clsact qdisc's parent handle (`ffff:fff1`).
pub const CLSACT: u32 = 0xffff_fff1;
/// The clsact hooks (`ffff:fff2`, `ffff:fff3`).
pub const CLSACT_INGRESS: u32 = 0xffff_fff2;
pub const CLSACT_EGRESS: u32 = 0xffff_fff3;

/// One filter on a clsact hook, as the kernel reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub priority: u16,
    pub handle: u32,
    /// `bpf`, `u32`, `flower`, ...
    pub kind: String,
    /// cls_bpf only: the program's name, id and tag.
    pub bpf_name: String,
    pub prog_id: u32,
    pub tag: String,
}

impl Filter {
    /// How `status` and the log name it.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "prio {} handle {:#x} {}",
            self.priority, self.handle, self.kind
        );
        if self.kind == "bpf" {
            text += &format!(" {} id {} tag {}", self.bpf_name, self.prog_id, self.tag);
        }
        text
    }
}

/// The filters on one clsact hook (`CLSACT_EGRESS` or `CLSACT_INGRESS`); empty when the
/// interface has no clsact qdisc.
pub fn filters(ifindex: u32, parent: u32) -> io::Result<Vec<Filter>> {
    let request = tc_message(
        RTM_GETTFILTER,
        NLM_F_REQUEST | NLM_F_DUMP,
        ifindex,
        0,
        parent,
        &[],
    );
    let replies = match exchange(&request) {
        Ok(replies) => replies,
        // No qdisc at this parent: nothing attached.
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    Ok(replies
        .iter()
        .filter(|(kind, _)| *kind == RTM_NEWTFILTER)
        .filter_map(|(_, body)| parse_filter(body))
        // The kernel also lists each priority's classifier itself, with handle 0.
        .filter(|filter| filter.handle != 0)
        .collect())
}

/// Parses the body (after the netlink header) of an RTM_NEWTFILTER message.
pub fn parse_filter(body: &[u8]) -> Option<Filter> {
    let header = body.get(..TCMSG)?;
    let word = |at: usize| {
        u32::from_ne_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let mut filter = Filter {
        handle: word(8),
        priority: (word(16) >> 16) as u16,
        ..Filter::default()
    };
    for (kind, payload) in attributes(&body[TCMSG..]) {
        match kind {
            TCA_KIND => filter.kind = c_string(payload),
            TCA_OPTIONS => {
                for (option, value) in attributes(payload) {
                    match option {
                        TCA_BPF_NAME => filter.bpf_name = c_string(value),
                        TCA_BPF_ID if value.len() >= 4 => {
                            filter.prog_id =
                                u32::from_ne_bytes([value[0], value[1], value[2], value[3]])
                        }
                        TCA_BPF_TAG => {
                            filter.tag = value.iter().map(|b| format!("{b:02x}")).collect()
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(filter)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Deletes the clsact qdisc of `ifindex` (and with it every filter on it).
pub fn delete_clsact(ifindex: u32) -> io::Result<()> {
    let mut attrs = Vec::new();
    push_attribute(&mut attrs, TCA_KIND, b"clsact\0");
    let request = tc_message(
        RTM_DELQDISC,
        NLM_F_REQUEST | NLM_F_ACK,
        ifindex,
        0,
        CLSACT,
        &attrs,
    );
    exchange(&request).map(drop)
}

/// A netlink message with a tcmsg followed by `attrs`.
pub fn tc_message(
    kind: u16,
    flags: u16,
    ifindex: u32,
    handle: u32,
    parent: u32,
    attrs: &[u8],
) -> Vec<u8> {
    let total = (NLMSG_HEADER + TCMSG + attrs.len()) as u32;
    let mut message = Vec::with_capacity(total as usize);
    message.extend_from_slice(&total.to_ne_bytes());
    message.extend_from_slice(&kind.to_ne_bytes());
    message.extend_from_slice(&flags.to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    message.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    message.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    message.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    message.extend_from_slice(&handle.to_ne_bytes());
    message.extend_from_slice(&parent.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes()); // info: any priority and protocol
    message.extend_from_slice(attrs);
    message
}

/// Sends one request; returns (type, body) of every reply message up to NLMSG_DONE or the
/// acknowledgement. A kernel error becomes the io::Error.
fn exchange(request: &[u8]) -> io::Result<Vec<(u16, Vec<u8>)>> {
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
    let mut replies = Vec::new();
    let mut buffer = vec![0u8; 65536];
    loop {
        // SAFETY: the buffer is valid for its full length.
        let received = unsafe { libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), 0) };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut rest = &buffer[..received as usize];
        while rest.len() >= NLMSG_HEADER {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            if len < NLMSG_HEADER || len > rest.len() {
                return Err(io::Error::other("malformed netlink reply"));
            }
            let body = &rest[NLMSG_HEADER..len];
            match kind {
                NLMSG_DONE => return Ok(replies),
                NLMSG_ERROR => {
                    let code = body
                        .get(..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(-libc::EIO);
                    return if code == 0 {
                        Ok(replies)
                    } else {
                        Err(io::Error::from_raw_os_error(-code))
                    };
                }
                _ => replies.push((kind, body.to_vec())),
            }
            rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_cls_bpf_filter_dump_entry() {
        let mut options = Vec::new();
        push_attribute(&mut options, TCA_BPF_NAME, b"egress_tc\0");
        push_attribute(&mut options, TCA_BPF_ID, &42u32.to_ne_bytes());
        push_attribute(&mut options, TCA_BPF_TAG, &[0xab, 0xcd, 0, 1, 2, 3, 4, 5]);
        let mut attrs = Vec::new();
        push_attribute(&mut attrs, TCA_KIND, b"bpf\0");
        push_attribute(&mut attrs, TCA_OPTIONS | 0x8000, &options);
        let message = tc_message(RTM_NEWTFILTER, 0, 7, 0x25, CLSACT_EGRESS, &attrs);
        let mut body = message[NLMSG_HEADER..].to_vec();
        // The kernel puts priority << 16 | protocol into tcm_info.
        body[16..20].copy_from_slice(&((1u32 << 16) | 0x0300).to_ne_bytes());
        let filter = parse_filter(&body).expect("a filter");
        assert_eq!(
            filter,
            Filter {
                priority: 1,
                handle: 0x25,
                kind: "bpf".into(),
                bpf_name: "egress_tc".into(),
                prog_id: 42,
                tag: "abcd000102030405".into(),
            }
        );
        assert_eq!(
            filter.describe(),
            "prio 1 handle 0x25 bpf egress_tc id 42 tag abcd000102030405"
        );
        assert_eq!(parse_filter(&body[..10]), None, "truncated header");
    }
}
