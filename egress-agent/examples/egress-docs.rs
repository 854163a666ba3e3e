//! Writes the man page `egress-agent.8` and the bash, zsh and fish completions, all generated
//! from the agent's clap definitions, into the directory given as the only argument.
//! `cargo xtask package` runs it; it is an example so clap_mangen/clap_complete stay out of
//! the agent binary.

use std::{io::Write as _, path::PathBuf};

use clap::CommandFactory as _;
use clap_complete::Shell;
use egress_agent::cli::Cli;

const CONFIG_KEYS: &[(&str, &str)] = &[
    (
        "mode",
        "enforce | monitor. The package starts in monitor: SMTP-bound packets are counted but pass.",
    ),
    (
        "blocked_ports",
        "TCP destination ports blocked (default [25]).",
    ),
    (
        "pin_dir",
        "bpffs directory of the pinned programs, links and maps (default /sys/fs/bpf/egress).",
    ),
    (
        "state_dir",
        "where CLI changes persist (default /var/lib/egress).",
    ),
    (
        "[[interface]] name, hook, xdp_mode",
        "hook = xdp (subscriber-facing ingress) or tc-egress (uplink); xdp_mode = auto | native | skb.",
    ),
    (
        "[allow] relays, exempt, destinations",
        "CIDR lists: the ISP's relays, exempt subscribers, allowed destinations.",
    ),
    (
        "[subscribers] ipv6_prefix_len, max_tracked",
        "IPv6 aggregation and the subscriber map's capacity.",
    ),
    (
        "[detection] window_seconds, attempts_threshold, distinct_destinations_threshold",
        "when a subscriber is a suspected bot.",
    ),
    (
        "[metrics] listen, max_subscriber_series",
        "Prometheus /metrics address (default 127.0.0.1:9725) and the labelled-series cap.",
    ),
    (
        "[control] socket, reattach",
        "the control socket (default /run/egress/egress.sock); replace a foreign program that displaced ours.",
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: egress-docs OUTDIR")?);
    std::fs::create_dir_all(&out)?;
    let mut command = Cli::command();
    command.build();

    let mut page = Vec::new();
    let man = clap_mangen::Man::new(command.clone()).section("8");
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    for sub in command
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
    {
        write_command(&mut page, &format!("egress-agent {}", sub.get_name()), sub)?;
    }
    write_static_sections(&mut page)?;
    man.render_version_section(&mut page)?;
    std::fs::write(out.join("egress-agent.8"), page)?;

    for (shell, file) in [
        (Shell::Bash, "egress-agent"),
        (Shell::Zsh, "_egress-agent"),
        (Shell::Fish, "egress-agent.fish"),
    ] {
        let mut file = std::fs::File::create(out.join(file))?;
        clap_complete::generate(shell, &mut command, "egress-agent", &mut file);
    }
    Ok(())
}

/// One section per command: its usage, what it does, its options; nested commands follow.
fn write_command(page: &mut Vec<u8>, path: &str, command: &clap::Command) -> std::io::Result<()> {
    if command.has_subcommands() {
        for sub in command
            .get_subcommands()
            .filter(|sub| sub.get_name() != "help")
        {
            write_command(page, &format!("{path} {}", sub.get_name()), sub)?;
        }
        return Ok(());
    }
    writeln!(page, ".SH \"{}\"", path.to_uppercase())?;
    let usage = command.clone().bin_name(path).render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ");
    writeln!(page, ".B {}", roff(usage))?;
    writeln!(page, ".PP")?;
    let about = command
        .get_long_about()
        .or(command.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    writeln!(page, "{}", roff(&about))?;
    for arg in command.get_arguments() {
        if arg.get_id() == "help" || arg.get_id() == "version" {
            continue;
        }
        let mut name = match (arg.get_short(), arg.get_long()) {
            (Some(short), Some(long)) => format!("\\-{short}, \\-\\-{long}"),
            (None, Some(long)) => format!("\\-\\-{long}"),
            (Some(short), None) => format!("\\-{short}"),
            (None, None) => String::new(),
        };
        let takes_value = arg.get_action().takes_values();
        if takes_value {
            let value = arg
                .get_value_names()
                .and_then(|names| names.first())
                .map_or_else(
                    || arg.get_id().to_string().to_uppercase(),
                    ToString::to_string,
                );
            name = format!("{name} \\fI{value}\\fR").trim().to_owned();
        }
        writeln!(page, ".TP\n\\fB{name}\\fR")?;
        let mut help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let defaults: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|value| value.to_string_lossy().into_owned())
            .collect();
        if takes_value && !defaults.is_empty() {
            help.push_str(&format!(" (default: {})", defaults.join(", ")));
        }
        writeln!(page, "{}", roff(&help))?;
    }
    Ok(())
}

fn write_static_sections(page: &mut Vec<u8>) -> std::io::Result<()> {
    writeln!(page, ".SH CONFIGURATION")?;
    writeln!(
        page,
        "/etc/egress/egress.toml (TOML). A config error names the file, the key and what is wrong, and changes nothing that runs. SIGHUP (systemctl reload egress-agent) applies a changed file; a bad one is logged and the old one stays."
    )?;
    for (key, what) in CONFIG_KEYS {
        writeln!(page, ".TP\n\\fB{}\\fR\n{}", roff(key), roff(what))?;
    }
    writeln!(page, ".SH FILES")?;
    for (file, what) in [
        ("/etc/egress/egress.toml", "the configuration (a conffile)"),
        (
            "/var/lib/egress/allowlist.json",
            "allowlist entries added through the CLI",
        ),
        (
            "/sys/fs/bpf/egress",
            "pinned programs, links and maps: the enforcement itself",
        ),
        (
            "/run/egress/egress.sock",
            "the control socket (mode 0600, root peers only)",
        ),
        (
            "/lib/systemd/system/egress-agent.service",
            "the systemd unit; its drop-in mounts bpffs when it is not mounted",
        ),
        (
            "/usr/share/egress/",
            "Prometheus alert rules and their tests, a scrape example, the Grafana dashboard",
        ),
    ] {
        writeln!(page, ".TP\n\\fI{file}\\fR\n{what}")?;
    }
    writeln!(page, ".SH \"EXIT STATUS\"")?;
    writeln!(page, ".TP\n0\nsuccess")?;
    writeln!(
        page,
        ".TP\n1\nthe agent is not running (the message names the socket) or an operation failed"
    )?;
    writeln!(
        page,
        ".TP\n2\nbad input: an argument, the config file, or a refused request; one line on stderr"
    )?;
    writeln!(page, ".SH \"STOPPING AND REMOVAL\"")?;
    writeln!(
        page,
        "Enforcement lives in the kernel: stopping the service, a crash, an upgrade or removing the package (even purging it) leaves the pinned programs dropping TCP/25 as they are. The only way to stop enforcing is \\fBegress-agent detach\\fR, which removes programs, links and pins; run it before removing the package if enforcement must end. Purging also removes /var/lib/egress. An upgrade restarts a running agent, which swaps the new program in atomically (bpf_link_update): port 25 is never open in between."
    )?;
    writeln!(page, ".SH \"SEE ALSO\"\nsystemctl(1), bpftool(8)")?;
    Ok(())
}

/// Escapes text for roff: backslashes, and a leading dot or quote.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}
