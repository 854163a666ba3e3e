//! `who ADDR [--at TIME]`.

use super::{CliError, ListArgs, decode, print_listing, request};
use crate::{control::Request, history::parse_rfc3339, identity::Session};

const HEADERS: [&str; 8] = [
    "USER",
    "CALLING_STATION",
    "NAS",
    "NAS_PORT",
    "SESSION",
    "ADDRESSES",
    "START",
    "END",
];

pub fn who(address: &str, at: Option<String>, list: &ListArgs) -> Result<(), CliError> {
    if let Some(at) = &at {
        parse_rfc3339(at).map_err(CliError::Invalid)?;
    }
    let sessions: Vec<Session> = decode(request(
        &list.socket,
        &Request::Who {
            address: address.trim().to_owned(),
            at: at.clone(),
        },
    )?)?;
    if sessions.is_empty() && !list.json {
        let when = at.unwrap_or_else(crate::clock::now_rfc3339);
        println!("no session known for {} at {when}", address.trim());
        return Ok(());
    }
    print_listing(&sessions, list.json, &HEADERS, |s| {
        vec![
            dash(s.user_name.as_deref()),
            dash(s.calling_station_id.as_deref()),
            s.nas.clone(),
            dash(s.nas_port_id.as_deref()),
            s.acct_session_id.clone(),
            addresses(s),
            s.start.clone(),
            s.end.clone().unwrap_or_else(|| "open".to_owned()),
        ]
    })
}

fn dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

fn addresses(session: &Session) -> String {
    let all: Vec<&str> = [
        &session.framed_ip_address,
        &session.framed_ipv6_prefix,
        &session.delegated_ipv6_prefix,
        &session.framed_ipv6_address,
    ]
    .into_iter()
    .filter_map(|a| a.as_deref())
    .collect();
    if all.is_empty() {
        "-".to_owned()
    } else {
        all.join(",")
    }
}

/// One table cell for a subscriber's identity: the user then, and `now:` someone else.
pub fn identity_cell(then: Option<&Session>, now: Option<&Session>) -> String {
    let user = |s: &Session| {
        s.user_name
            .clone()
            .unwrap_or_else(|| s.acct_session_id.clone())
    };
    let mut cell = then.map_or_else(|| "-".to_owned(), user);
    if let Some(now) = now {
        cell += &format!(" (now: {})", user(now));
    }
    cell
}
