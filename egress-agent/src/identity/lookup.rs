//! "Who held this address at that time": indexed lookups, one per prefix length that any
//! session ever held (a handful), so the cost does not grow with the history.

use ipnet::IpNet;
use rusqlite::{Connection, params};

use super::{Session, sessions::network_key};
use crate::history::rfc3339_of_ms;

/// At most this many sessions per answer (overlapping sessions are rare; a NAS that never
/// sent Stop leaves some).
const MAX_SESSIONS: i64 = 8;

/// The sessions whose prefix contains `target` at `at_ms`, newest first.
pub fn sessions_at(conn: &Connection, target: IpNet, at_ms: i64) -> rusqlite::Result<Vec<Session>> {
    let (family, target_len, _) = network_key(&target);
    let lengths: Vec<i64> = conn
        .prepare_cached(
            "SELECT prefix_len FROM prefix_lengths WHERE family = ?1 AND prefix_len <= ?2
             ORDER BY prefix_len DESC",
        )?
        .query_map(params![family, target_len], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut found = Vec::new();
    for len in lengths {
        let Ok(covering) = truncate(target, len) else {
            continue;
        };
        let (_, _, network) = network_key(&covering);
        let mut statement = conn.prepare_cached(
            "SELECT s.id, s.acct_session_id, s.user_name, s.calling_station_id, s.nas_identifier,
                    s.nas_ip_address, s.nas_port_id, s.start_ms, s.updated_ms, s.end_ms, s.nas
             FROM session_addresses a JOIN sessions s ON s.id = a.session
             WHERE a.family = ?1 AND a.prefix_len = ?2 AND a.network = ?3 AND a.start_ms <= ?4
               AND (s.end_ms IS NULL OR s.end_ms >= ?4)
             ORDER BY a.start_ms DESC LIMIT ?5",
        )?;
        let rows =
            statement.query_map(params![family, len, network, at_ms, MAX_SESSIONS], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    Session {
                        acct_session_id: row.get(1)?,
                        user_name: row.get(2)?,
                        calling_station_id: row.get(3)?,
                        nas_identifier: row.get(4)?,
                        nas_ip_address: row.get(5)?,
                        nas_port_id: row.get(6)?,
                        start: rfc3339_of_ms(row.get(7)?),
                        updated: rfc3339_of_ms(row.get(8)?),
                        end: row.get::<_, Option<i64>>(9)?.map(rfc3339_of_ms),
                        nas: row.get(10)?,
                        ..Session::default()
                    },
                ))
            })?;
        for row in rows {
            let (id, mut session) = row?;
            if found.iter().any(|(seen, _)| *seen == id) {
                continue;
            }
            fill_addresses(conn, id, &mut session)?;
            found.push((id, session));
        }
    }
    found.sort_by(|a, b| b.1.start.cmp(&a.1.start));
    Ok(found.into_iter().map(|(_, session)| session).collect())
}

fn truncate(target: IpNet, len: i64) -> Result<IpNet, ipnet::PrefixLenError> {
    let len = u8::try_from(len).map_err(|_| ipnet::PrefixLenError)?;
    IpNet::new(target.addr(), len).map(|net| net.trunc())
}

fn fill_addresses(conn: &Connection, id: i64, session: &mut Session) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "SELECT kind, family, prefix_len, network FROM session_addresses WHERE session = ?1",
    )?;
    let rows = statement.query_map(params![id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, Vec<u8>>(3)?,
        ))
    })?;
    for row in rows {
        let (kind, family, len, network) = row?;
        let Some(text) = prefix_text(family, len, &network) else {
            continue;
        };
        match kind.as_str() {
            "framed_ip_address" => session.framed_ip_address = Some(text),
            "framed_ipv6_prefix" => session.framed_ipv6_prefix = Some(text),
            "delegated_ipv6_prefix" => session.delegated_ipv6_prefix = Some(text),
            "framed_ipv6_address" => session.framed_ipv6_address = Some(text),
            _ => {}
        }
    }
    Ok(())
}

/// `100.64.0.7` for a host, `2001:db8:1:2::/64` for a prefix.
fn prefix_text(family: i64, len: i64, network: &[u8]) -> Option<String> {
    let len = u8::try_from(len).ok()?;
    let net = match family {
        4 => IpNet::new(<[u8; 4]>::try_from(network).ok()?.into(), len).ok()?,
        _ => IpNet::new(<[u8; 16]>::try_from(network).ok()?.into(), len).ok()?,
    };
    Some(if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    })
}
