//! The peer: xdp-filter from Debian's xdp-tools with one destination-port-25 rule, loaded the
//! way an operator would (`xdp-filter load IFACE; xdp-filter port 25`) on a veth in a throwaway
//! namespace. We keep a descriptor of its program, then unload it, and time that program with
//! the same frames and harness as ours.

use std::{os::fd::OwnedFd, path::PathBuf};

use anyhow::{Context as _, Result, anyhow};

use super::{bpf_sys, lab};
use crate::netns::{Netns, veth};

/// `None` loads the default feature set (what `xdp-filter load` does); `Some("tcp")` the
/// cheapest variant that can still match a TCP port.
pub fn load(features: Option<&str>) -> Result<OwnedFd> {
    let netns = lab::namespace("xdpf")?;
    let iface = format!("xf{}", std::process::id());
    veth(&netns, &iface, &netns, &format!("{iface}p"))?;
    let pin_dir = PathBuf::from("/sys/fs/bpf/xdp-filter/programs").join(&iface);
    let loaded = Loaded {
        netns: &netns,
        iface: &iface,
        pin_dir: pin_dir.clone(),
    };
    let mut load = vec!["xdp-filter", "load"];
    if let Some(features) = features {
        load.extend(["-f", features]);
    }
    load.push(&iface);
    lab::run(&netns, &load).context("is xdp-tools installed? (`cargo xtask setup`)")?;
    lab::run(&netns, &["xdp-filter", "port", "25"])?;
    let pin = std::fs::read_dir(&pin_dir)
        .with_context(|| format!("reading xdp-filter's pins in {}", pin_dir.display()))?
        .next()
        .ok_or_else(|| anyhow!("xdp-filter pinned no program in {}", pin_dir.display()))??
        .path();
    let fd = bpf_sys::open_pinned(&pin)?;
    drop(loaded);
    Ok(fd)
}

/// Unloads xdp-filter (which removes its pins) even when something above failed.
struct Loaded<'a> {
    netns: &'a Netns,
    iface: &'a str,
    pin_dir: PathBuf,
}

impl Drop for Loaded<'_> {
    fn drop(&mut self) {
        if let Err(err) = lab::run(self.netns, &["xdp-filter", "unload", self.iface]) {
            eprintln!("warning: {err:#}");
            let _ = std::fs::remove_dir_all(&self.pin_dir);
        }
    }
}
