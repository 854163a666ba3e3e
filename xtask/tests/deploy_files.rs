//! The files in deploy/ are what operators copy to production: the example config must be
//! accepted by the agent's own config types and show every key, and the systemd unit must be
//! valid for systemd and keep the least-privilege settings the spec requires.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use egress_agent::config::{Config, Hook, ModeSetting};

fn deploy_file(relative: &str) -> PathBuf {
    xtask::workspace_root().join("deploy").join(relative)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// Dotted key paths of a TOML document (array-of-tables entries share their parent's path).
fn key_paths(value: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, child) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                key_paths(child, &path, out);
            }
        }
        toml::Value::Array(items) => {
            for item in items.iter().filter(|item| item.is_table()) {
                key_paths(item, prefix, out);
            }
        }
        _ => {}
    }
}

#[test]
fn example_config_is_accepted_and_shows_every_key() {
    let path = deploy_file("egress.toml");
    let text = read(&path);
    // load() is what `egress-agent check-config` and `run` use: syntax, types and meaning.
    let config: Config = egress_agent::config::load(&path)
        .unwrap_or_else(|err| panic!("the agent rejects the example config: {err}"));
    assert_eq!(config.mode, ModeSetting::Enforce);
    assert_eq!(config.blocked_ports, vec![25]);
    for hook in [Hook::Xdp, Hook::TcEgress] {
        assert!(
            config
                .interfaces
                .iter()
                .any(|interface| interface.hook == hook),
            "the example has no {} interface",
            hook.as_str()
        );
    }
    assert!(
        !config.allow.relays.is_empty(),
        "the example lists no relay"
    );
    assert!(
        !config.allow.exempt.is_empty(),
        "the example lists no exempt prefix"
    );

    let written: toml::Value = toml::from_str(&text).expect("parsed above");
    let every_key = toml::Value::try_from(&config).expect("Config serializes");
    let (mut shown, mut known) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&written, "", &mut shown);
    key_paths(&every_key, "", &mut known);
    let missing: Vec<_> = known.difference(&shown).collect();
    assert!(
        missing.is_empty(),
        "deploy/egress.toml does not show {missing:?}"
    );
}

const UNIT: &str = "systemd/egress-agent.service";
const DROP_IN: &str = "systemd/egress-agent.service.d/mount-bpffs.conf";

/// `Key=value` lines of a unit file, comments and section headers left out.
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', ';', '[']))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
        .collect()
}

#[test]
fn unit_grants_only_the_capabilities_the_spec_allows() {
    let settings = unit_settings(&read(&deploy_file(UNIT)));
    let caps = "CAP_BPF CAP_NET_ADMIN CAP_PERFMON";
    assert_eq!(setting(&settings, "CapabilityBoundingSet"), [caps]);
    assert_eq!(setting(&settings, "AmbientCapabilities"), [caps]);
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ReadWritePaths", "/sys/fs/bpf"),
        ("StateDirectory", "egress"),
        ("RuntimeDirectory", "egress"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        ),
        ("LimitMEMLOCK", "infinity"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("KillSignal", "SIGTERM"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(setting(&settings, key), [value], "{UNIT}: {key}");
    }
    let start = setting(&settings, "ExecStart");
    assert!(
        start.len() == 1 && start[0].ends_with("egress-agent run --config /etc/egress/egress.toml"),
        "{UNIT}: ExecStart is {start:?}"
    );
    // The drop-in mounts bpffs with full privileges for one command instead of granting the
    // agent CAP_SYS_ADMIN.
    let drop_in = unit_settings(&read(&deploy_file(DROP_IN)));
    assert!(setting(&drop_in, "CapabilityBoundingSet").is_empty());
    assert!(
        setting(&drop_in, "ExecStartPre")
            .iter()
            .any(|cmd| cmd.starts_with('+'))
    );
}

#[test]
fn systemd_accepts_the_unit_and_its_drop_in_without_warnings() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze is missing: run `cargo xtask setup` (it installs the systemd package)"
    );
    // verify checks that ExecStart binaries exist; the agent is not installed on a test machine.
    let dir = std::env::temp_dir().join(format!("egress-unit-{}", std::process::id()));
    let drop_in_dir = dir.join("egress-agent.service.d");
    fs::create_dir_all(&drop_in_dir).expect("create a temporary unit directory");
    let unit = dir.join("egress-agent.service");
    let text = read(&deploy_file(UNIT)).replace("/usr/local/bin/egress-agent", "/bin/true");
    fs::write(&unit, text).expect("write the temporary unit");
    fs::copy(deploy_file(DROP_IN), drop_in_dir.join("mount-bpffs.conf")).expect("copy the drop-in");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        // Makes systemd read the drop-in next to the unit too.
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
        .output()
        .expect("run systemd-analyze");
    let _ = fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
