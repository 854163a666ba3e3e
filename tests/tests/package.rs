//! The Debian package of `cargo xtask package`, tested as operators get it: lintian finds no
//! error; unpacked into a throwaway root, its binary accepts its own conffile, its man page
//! renders, systemd accepts its unit; and its binary enforces in the namespace lab (XDP
//! attached, port 25 blocked, 587 allowed).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use tests::agent::{self, Agent, AgentFiles, Lab, SUBSCRIBER, traffic};
use xtask::{cmd::Runner, package};

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
