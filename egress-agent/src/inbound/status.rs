//! The inbound lines of `status`: the lists' fill and the interfaces carrying the inbound rules.

use egress_common::inbound::LIST_CAPACITY;

use crate::{config::Hook, status::AgentStatus};

/// Rows for the MAP / FILL table.
pub fn fill_rows(agent: &AgentStatus) -> Vec<Vec<String>> {
    let entries = agent.allowlist_entries;
    let carriers: Vec<&str> = agent
        .attachments
        .iter()
        .filter(|a| a.hook == Hook::XdpInbound && a.attached)
        .map(|a| a.interface.as_str())
        .collect();
    vec![
        vec![
            "inbound protected_mx".into(),
            format!("{} / {}", entries.protected_mx, 2 * LIST_CAPACITY),
        ],
        vec![
            "inbound mx_sender".into(),
            format!("{} / {}", entries.mx_sender, 2 * LIST_CAPACITY),
        ],
        vec![
            "inbound throttle destination".into(),
            format!("{} / {}", entries.throttle_destination, 2 * LIST_CAPACITY),
        ],
        vec![
            "inbound on".into(),
            if carriers.is_empty() {
                "(no interface)".into()
            } else {
                carriers.join(", ")
            },
        ],
    ]
}
