//! The rtnetlink requests aya does not offer, built and parsed with netlink-packet-route over
//! a blocking netlink-sys socket: which XDP program an interface runs and in which mode (the
//! IFLA_XDP attribute of RTM_NEWLINK), and removing a foreign program attached through
//! netlink. `request` is also what the legacy TC code (tc_netlink.rs) sends its messages with.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_MULTIPART, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{LinkAttribute, LinkMessage, LinkXdp, XdpAttached},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

const XDP_FLAGS_SKB_MODE: u32 = 2;
const XDP_FLAGS_DRV_MODE: u32 = 4;
const XDP_FLAGS_HW_MODE: u32 = 8;

/// The XDP program an interface runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpState {
    /// 0 when no program is attached.
    pub prog_id: u32,
    /// `native`, `skb`, `hw` or `multi`; None when nothing is attached.
    pub mode: Option<&'static str>,
}

fn link_message(ifindex: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = ifindex;
    message.attributes = attributes;
    message
}

pub fn xdp_state(ifindex: u32) -> io::Result<XdpState> {
    let replies = request(
        RouteNetlinkMessage::GetLink(link_message(ifindex, vec![])),
        0,
    )?;
    let mut state = XdpState::default();
    for reply in replies {
        let RouteNetlinkMessage::NewLink(link) = reply else {
            continue;
        };
        for attribute in link.attributes {
            let LinkAttribute::Xdp(xdp) = attribute else {
                continue;
            };
            for item in xdp {
                match item {
                    LinkXdp::Attached(attached) => {
                        state.mode = match attached {
                            XdpAttached::Driver => Some("native"),
                            XdpAttached::SocketBuffer => Some("skb"),
                            XdpAttached::Hardware => Some("hw"),
                            XdpAttached::Multiple => Some("multi"),
                            _ => None,
                        }
                    }
                    LinkXdp::ProgId(id) => state.prog_id = id,
                    _ => {}
                }
            }
        }
    }
    Ok(state)
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
    for &flags in modes {
        let xdp = LinkAttribute::Xdp(vec![LinkXdp::Fd(-1), LinkXdp::Flags(flags)]);
        let message = RouteNetlinkMessage::SetLink(link_message(ifindex, vec![xdp]));
        request(message, NLM_F_ACK)?;
    }
    Ok(())
}

/// Sends one request (NLM_F_REQUEST plus `flags`) on a fresh socket and returns the kernel's
/// messages: every part of a dump up to NLMSG_DONE, the single reply of a get, or nothing for
/// an acknowledgement. A kernel error becomes the io::Error (its errno).
pub fn request(message: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(message));
    packet.header.flags = NLM_F_REQUEST | flags;
    packet.header.sequence_number = 1;
    packet.finalize();
    let mut buffer = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buffer);
    socket.send(&buffer, 0)?;

    let mut replies = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        let mut rest = datagram.as_slice();
        while !rest.is_empty() {
            let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
                .map_err(|err| io::Error::other(format!("malformed rtnetlink reply: {err}")))?;
            let length = reply.header.length as usize;
            let multipart = reply.header.flags & NLM_F_MULTIPART != 0;
            match reply.payload {
                NetlinkPayload::Done(_) => return Ok(replies),
                NetlinkPayload::Error(error) => {
                    return match error.code {
                        None => Ok(replies),
                        Some(_) => Err(error.to_io()),
                    };
                }
                NetlinkPayload::InnerMessage(inner) => {
                    replies.push(inner);
                    if !multipart {
                        return Ok(replies);
                    }
                }
                _ => {}
            }
            if length == 0 || length > rest.len() {
                break;
            }
            rest = rest.get((length + 3) & !3..).unwrap_or(&[]);
        }
    }
}
