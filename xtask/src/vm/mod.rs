//! `cargo xtask test --kernel 6.1`: the dataplane and agent tests on Debian 12's own kernel,
//! booted under TCG. The same test binaries as on the host run inside, directly (no cargo in
//! the guest), one step each with a timeout; the TC path there is the legacy cls_bpf filter
//! because 6.1 has no tcx. A VM that does not boot, or a step that fails, fails the run and
//! is named.

mod guest;
pub mod kernel;

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, cmd::Runner, workspace_root};

/// The whole VM run, boot included, is killed after this (a full run took 19 min on a loaded
/// 2-core machine, most of it the TEST_RUN table and the SYN-stream tests under TCG).
const VM_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// One step inside the guest: a test binary of `package` (`test` target or the lib), with
/// libtest arguments, and a timeout in seconds.
struct Step {
    name: &'static str,
    package: &'static str,
    /// Integration test target, or None for the package's lib unit tests.
    test: Option<&'static str>,
    args: &'static [&'static str],
    /// libtest threads: 2 (the guest's two CPUs) where the tests are independent (own
    /// namespaces, own loaded object), 1 where a binary has a single test.
    threads: u32,
    timeout: u32,
}

/// What runs on 6.1. Whole binaries where everything applies (the BPF_PROG_TEST_RUN table,
/// and with it every table added to `dataplane`), exact names where a binary also holds
/// host-only tests (tcx) or tests too slow under TCG for what they add. Each step must run
/// every test its selection lists on the host (`--list`), at least one, and every name after
/// `--exact`: a renamed test fails the run naming the step instead of passing with zero.
const STEPS: &[Step] = &[
    Step {
        name: "kernel feature probes",
        package: "egress-agent",
        test: None,
        args: &["dataplane::features", "dataplane::tc_"],
        threads: 2,
        timeout: 120,
    },
    Step {
        name: "BPF_PROG_TEST_RUN table (XDP, TC)",
        package: "tests",
        test: Some("dataplane"),
        args: &[],
        threads: 2,
        timeout: 600,
    },
    Step {
        name: "BPF_PROG_TEST_RUN table (inbound XDP)",
        package: "tests",
        test: Some("dataplane_inbound"),
        args: &[],
        threads: 2,
        timeout: 600,
    },
    Step {
        name: "verifier headroom",
        package: "tests",
        test: Some("verifier"),
        // The instruction counts go into the step's log.
        args: &["--nocapture"],
        threads: 1,
        timeout: 300,
    },
    Step {
        name: "netns e2e (XDP, TC legacy)",
        package: "tests",
        test: Some("e2e_netns"),
        args: &[
            "--exact",
            "xdp_on_the_subscriber_interface_blocks_port_25_except_relays",
            "tc_legacy_filter_on_the_uplink_blocks_port_25_except_relays",
        ],
        threads: 2,
        timeout: 300,
    },
    Step {
        name: "XDP upgrade: blocked_ports reload swaps the program",
        package: "tests",
        test: Some("hardening_layout"),
        args: &[
            "--exact",
            "blocked_ports_reload_swaps_the_program_without_a_gap",
        ],
        threads: 1,
        timeout: 300,
    },
    Step {
        name: "agent restart under a SYN stream",
        package: "tests",
        test: Some("agent_restart"),
        args: &[],
        threads: 1,
        timeout: 300,
    },
    Step {
        name: "TC legacy: restart, upgrade, detach, foreign filters",
        package: "tests",
        test: Some("tc_legacy"),
        // Switching between tcx and legacy needs tcx: host only.
        args: &["--skip", "switching_between_tcx_and_legacy"],
        // Two agents at once under TCG: neither control socket answered within 120 s (it
        // passes in parallel on the host), so one at a time here.
        threads: 1,
        timeout: 600,
    },
    Step {
        name: "detach",
        package: "tests",
        test: Some("agent_cli"),
        args: &["--exact", "detach_leaves_no_program_link_or_pin"],
        threads: 1,
        timeout: 300,
    },
];

pub fn run() -> Result<Duration> {
    let runner = Runner::echoing();
    let kernel = kernel::ensure(runner)?;
    println!("==> Building the test binaries the VM runs");
    runner.run(cargo().args(["build", "-p", "egress-agent"]))?;
    let mut lines = vec![
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        "export RUST_BACKTRACE=1".to_owned(),
        // Hang guards of the agent tests: loading the object takes tens of seconds under TCG.
        "export EGRESS_TEST_TIME_SCALE=6".to_owned(),
        format!("echo \"kernel $(uname -r)\" >> {}/progress", guest::SHARE),
        "failed=0".to_owned(),
    ];
    let mut expected = Vec::new();
    for (index, step) in STEPS.iter().enumerate() {
        let binary = test_binary(step)?;
        expected.push(expected_tests(step, &binary)?);
        let dir = workspace_root().join(step.package);
        let log = format!("{}/step-{index}.log", guest::SHARE);
        let args: Vec<String> = step.args.iter().map(|a| format!("'{a}'")).collect();
        lines.push(format!(
            "echo 'egress-vm: step {index}: {name}'; start=$(date +%s); \
             (cd '{dir}' && timeout -k 10 {timeout} '{binary}' {args} --test-threads={threads}) > {log} 2>&1; \
             rc=$?; echo \"{index} $rc $(( $(date +%s) - start ))\" >> {share}/results; \
             [ $rc = 0 ] || failed=1; echo \"egress-vm: step {index} exit $rc\"",
            name = step.name,
            dir = dir.display(),
            timeout = step.timeout,
            threads = step.threads,
            binary = binary.display(),
            args = args.join(" "),
            share = guest::SHARE,
        ));
    }
    lines.push("exit $failed".to_owned());

    let share = workspace_root().join("target/egress-vm");
    if share.exists() {
        fs::remove_dir_all(&share).with_context(|| format!("cannot clear {}", share.display()))?;
    }
    fs::create_dir_all(&share).with_context(|| format!("cannot create {}", share.display()))?;
    fs::write(share.join("run.sh"), lines.join("\n") + "\n").context("cannot write run.sh")?;
    let initramfs = share.join("initramfs.cpio");
    guest::build_initramfs(&kernel, &share, &initramfs)?;

    println!(
        "==> Booting Debian 12's kernel {} under TCG (results in {})",
        kernel.release,
        share.display()
    );
    let started = Instant::now();
    let status = boot(&kernel, &initramfs, &share)?;
    let took = started.elapsed();
    report(&share, status, took, &expected)?;
    Ok(took)
}

/// Runs qemu, echoing the guest console, killing it after VM_TIMEOUT.
fn boot(kernel: &kernel::Kernel, initramfs: &Path, share: &Path) -> Result<Option<i32>> {
    let mut child = guest::qemu(kernel, initramfs, share)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start qemu-system-x86_64 (Debian package qemu-system-x86)")?;
    let stdout = child.stdout.take().context("qemu has no stdout")?;
    let echo = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("  vm │ {line}");
        }
    });
    let deadline = Instant::now() + VM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for qemu")? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = echo.join();
    Ok(status.and_then(|s| s.code()))
}

/// Reads what the guest wrote and fails, naming the step, unless every step passed.
fn report(share: &Path, qemu: Option<i32>, took: Duration, expected: &[usize]) -> Result<()> {
    let progress = fs::read_to_string(share.join("progress")).unwrap_or_default();
    let results = fs::read_to_string(share.join("results")).unwrap_or_default();
    let exit = fs::read_to_string(share.join("exit-code")).unwrap_or_default();
    let mut failed = Vec::new();
    let mut too_few = Vec::new();
    println!(
        "  {:<55} {:>8} {:>6} {:>6}",
        "STEP (in the 6.1 VM)", "RESULT", "TESTS", "TIME"
    );
    for (index, step) in STEPS.iter().enumerate() {
        let line = results
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&index.to_string()));
        let (result, secs) = match line.map(|l| l.split_whitespace().collect::<Vec<_>>()) {
            Some(fields) if fields.len() == 3 => {
                let result = match fields[1] {
                    "0" => "ok".to_owned(),
                    "124" | "137" => "TIMEOUT".to_owned(),
                    rc => format!("rc {rc}"),
                };
                (result, format!("{}s", fields[2]))
            }
            _ => ("NOT RUN".to_owned(), "-".to_owned()),
        };
        let log = share.join(format!("step-{index}.log"));
        let passed = passed_tests(&fs::read_to_string(&log).unwrap_or_default());
        let want = expected[index];
        let result = if result == "ok" && passed < want {
            too_few.push(format!(
                "step `{}` ran {passed} test(s), expected {want} (a renamed or filtered-out test?)",
                step.name
            ));
            "TOO FEW".to_owned()
        } else {
            result
        };
        println!(
            "  {:<55} {:>8} {:>6} {:>6}",
            step.name,
            result,
            format!("{passed}/{want}"),
            secs
        );
        if result != "ok" {
            failed.push(step.name);
            let log = share.join(format!("step-{index}.log"));
            if let Ok(text) = fs::read_to_string(&log) {
                println!("  --- {} ({}), last lines:", step.name, log.display());
                let lines: Vec<&str> = text.lines().collect();
                for line in &lines[lines.len().saturating_sub(40)..] {
                    println!("  │ {line}");
                }
            }
        }
    }
    println!(
        "  VM run: {:.0} s (boot, every step, poweroff)",
        took.as_secs_f64()
    );
    if !progress.contains("booted") {
        bail!(
            "the 6.1 VM did not boot to the test script (qemu exit {qemu:?}): step `boot` \
             failed (kernel, initramfs, virtio/9p modules or the host-root mount); console above"
        );
    }
    if qemu.is_none() {
        bail!("the 6.1 VM did not finish within {VM_TIMEOUT:?}: killed");
    }
    if exit.trim().is_empty() {
        bail!("the 6.1 VM stopped before the test script finished (qemu exit {qemu:?})");
    }
    if !failed.is_empty() {
        let mut message = format!("in the 6.1 VM: {} failed", failed.join(", "));
        for line in &too_few {
            message += "; ";
            message += line;
        }
        bail!(message);
    }
    Ok(())
}

/// Sums the `N passed` of libtest's `test result: ok. N passed; ...` lines (one per binary
/// run; a step runs one, but a sum is right either way).
fn passed_tests(log: &str) -> usize {
    log.lines()
        .filter_map(|line| line.trim().strip_prefix("test result: ok. "))
        .filter_map(|rest| rest.split_once(" passed"))
        .filter_map(|(count, _)| count.trim().parse::<usize>().ok())
        .sum()
}

/// How many tests the step's selection holds, from the binary's own `--list` on the host
/// (ignored tests excluded): at least one, and at least every name after `--exact`.
fn expected_tests(step: &Step, binary: &Path) -> Result<usize> {
    let filters: Vec<&str> = step
        .args
        .iter()
        .copied()
        .filter(|a| *a != "--nocapture")
        .collect();
    let count = |ignored: bool| -> Result<usize> {
        let mut cmd = std::process::Command::new(binary);
        cmd.arg("--list").args(&filters);
        if ignored {
            cmd.arg("--ignored");
        }
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot list the tests of step `{}`", step.name))?;
        if !out.status.success() {
            bail!("listing the tests of step `{}` failed", step.name);
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.ends_with(": test"))
            .count())
    };
    let runnable = count(false)?.saturating_sub(count(true)?);
    let named = match step.args.iter().position(|a| *a == "--exact") {
        Some(at) => step.args[at + 1..]
            .iter()
            .take_while(|a| !a.starts_with("--"))
            .count(),
        None => 0,
    };
    if runnable == 0 || runnable < named {
        bail!(
            "step `{}` selects {runnable} runnable test(s) of {} (args {:?}), expected {}: \
             a renamed or removed test?",
            step.name,
            binary.display(),
            step.args,
            named.max(1)
        );
    }
    Ok(runnable)
}

/// The executable of one step, built now (`cargo test --no-run`).
fn test_binary(step: &Step) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-p",
        step.package,
        "--no-run",
        "--message-format=json",
    ]);
    match step.test {
        Some(test) => cmd.args(["--test", test]),
        None => cmd.arg("--lib"),
    };
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the test binary of step `{}` failed", step.name);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .with_context(|| format!("cargo built no test executable for step `{}`", step.name))
}

#[cfg(test)]
mod tests {
    use super::passed_tests;

    #[test]
    fn passed_counts_come_from_libtest_summaries() {
        let log = "running 2 tests\ntest a ... ok\ntest b ... ok\n\n\
                   test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 5 filtered out; \
                   finished in 1.2s\n";
        assert_eq!(passed_tests(log), 2);
        let none = "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; \
                    0 measured; 7 filtered out; finished in 0.00s\n";
        assert_eq!(passed_tests(none), 0);
        assert_eq!(
            passed_tests("test result: FAILED. 1 passed; 1 failed; 0 ignored"),
            0
        );
        assert_eq!(passed_tests(""), 0);
    }
}
