//! `status`.

use super::{CliError, ListArgs, decode, print_json, request, table};
use crate::control::{Request, protocol::StatusView};

pub fn status(list: &ListArgs) -> Result<(), CliError> {
    let view: StatusView = decode(request(&list.socket, &Request::Status {})?)?;
    if list.json {
        return print_json(&view);
    }
    let agent = &view.agent;
    println!("version: {}", agent.version);
    println!("mode: {}", format!("{:?}", agent.mode).to_lowercase());
    println!("pin dir: {}", agent.pin_dir);
    println!(
        "last config reload: {}",
        if agent.config_last_reload_successful {
            "ok"
        } else {
            "FAILED (previous config in force)"
        }
    );
    if !agent.kernel.is_empty() {
        println!("kernel: {}", agent.kernel);
    }
    for line in &agent.missing_kernel_features {
        println!("  {line}");
    }
    if let Some(fleet) = &agent.fleet {
        print_fleet(fleet);
    }
    println!();
    let attachments: Vec<Vec<String>> = agent
        .attachments
        .iter()
        .map(|a| {
            let state = match (a.attached, a.foreign_program) {
                (_, true) => "foreign program",
                (true, false) => "attached",
                (false, false) => "not attached",
            };
            let state = match a.foreign_filters.len() {
                0 => state.to_owned(),
                n => format!("{state} (+{n} foreign filter(s) kept)"),
            };
            vec![
                a.interface.clone(),
                a.hook.as_str().into(),
                a.mode.clone(),
                state,
                a.method.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(
            &["INTERFACE", "HOOK", "MODE", "STATE", "METHOD"],
            &attachments
        )
    );
    for a in &agent.attachments {
        for filter in &a.foreign_filters {
            println!(
                "foreign filter on {} {}: {filter}",
                a.interface,
                a.hook.as_str()
            );
        }
    }
    println!();
    let counters: Vec<Vec<String>> = view
        .counters
        .iter()
        .map(|(name, value)| vec![name.clone(), value.to_string()])
        .collect();
    println!("{}", table::render(&["COUNTER", "VALUE"], &counters));
    println!();
    let entries = agent.allowlist_entries;
    let fill = vec![
        vec![
            "subscribers".into(),
            format!("{} / {}", view.subscribers_tracked, agent.record_capacity()),
        ],
        vec!["allowlist relay".into(), entries.relay.to_string()],
        vec!["allowlist exempt".into(), entries.exempt.to_string()],
        vec![
            "allowlist destination".into(),
            entries.destination.to_string(),
        ],
    ];
    let fill = [fill, crate::inbound::status::fill_rows(agent)].concat();
    println!("{}", table::render(&["MAP", "FILL"], &fill));
    Ok(())
}

fn print_fleet(fleet: &crate::fleet::FleetStatus) {
    let state = if fleet.connected {
        "connected".to_owned()
    } else {
        format!(
            "DISCONNECTED, enforcing the last applied set ({})",
            fleet.last_error
        )
    };
    println!("fleet: {} at {}: {state}", fleet.key_prefix, fleet.endpoint);
    println!("  applied revision: {}", fleet.applied_revision);
    let last_sync = if fleet.last_sync.is_empty() {
        "never"
    } else {
        &fleet.last_sync
    };
    println!("  last sync: {last_sync}");
    println!("  sync errors: {}", fleet.sync_errors);
}
