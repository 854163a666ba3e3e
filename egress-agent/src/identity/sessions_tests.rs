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

#[test]
fn an_interim_update_that_changes_nothing_rewrites_its_row_once_an_hour() {
    let dir = std::env::temp_dir().join(format!("egress-interim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let history = History::open(&dir).expect("open");
    let mut conn = history.connect().expect("connect");
    let run = |conn: &mut rusqlite::Connection, request: &Accounting| {
        let tx = conn.transaction().expect("tx");
        let applied = apply(&tx, request, sender(), 0).expect("apply");
        tx.commit().expect("commit");
        applied.outcome
    };
    let updated = |conn: &rusqlite::Connection| -> (i64, Option<String>) {
        conn.query_row(
            "SELECT updated_ms, calling_station_id FROM sessions",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("row")
    };
    let with_address = |status, event| {
        let mut request = acct(status, "a", event);
        request.framed_ip_address = Some([100, 64, 0, 9].into());
        request
    };
    run(&mut conn, &with_address(Status::Start, 10_000));
    // Same address and identity, 59 minutes later: heard, the row left as it is.
    assert_eq!(
        run(&mut conn, &with_address(Status::InterimUpdate, 13_540)),
        Outcome::Stored
    );
    assert_eq!(updated(&conn), (10_000_000, None));
    // An hour after the stored `updated`: the row is rewritten.
    run(&mut conn, &with_address(Status::InterimUpdate, 13_600));
    assert_eq!(updated(&conn), (13_600_000, None));
    // A changed attribute is written at once.
    let mut changed = with_address(Status::InterimUpdate, 13_700);
    changed.calling_station_id = Some("00:11:22:33:44:55".to_owned());
    run(&mut conn, &changed);
    assert_eq!(
        updated(&conn),
        (13_700_000, Some("00:11:22:33:44:55".to_owned()))
    );
    // So is a new address, and the session is found by it.
    let mut moved = with_address(Status::InterimUpdate, 13_800);
    moved.framed_ip_address = Some([100, 64, 0, 10].into());
    run(&mut conn, &moved);
    assert_eq!(updated(&conn).0, 13_800_000);
    let found = sessions_at(&conn, "100.64.0.10/32".parse().expect("net"), 13_900_000);
    assert_eq!(found.expect("lookup").len(), 1);
    // A Stop always closes, however recent the last write.
    run(&mut conn, &with_address(Status::Stop, 13_810));
    assert_eq!(count_open(&conn).expect("count"), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
