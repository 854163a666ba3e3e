use super::*;

const SECRET: &[u8] = b"testing123";

/// An Accounting-Request as a NAS signs it.
fn request(identifier: u8, attributes: &[(u8, Vec<u8>)], secret: &[u8]) -> Vec<u8> {
    let mut packet = vec![ACCOUNTING_REQUEST, identifier, 0, 0];
    packet.extend([0u8; 16]);
    for (kind, value) in attributes {
        packet.push(*kind);
        packet.push(u8::try_from(value.len() + 2).expect("short attribute"));
        packet.extend(value);
    }
    let len = u16::try_from(packet.len()).expect("short packet");
    packet[2..4].copy_from_slice(&len.to_be_bytes());
    let mut md5 = Md5::new();
    md5.update(&packet);
    md5.update(secret);
    let auth: [u8; 16] = md5.finalize().into();
    packet[4..20].copy_from_slice(&auth);
    packet
}

fn start_v6() -> Vec<(u8, Vec<u8>)> {
    vec![
        (attr::ACCT_STATUS_TYPE, 1u32.to_be_bytes().to_vec()),
        (attr::ACCT_SESSION_ID, b"sess-1".to_vec()),
        (attr::USER_NAME, b"alice@isp".to_vec()),
        (attr::NAS_IDENTIFIER, b"bng-1".to_vec()),
        (attr::FRAMED_IP_ADDRESS, vec![100, 64, 0, 7]),
        // 2001:db8:1:2::/64: only the 8 significant octets sent.
        (
            attr::FRAMED_IPV6_PREFIX,
            vec![0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2],
        ),
        (
            attr::DELEGATED_IPV6_PREFIX,
            vec![
                0, 56, 0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        (
            attr::EVENT_TIMESTAMP,
            1_800_000_000u32.to_be_bytes().to_vec(),
        ),
    ]
}

#[test]
fn decodes_a_signed_start_with_ipv4_and_ipv6() {
    let packet = request(7, &start_v6(), SECRET);
    let bytes = packet_bytes(&packet).expect("well formed");
    assert!(request_authentic(bytes, SECRET));
    let acct = decode(bytes).expect("decodes");
    assert_eq!(acct.status, Some(Status::Start));
    assert_eq!(acct.identifier, 7);
    assert_eq!(acct.acct_session_id.as_deref(), Some("sess-1"));
    assert_eq!(acct.user_name.as_deref(), Some("alice@isp"));
    assert_eq!(acct.framed_ip_address, Some(Ipv4Addr::new(100, 64, 0, 7)));
    assert_eq!(
        acct.framed_ipv6_prefix,
        Some("2001:db8:1:2::/64".parse().expect("net"))
    );
    assert_eq!(
        acct.delegated_ipv6_prefix,
        Some("2001:db8:9::/56".parse().expect("net"))
    );
    assert_eq!(acct.event_timestamp, Some(1_800_000_000));
}

#[test]
fn a_wrong_secret_or_a_changed_byte_fails_authentication() {
    let packet = request(1, &start_v6(), b"not-the-secret");
    assert!(!request_authentic(
        packet_bytes(&packet).expect("form"),
        SECRET
    ));
    let mut packet = request(1, &start_v6(), SECRET);
    let last = packet.len() - 1;
    packet[last] ^= 1;
    assert!(!request_authentic(
        packet_bytes(&packet).expect("form"),
        SECRET
    ));
}

#[test]
fn malformed_packets_are_refused_not_panicked_on() {
    let good = request(1, &start_v6(), SECRET);
    assert_eq!(packet_bytes(&good[..10]), Err(Malformed::Short(10)));
    // Truncated: the length field claims more than arrived.
    assert!(matches!(
        packet_bytes(&good[..good.len() - 3]),
        Err(Malformed::Length { .. })
    ));
    let mut access = good.clone();
    access[0] = 1;
    assert_eq!(packet_bytes(&access), Err(Malformed::Code(1)));
    // An attribute whose length runs past the end.
    let mut overrun = request(1, &[(attr::USER_NAME, b"x".to_vec())], SECRET);
    overrun[21] = 200;
    assert_eq!(decode(&overrun), Err(Malformed::Attribute(20)));
    let zero_len = {
        let mut p = request(1, &[(attr::USER_NAME, b"x".to_vec())], SECRET);
        p[21] = 0;
        p
    };
    assert_eq!(decode(&zero_len), Err(Malformed::Attribute(20)));
    let no_status = request(1, &[(attr::ACCT_SESSION_ID, b"s".to_vec())], SECRET);
    assert_eq!(decode(&no_status), Err(Malformed::Status));
    let bad_prefix = request(
        1,
        &[
            (attr::ACCT_STATUS_TYPE, 1u32.to_be_bytes().to_vec()),
            (attr::ACCT_SESSION_ID, b"s".to_vec()),
            (attr::FRAMED_IPV6_PREFIX, vec![0, 129, 0x20]),
        ],
        SECRET,
    );
    assert_eq!(
        decode(&bad_prefix),
        Err(Malformed::Value {
            kind: attr::FRAMED_IPV6_PREFIX
        })
    );
    // Every truncation and every single-byte corruption decodes or fails cleanly.
    for cut in 0..good.len() {
        if let Ok(bytes) = packet_bytes(&good[..cut]) {
            let _ = decode(bytes);
        }
    }
    for at in 0..good.len() {
        let mut bent = good.clone();
        bent[at] = bent[at].wrapping_add(0x55);
        if let Ok(bytes) = packet_bytes(&bent) {
            let _ = decode(bytes);
        }
    }
}

#[test]
fn accounting_on_needs_no_session_id() {
    let on = request(
        3,
        &[
            (attr::ACCT_STATUS_TYPE, 7u32.to_be_bytes().to_vec()),
            (attr::NAS_IP_ADDRESS, vec![192, 0, 2, 1]),
        ],
        SECRET,
    );
    let acct = decode(packet_bytes(&on).expect("form")).expect("decodes");
    assert_eq!(acct.status, Some(Status::AccountingOn));
    assert_eq!(
        acct.nas_ip_address,
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
    );
}

#[test]
fn the_response_authenticator_follows_rfc_2866() {
    let packet = request(9, &start_v6(), SECRET);
    let acct = decode(packet_bytes(&packet).expect("form")).expect("decodes");
    let reply = response(&acct, SECRET);
    assert_eq!(reply[..4], [ACCOUNTING_RESPONSE, 9, 0, 20]);
    let mut md5 = Md5::new();
    md5.update(&reply[..4]);
    md5.update(&packet[4..20]);
    md5.update(SECRET);
    let expected: [u8; 16] = md5.finalize().into();
    assert_eq!(reply[4..], expected);
}
