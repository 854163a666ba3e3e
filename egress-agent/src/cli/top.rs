//! `top [-n N]`.

use super::{CliError, ListArgs, decode, print_listing, request, yes_no};
use crate::{control::Request, telemetry::SubscriberView};

const HEADERS: [&str; 6] = [
    "SUBSCRIBER",
    "ATTEMPTS",
    "DISTINCT_DESTINATIONS",
    "LAST_SEEN",
    "SUSPECTED_BOT",
    "WHO",
];

pub fn top(n: usize, list: &ListArgs) -> Result<(), CliError> {
    let views: Vec<SubscriberView> = decode(request(&list.socket, &Request::Top { n })?)?;
    print_listing(&views, list.json, &HEADERS, |v| {
        vec![
            v.subscriber.clone(),
            v.attempts.to_string(),
            v.distinct_destinations.to_string(),
            v.last_seen.clone(),
            yes_no(v.suspected_bot),
            super::who::identity_cell(v.identity.as_ref(), v.identity_now.as_ref()),
        ]
    })
}
