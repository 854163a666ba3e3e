//! Replays the fuzzer's seeds and regressions (fuzz/seeds, fuzz/regressions) through the real
//! programs with BPF_PROG_TEST_RUN and through the host build of the parser: the kernel must
//! reach the host's verdict and bump the same counters, and a file named `drop-…` or `pass-…`
//! must get that verdict (default config: enforce, blocked ports {25}, no allowlists). The
//! raw-bytes target's local corpus (fuzz/corpus/parse_differential, left by `cargo xtask
//! fuzz`) is replayed too when it exists.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::programs::{TestRun, TestRunOptions};
use egress_common::{Parsed, PortSet, Suspect, parse};
use tests::dataplane::{Dataplane, Hook, Policy, Verdict, model};

/// BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
const ETHERNET_HEADER_LEN: usize = 14;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every replayable input: the seeds (which must exist), any regressions, the local corpus.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let seeds = fuzz_dir().join("seeds");
    assert!(
        seeds.is_dir(),
        "the seed corpus {} is missing (cargo run --manifest-path fuzz/Cargo.toml --bin gen_seeds)",
        seeds.display()
    );
    let mut files = Vec::new();
    let optional = ["regressions", "corpus/parse_differential"].map(|dir| fuzz_dir().join(dir));
    for dir in [[seeds].as_slice(), &optional].concat() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry
                .unwrap_or_else(|err| panic!("list {}: {err}", dir.display()))
                .path();
            let bytes =
                fs::read(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, bytes));
        }
    }
    files.sort();
    assert!(files.len() >= 40, "only {} seed files", files.len());
    files
}

/// The verdict a file's name promises, if it promises one.
fn promised(name: &str) -> Option<Verdict> {
    if name.starts_with("drop-") {
        Some(Verdict::Drop)
    } else if name.starts_with("pass-") {
        Some(Verdict::Pass)
    } else {
        None
    }
}

#[test]
fn kernel_and_host_agree_on_every_seed_and_regression() {
    let mut dataplane = Dataplane::load(&[25]);
    let policy = Policy::default();
    let (mut replayed, mut refused) = (0, 0);
    for (name, frame) in corpus() {
        let host = model::judge(&frame, &PortSet::DEFAULT, &policy);
        if let Some(verdict) = promised(&name) {
            assert_eq!(host.verdict, verdict, "host parser on {name}");
        }
        if frame.len() < ETHERNET_HEADER_LEN {
            // No real frame is this short; the host must still let it be.
            assert_eq!(host.verdict, Verdict::Pass, "host parser on runt {name}");
            continue;
        }
        for hook in Hook::BOTH {
            let before = dataplane.counters();
            let Some(verdict) = run(&mut dataplane, hook, &frame) else {
                // The TC test run refuses (EINVAL) some frames whose IP header is broken
                // before the program sees them; a real skb with such a header never reaches
                // tc egress either. Seeds and regressions must all run.
                assert!(
                    hook == Hook::Tc && promised(&name).is_none(),
                    "BPF_PROG_TEST_RUN of {hook:?} refused {name}"
                );
                refused += 1;
                continue;
            };
            let bumped = dataplane.counters().since(&before);
            assert_eq!(verdict, host.verdict, "{hook:?} verdict on {name}");
            let expected: Vec<_> = host.counters.iter().map(|&c| (c, 1)).collect();
            assert_eq!(bumped, expected, "{hook:?} counters on {name}");
            replayed += 1;
        }
        dataplane.drain_events();
    }
    assert!(
        replayed >= 80,
        "only {replayed} kernel runs ({refused} TC runs refused)"
    );
}

fn run(dataplane: &mut Dataplane, hook: Hook, frame: &[u8]) -> Option<Verdict> {
    let options = TestRunOptions {
        data_in: Some(frame),
        ..TestRunOptions::default()
    };
    let result = match hook {
        Hook::Xdp => dataplane.xdp().test_run(options),
        Hook::Tc => dataplane.tc().test_run(options),
    };
    result
        .ok()
        .map(|result| Verdict::from_return(hook, result.return_value))
}

/// Reasons the fuzzer found counted wrong (the frames were dropped either way).
#[test]
fn parser_counts_the_reasons_the_fuzzer_pinned_down() {
    let read = |path: &str| {
        let path = fuzz_dir().join(path);
        fs::read(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
    };
    // A first fragment (M=1) followed by an atomic fragment header, then a hop-by-hop header
    // that runs past the packet: the chain does not reach TCP in a first fragment (RFC 7112).
    let frame = read("regressions/drop-v6-first-fragment-then-atomic-fragment");
    assert_eq!(
        parse(frame.as_slice(), &PortSet::DEFAULT),
        Parsed::Suspect(Suspect::Ipv6Chain)
    );
    // TCP starting at byte 1014, after eight destination-options headers: its flags lie past
    // the parser's 1024-byte window, so the chain is too long to walk, not a malformed header.
    let frame = read("seeds/drop-v6-tcp-at-window-edge");
    assert_eq!(
        parse(frame.as_slice(), &PortSet::DEFAULT),
        Parsed::Suspect(Suspect::Ipv6Chain)
    );
}
