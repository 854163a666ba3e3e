//! `cargo xtask <task>`: the project's entry points. See README.md.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use xtask::{bench, build, cmd::Runner, demo, fuzz, package, setup, test};

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    about = "Set up, build, test, demo and benchmark egress"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Install what building and testing needs (nightly rust-src, bpf-linker, Debian packages) and mount bpffs
    Setup,
    /// Setup, then build every crate and target
    Build,
    /// Setup, formatting and lint checks, build, a short parser fuzz run, then every test (what CI runs)
    Test(test::TestArgs),
    /// Tell the whole story in network namespaces with real mail servers
    Demo(demo::DemoArgs),
    /// Measure the dataplane and the agent against the spec's targets
    Bench(bench::BenchArgs),
    /// Build the Debian package (target/debian/egress-agent_*.deb) with cargo-deb
    Package,
    /// Fuzz the packet parser for a while
    Fuzz {
        /// How long to fuzz
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One readable chain of causes, never a backtrace: this is what a newcomer sees.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    match task {
        Task::Setup => setup::run(),
        Task::Build => build::run(),
        Task::Test(args) => test::run(args),
        Task::Demo(args) => demo::run(args),
        Task::Bench(args) => bench::run(args),
        Task::Package => package::build(Runner::echoing()).map(drop),
        Task::Fuzz { seconds } => fuzz::run(seconds),
    }
}
