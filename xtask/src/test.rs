//! `cargo xtask test`: what CI runs. Setup, formatting and lint checks, build, a short fuzz run
//! of the packet parser, then every test of the workspace (unit, dataplane, integration, demo
//! scenario). Exits non-zero when any of it fails, after running all of it so one report shows
//! every problem.

use anyhow::{Result, bail};
use clap::Args;

use crate::{build, cargo, cmd::Runner, fuzz, setup, vm};

#[derive(Args, Debug, Default)]
pub struct TestArgs {
    /// Skip `cargo fmt --check` and `cargo clippy` (CI never skips them)
    #[arg(long)]
    pub no_lint: bool,
    /// Run only the tests on another kernel in a VM (`6.1`: Debian 12's, under TCG)
    #[arg(long, value_name = "VERSION", value_parser = ["6.1"])]
    pub kernel: Option<String>,
    /// Passed to the test binaries after `--`, e.g. a test name filter
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

pub fn run(args: TestArgs) -> Result<()> {
    setup::run()?;
    if args.kernel.is_some() {
        let took = vm::run()?;
        println!("==> The 6.1 VM tests passed in {:.0} s", took.as_secs_f64());
        return Ok(());
    }
    let runner = Runner::echoing();
    let mut failed = Vec::new();
    if !args.no_lint {
        println!("==> Checking formatting");
        if let Err(err) = runner.run(cargo().args(["fmt", "--all", "--", "--check"])) {
            eprintln!("{err:#}");
            failed.push("formatting (run `cargo fmt --all`)");
        }
        println!("==> Linting");
        let clippy = runner.run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]));
        if let Err(err) = clippy {
            eprintln!("{err:#}");
            failed.push("clippy");
        }
    }
    if let Err(err) = build::build_workspace() {
        // Nothing can be tested without a build; report it with what already failed.
        failed.push("build");
        bail!("{err:#}\nfailed: {}", failed.join(", "));
    }
    // After setup (nightly with rust-src); fuzz::run installs cargo-fuzz when it is missing.
    if let Err(err) = fuzz::run(fuzz::TEST_RUN_SECONDS) {
        eprintln!("{err:#}");
        failed.push("fuzz");
    }
    println!("==> Running every test (they need root: namespaces, BPF, bpffs)");
    let tests = runner.run(
        cargo()
            .args(["test", "--workspace", "--no-fail-fast", "--"])
            .args(&args.test_args),
    );
    if let Err(err) = tests {
        eprintln!("{err:#}");
        failed.push("tests");
    }
    println!("==> The dataplane and agent tests on Debian 12's kernel (6.1) in a VM");
    match vm::run() {
        Ok(took) => println!("  passed in {:.0} s", took.as_secs_f64()),
        Err(err) => {
            eprintln!("{err:#}");
            failed.push("tests in the 6.1 VM");
        }
    }
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    println!("==> All checks and tests passed");
    Ok(())
}
