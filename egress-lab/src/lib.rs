//! A small network-namespace lab shared by the integration tests, `cargo xtask demo` and
//! `cargo xtask bench`: namespaces deleted on drop (also on errors and panics), veth pairs with
//! both ends inside lab namespaces (never a host interface), addresses, routes, running
//! commands or closures inside a namespace, and the lab's servers (Postfix, knot, etcd, a
//! webhook receiver).
//!
//! Everything returns [`LabError`]; the tests crate wraps it in panicking helpers.
//!
//! ```no_run
//! use egress_lab::{Echo, Netns, address, veth};
//! # fn main() -> Result<(), egress_lab::LabError> {
//! let sub = Netns::unique("sub", Echo::Quiet)?;
//! let rtr = Netns::unique("rtr", Echo::Quiet)?;
//! veth(&sub, "s0", &rtr, "r0")?;
//! address(&sub, "s0", "192.0.2.2/24")?;
//! rtr.enable_forwarding()?;
//! let local = rtr.within(|| std::net::TcpListener::bind("127.0.0.1:0"))?;
//! # Ok(()) }
//! ```

pub mod command;
pub mod etcd;
pub mod knot;
mod netns;
pub mod postfix;
pub mod webhook;

pub use command::{Echo, describe};
pub use netns::{EnteredNetns, Netns, address, route, veth, within};

use std::{path::PathBuf, process::ExitStatus};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot start `{command}`: {source}")]
    Start {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}){}", with_stderr(.stderr))]
    Failed {
        command: String,
        status: ExitStatus,
        /// Empty when stderr went to the terminal.
        stderr: String,
    },
    #[error("interface names must be at most 15 bytes: {0:?}")]
    InterfaceName(String),
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{program} is missing: install the Debian package {package} (`cargo xtask setup`)")]
    Missing {
        program: PathBuf,
        package: &'static str,
    },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} {why}{}", with_log(.log))]
    NotReady {
        what: String,
        why: String,
        /// The daemon's log so far, which says why.
        log: String,
    },
}

/// Writes a lab file (config, zone), naming it on failure.
pub(crate) fn write_file(path: &std::path::Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(|source| LabError::File {
        path: path.to_path_buf(),
        source,
    })
}

fn with_log(log: &str) -> String {
    after("; its log:\n", log)
}

fn with_stderr(stderr: &str) -> String {
    after(": ", stderr)
}

/// `text` (trimmed) after `lead`, or nothing when there is no text.
fn after(lead: &str, text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("{lead}{text}")
    }
}
