//! `top [-n N]`.

use super::{CliError, ListArgs, decode, print_json, request, table};
use crate::{control::Request, telemetry::SubscriberView};

pub fn top(n: usize, list: &ListArgs) -> Result<(), CliError> {
    let views: Vec<SubscriberView> = decode(request(&list.socket, &Request::Top { n })?)?;
    if list.json {
        return print_json(&views);
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.subscriber.clone(),
                v.attempts.to_string(),
                v.distinct_destinations.to_string(),
                v.last_seen.clone(),
                if v.suspected_bot {
                    "yes".into()
                } else {
                    "no".into()
                },
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(
            &[
                "SUBSCRIBER",
                "ATTEMPTS",
                "DISTINCT_DESTINATIONS",
                "LAST_SEEN",
                "SUSPECTED_BOT"
            ],
            &rows
        )
    );
    Ok(())
}
