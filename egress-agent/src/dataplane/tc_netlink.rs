//! The rtnetlink requests of the legacy TC attach that aya does not offer: listing the filters
//! of a clsact hook (to tell ours from foreign ones) and deleting the clsact qdisc, as
//! netlink-packet-route messages. Adding the qdisc and attaching, replacing and deleting our
//! filter go through aya.

use std::io;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcFilterBpfOption, TcMessage, TcOption},
};

use super::netlink::request;

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

fn tc_message(ifindex: u32, parent: u32, attributes: Vec<TcAttribute>) -> TcMessage {
    let mut message = TcMessage::with_index(ifindex as i32);
    message.header.parent = parent.into();
    message.attributes = attributes;
    message
}

/// The filters on one clsact hook (`CLSACT_EGRESS` or `CLSACT_INGRESS`); empty when the
/// interface has no clsact qdisc.
pub fn filters(ifindex: u32, parent: u32) -> io::Result<Vec<Filter>> {
    let dump = RouteNetlinkMessage::GetTrafficFilter(tc_message(ifindex, parent, vec![]));
    let replies = match request(dump, NLM_F_DUMP) {
        Ok(replies) => replies,
        // No qdisc at this parent: nothing attached.
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewTrafficFilter(message) => Some(filter(message)),
            _ => None,
        })
        // The kernel also lists each priority's classifier itself, with handle 0.
        .filter(|filter| filter.handle != 0)
        .collect())
}

/// Our view of one RTM_NEWTFILTER message.
pub fn filter(message: TcMessage) -> Filter {
    let mut filter = Filter {
        handle: message.header.handle.into(),
        // tcm_info holds priority << 16 | protocol.
        priority: (message.header.info >> 16) as u16,
        ..Filter::default()
    };
    for attribute in message.attributes {
        match attribute {
            TcAttribute::Kind(kind) => filter.kind = kind,
            TcAttribute::Options(options) => {
                for option in options {
                    match option {
                        TcOption::Bpf(TcFilterBpfOption::ProgName(name)) => filter.bpf_name = name,
                        TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => filter.prog_id = id,
                        TcOption::Bpf(TcFilterBpfOption::ProgTag(tag)) => {
                            filter.tag = tag.iter().map(|b| format!("{b:02x}")).collect()
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    filter
}

/// Deletes the clsact qdisc of `ifindex` (and with it every filter on it).
pub fn delete_clsact(ifindex: u32) -> io::Result<()> {
    let kind = TcAttribute::Kind("clsact".into());
    let message = RouteNetlinkMessage::DelQueueDiscipline(tc_message(ifindex, CLSACT, vec![kind]));
    request(message, NLM_F_ACK).map(drop)
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};

    use super::*;

    #[test]
    fn reads_a_cls_bpf_filter_from_its_wire_form() {
        let options = vec![
            TcOption::Bpf(TcFilterBpfOption::ProgName("egress_tc".into())),
            TcOption::Bpf(TcFilterBpfOption::ProgId(42)),
            TcOption::Bpf(TcFilterBpfOption::ProgTag([0xab, 0xcd, 0, 1, 2, 3, 4, 5])),
        ];
        let mut message = tc_message(
            7,
            CLSACT_EGRESS,
            vec![
                TcAttribute::Kind("bpf".into()),
                TcAttribute::Options(options),
            ],
        );
        message.header.handle = 0x25.into();
        message.header.info = (1 << 16) | 0x0300;
        // Through the wire format and back, as the kernel's dump arrives.
        let mut packet = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::from(RouteNetlinkMessage::NewTrafficFilter(message)),
        );
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).expect("parses");
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewTrafficFilter(message)) =
            parsed.payload
        else {
            panic!("not a filter: {parsed:?}");
        };
        let filter = filter(message);
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
    }
}
