//! `subscriber ADDR`.

use std::net::IpAddr;

use super::{CliError, ListArgs, decode, print_json, request, table, yes_no};
use crate::{control::Request, telemetry::SubscriberView};

pub fn subscriber(address: &str, list: &ListArgs) -> Result<(), CliError> {
    let parsed: IpAddr = address
        .trim()
        .parse()
        .map_err(|_| CliError::Invalid(format!("`{address}` is not an IP address")))?;
    let view: SubscriberView = decode(request(
        &list.socket,
        &Request::Subscriber {
            address: parsed.to_string(),
        },
    )?)?;
    if list.json {
        return print_json(&view);
    }
    let rows = vec![
        vec!["subscriber".into(), view.subscriber.clone()],
        vec!["attempts".into(), view.attempts.to_string()],
        vec!["packets".into(), view.packets.to_string()],
        vec!["bytes".into(), view.bytes.to_string()],
        vec![
            "distinct_destinations".into(),
            view.distinct_destinations.to_string(),
        ],
        vec!["first_seen".into(), view.first_seen.clone()],
        vec!["last_seen".into(), view.last_seen.clone()],
        vec!["suspected_bot".into(), yes_no(view.suspected_bot)],
        vec![
            "identity".into(),
            super::who::identity_cell(view.identity.as_ref(), None),
        ],
    ];
    let mut rows = rows;
    if let Some(now) = &view.identity_now {
        rows.push(vec!["identity_now".into(), now.summary()]);
    }
    println!("{}", table::render(&["FIELD", "VALUE"], &rows));
    Ok(())
}
