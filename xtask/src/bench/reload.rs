//! The reload row: SIGHUP the agent with a config of many exempt prefixes and time it until
//! `status --json` reports the new allowlist (the agent sets that count only after the maps
//! match the config), while a second thread keeps test-running the program the agent's pinned
//! XDP link runs right now, with packets whose verdict must not change during the reload:
//! relays and prefixes kept from the old config must pass, non-allowlisted subscribers must be
//! dropped. Every other verdict is a misjudged packet.

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

pub fn measure(
    agent: &BenchAgent,
    link: &Path,
    old: &[(Ipv4Addr, u8)],
    new: &[(Ipv4Addr, u8)],
    subscribers: u32,
) -> Result<ReloadOutcome> {
    let kept: Vec<(Ipv4Addr, u8)> = old.iter().filter(|p| new.contains(p)).copied().collect();
    let frames = invariant_frames(&kept, subscribers);
    agent.write_config(new)?;
    let stop = AtomicBool::new(false);
    let pid = agent.pid()?;
    let expected = new.len() as u64;
    let (took, check) = std::thread::scope(|scope| {
        let checker = scope.spawn(|| check_until(link, &frames, &stop));
        let started = Instant::now();
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        let took = agent
            .wait_until("the reloaded allowlist is reported", 300, |agent| {
                let status = agent.status()?;
                if status["config_last_reload_successful"] == false {
                    bail!("the agent reports a failed reload");
                }
                Ok(status["allowlist_entries"]["exempt"].as_u64() == Some(expected))
            })
            .map(|_| started.elapsed());
        // A little longer: anything the agent does right after reporting counts too.
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        (took, checker.join())
    });
    let took = took?;
    let (checked, misjudged, first_misjudged) = match check {
        Ok(result) => result?,
        Err(_) => bail!("the reload checker thread panicked"),
    };
    verify_applied(link, new)?;
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
    let frame = frames::ipv4(host, frames::destination_v4(1), L4::TcpSyn { dst_port: 25 });
    let program = bpf_sys::program_of_link(link)?;
    let verdict = bpf_sys::test_run(std::os::fd::AsFd::as_fd(&program), &frame, 1)?.retval;
    if verdict != XDP_PASS {
        bail!(
            "after the reload, {host} (in the new exempt prefix {}/{}) got verdict {verdict}: the reload was reported but not applied",
            last.0,
            last.1
        );
    }
    Ok(())
}
