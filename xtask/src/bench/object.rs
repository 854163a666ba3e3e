//! Finds the eBPF object to measure: the one egress-agent's build script produces and embeds.
//! The xtask cannot depend on egress-agent (it must build before bpf-linker is installed), so
//! it asks cargo where that build script put its output.

use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};

/// What the bench measures: the eBPF object and the agent binary that embeds it.
pub struct Built {
    pub object: PathBuf,
    pub agent: PathBuf,
}

/// `cargo build --release -p egress-agent`, then `<OUT_DIR>/egress` of its build script and the binary.
pub fn build() -> Result<Built> {
    println!("building egress-agent --release (and its eBPF object)...");
    let out = crate::cargo()
        .args([
            "build",
            // The agent rows measure what operators run: an optimised agent.
            "--release",
            "-p",
            "egress-agent",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build --release -p egress-agent")?;
    if !out.status.success() {
        bail!(
            "cargo build --release -p egress-agent failed ({})",
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let messages: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let agent = messages
        .iter()
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "egress-agent")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| anyhow!("cargo did not report the egress-agent executable"))?;
    let out_dir = messages
        .iter()
        .filter(|message| message["reason"] == "build-script-executed")
        .filter(|message| {
            message["package_id"]
                .as_str()
                .is_some_and(|id| id.contains("egress-agent"))
        })
        .find_map(|message| message["out_dir"].as_str().map(PathBuf::from))
        .ok_or_else(|| {
            anyhow!("cargo did not report egress-agent's build-script output directory")
        })?;
    let object = out_dir.join("egress");
    if !object.is_file() {
        bail!(
            "the eBPF object {} does not exist after the build",
            object.display()
        );
    }
    Ok(Built { object, agent })
}
