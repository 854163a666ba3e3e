//! The reload rows: SIGHUP the agent with a config of many exempt prefixes and time it until
//! `status --json` reports the new allowlist (the agent sets that count only after the maps
//! match the config); then replace one prefix of that big config and time it until the
//! dataplane judges by the change. Meanwhile a second thread keeps test-running the program
//! the agent's pinned XDP link runs right now, with packets whose verdict must not change
//! during the reload: relays and prefixes kept from the old config must pass,
//! non-allowlisted subscribers must be dropped. Every other verdict is a misjudged packet.

use std::{
    net::Ipv4Addr,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use super::{
    agent_lab::BenchAgent,
    bpf_sys,
    cases::{XDP_DROP, XDP_PASS},
    frames::{self, L4},
    prefixes,
};

pub struct ReloadOutcome {
    /// SIGHUP until `status` reports the new allowlist.
    pub seconds: f64,
    /// Test runs during the reload, and how many got the wrong verdict.
    pub checked: u64,
    pub misjudged: u64,
    pub first_misjudged: Option<String>,
}

/// Frames whose verdict is the same under the old and the new config.
fn invariant_frames(
    kept: &[(Ipv4Addr, u8)],
    subscribers: u32,
) -> Vec<(Vec<u8>, u32, &'static str)> {
    let smtp = L4::TcpSyn { dst_port: 25 };
    let mut out = Vec::new();
    for n in 0..16 {
        let relay = frames::ipv4(frames::relay_v4(n), frames::destination_v4(n), smtp);
        out.push((relay, XDP_PASS, "relay"));
        let subscriber = frames::subscriber_v4(n.wrapping_mul(7919) % subscribers.max(1));
        let blocked = frames::ipv4(subscriber, frames::destination_v4(n), smtp);
        out.push((blocked, XDP_DROP, "subscriber"));
    }
    for (n, host) in prefixes::hosts_v4(kept, 16).into_iter().enumerate() {
        let exempt = frames::ipv4(host, frames::destination_v4(n as u32), smtp);
        out.push((exempt, XDP_PASS, "kept exempt prefix"));
    }
    out
}

/// Reloads with `new` instead of `old`; done when `status` reports `new`'s exempt count.
pub fn measure(
    agent: &BenchAgent,
    link: &Path,
    old: &[(Ipv4Addr, u8)],
    new: &[(Ipv4Addr, u8)],
    subscribers: u32,
) -> Result<ReloadOutcome> {
    let expected = new.len() as u64;
    let outcome = timed(agent, link, old, new, subscribers, |agent| {
        let status = agent.status()?;
        if status["config_last_reload_successful"] == false {
            bail!("the agent reports a failed reload");
        }
        Ok(status["allowlist_entries"]["exempt"].as_u64() == Some(expected))
    })?;
    verify_applied(link, new)?;
    Ok(outcome)
}

/// The everyday reload of a big allowlist: one exempt prefix of `current` replaced by
/// another. Done when the dataplane judges by the new config: a host of the added prefix
/// passes and a host of the removed one is dropped. Returns the outcome and the change.
pub fn measure_replace(
    agent: &BenchAgent,
    link: &Path,
    current: &[(Ipv4Addr, u8)],
    subscribers: u32,
) -> Result<(ReloadOutcome, String)> {
    let (removed, added) = replacement(current)?;
    let removed_host = prefixes::hosts_v4(&current[removed..=removed], 1)[0];
    let mut new = current.to_vec();
    let gone = new.remove(removed);
    new.push((added, 32));
    let outcome = timed(agent, link, current, &new, subscribers, |_| {
        Ok(verdict(link, added)? == XDP_PASS && verdict(link, removed_host)? == XDP_DROP)
    })?;
    let change = format!("{}/{} out, {added}/32 in", gone.0, gone.1);
    Ok((outcome, change))
}

/// A prefix of `current` whose host no other prefix covers, and a /32 in the exempt area
/// that none covers: their verdicts must flip when the reload takes effect.
fn replacement(current: &[(Ipv4Addr, u8)]) -> Result<(usize, Ipv4Addr)> {
    let network =
        |address: u32, len: u8| address & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let prefixes: std::collections::HashSet<(u32, u8)> = current
        .iter()
        .map(|&(base, len)| (network(u32::from(base), len), len))
        .collect();
    // Whether a prefix other than `except` contains `host`: one probe per length.
    let covered = |host: Ipv4Addr, except: Option<(Ipv4Addr, u8)>| {
        let except = except.map(|(base, len)| (u32::from(base), len));
        (0..=32u8).any(|len| {
            let key = (network(u32::from(host), len), len);
            Some(key) != except && prefixes.contains(&key)
        })
    };
    let removed = (0..current.len())
        .rev()
        .find(|&index| {
            let host = prefixes::hosts_v4(&current[index..=index], 1)[0];
            !covered(host, Some(current[index]))
        })
        .ok_or_else(|| anyhow::anyhow!("every exempt prefix is covered by another"))?;
    let added = (0..1u32 << 16)
        .map(|k| {
            let offset = k.wrapping_mul(4099) % (3 << 20);
            Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + offset)
        })
        .find(|&host| !covered(host, None))
        .ok_or_else(|| anyhow::anyhow!("no uncovered address left in the exempt area"))?;
    Ok((removed, added))
}

/// The verdict the program behind the pinned link gives an SMTP SYN from `source`.
fn verdict(link: &Path, source: Ipv4Addr) -> Result<u32> {
    let frame = frames::ipv4(
        source,
        frames::destination_v4(1),
        L4::TcpSyn { dst_port: 25 },
    );
    let program = bpf_sys::program_of_link(link)?;
    Ok(bpf_sys::test_run(std::os::fd::AsFd::as_fd(&program), &frame, 1)?.retval)
}

/// Writes `new`, sends SIGHUP and times it until `done`, while a thread checks that packets
/// whose verdict must not change keep it.
fn timed(
    agent: &BenchAgent,
    link: &Path,
    old: &[(Ipv4Addr, u8)],
    new: &[(Ipv4Addr, u8)],
    subscribers: u32,
    done: impl FnMut(&BenchAgent) -> Result<bool>,
) -> Result<ReloadOutcome> {
    let kept: Vec<(Ipv4Addr, u8)> = {
        let new: std::collections::HashSet<_> = new.iter().collect();
        old.iter().filter(|p| new.contains(p)).copied().collect()
    };
    let frames = invariant_frames(&kept, subscribers);
    agent.write_config(new)?;
    let stop = AtomicBool::new(false);
    let pid = agent.pid()?;
    let (took, check) = std::thread::scope(|scope| {
        let checker = scope.spawn(|| check_until(link, &frames, &stop));
        let started = Instant::now();
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        let took = agent
            .wait_until("the reload takes effect", 300, done)
            .map(|_| started.elapsed());
        // A little longer: anything the agent does right after counts too.
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        (took, checker.join())
    });
    let took = took?;
    let (checked, misjudged, first_misjudged) = match check {
        Ok(result) => result?,
        Err(_) => bail!("the reload checker thread panicked"),
    };
    Ok(ReloadOutcome {
        seconds: took.as_secs_f64(),
        checked,
        misjudged,
        first_misjudged,
    })
}

type Checked = (u64, u64, Option<String>);

/// Test-runs `frames` round-robin until `stop`, following program swaps through the link.
fn check_until(link: &Path, frames: &[(Vec<u8>, u32, &str)], stop: &AtomicBool) -> Result<Checked> {
    let deadline = Instant::now() + Duration::from_secs(400);
    let (mut checked, mut misjudged, mut first) = (0u64, 0u64, None);
    let mut program = bpf_sys::program_of_link(link)?;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        if checked % 256 == 0 {
            program = bpf_sys::program_of_link(link)?;
        }
        let (frame, expected, what) = &frames[checked as usize % frames.len()];
        let verdict = bpf_sys::test_run(std::os::fd::AsFd::as_fd(&program), frame, 1)?.retval;
        checked += 1;
        if verdict != *expected {
            misjudged += 1;
            first.get_or_insert_with(|| {
                format!("{what} frame got verdict {verdict} instead of {expected}")
            });
        }
    }
    Ok((checked, misjudged, first))
}

/// The new config is really in the kernel: a host of the last new prefix passes.
fn verify_applied(link: &Path, new: &[(Ipv4Addr, u8)]) -> Result<()> {
    let Some(last) = new.last() else {
        return Ok(());
    };
    let host = prefixes::hosts_v4(std::slice::from_ref(last), 1)[0];
    let verdict = verdict(link, host)?;
    if verdict != XDP_PASS {
        bail!(
            "after the reload, {host} (in the new exempt prefix {}/{}) got verdict {verdict}: the reload was reported but not applied",
            last.0,
            last.1
        );
    }
    Ok(())
}
