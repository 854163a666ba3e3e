//! `cargo xtask bench`: what the router pays for egress, measured against the spec's
//! Performance table with the peers beside it, printed as a table and written as JSON.
//! BENCHMARKS.md explains every row.

mod agent;
mod agent_lab;
mod asm;
mod blast;
mod bpf_sys;
mod cases;
mod dataplane;
mod flag_latency;
mod fleet;
mod floor;
mod frames;
mod growth;
mod identity;
mod inbound;
mod lab;
mod measure;
mod nft;
mod object;
mod prefixes;
mod reload;
mod report;
mod rotate;
mod rows;
mod shortcuts;
mod subscriber_pools;
mod veth;
mod working_set;
mod xdp_filter;
mod xdp_gen;

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::{Context as _, Result};
use clap::Args;

use crate::cmd::{Runner, require_root};

#[derive(Args, Debug, Default)]
pub struct BenchArgs {
    /// A tiny run (seconds) that proves the bench works; its figures mean nothing
    #[arg(long)]
    pub quick: bool,
    /// Where to write the results as JSON [default: target/bench/egress-bench.json]
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// The eBPF object to measure [default: build egress-agent and use the object it embeds]
    #[arg(long, value_name = "PATH")]
    pub object: Option<PathBuf>,
    /// The egress-agent binary for the agent rows [default: the one built for --object, or
    /// target/debug/egress-agent]
    #[arg(long, value_name = "PATH")]
    pub agent: Option<PathBuf>,
    /// Run only these rows (with the agent given by --agent or target/debug/egress-agent)
    #[arg(long, value_enum, value_name = "ROWS")]
    pub only: Option<Only>,
    /// Run only the traceability rows: RADIUS ingest with 1,000,000 open sessions and the
    /// agent's RSS, `who --at` over 90 days of history (with the agent given by --agent, or
    /// the release build if there is one)
    #[arg(long, conflicts_with = "only")]
    pub traceability: bool,
}

/// Rows that can run alone.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Only {
    /// Fleet propagation on a real etcd
    Fleet,
    /// The agent process: scrape with 1M subscribers, reloads of 1M prefixes, RSS
    Agent,
    /// The inbound program (built, or given by --object)
    Inbound,
    /// The lookups in front of the tries (destination host table, IPv6 source filter), each
    /// against the trie (built, or --object)
    Shortcuts,
    /// The blocked IPv4 rows, with the records in the LRU map and in a subscriber pool, and
    /// the working-set rows against the floor, at 10 prefixes and at 1M prefixes + 1M
    /// subscribers (built, or --object)
    WorkingSet,
}

impl Only {
    const fn name(self) -> &'static str {
        match self {
            Only::Fleet => "fleet",
            Only::Agent => "agent",
            Only::Inbound => "inbound",
            Only::Shortcuts => "shortcuts",
            Only::WorkingSet => "working-set",
        }
    }
}

/// How big a bench is: the spec's sizes, or a tiny run for tests.
pub struct Scale {
    pub quick: bool,
    pub runs: usize,
    pub steady: measure::Plan,
    /// Distinct sources per case (frames).
    pub sources: usize,
    /// Distinct never-seen subscribers per run of a new-subscriber case.
    pub new_sources: usize,
    /// Allowlist sizes per family (the relay prefix included).
    pub prefix_steps: Vec<usize>,
    /// The step at which the veth comparison runs (its prefixes go into nftables too).
    pub veth_step: usize,
    pub tracked: u32,
    pub blast: veth::Blast,
    pub agent: agent::AgentScale,
    pub identity: identity::IdentityScale,
    /// Subscribers flagged one after another for the flag-to-webhook row.
    pub flags: usize,
    pub fleet: fleet::FleetScale,
}

impl Scale {
    fn new(quick: bool) -> Scale {
        if quick {
            Scale {
                quick,
                runs: 5,
                steady: measure::Plan {
                    runs: 5,
                    passes: 1,
                    hot_repeat: 10_000,
                },
                sources: 4_096,
                new_sources: 1_024,
                prefix_steps: vec![10, 1_000],
                veth_step: 1_000,
                tracked: 10_000,
                blast: veth::Blast {
                    duration: Duration::from_millis(300),
                    budget: 200_000,
                    senders: 1,
                    sources: 4_096,
                },
                agent: agent::AgentScale {
                    tracked: 10_000,
                    bots: 10,
                    bot_attempts: 25,
                    max_tracked: 16_384,
                    scrapes: 3,
                    scrape_interval: Duration::from_millis(100),
                    reload_prefixes: 1_000,
                },
                identity: identity::IdentityScale {
                    sessions: 10_000,
                    updates: 5_000,
                    lookups: 20,
                },
                flags: 5,
                fleet: fleet::FleetScale { changes: 10 },
            }
        } else {
            Scale {
                quick,
                runs: 5,
                steady: measure::Plan {
                    runs: 5,
                    passes: 8,
                    hot_repeat: 1 << 20,
                },
                sources: 4_096,
                new_sources: 32_768,
                prefix_steps: vec![10, 10_000, 1_000_000],
                veth_step: 10_000,
                tracked: 1_000_000,
                blast: veth::Blast {
                    duration: Duration::from_secs(1),
                    budget: 50_000_000,
                    senders: 2,
                    sources: 65_536,
                },
                agent: agent::AgentScale {
                    tracked: 1_000_000,
                    bots: 1_000,
                    bot_attempts: 25,
                    max_tracked: 1_048_576,
                    scrapes: 7,
                    scrape_interval: Duration::from_secs(2),
                    reload_prefixes: 1_000_000,
                },
                identity: identity::IdentityScale {
                    sessions: 1_000_000,
                    updates: 200_000,
                    lookups: 50,
                },
                flags: 50,
                fleet: fleet::FleetScale { changes: 100 },
            }
        }
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    require_root("bench", "BPF_PROG_TEST_RUN, network namespaces and bpffs")?;
    mount_bpffs()?;
    if let Some(only) = args.only {
        return run_only(only, args);
    }
    if args.traceability {
        return traceability_only(args);
    }
    let (object, agent) = match args.object {
        Some(path) => (path, None),
        None => {
            let built = object::build()?;
            (built.object, Some(built.agent))
        }
    };
    let agent = args.agent.or(agent).unwrap_or_else(default_agent);
    let scale = Scale::new(args.quick);
    let started = std::time::Instant::now();
    let rows = rows::collect(&object, &agent, &scale)?;
    println!("\n{}", report::table(&rows));
    let json = args
        .json
        .unwrap_or_else(|| crate::workspace_root().join("target/bench/egress-bench.json"));
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut meta = meta(&object, &scale, started.elapsed());
    meta["agent"] = serde_json::Value::from(agent.display().to_string());
    report::write_json(&rows, meta, &json)?;
    println!(
        "bench took {:.0} s; results written to {}",
        started.elapsed().as_secs_f64(),
        json.display()
    );
    Ok(())
}

/// The eBPF object given by `--object`, or the one a release build of egress-agent embeds.
fn object_of(given: Option<std::path::PathBuf>) -> Result<std::path::PathBuf> {
    match given {
        Some(path) => Ok(path),
        None => Ok(object::build()?.object),
    }
}

/// `--only ROWS`: those rows at the chosen scale, printed; an object is built only for the
/// program rows.
fn run_only(only: Only, args: BenchArgs) -> Result<()> {
    let agent = args
        .agent
        .unwrap_or_else(|| crate::workspace_root().join("target/debug/egress-agent"));
    let scale = Scale::new(args.quick);
    let rows = match only {
        Only::Fleet => fleet::rows(&agent, &scale.fleet)?,
        Only::Agent => agent::rows(&agent, &scale.agent)?,
        Only::Inbound => inbound::rows(&object_of(args.object.clone())?, &scale)?,
        Only::Shortcuts => shortcuts::rows(&object_of(args.object.clone())?, &scale)?,
        Only::WorkingSet => rows::blocked_only(&object_of(args.object.clone())?, &scale)?,
    };
    println!("\n{}", report::table(&rows));
    if let Some(json) = args.json {
        let meta = serde_json::json!({"quick": scale.quick, "only": only.name(), "agent": agent.display().to_string()});
        report::write_json(&rows, meta, &json)?;
    }
    Ok(())
}

/// `--traceability`: the traceability rows at the chosen scale, printed; no object is built.
fn traceability_only(args: BenchArgs) -> Result<()> {
    let agent = args.agent.unwrap_or_else(default_agent);
    let scale = Scale::new(args.quick);
    println!("traceability rows with {}", agent.display());
    let mut rows = identity::rows(&agent, &scale.identity)?;
    rows.extend(flag_latency::rows(&agent, scale.flags)?);
    println!("\n{}", report::table(&rows));
    if let Some(json) = args.json {
        let meta = serde_json::json!({"quick": scale.quick, "only": "traceability", "agent": agent.display().to_string()});
        report::write_json(&rows, meta, &json)?;
    }
    Ok(())
}

/// The optimised agent if one was built, else the debug one.
fn default_agent() -> PathBuf {
    let target = crate::workspace_root().join("target");
    let release = target.join("release/egress-agent");
    if release.is_file() {
        release
    } else {
        target.join("debug/egress-agent")
    }
}

fn mount_bpffs() -> Result<()> {
    let mounted = Command::new("mountpoint")
        .args(["-q", "/sys/fs/bpf"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        Runner::quiet().run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))?;
    }
    Ok(())
}

fn meta(object: &std::path::Path, scale: &Scale, took: Duration) -> serde_json::Value {
    let probe = |program: &str, args: &[&str]| {
        Runner::quiet()
            .capture(Command::new(program).args(args))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    serde_json::json!({
        "quick": scale.quick,
        "kernel": probe("uname", &["-r"]),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": probe("sh", &["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]),
        "commit": probe("git", &["-C", &crate::workspace_root().display().to_string(), "rev-parse", "--short", "HEAD"]),
        "object": object.display().to_string(),
        "runs": scale.runs,
        "passes_over_sources_per_run": scale.steady.passes,
        "hot_repeat": scale.steady.hot_repeat,
        "sources_per_case": scale.sources,
        "seconds": took.as_secs_f64(),
    })
}

/// The traceability rows alone, at quick scale, printed as a table: `(case, median)` each.
/// The whole bench runs them too; tests call this to prove they work without the rest.
pub fn identity_rows_quick(agent: &std::path::Path) -> Result<Vec<(String, Option<f64>)>> {
    require_root("bench", "network namespaces and bpffs")?;
    mount_bpffs()?;
    let scale = Scale::new(true);
    let mut rows = identity::rows(agent, &scale.identity)?;
    rows.extend(flag_latency::rows(agent, scale.flags)?);
    println!("{}", report::table(&rows));
    Ok(rows.into_iter().map(|row| (row.case, row.median)).collect())
}
