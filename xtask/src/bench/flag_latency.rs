//! The notification row: from the SYN that crosses a detection threshold to the signed
//! report arriving at the abuse desk's webhook. The real agent runs with XDP on a lab veth
//! and `[notify]` pointing at the shared receiver (`crate::webhook`) in its namespace; the
//! SYNs are test-run through the agent's own pinned program, so the flag, the ring-buffer
//! event, the report scan and the delivery are all the agent's.

use std::{
    net::Ipv4Addr,
    os::fd::AsFd as _,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    agent_lab::BenchAgent,
    bpf_sys,
    cases::XDP_DROP,
    frames::{self, L4},
    measure::Stats,
    report::{Row, Target},
};
use egress_lab::webhook::Receiver;

const RECEIVER: &str = "127.0.0.1:9726";
const SECRET: &[u8] = b"bench-webhook-secret";
/// SYNs to distinct destinations that flag a subscriber (the config's attempts_threshold).
const ATTEMPTS: u32 = 5;

pub fn rows(binary: &Path, flags: usize) -> Result<Vec<Row>> {
    let secret = std::env::temp_dir().join(format!("egress-bench-webhook-{}", std::process::id()));
    std::fs::write(&secret, SECRET).with_context(|| format!("writing {}", secret.display()))?;
    let extra = format!(
        "[detection]\nwindow_seconds = 300\nattempts_threshold = {ATTEMPTS}\n\
         distinct_destinations_threshold = 1000\n\n\
         [notify]\nwebhook_url = \"http://{RECEIVER}/egress\"\nsecret_file = \"{}\"\n\
         timeout_seconds = 5\n",
        secret.display()
    );
    let measured = (|| {
        let agent = BenchAgent::start_with(binary, 16_384, &[], &extra)?;
        let receiver = Receiver::start(&agent.netns, RECEIVER, SECRET)?;
        println!("notify: {flags} subscribers flagged one after another...");
        measure(&agent, &receiver, flags)
    })();
    let _ = std::fs::remove_file(&secret);
    let latencies = measured?;
    let median = Stats::of(latencies.clone()).median;
    let mut stats = Stats::of(latencies);
    stats.median = percentile(&stats.runs, 0.99);
    Ok(vec![
        Row::measured(
            format!("flag to webhook delivery latency, p99 of {flags} flags"),
            &stats,
            "ms",
            Target::AtMost(2_000.0),
        )
        .with_note(format!(
            "median {median:.0} ms; threshold-crossing SYN to signed report received"
        )),
    ])
}

/// One latency (ms) per subscriber, flagged at staggered moments so the flags fall at every
/// phase of the agent's periodic scan.
fn measure(agent: &BenchAgent, receiver: &Receiver, flags: usize) -> Result<Vec<f64>> {
    let link = agent.pin_dir.join("links/xdp").join(&agent.interface);
    let program = bpf_sys::program_of_link(&link)?;
    let mut latencies = Vec::with_capacity(flags);
    for k in 0..flags {
        let subscriber = frames::subscriber_v4(50_000 + k as u32);
        let mut crossed = Instant::now();
        for attempt in 0..ATTEMPTS {
            let frame = frames::ipv4(
                subscriber,
                frames::destination_v4(attempt * 31 + k as u32),
                L4::TcpSyn { dst_port: 25 },
            );
            let verdict = bpf_sys::test_run(program.as_fd(), &frame, 1)?.retval;
            if verdict != XDP_DROP {
                bail!("a SYN from {subscriber} got verdict {verdict}, not DROP");
            }
            crossed = Instant::now();
        }
        let received = wait_for_report(agent, receiver, subscriber)?;
        latencies.push(received.saturating_duration_since(crossed).as_secs_f64() * 1000.0);
        // 0.1 to 1.3 s apart: not in step with the scan's 3 s tick.
        std::thread::sleep(Duration::from_millis(100 + (k as u64 * 373) % 1_200));
    }
    Ok(latencies)
}

fn wait_for_report(
    agent: &BenchAgent,
    receiver: &Receiver,
    subscriber: Ipv4Addr,
) -> Result<Instant> {
    let needle = format!("\"subscriber\":\"{subscriber}\"");
    let mut arrived = None;
    agent.wait_until(
        &format!("the report on {subscriber} reaches the webhook"),
        30,
        |_| {
            arrived = receiver
                .deliveries()
                .into_iter()
                .find(|delivery| delivery.body.contains(&needle));
            Ok(arrived.is_some())
        },
    )?;
    match arrived {
        Some(delivery) if delivery.signature_valid => Ok(delivery.received),
        Some(_) => {
            bail!("the report on {subscriber} arrived with a signature that does not verify")
        }
        None => bail!("no report on {subscriber}"),
    }
}

/// The `q` quantile of sorted figures (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
