//! The operator command line: one module per verb.

mod allowlist;
mod audit;
mod check_config;
mod detach;
mod reports;
mod run;
mod status;
mod subscriber;
mod table;
mod top;
mod who;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{
    control::{
        ErrorKind, Request,
        client::{self, ClientError},
    },
    paths,
};

#[derive(Debug, Parser)]
#[command(
    name = "egress-agent",
    version,
    about = "Blocks outbound SMTP (TCP/25) at the ISP edge with eBPF"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load, pin and attach the dataplane, then serve metrics and the control socket.
    Run(ConfigArg),
    /// Validate a config file and exit.
    CheckConfig(ConfigArg),
    /// Manage the relay allowlist (the ISP's own mail relays).
    #[command(subcommand)]
    Relay(AllowAction),
    /// Manage exempt subscribers (customers allowed to run their own mail server).
    #[command(subcommand)]
    Exempt(AllowAction),
    /// Manage the protected primary MX (inbound: only the spam checkers may reach it on 25).
    #[command(subcommand, name = "protected-mx")]
    ProtectedMx(AllowAction),
    /// Manage the spam checkers (the senders allowed to reach the primary MX).
    #[command(subcommand, name = "mx-sender")]
    MxSender(AllowAction),
    /// Mode, attachments, counters and map fill.
    Status(ListArgs),
    /// The subscribers with the most blocked attempts.
    Top {
        /// How many subscribers to show.
        #[arg(short = 'n', long = "count", default_value_t = 10)]
        n: usize,
        #[command(flatten)]
        list: ListArgs,
    },
    /// One subscriber's record.
    Subscriber {
        /// IPv4 or IPv6 address (IPv6 is aggregated to the configured prefix length).
        address: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Remove programs, links and pins: stop enforcing.
    Detach(detach::DetachArgs),
    /// Check the mail set-up (DNS, SPF, the smart relay) against the approach.
    Audit(audit::AuditArgs),
    /// Who held an address at a time (RADIUS accounting history).
    Who {
        /// IPv4 or IPv6 address (or prefix).
        address: String,
        /// RFC 3339 time, e.g. 2026-12-01T22:30:00Z (default: now).
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Evidence reports about suspected bots, with their delivery state.
    Reports {
        /// Only reports flagged at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    #[arg(long, default_value = paths::DEFAULT_CONFIG)]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct SocketArg {
    /// The agent's control socket.
    #[arg(long, default_value = paths::DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Subcommand)]
pub enum AllowAction {
    /// Add a prefix (a bare address means /32 or /128).
    Add {
        cidr: String,
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Remove a prefix added through the CLI.
    Remove {
        cidr: String,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// List every entry, from the config file and from the CLI.
    List(ListArgs),
}

/// A failed command: the message is printed as one line; the code is the exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input (argument, config file, refused request): exit 2.
    #[error("{0}")]
    Invalid(String),
    /// The agent is not running, or something failed: exit 1.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Invalid(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

impl From<ClientError> for CliError {
    fn from(err: ClientError) -> Self {
        match err {
            // Refused like a non-root peer the agent turns away: exit 2, as for any refusal.
            ClientError::PermissionDenied { .. } => CliError::Invalid(err.to_string()),
            _ => CliError::Failed(err.to_string()),
        }
    }
}

/// Runs a command other than `run` (which main drives on a runtime).
pub fn dispatch(command: Command) -> Result<(), CliError> {
    match command {
        Command::Run(_) => Err(CliError::Failed("`run` is handled by main".into())),
        Command::CheckConfig(arg) => check_config::check_config(&arg),
        Command::Relay(action) => allowlist::allowlist(crate::allowlist::AllowKind::Relay, action),
        Command::Exempt(action) => {
            allowlist::allowlist(crate::allowlist::AllowKind::Exempt, action)
        }
        Command::ProtectedMx(action) => {
            allowlist::allowlist(crate::allowlist::AllowKind::ProtectedMx, action)
        }
        Command::MxSender(action) => {
            allowlist::allowlist(crate::allowlist::AllowKind::MxSender, action)
        }
        Command::Status(list) => status::status(&list),
        Command::Top { n, list } => top::top(n, &list),
        Command::Subscriber { address, list } => subscriber::subscriber(&address, &list),
        Command::Detach(args) => detach::detach(&args),
        Command::Audit(args) => audit::audit(&args),
        Command::Who { address, at, list } => who::who(&address, at, &list),
        Command::Reports { since, list } => reports::reports(since, &list),
    }
}

pub use run::run;

/// Sends a request; an error response becomes a CliError with the agent's message.
fn request(socket: &SocketArg, request: &Request) -> Result<serde_json::Value, CliError> {
    let response = client::call(&socket.socket, request)?;
    if response.ok {
        if !response.message.is_empty() {
            println!("{}", response.message);
        }
        return Ok(response.data);
    }
    Err(match response.error {
        Some(ErrorKind::Invalid | ErrorKind::Refused) => CliError::Invalid(response.message),
        _ => CliError::Failed(response.message),
    })
}

/// Decodes a reply's data into the type the command shows.
fn decode<T: serde::de::DeserializeOwned>(data: serde_json::Value) -> Result<T, CliError> {
    serde_json::from_value(data)
        .map_err(|err| CliError::Failed(format!("unexpected reply from the agent: {err}")))
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|err| CliError::Failed(format!("cannot encode JSON: {err}")))?;
    println!("{text}");
    Ok(())
}

/// A listing: `--json` prints the items as JSON, otherwise a table with one row per item.
fn print_listing<T: serde::Serialize>(
    items: &[T],
    json: bool,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> Result<(), CliError> {
    if json {
        return print_json(&items);
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    println!("{}", table::render(headers, &rows));
    Ok(())
}

fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_owned()
}
