//! Writes the man page `egress-agent.8` and the bash, zsh and fish completions, all generated
//! from the agent's clap definitions, into the directory given as the only argument.
//! `cargo xtask package` runs it; it is an example so clap_mangen/clap_complete stay out of
//! the agent binary.

use std::{io::Write as _, path::PathBuf};

use clap::CommandFactory as _;
use clap_complete::Shell;
use egress_agent::cli::Cli;

/// One config section: its header (empty: the top level), what it is, and its keys as
/// `(key, default, meaning)`; a default of "" means the key is required when the section is
/// present. Every key the parser accepts (spec: Configuration, Inbound, Traceability,
/// Notification, Audit, Fleet) is here; the package test checks the rendered page for each.
type Section = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str, &'static str)],
);

const CONFIG: &[Section] = &[
    (
        "",
        "Top-level keys.",
        &[
            (
                "mode",
                "enforce",
                "enforce drops SMTP-bound packets; monitor counts them and lets them pass. The packaged file starts in monitor.",
            ),
            (
                "blocked_ports",
                "[25]",
                "TCP destination ports the outbound programs block; 587 and 465 (submission) are refused.",
            ),
            (
                "pin_dir",
                "/sys/fs/bpf/egress",
                "bpffs directory of the pinned programs, links and maps; bpffs is mounted when it is not.",
            ),
            (
                "state_dir",
                "/var/lib/egress",
                "where CLI changes, the fleet snapshot and the history database persist (see FILES).",
            ),
        ],
    ),
    (
        "[[interface]]",
        "One entry per interface and hook (none by default: nothing is attached). An interface may carry tc-egress and xdp-inbound at once.",
        &[
            ("name", "", "the interface name."),
            (
                "hook",
                "",
                "xdp (ingress of a subscriber-facing interface), tc-egress (egress of an uplink) or xdp-inbound (ingress of an uplink: the [inbound] rules).",
            ),
            (
                "xdp_mode",
                "auto",
                "auto | native | skb, for the XDP hooks.",
            ),
        ],
    ),
    (
        "[allow]",
        "Allowlists of the outbound programs: lists of CIDRs (a bare address means /32 or /128).",
        &[
            (
                "relays",
                "[]",
                "the ISP's relays, which may send to blocked ports.",
            ),
            (
                "exempt",
                "[]",
                "subscribers allowed to run their own mail server (business customers).",
            ),
            (
                "destinations",
                "[]",
                "destinations anyone may reach, e.g. the ISP's relay beyond the edge.",
            ),
        ],
    ),
    (
        "[subscribers]",
        "How sources are counted.",
        &[
            (
                "ipv6_prefix_len",
                "64",
                "IPv6 sources are aggregated to this prefix length.",
            ),
            (
                "max_tracked",
                "1048576",
                "capacity of the subscriber map (LRU: the least recently seen are evicted).",
            ),
            (
                "pools",
                "[]",
                "the ISP's own IPv4 subscriber ranges (up to 8 prefixes, a /10 in all): one 96-byte record per address, found without hashing and never evicted; other sources stay in the LRU map.",
            ),
        ],
    ),
    (
        "[detection]",
        "When a subscriber is a suspected bot (RFC 6561).",
        &[
            ("window_seconds", "300", "the detection window."),
            (
                "attempts_threshold",
                "20",
                "blocked SYNs within the window that flag a subscriber.",
            ),
            (
                "distinct_destinations_threshold",
                "5",
                "distinct destinations within the window that flag a subscriber.",
            ),
        ],
    ),
    (
        "[metrics]",
        "The Prometheus endpoint.",
        &[
            (
                "listen",
                "127.0.0.1:9725",
                "address of http://LISTEN/metrics.",
            ),
            (
                "max_subscriber_series",
                "1000",
                "the top offenders exported with a subscriber label.",
            ),
        ],
    ),
    (
        "[control]",
        "The CLI's control socket.",
        &[
            (
                "socket",
                "/run/egress/egress.sock",
                "the control socket (mode 0600, root peers only).",
            ),
            (
                "reattach",
                "true",
                "replace a foreign program that displaced ours on a configured hook.",
            ),
        ],
    ),
    (
        "[inbound]",
        "Only the spam checkers reach the primary MX (hook xdp-inbound).",
        &[
            (
                "ports",
                "[25]",
                "TCP destination ports the inbound rules apply to; 587 and 465 are refused.",
            ),
            (
                "protected_mx",
                "[]",
                "CIDRs of the primary MX: dropped (monitor: counted) unless the source is an mx_sender.",
            ),
            (
                "mx_senders",
                "[]",
                "CIDRs of the spam checkers and third-party filtering services that may reach protected_mx.",
            ),
        ],
    ),
    (
        "[inbound.throttle]",
        "Optional: a per-source SYN token bucket in front of the spam checker.",
        &[
            (
                "destinations",
                "[]",
                "CIDRs whose SYNs are rate limited per source address (IPv6: per /64).",
            ),
            (
                "syn_per_second",
                "10",
                "the bucket's refill rate per source.",
            ),
            ("burst", "40", "the bucket's size."),
            ("max_sources", "262144", "sources with a bucket (LRU map)."),
        ],
    ),
    (
        "[mail]",
        "Optional: the mail set-up egress-agent audit checks (absent: no audit).",
        &[
            ("domains", "", "the ISP's mail domains."),
            (
                "submission_hosts",
                "[]",
                "what customers configure for 587/465.",
            ),
            ("primary_mx", "[]", "host names of the primary MX."),
            (
                "spam_checkers",
                "[]",
                "host names of the spam checkers (the less preferred MX).",
            ),
            (
                "resolver",
                "the system resolver",
                "IP:PORT (or IP, port 53) of the DNS resolver the audit asks.",
            ),
            (
                "ca_file",
                "the system roots",
                "trust anchors for the relay's certificate.",
            ),
            (
                "audit_interval_seconds",
                "3600",
                "how often the daemon runs the audit and exports it (0: never).",
            ),
        ],
    ),
    (
        "[mail.test_account]",
        "Optional: a mailbox on the relay, for the forged-FROM check (skipped without it).",
        &[
            ("user", "", "its address, user@domain."),
            (
                "password_file",
                "",
                "absolute path of a file holding its password.",
            ),
        ],
    ),
    (
        "[identity]",
        "Optional: RADIUS accounting (RFC 2866) and the address-to-subscriber history.",
        &[
            (
                "radius_listen",
                "127.0.0.1:1813",
                "UDP address accounting is received on.",
            ),
            (
                "radius_clients",
                "[]",
                "CIDRs that may send accounting; others are ignored and counted.",
            ),
            ("radius_secret_file", "", "file holding the shared secret."),
            (
                "retention_days",
                "90",
                "how long the history and the evidence reports are kept.",
            ),
        ],
    ),
    (
        "[notify]",
        "Optional: evidence reports on suspected bots delivered to a webhook (absent: stored only).",
        &[
            (
                "webhook_url",
                "",
                "http:// or https:// URL reports are POSTed to.",
            ),
            (
                "secret_file",
                "none: unsigned",
                "HMAC-SHA256 key; the signature is sent as X-Egress-Signature: sha256=HEX.",
            ),
            ("timeout_seconds", "5", "timeout of one delivery attempt."),
            (
                "max_queued",
                "100000",
                "undelivered reports kept; beyond it the oldest are dropped and counted.",
            ),
        ],
    ),
    (
        "[fleet]",
        "Optional: the allowlists from etcd (v3), shared by a fleet of routers (absent: local only).",
        &[
            (
                "etcd_endpoints",
                "",
                "http:// or https:// URLs of the etcd members, tried in order.",
            ),
            (
                "key_prefix",
                "",
                "the fleet's key space: entries live at KEY_PREFIX/KIND/PREFIX.",
            ),
            ("username", "none", "etcd user."),
            (
                "password_file",
                "none",
                "file holding that user's password.",
            ),
            (
                "ca_file",
                "none",
                "CA of the members' certificates (https:// endpoints).",
            ),
            ("cert_file", "none", "client certificate (TLS)."),
            ("key_file", "none", "client certificate's key (TLS)."),
        ],
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
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, "egress-agent", &mut script);
        let mut script = String::from_utf8(script)?;
        if shell == Shell::Bash {
            script = fix_hyphenated_bash(&script);
        }
        std::fs::write(out.join(file), script)?;
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
        "/etc/egress/egress.toml (TOML). Unknown keys are errors. A config error names the file, the key and what is wrong, and changes nothing that runs. SIGHUP (systemctl reload egress-agent) applies a changed file; a bad one is logged and the old one stays. Each key below shows its default; \\fIrequired\\fR marks a key its section cannot do without."
    )?;
    // Keys are words: no hyphenation, so the rendered page can be searched for them.
    writeln!(page, ".nh")?;
    for (header, what, keys) in CONFIG {
        let header = if header.is_empty() {
            "top level"
        } else {
            header
        };
        writeln!(page, ".SS \"{header}\"\n{}", roff(what))?;
        for (key, default, meaning) in *keys {
            let default = if default.is_empty() {
                "\\fIrequired\\fR".to_owned()
            } else {
                format!("default: {}", roff(default))
            };
            writeln!(
                page,
                ".TP\n\\fB{}\\fR ({default})\n{}",
                roff(key),
                roff(meaning)
            )?;
        }
    }
    writeln!(page, ".hy")?;
    writeln!(page, ".SH FILES")?;
    for (file, what) in [
        ("/etc/egress/egress.toml", "the configuration (a conffile)"),
        (
            "/var/lib/egress/allowlist.json",
            "allowlist entries added through the CLI (state_dir)",
        ),
        (
            "/var/lib/egress/fleet.json",
            "with [fleet]: the last applied fleet set and its etcd revision, enforced while etcd is unreachable",
        ),
        (
            "/var/lib/egress/history.sqlite3",
            "SQLite database (WAL, with its -wal and -shm files): the RADIUS session history and the evidence reports with their delivery state, kept retention_days; readable with sqlite3",
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

/// clap_complete's bash script spells the state of a subcommand of a hyphenated binary two
/// ways (`egress__agent__subcmd__relay` in the loop that finds it, `egress__subcmd__agent__...`
/// in the arms that complete it; clap-rs/clap#6421), so nothing past the first word completes:
/// spell the arms as the loop does.
fn fix_hyphenated_bash(script: &str) -> String {
    script.replace("egress__subcmd__agent", "egress__agent")
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
