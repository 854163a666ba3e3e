//! The bench's throwaway namespaces, on top of the xtask's shared [`crate::netns`]: unique
//! names per process, quiet commands that keep the host's bpffs (xdp-filter pins there).

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Result;

use crate::{cmd::Runner, netns::Netns};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

pub fn namespace(role: &str) -> Result<Netns> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    Ok(Netns::create(
        format!("egb-{role}-{}-{id}", std::process::id()),
        Runner::quiet(),
    )?)
}

/// Runs `command` inside `netns` and returns its stdout.
pub fn run(netns: &Netns, command: &[&str]) -> Result<String> {
    let mut cmd = netns.command(command[0]);
    cmd.args(&command[1..]);
    Runner::quiet().capture(&mut cmd)
}
