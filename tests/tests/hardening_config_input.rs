//! Config input robustness: thousands of mutated versions of the spec's example config
//! (deterministic seed) never panic the parser, and every rejection is one clear line naming
//! the file; `check-config` on mutated and non-UTF-8 files answers the same way.
use std::path::Path;

use egress_agent::config;
use tests::agent::{
    AgentFiles, cli,
    mutate::{Rng, mutate},
};

const SEED: u64 = 0x6567_7265_7373; // "egress"
const CASES: usize = 4000;

const EXAMPLE: &str = r#"mode = "enforce"
blocked_ports = [25]
pin_dir = "/sys/fs/bpf/egress"
state_dir = "/var/lib/egress"

[[interface]]
name = "sub0"
hook = "xdp"
xdp_mode = "auto"

[[interface]]
name = "up0"
hook = "tc-egress"

[allow]
relays = ["192.0.2.10/32", "2001:db8:1::25/128"]
exempt = ["198.51.100.64/26"]
destinations = []

[subscribers]
ipv6_prefix_len = 64
max_tracked = 1048576

[detection]
window_seconds = 300
attempts_threshold = 20
distinct_destinations_threshold = 5

[metrics]
listen = "127.0.0.1:9725"
max_subscriber_series = 1000

[control]
socket = "/run/egress/egress.sock"
reattach = true
"#;

#[test]
fn mutated_configs_never_panic_and_errors_name_the_file() {
    let path = Path::new("/etc/egress/fuzzed.toml");
    config::parse(path, EXAMPLE).expect("the spec's example config is valid");
    let mut rng = Rng::new(SEED);
    let mut rejected = 0;
    for case in 0..CASES {
        let bytes = mutate(&mut rng, EXAMPLE.as_bytes());
        // The file reader rejects non-UTF-8 before parsing (covered below); parse the rest.
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let result = std::panic::catch_unwind(|| config::parse(path, text));
        let Ok(result) = result else {
            panic!("config parser panicked on case {case} (seed {SEED:#x}):\n{text}");
        };
        if let Err(err) = result {
            rejected += 1;
            let message = err.to_string();
            assert!(
                message.starts_with("/etc/egress/fuzzed.toml: ") && !message.contains('\n'),
                "case {case}: the error must be one line naming the file: {message:?}"
            );
        }
    }
    assert!(
        rejected > CASES / 4,
        "mutations too tame: only {rejected} of {CASES} rejected"
    );
}

#[test]
fn check_config_rejects_mutated_and_non_utf8_files_with_one_line_naming_the_file() {
    let files = AgentFiles::new();
    let path = files.dir.join("mutated.toml");
    let path_str = path.to_str().expect("utf-8");
    let mut rng = Rng::new(SEED ^ 1);
    let mut cases: Vec<Vec<u8>> = (0..40)
        .map(|_| mutate(&mut rng, EXAMPLE.as_bytes()))
        .collect();
    cases.push(b"mode = \"enforce\"\n\xff\xfe\x00garbage".to_vec());
    cases.push(vec![b'['; 100_000]);
    cases.push(format!("blocked_ports = [{}]", "25,".repeat(100_000)).into_bytes());
    for (case, bytes) in cases.iter().enumerate() {
        std::fs::write(&path, bytes).expect("write mutated config");
        let out = cli(&["check-config", "--config", path_str]);
        if out.status.success() {
            continue;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(2) || out.status.code() == Some(1),
            "case {case}: exit code {:?}, stderr {stderr}",
            out.status.code()
        );
        assert!(
            stderr.contains(path_str) && stderr.trim().lines().count() == 1,
            "case {case}: one line naming the file: {stderr}"
        );
    }
    std::fs::remove_dir_all(&files.dir).expect("cleanup");
}
