//! The project's task runner (`cargo xtask ...`), as a library so integration tests can run
//! the demo scenario without narration.

pub mod bench;
pub mod build;
pub mod cmd;
pub mod demo;
pub mod fuzz;
pub mod netns;
pub mod package;
pub mod setup;
pub mod test;
pub mod vm;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// `cargo` in the workspace root: the same cargo that runs the xtask when there is one.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}
