//! `egress-agent`: the daemon and the operator CLI in one binary.

use clap::Parser as _;
use egress_agent::cli::{self, Cli, Command};
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(arg) => {
            init_logging();
            cli::run(&arg)
        }
        // The audit writes to mail servers' sockets (TLS writes are vectored, without
        // MSG_NOSIGNAL): a server that drops the connection must be a failing row, not a
        // process killed by SIGPIPE.
        command @ Command::Audit(_) => cli::dispatch(command),
        command => {
            restore_sigpipe();
            cli::dispatch(command)
        }
    };
    if let Err(err) = result {
        eprintln!("egress-agent: {err}");
        std::process::exit(err.exit_code());
    }
}

/// `egress-agent relay list | head` should end quietly, like any Unix tool, not panic on
/// EPIPE (Rust ignores SIGPIPE by default).
fn restore_sigpipe() {
    // SAFETY: installing the default disposition for SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Structured logs on stderr; `RUST_LOG` overrides the level, `EGRESS_LOG_FORMAT=json` gives
/// one JSON object per line for log shippers.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal, never in journald or log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("EGRESS_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
