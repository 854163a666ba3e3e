//! The fleet propagation rows: three routers (each a real agent with XDP on its own veth, in
//! its own namespace) on one real etcd member. Each change is a `relay add` through the CLI
//! on router 0, timed until the program behind every router's pinned XDP link passes an SMTP
//! SYN from that relay; then a `relay remove` on router 1, timed until every one drops it
//! again. The dataplane is asked directly (a test run of the attached program), so the figure
//! is what a relay would see, not what a status page says.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use egress_lab::etcd::EtcdMember;

use super::{
    agent_lab::BenchAgent,
    bpf_sys,
    cases::{XDP_DROP, XDP_PASS},
    frames::{self, L4},
    lab,
    measure::Stats,
    report::{Row, Target},
};
use crate::netns::{Netns, address, veth};

pub struct FleetScale {
    /// Changes timed (each an add and a remove).
    pub changes: usize,
}

const ROUTERS: usize = 3;
const ETCD_ADDRESS: &str = "203.0.113.100";
const BRIDGE: &str = "br0";
const KEY_PREFIX: &str = "/egress/bench";
/// A change not seen everywhere by then is a failure, not a slow sample.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The spec's target: a change reaches every connected router within 1 s.
const TARGET_MS: f64 = 1000.0;

pub fn rows(binary: &Path, scale: &FleetScale) -> Result<Vec<Row>> {
    let fleet = Fleet::start(binary)?;
    println!(
        "fleet: {} relay add/remove changes across {ROUTERS} routers on one etcd...",
        scale.changes
    );
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + CHANGE_TIMEOUT * 2 * scale.changes as u32;
    for i in 0..scale.changes {
        if Instant::now() > deadline {
            bail!("the fleet rows ran out of time after {i} changes");
        }
        let (add, remove) = fleet.change(i)?;
        added.push(add);
        removed.push(remove);
    }
    let n = scale.changes;
    Ok(vec![
        percentile_row(
            format!("fleet propagation, `relay add` on 1 of {ROUTERS} routers, p50"),
            &added,
            0.5,
            Target::Info,
        ),
        percentile_row(
            format!("fleet propagation, `relay add` on 1 of {ROUTERS} routers, p99"),
            &added,
            0.99,
            Target::AtMost(TARGET_MS),
        )
        .with_note(format!(
            "{n} changes; CLI start until every router's XDP passes the relay"
        )),
        percentile_row(
            "fleet propagation, `relay remove` on another router, p99".to_owned(),
            &removed,
            0.99,
            Target::AtMost(TARGET_MS),
        )
        .with_note(format!(
            "{n} changes; CLI start until every router's XDP drops it"
        )),
    ])
}

/// The `q` quantile (nearest rank) of `samples` in ms as the row's figure, every sample kept.
fn percentile_row(case: String, samples: &[f64], q: f64, target: Target) -> Row {
    let all = Stats::of(samples.to_vec());
    let rank = ((q * all.runs.len() as f64).ceil() as usize).clamp(1, all.runs.len().max(1));
    let figure = all.runs.get(rank - 1).copied().unwrap_or(f64::NAN);
    let stats = Stats {
        median: figure,
        ..all
    };
    Row::measured(case, &stats, "ms", target)
}

/// The etcd member, and the routers plugged into its namespace's bridge. Field order is
/// teardown order: agents detach first, etcd stops, the namespaces go, the directory last.
struct Fleet {
    routers: Vec<Router>,
    _etcd: EtcdMember,
    _etcd_ns: Netns,
    dir: TempDir,
}

struct Router {
    agent: BenchAgent,
    link: PathBuf,
}

impl Fleet {
    fn start(binary: &Path) -> Result<Fleet> {
        let dir =
            TempDir(memory_backed_dir().join(format!("egress-bench-fleet-{}", std::process::id())));
        let etcd_ns = lab::namespace("etcd")?;
        etcd_ns.ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        etcd_ns.ip(&["link", "set", BRIDGE, "up"])?;
        address(&etcd_ns, BRIDGE, &format!("{ETCD_ADDRESS}/24"))?;
        let mut etcd = EtcdMember::new(&etcd_ns, ETCD_ADDRESS, &dir.0);
        etcd.start()?;
        etcd.wait_healthy(Duration::from_secs(30))?;
        let fleet_toml = format!(
            "[fleet]\netcd_endpoints = [\"{}\"]\nkey_prefix = \"{KEY_PREFIX}\"\n",
            etcd.client_url()
        );
        let mut routers = Vec::new();
        for k in 0..ROUTERS {
            let agent = BenchAgent::start_with(binary, 1024, &[], &fleet_toml)?;
            // The hub end lives in etcd's namespace, on its bridge.
            let hub_if = format!("fb{}x{k}", std::process::id());
            veth(&etcd_ns, &hub_if, &agent.netns, "fleet0")?;
            etcd_ns.ip(&["link", "set", &hub_if, "master", BRIDGE])?;
            address(&agent.netns, "fleet0", &format!("203.0.113.{}/24", 10 + k))?;
            let link = agent.pin_dir.join("links/xdp").join(&agent.interface);
            routers.push(Router { agent, link });
        }
        for (k, router) in routers.iter().enumerate() {
            router
                .agent
                .wait_until(&format!("router {k} is connected to etcd"), 60, |agent| {
                    Ok(agent.status()?["fleet"]["connected"] == true)
                })?;
        }
        Ok(Fleet {
            routers,
            _etcd: etcd,
            _etcd_ns: etcd_ns,
            dir,
        })
    }

    /// Change `i`: add a relay on router 0 and remove it on router 1; both times in ms.
    fn change(&self, i: usize) -> Result<(f64, f64)> {
        // 192.0.2.64-127: outside the agents' configured relay prefix (192.0.2.16/28).
        let relay = Ipv4Addr::new(192, 0, 2, 64 + (i % 64) as u8);
        let prefix = format!("{relay}/32");
        self.expect_everywhere(relay, XDP_DROP, "before the add")?;
        let started = Instant::now();
        self.cli(0, &["relay", "add", &prefix, "--comment", "bench"])?;
        let added = self.wait_everywhere(relay, XDP_PASS, started, "allows the added relay")?;
        let started = Instant::now();
        self.cli(1, &["relay", "remove", &prefix])?;
        let removed = self.wait_everywhere(relay, XDP_DROP, started, "drops the removed relay")?;
        Ok((added, removed))
    }

    /// A CLI change on router `k`; a refusal carries etcd's log, which says why.
    fn cli(&self, k: usize, args: &[&str]) -> Result<()> {
        self.routers[k]
            .agent
            .cli(args)
            .with_context(|| format!("etcd log:\n{}", self.etcd_log()))?;
        Ok(())
    }

    /// The last lines of etcd's log.
    fn etcd_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.0.join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Polls every router's dataplane until each gives `verdict`; ms since `started`.
    fn wait_everywhere(
        &self,
        relay: Ipv4Addr,
        verdict: u32,
        started: Instant,
        what: &str,
    ) -> Result<f64> {
        let mut pending: Vec<usize> = (0..self.routers.len()).collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for k in pending {
                if self.verdict(k, relay)? != verdict {
                    still.push(k);
                }
            }
            pending = still;
            if !pending.is_empty() {
                if started.elapsed() > CHANGE_TIMEOUT {
                    let k = pending[0];
                    bail!(
                        "router {k} never {what} ({relay}) within {CHANGE_TIMEOUT:?}; its log:\n{}\netcd log:\n{}",
                        self.routers[k].agent.log_tail(),
                        self.etcd_log()
                    );
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    }

    fn expect_everywhere(&self, relay: Ipv4Addr, verdict: u32, when: &str) -> Result<()> {
        for k in 0..self.routers.len() {
            let got = self.verdict(k, relay)?;
            if got != verdict {
                bail!("router {k} gives {relay} verdict {got} {when}, expected {verdict}");
            }
        }
        Ok(())
    }

    /// The verdict of the program router `k`'s pinned XDP link runs now, for an SMTP SYN.
    fn verdict(&self, k: usize, relay: Ipv4Addr) -> Result<u32> {
        let frame = frames::ipv4(
            relay,
            frames::destination_v4(0),
            L4::TcpSyn { dst_port: 25 },
        );
        let link = &self.routers[k].link;
        let program = bpf_sys::program_of_link(link)
            .with_context(|| format!("router {k}'s XDP link {}", link.display()))?;
        Ok(bpf_sys::test_run(std::os::fd::AsFd::as_fd(&program), &frame, 1)?.retval)
    }
}

/// Where etcd keeps its data: memory when the machine has it. The rows time propagation
/// through etcd, not the disk under it (a CI run once saw a write outlast the agent's limit;
/// a slow log sync is etcd's usual reason).
fn memory_backed_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// The etcd data directory, removed last.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::{Target, percentile_row};

    #[test]
    fn percentiles_are_nearest_rank_and_keep_every_sample() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p99 = percentile_row("p99".into(), &samples, 0.99, Target::Info);
        assert_eq!(p99.median, Some(99.0));
        assert_eq!(p99.runs.len(), 100);
        let p50 = percentile_row("p50".into(), &samples, 0.5, Target::Info);
        assert_eq!(p50.median, Some(50.0));
        // With fewer than 100 samples the p99 is the slowest one.
        let few: Vec<f64> = (1..=10).map(f64::from).collect();
        let p99 = percentile_row("p99".into(), &few, 0.99, Target::Info);
        assert_eq!(p99.median, Some(10.0));
    }
}
