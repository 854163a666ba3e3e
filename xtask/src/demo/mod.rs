//! `cargo xtask demo`: the whole story in network namespaces with real mail servers. The
//! scenario test (xtask/tests/demo_scenario.rs) runs the same code without narration.

mod agent;
mod audit;
mod fleet;
mod inbound;
mod interrupt;
mod lab;
mod mail;
pub mod narrate;
mod process;
pub mod story;
mod trace;
mod workdir;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::{
    cargo,
    cmd::{Runner, require_root},
    setup,
};
pub use narrate::Narrator;

#[derive(Args, Debug, Default)]
pub struct DemoArgs {
    /// No narration: only errors (what the scenario test uses)
    #[arg(long)]
    pub quiet: bool,
    /// Also show the plumbing: every ip/sysctl/chown command that builds the lab
    #[arg(long, conflicts_with = "quiet")]
    pub verbose: bool,
}

pub fn run(args: DemoArgs) -> Result<()> {
    setup::run()?;
    let agent = build_agent(Runner::echoing())?;
    interrupt::install()?;
    scenario(&agent, Narrator::new(args.quiet, args.verbose))?;
    Ok(())
}

/// `cargo build -p egress-agent` (which also builds the eBPF object) and its binary's path.
pub fn build_agent(runner: Runner) -> Result<PathBuf> {
    runner.run(cargo().args(["build", "-p", "egress-agent"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    let bin = target.join("debug").join("egress-agent");
    if !bin.is_file() {
        bail!(
            "cargo built egress-agent but {} does not exist",
            bin.display()
        );
    }
    Ok(bin)
}

/// Builds the lab, tells the story, tears everything down, and checks nothing is left.
pub fn scenario(agent_bin: &Path, narrator: Narrator) -> Result<story::Told> {
    require_root(
        "demo",
        "it builds network namespaces and loads eBPF programs",
    )?;
    let tag = std::process::id();
    let told = play(agent_bin, tag, narrator);
    let leftovers = workdir::leftovers(tag);
    if leftovers.is_empty() {
        narrator.ok("namespaces, pins, processes and temporary files are gone");
    }
    let told = match (told, leftovers.is_empty()) {
        (told, true) => told?,
        (Ok(_), false) => bail!("the demo left things behind: {}", leftovers.join(", ")),
        (Err(err), false) => {
            return Err(err.context(format!(
                "and the demo left things behind: {}",
                leftovers.join(", ")
            )));
        }
    };
    narrator.say("\nThe demo told the whole story and left nothing behind.");
    Ok(told)
}

/// Everything created here is owned by a guard, so returning (also with an error) tears it
/// down, agent first and temporary directory last.
fn play(agent_bin: &Path, tag: u32, narrator: Narrator) -> Result<story::Told> {
    narrator.chapter("0. Building a small ISP in network namespaces");
    let dir = workdir::WorkDir::create(tag)?;
    let lab = lab::Lab::build(tag, narrator.plumbing()).context("building the lab")?;
    narrator.say(LAB_PICTURE);
    let (mailbox, relay) = story::start_servers(&lab, dir.path(), narrator)?;
    let desk = trace::Desk::open(&lab, &dir.path().join("desk"))?;
    narrator.say(
        "  Starting egress-agent on the edge router (XDP towards subscribers, TC on the uplink,
  RADIUS accounting in, reports out to the abuse desk's webhook) ...",
    );
    let agent = agent::Agent::start(
        agent_bin,
        &lab,
        &dir.path().join("agent"),
        tag,
        &desk.config(),
        narrator,
    )?;
    narrator.show(&narrate::status_excerpt(&agent.cli(&["status"])?));
    narrator.ok("the lab is up and egress enforces");
    trace::infected_session_starts(&lab, dir.path(), narrator)?;
    let cast = story::Cast {
        lab: &lab,
        mailbox: &mailbox,
        relay: &relay,
        agent: &agent,
        tag,
    };
    let told = story::tell(&cast, narrator).and_then(|told| {
        audit::audit_the_mail_setup(&lab, dir.path(), agent_bin, narrator)?;
        fleet::a_fleet_takes_one_change(dir.path(), agent_bin, tag, narrator)?;
        trace::the_abuse_desk_is_told(&desk, &agent, &told.top, narrator)?;
        inbound::only_the_spam_checker_reaches_the_primary_mx(&lab, &agent, dir.path(), narrator)?;
        Ok(told)
    });
    narrator.chapter("Cleaning up");
    told
}

const LAB_PICTURE: &str = "
  clean subscriber    100.64.1.10 ──┐ XDP
  infected subscriber 100.64.2.20 ──┤ XDP    edge router  ── TC egress ──  Internet
  ISP mail relay      192.0.2.25  ──┘      (egress-agent)    (uplink)     MX 203.0.113.25
  (Postfix, 587 → 25)                                                     (smtp-sink)
  primary MX          192.0.2.30  ── XDP inbound on the uplink: only the spam checker
                                     203.0.113.40 (Internet side) may reach it on 25
";
