//! The Debian package of `cargo xtask package`, tested as operators get it: lintian finds no
//! error; unpacked into a throwaway root, its binary accepts its own conffile, its man page
//! renders with every config section and key, systemd accepts its unit, `/usr/share/egress/`
//! is exactly deploy/'s rules, tests and examples, the maintainer scripts create and purge the
//! state directory (in the throwaway root, and in a private mount namespace with a stand-in
//! systemctl), the bash completion loads and completes; and its binary enforces in the
//! namespace lab (XDP attached, port 25 blocked, 587 allowed).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use egress_agent::{config, history, paths::StateLayout};
use tests::agent::{self, Agent, AgentFiles, Lab, SUBSCRIBER, traffic};
use xtask::{cmd::Runner, package, workspace_root};

fn run(what: &str, command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {what}: {err}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// A temporary directory removed on drop.
struct TempRoot(PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unpack(deb: &Path) -> TempRoot {
    let root = std::env::temp_dir().join(format!("egress-package-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("create the throwaway root");
    let root = TempRoot(root);
    run(
        "dpkg -x",
        Command::new("dpkg").arg("-x").arg(deb).arg(&root.0),
    );
    root
}

#[test]
fn package_is_lintian_clean_installs_and_its_binary_enforces() {
    let deb = package::build(Runner::quiet()).expect("cargo xtask package");

    let lintian = run(
        "lintian",
        Command::new("lintian")
            .args(["--fail-on", "error"])
            .arg(&deb),
    );
    assert!(!lintian.contains("E: "), "lintian errors:\n{lintian}");

    let contents = run("dpkg-deb -c", Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/sbin/egress-agent",
        "./lib/systemd/system/egress-agent.service",
        "./lib/systemd/system/egress-agent.service.d/mount-bpffs.conf",
        "./etc/egress/egress.toml",
        "./usr/share/man/man8/egress-agent.8.gz",
        "./usr/share/bash-completion/completions/egress-agent",
        "./usr/share/zsh/vendor-completions/_egress-agent",
        "./usr/share/fish/vendor_completions.d/egress-agent.fish",
        "./usr/share/egress/prometheus/egress.rules.yml",
        "./usr/share/egress/prometheus/egress.rules.test.yml",
        "./usr/share/egress/prometheus/egress-audit.rules.yml",
        "./usr/share/egress/prometheus/egress-fleet.rules.yml",
        "./usr/share/egress/prometheus/egress-fleet.rules.test.yml",
        "./usr/share/egress/prometheus/federation.yml",
        "./usr/share/egress/prometheus/prometheus.yml",
        "./usr/share/egress/grafana/egress.json",
        "./usr/share/doc/egress-agent/copyright",
        "./usr/share/doc/egress-agent/changelog.Debian.gz",
    ] {
        assert!(
            contents.contains(path),
            "{path} missing from the package:\n{contents}"
        );
    }
    let control = run("dpkg-deb -e", Command::new("dpkg-deb").arg("-I").arg(&deb));
    for script in ["postinst", "prerm", "postrm", "conffiles"] {
        assert!(control.contains(script), "no {script} in:\n{control}");
    }

    let root = unpack(&deb);
    let binary = root.0.join("usr/sbin/egress-agent");
    let conffile = root.0.join("etc/egress/egress.toml");
    let checked = run(
        "check-config",
        Command::new(&binary)
            .arg("check-config")
            .arg("--config")
            .arg(&conffile),
    );
    assert!(checked.contains("mode monitor"), "{checked}");

    let man = run(
        "man -l",
        Command::new("man")
            .env("MANWIDTH", "100")
            .args(["-P", "cat", "-l"])
            .arg(root.0.join("usr/share/man/man8/egress-agent.8.gz")),
    );
    // Without a terminal, man prints bold as `c\bc` overstrikes: keep the last of each.
    let man = man.chars().fold(String::new(), |mut text, c| {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
        text
    });
    for heading in [
        "EGRESS-AGENT RUN",
        "EGRESS-AGENT RELAY ADD",
        "EGRESS-AGENT DETACH",
        "CONFIGURATION",
        "FILES",
        "EXIT STATUS",
        "STOPPING AND REMOVAL",
        "--config",
    ] {
        assert!(
            man.contains(heading),
            "the man page lacks {heading}:\n{man}"
        );
    }
    check_man_configuration(&man);
    for file in [
        StateLayout::new(egress_agent::paths::DEFAULT_STATE_DIR).allowlist(),
        StateLayout::new(egress_agent::paths::DEFAULT_STATE_DIR).fleet(),
        Path::new(egress_agent::paths::DEFAULT_STATE_DIR).join(history::FILE_NAME),
    ] {
        let file = file.display().to_string();
        assert!(man.contains(&file), "FILES lacks {file}:\n{man}");
    }

    check_shared_files(&root.0);
    check_maintainer_scripts(&deb, &root.0);
    check_completions(&root.0);

    // systemd-analyze checks that ExecStart's binary exists on this host, where the package
    // is not installed: verify the packaged unit (and its drop-in) pointing at the unpacked
    // binary, everything else as shipped.
    let units = root.0.join("verify");
    std::fs::create_dir_all(units.join("egress-agent.service.d")).expect("create unit dir");
    let unit = std::fs::read_to_string(root.0.join("lib/systemd/system/egress-agent.service"))
        .expect("read the packaged unit");
    assert!(
        unit.contains("ExecStart=/usr/sbin/egress-agent run"),
        "{unit}"
    );
    std::fs::write(
        units.join("egress-agent.service"),
        unit.replace("/usr/sbin/egress-agent", &binary.display().to_string()),
    )
    .expect("write the unit");
    std::fs::copy(
        root.0
            .join("lib/systemd/system/egress-agent.service.d/mount-bpffs.conf"),
        units.join("egress-agent.service.d/mount-bpffs.conf"),
    )
    .expect("copy the drop-in");
    run(
        "systemd-analyze verify",
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(units.join("egress-agent.service")),
    );

    // The packaged binary enforces: XDP attached, 25 blocked, 587 allowed.
    agent::use_binary(binary);
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, "");
    let agent = Agent::start(&lab, files);
    let attachment = agent.attachment(&lab.rtr_sub_if);
    assert_eq!(attachment["hook"], "xdp", "{attachment}");
    assert_eq!(attachment["attached"], true, "{attachment}");
    let _smtp = traffic::smtp_listener(&lab);
    let _submission = traffic::listener(&lab, 587);
    assert!(
        !traffic::connects(&lab, SUBSCRIBER),
        "port 25 must be blocked by the packaged agent"
    );
    assert!(
        traffic::connects_to(&lab, SUBSCRIBER, 587),
        "port 587 must stay open"
    );
}

/// Every key of a config that sets every key of the spec, as `(section, key)`: section "" is
/// the top level, `[name]` a table, `[[name]]` an array of tables. Taken from the parsed
/// config, serialized back, so keys with a default that the text below lacks are there too.
fn config_keys() -> BTreeSet<(String, String)> {
    let text = r#"
mode = "monitor"
blocked_ports = [25]
pin_dir = "/sys/fs/bpf/egress"
state_dir = "/var/lib/egress"

[[interface]]
name = "sub0"
hook = "xdp"
xdp_mode = "auto"

[allow]
relays = ["192.0.2.10/32"]
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

[inbound]
ports = [25]
protected_mx = ["192.0.2.30/32"]
mx_senders = ["192.0.2.40/32"]

[inbound.throttle]
destinations = ["192.0.2.40/32"]
syn_per_second = 10
burst = 40
max_sources = 262144

[mail]
domains = ["isp.example"]
submission_hosts = ["smtp.isp.example"]
primary_mx = ["mx1.isp.example"]
spam_checkers = ["mx2.isp.example"]
resolver = "192.0.2.53:53"
ca_file = "/etc/egress/relay-ca.pem"
audit_interval_seconds = 3600

[mail.test_account]
user = "audit@isp.example"
password_file = "/etc/egress/audit.password"

[identity]
radius_listen = "127.0.0.1:1813"
radius_clients = ["192.0.2.1/32"]
radius_secret_file = "/etc/egress/radius.secret"
retention_days = 90

[notify]
webhook_url = "https://abuse.isp.example/egress"
secret_file = "/etc/egress/webhook.secret"
timeout_seconds = 5
max_queued = 100000

[fleet]
etcd_endpoints = ["https://192.0.2.100:2379"]
key_prefix = "/egress/north"
username = "egress"
password_file = "/etc/egress/etcd.password"
ca_file = "/etc/egress/etcd-ca.pem"
cert_file = "/etc/egress/etcd-client.pem"
key_file = "/etc/egress/etcd-client.key"
"#;
    let parsed = config::parse(Path::new("every-key.toml"), text)
        .unwrap_or_else(|err| panic!("the every-key config is refused: {err}"));
    let value = serde_json::to_value(&parsed).expect("serialize the config");
    let mut keys = BTreeSet::new();
    collect_keys(&value, "", &mut keys);
    keys
}

fn collect_keys(value: &serde_json::Value, table: &str, keys: &mut BTreeSet<(String, String)>) {
    let serde_json::Value::Object(entries) = value else {
        panic!("{table} is not a table: {value}");
    };
    for (key, value) in entries {
        let dotted = if table.is_empty() {
            key.clone()
        } else {
            format!("{table}.{key}")
        };
        match value {
            serde_json::Value::Object(_) => collect_keys(value, &dotted, keys),
            serde_json::Value::Array(items) if items.iter().any(|item| item.is_object()) => {
                for item in items {
                    collect_keys(item, &format!("[{dotted}]"), keys);
                }
            }
            _ => {
                let section = match table {
                    "" => String::new(),
                    array if array.starts_with('[') => format!("[{array}]"),
                    table => format!("[{table}]"),
                };
                keys.insert((section, key.clone()));
            }
        }
    }
}

/// The rendered CONFIGURATION section has a subsection per config section, and under it a
/// `KEY (default: ...)` or `KEY (required)` line per key.
fn check_man_configuration(man: &str) {
    let start = man
        .find("\nCONFIGURATION\n")
        .unwrap_or_else(|| panic!("no CONFIGURATION section:\n{man}"));
    let end = man[start..]
        .find("\nFILES\n")
        .map_or(man.len(), |at| start + at);
    let text = &man[start..end];
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = None;
    for line in text.lines().map(str::trim) {
        if line == "top level" {
            section = Some(String::new());
        } else if line.starts_with('[') && line.ends_with(']') && !line.contains(' ') {
            section = Some(line.to_owned());
        } else if let (Some(section), Some((key, rest))) = (&section, line.split_once(' '))
            && (rest.starts_with("(default: ") || rest == "(required)")
        {
            found
                .entry(section.clone())
                .or_default()
                .insert(key.to_owned());
        }
    }
    let expected = config_keys();
    let sections: BTreeSet<_> = expected
        .iter()
        .map(|(section, _)| section.as_str())
        .collect();
    for section in [
        "",
        "[[interface]]",
        "[allow]",
        "[subscribers]",
        "[detection]",
        "[metrics]",
        "[control]",
        "[inbound]",
        "[inbound.throttle]",
        "[mail]",
        "[mail.test_account]",
        "[identity]",
        "[notify]",
        "[fleet]",
    ] {
        assert!(
            sections.contains(section),
            "the every-key config lacks {section:?}"
        );
        assert!(
            found.contains_key(section),
            "the man page has no {section:?} subsection:\n{text}"
        );
    }
    let missing: Vec<_> = expected
        .iter()
        .filter(|(section, key)| !found.get(section).is_some_and(|keys| keys.contains(key)))
        .map(|(section, key)| format!("{section} {key}"))
        .collect();
    assert!(
        missing.is_empty(),
        "config keys missing from the man page: {missing:?}\n{text}"
    );
}

/// Relative paths of the files under `dir`, recursively.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.insert(path.strip_prefix(base).expect("under base").to_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// `/usr/share/egress/` holds exactly deploy/prometheus and deploy/grafana, byte for byte.
fn check_shared_files(root: &Path) {
    let deploy = workspace_root().join("deploy");
    let shared = root.join("usr/share/egress");
    let mut expected = BTreeSet::new();
    for dir in ["prometheus", "grafana"] {
        for file in files_under(&deploy.join(dir)) {
            expected.insert(Path::new(dir).join(file));
        }
    }
    let shipped = files_under(&shared);
    assert_eq!(
        shipped, expected,
        "/usr/share/egress/ differs from deploy/prometheus + deploy/grafana"
    );
    for file in &expected {
        assert_eq!(
            std::fs::read(shared.join(file)).expect("read the shipped file"),
            std::fs::read(deploy.join(file)).expect("read the deploy file"),
            "{} differs from deploy/",
            file.display()
        );
    }
}

/// The maintainer scripts, run twice without touching the host: with `DPKG_ROOT` pointing at
/// the throwaway root (paths under it, systemd left alone), and as on a running system inside
/// a private mount namespace whose /var/lib and /run are fresh tmpfs, with a stand-in
/// `systemctl` that records its calls.
fn check_maintainer_scripts(deb: &Path, root: &Path) {
    let control = root.join("control");
    run(
        "dpkg-deb -e",
        Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control),
    );
    let bin = root.join("fake-bin");
    std::fs::create_dir_all(&bin).expect("create fake-bin");
    let calls = root.join("systemctl.calls");
    std::fs::write(
        bin.join("systemctl"),
        format!("#!/bin/sh\necho \"$*\" >> {}\n", calls.display()),
    )
    .expect("write the stand-in systemctl");
    run(
        "chmod",
        Command::new("chmod").arg("755").arg(bin.join("systemctl")),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = |name: &str| control.join(name).display().to_string();

    // Offline, into the throwaway root.
    let state = root.join("var/lib/egress");
    let offline = |name: &str, args: &[&str]| {
        run(
            &format!("DPKG_ROOT {name} {args:?}"),
            Command::new("sh")
                .arg(script(name))
                .args(args)
                .env("DPKG_ROOT", root)
                .env("PATH", &path),
        );
    };
    offline("postinst", &["configure", ""]);
    let mode = std::fs::metadata(&state)
        .unwrap_or_else(|err| panic!("postinst made no {}: {err}", state.display()))
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777,
        0o700,
        "state_dir mode"
    );
    std::fs::write(state.join("allowlist.json"), "{}").expect("write state");
    offline("postinst", &["configure", "0.0.1-1"]);
    offline("prerm", &["remove"]);
    offline("postrm", &["remove"]);
    assert!(
        state.join("allowlist.json").exists(),
        "remove must keep state_dir"
    );
    offline("postrm", &["purge"]);
    assert!(!state.exists(), "purge must remove {}", state.display());
    assert!(
        !calls.exists(),
        "systemctl called for an offline root: {}",
        std::fs::read_to_string(&calls).unwrap_or_default()
    );

    // As on a running system, in a private mount namespace.
    let sequence = format!(
        "set -e; mount -t tmpfs tmpfs /var/lib; mount -t tmpfs tmpfs /run; \
         mkdir -p /run/systemd/system; \
         sh {postinst} configure ''; test \"$(stat -c %a /var/lib/egress)\" = 700; \
         touch /var/lib/egress/history.sqlite3; \
         sh {postinst} configure 0.0.1-1; sh {prerm} remove; sh {postrm} remove; \
         test -e /var/lib/egress/history.sqlite3; \
         sh {postrm} purge; test ! -e /var/lib/egress",
        postinst = script("postinst"),
        prerm = script("prerm"),
        postrm = script("postrm"),
    );
    run(
        "maintainer scripts in a mount namespace",
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(&sequence)
            .env("PATH", &path),
    );
    let recorded = std::fs::read_to_string(&calls).expect("systemctl was never called");
    assert_eq!(
        recorded.lines().collect::<Vec<_>>(),
        [
            "daemon-reload",
            "daemon-reload",
            "try-restart egress-agent.service",
            "stop egress-agent.service",
            "daemon-reload",
            "daemon-reload",
        ],
        "systemctl calls of install, upgrade, remove, purge"
    );
}

/// The bash completion loads and completes commands and subcommands; the zsh and fish ones
/// are for egress-agent (and parse, where those shells are installed).
fn check_completions(root: &Path) {
    let bash = root.join("usr/share/bash-completion/completions/egress-agent");
    let complete = |words: &str| {
        run(
            "bash completion",
            Command::new("bash")
                .args(["--norc", "--noprofile", "-c"])
                .arg(format!(
                    "source {}; spec=$(complete -p egress-agent); echo \"$spec\"; \
                     fn=${{spec#*-F }}; fn=${{fn%% *}}; \
                     COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                     $fn egress-agent \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                     printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                    bash.display()
                )),
        )
    };
    let commands = complete("egress-agent re");
    assert!(
        commands.starts_with("complete ") && commands.contains(" -F "),
        "{commands}"
    );
    for word in ["relay", "reports"] {
        assert!(
            commands.lines().any(|line| line == word),
            "`egress-agent re<TAB>` lacks {word}:\n{commands}"
        );
    }
    let relay = complete("egress-agent relay ''");
    for word in ["add", "remove", "list"] {
        assert!(
            relay.lines().any(|line| line == word),
            "`egress-agent relay <TAB>` lacks {word}:\n{relay}"
        );
    }
    // Past the second word too (clap-rs/clap#6421 broke that for hyphenated binaries).
    let add = complete("egress-agent relay add --");
    for word in ["--comment", "--socket"] {
        assert!(
            add.lines().any(|line| line == word),
            "`egress-agent relay add --<TAB>` lacks {word}:\n{add}"
        );
    }

    let zsh = root.join("usr/share/zsh/vendor-completions/_egress-agent");
    let fish = root.join("usr/share/fish/vendor_completions.d/egress-agent.fish");
    let zsh_text = std::fs::read_to_string(&zsh).expect("read the zsh completion");
    assert!(zsh_text.starts_with("#compdef egress-agent"), "{zsh_text}");
    let fish_text = std::fs::read_to_string(&fish).expect("read the fish completion");
    assert!(
        fish_text.contains("complete -c egress-agent"),
        "{fish_text}"
    );
    for (shell, file) in [("zsh", &zsh), ("fish", &fish)] {
        if Command::new(shell).arg("-c").arg("true").output().is_ok() {
            run(
                &format!("{shell} -n"),
                Command::new(shell).arg("-n").arg(file),
            );
        }
    }
}
