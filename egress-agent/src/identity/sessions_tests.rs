use super::*;
use crate::{history::History, identity::lookup::sessions_at};

fn acct(status: Status, session: &str, event: u32) -> Accounting {
    Accounting {
        status: Some(status),
        acct_session_id: Some(session.to_owned()),
        user_name: Some(format!("user-{session}")),
        nas_identifier: Some("bng-1".to_owned()),
        event_timestamp: Some(event),
        ..Accounting::default()
    }
}

fn sender() -> IpAddr {
    IpAddr::from([192, 0, 2, 1])
}

#[test]
fn sessions_open_refresh_close_and_answer_by_time_and_prefix() {
    let dir = std::env::temp_dir().join(format!("egress-sessions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let history = History::open(&dir).expect("open");
    let mut conn = history.connect().expect("connect");
    let mut start = acct(Status::Start, "a", 1000);
    start.framed_ip_address = Some([100, 64, 0, 7].into());
    start.delegated_ipv6_prefix = Some("2001:db8:9::/56".parse().expect("net"));
    let mut later = acct(Status::Start, "b", 3000);
    later.framed_ip_address = Some([100, 64, 0, 7].into());
    let run = |conn: &mut rusqlite::Connection, request: &Accounting| {
        let tx = conn.transaction().expect("tx");
        let applied = apply(&tx, request, sender(), 0).expect("apply");
        tx.commit().expect("commit");
        applied
    };
    assert_eq!(
        run(&mut conn, &start),
        Applied {
            outcome: Outcome::Stored,
            open_delta: 1
        }
    );
    assert_eq!(run(&mut conn, &start).outcome, Outcome::Duplicate);
    assert_eq!(
        run(&mut conn, &acct(Status::InterimUpdate, "a", 1500)).outcome,
        Outcome::Stored
    );
    assert_eq!(
        run(&mut conn, &acct(Status::Stop, "a", 2000)).open_delta,
        -1
    );
    assert_eq!(
        run(&mut conn, &acct(Status::Stop, "a", 2000)).outcome,
        Outcome::Duplicate
    );
    assert_eq!(
        run(&mut conn, &start).outcome,
        Outcome::Duplicate,
        "a Start retransmitted after its Stop"
    );
    run(&mut conn, &later);

    let host: IpNet = "100.64.0.7/32".parse().expect("net");
    let users = |conn: &rusqlite::Connection, at_s: i64, target: IpNet| -> Vec<String> {
        sessions_at(conn, target, at_s * 1000)
            .expect("lookup")
            .into_iter()
            .filter_map(|s| s.user_name)
            .collect()
    };
    assert_eq!(users(&conn, 1200, host), ["user-a"]);
    assert!(
        users(&conn, 2500, host).is_empty(),
        "between the two sessions"
    );
    assert_eq!(users(&conn, 4000, host), ["user-b"]);
    assert!(users(&conn, 500, host).is_empty());
    // A /64 subscriber inside the delegated /56; a /48 around it is not contained.
    assert_eq!(
        users(&conn, 1200, "2001:db8:9:5::/64".parse().expect("net")),
        ["user-a"]
    );
    assert!(users(&conn, 1200, "2001:db8::/32".parse().expect("net")).is_empty());
    let session = &sessions_at(&conn, host, 1_200_000).expect("lookup")[0];
    assert_eq!(session.framed_ip_address.as_deref(), Some("100.64.0.7"));
    assert_eq!(
        session.delegated_ipv6_prefix.as_deref(),
        Some("2001:db8:9::/56")
    );
    assert_eq!(session.end.as_deref(), Some("1970-01-01T00:33:20.000Z"));

    // Accounting-On from the NAS closes what it had open.
    let on = Accounting {
        status: Some(Status::AccountingOn),
        nas_identifier: Some("bng-1".to_owned()),
        event_timestamp: Some(5000),
        ..Accounting::default()
    };
    assert_eq!(run(&mut conn, &on).open_delta, -1);
    assert_eq!(count_open(&conn).expect("count"), 0);
    assert!(users(&conn, 6000, host).is_empty());

    let tx = conn.transaction().expect("tx");
    assert_eq!(prune(&tx, 4_000_000).expect("prune"), (1, 0));
    tx.commit().expect("commit");
    assert!(users(&conn, 1200, host).is_empty(), "pruned");
    assert_eq!(users(&conn, 4000, host), ["user-b"]);
    let _ = std::fs::remove_dir_all(&dir);
}
