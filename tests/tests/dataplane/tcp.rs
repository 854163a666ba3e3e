//! TCP: every flag combination to a blocked port is judged; header length corner cases; ports.

use crate::{Case, frames::*};
use tests::packet::{Tcp, flags::*};

/// Fast Open cookie option (kind 34) of 8 bytes.
const TFO_COOKIE: [u8; 10] = [34, 10, 1, 2, 3, 4, 5, 6, 7, 8];
/// MSS, SACK permitted, timestamps, window scale: a typical Linux SYN (data offset 10).
const SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];

pub fn cases() -> Vec<Case> {
    let to25 = || Tcp::syn(25);
    let mut rows = vec![
        Case::new(
            "SYN|ECE|CWR",
            tcp4(to25().flags(SYN | ECE | CWR)),
            DROP,
            DROPPED4,
        ),
        Case::new("SYN|ACK", tcp4(to25().flags(SYN | ACK)), DROP, DROPPED4),
        Case::new("ACK", tcp4(to25().flags(ACK)), DROP, DROPPED4),
        Case::new(
            "PSH|ACK with data",
            tcp4(to25().flags(PSH | ACK).payload(b"EHLO x\r\n")),
            DROP,
            DROPPED4,
        ),
        Case::new("RST", tcp4(to25().flags(RST)), DROP, DROPPED4),
        Case::new("FIN", tcp4(to25().flags(FIN)), DROP, DROPPED4),
        Case::new("FIN|ACK", tcp4(to25().flags(FIN | ACK)), DROP, DROPPED4),
        Case::new("no flags", tcp4(to25().flags(0)), DROP, DROPPED4),
        Case::new(
            "Fast Open SYN with data",
            tcp4(to25().options(&TFO_COOKIE).payload(b"EHLO bot\r\n")),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "SYN with options",
            tcp4(to25().options(&SYN_OPTIONS)),
            DROP,
            DROPPED4,
        ),
        Case::new("IPv6 ACK", tcp6(to25().flags(ACK)), DROP, DROPPED6),
        Case::new("IPv6 RST", tcp6(to25().flags(RST)), DROP, DROPPED6),
        Case::new(
            "IPv6 Fast Open SYN with data",
            tcp6(to25().options(&TFO_COOKIE).payload(b"EHLO bot\r\n")),
            DROP,
            DROPPED6,
        ),
        Case::new(
            "data offset 4 to 25",
            tcp4(to25().data_offset(4)),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "data offset 4 to 80 (port not certain)",
            tcp4(Tcp::syn(80).data_offset(4)),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "data offset 0",
            tcp4(to25().data_offset(0)),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "data offset past the end",
            tcp4(to25().data_offset(15)),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "IPv6 data offset 4",
            tcp6(to25().data_offset(4)),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "reply from a mail server (source port 25)",
            tcp4(Tcp::syn(40000).source_port(25).flags(SYN | ACK)),
            PASS,
            NONE,
        ),
    ];
    for port in [587, 465, 80, 24, 26, 2525, 443] {
        rows.push(Case::new(
            &format!("IPv4 SYN to {port}"),
            syn4(port),
            PASS,
            NONE,
        ));
    }
    for port in [587, 465] {
        rows.push(Case::new(
            &format!("IPv6 SYN to {port}"),
            syn6(port),
            PASS,
            NONE,
        ));
    }
    rows
}
