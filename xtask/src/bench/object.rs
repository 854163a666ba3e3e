//! Finds the eBPF object to measure: the one egress-agent's build script produces and embeds.
//! The xtask cannot depend on egress-agent (it must build before bpf-linker is installed), so
//! it asks cargo where that build script put its output.

use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};

/// `cargo build -p egress-agent`, then `<OUT_DIR>/egress` of its build script.
pub fn build() -> Result<PathBuf> {
    println!("building egress-agent (and its eBPF object)...");
    let out = crate::cargo()
        .args([
            "build",
            "-p",
            "egress-agent",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build -p egress-agent")?;
    if !out.status.success() {
        bail!("cargo build -p egress-agent failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let out_dir = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
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
    Ok(object)
}
