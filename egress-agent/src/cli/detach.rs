//! `detach`: the explicit way to stop enforcing. Works with or without a running agent: a
//! running agent is asked to remove everything and exit (it holds the programs open); then
//! whatever is left under the pin directory is removed here.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use clap::Args;

use super::CliError;
use crate::{
    control::{
        Request,
        client::{self, ClientError},
    },
    dataplane::teardown,
    paths::{self, PinLayout},
};

/// How long to wait for a detaching agent to exit (its exit frees the programs).
const AGENT_EXIT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Take pin_dir and control.socket from this config file.
    #[arg(long, conflicts_with = "pin_dir")]
    pub config: Option<PathBuf>,
    /// The pin directory to clear (default /sys/fs/bpf/egress).
    #[arg(long)]
    pub pin_dir: Option<PathBuf>,
    /// The agent's control socket (default: from --config, else /run/egress/egress.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

pub fn detach(args: &DetachArgs) -> Result<(), CliError> {
    let (pin_dir, config_socket) = match &args.config {
        Some(path) => {
            let config = crate::config::load(path).map_err(|e| CliError::Invalid(e.to_string()))?;
            (
                PathBuf::from(config.pin_dir),
                Some(PathBuf::from(config.control.socket)),
            )
        }
        None => (
            args.pin_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(paths::DEFAULT_PIN_DIR)),
            None,
        ),
    };
    let socket = args
        .socket
        .clone()
        .or(config_socket)
        .unwrap_or_else(|| PathBuf::from(paths::DEFAULT_SOCKET));
    ask_agent(&socket)?;
    let removed = teardown::remove_all(&PinLayout::new(&pin_dir))
        .map_err(|err| CliError::Failed(err.to_string()))?;
    for filter in &removed.filters {
        println!("removed {filter}");
    }
    if !removed.links.is_empty() || !removed.maps.is_empty() {
        println!(
            "removed {} link(s) and {} map(s) under {}",
            removed.links.len(),
            removed.maps.len(),
            pin_dir.display()
        );
    }
    println!(
        "detached: nothing of egress is left under {}",
        pin_dir.display()
    );
    Ok(())
}

/// Asks a running agent to detach and waits for it to exit; no agent is fine.
fn ask_agent(socket: &Path) -> Result<(), CliError> {
    match client::call(socket, &Request::Detach {}) {
        Ok(response) if response.ok => {
            println!("{}", response.message);
            let pid = response.data.get("pid").and_then(serde_json::Value::as_u64);
            if let Some(pid) = pid {
                wait_for_exit(pid);
            }
            Ok(())
        }
        Ok(response) => Err(CliError::Failed(response.message)),
        Err(ClientError::NotRunning { .. }) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Waits until the process is gone or a zombie (its fds, and so our programs, are released).
fn wait_for_exit(pid: u64) {
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    let start = Instant::now();
    while start.elapsed() < AGENT_EXIT_WAIT {
        let running = std::fs::read_to_string(&stat)
            .map(|text| {
                // The state follows the parenthesised command name.
                let state = text.rsplit(')').next().unwrap_or("").trim_start();
                !state.starts_with('Z') && !state.starts_with('X')
            })
            .unwrap_or(false);
        if !running {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
