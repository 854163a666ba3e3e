//! `reports [--since TIME]`.

use super::{CliError, ListArgs, decode, print_listing, request};
use crate::{control::Request, history::parse_rfc3339, notify::queue::ReportRow};

const HEADERS: [&str; 7] = [
    "FLAGGED_AT",
    "SUBSCRIBER",
    "WHO",
    "STATE",
    "ATTEMPTS",
    "DELIVERED_AT",
    "REPORT_ID",
];

pub fn reports(since: Option<String>, list: &ListArgs) -> Result<(), CliError> {
    if let Some(since) = &since {
        parse_rfc3339(since).map_err(CliError::Invalid)?;
    }
    let rows: Vec<ReportRow> = decode(request(&list.socket, &Request::Reports { since })?)?;
    if rows.is_empty() && !list.json {
        println!("no reports");
        return Ok(());
    }
    print_listing(&rows, list.json, &HEADERS, |r| {
        let who = r.report["identity"]["user_name"]
            .as_str()
            .unwrap_or("-")
            .to_owned();
        let state = match (&r.state[..], &r.last_error) {
            ("queued", Some(error)) => format!("queued ({error})"),
            _ => r.state.clone(),
        };
        vec![
            r.flagged_at.clone(),
            r.subscriber.clone(),
            who,
            state,
            r.attempts.to_string(),
            r.delivered_at.clone().unwrap_or_else(|| "-".to_owned()),
            r.report_id.clone(),
        ]
    })
}
