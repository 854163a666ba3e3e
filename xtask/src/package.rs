//! `cargo xtask package`: the Debian package, built with cargo-deb from one release build.
//! The man page and completions come from the agent's clap definitions (the `egress-docs`
//! example); the packaged unit and conffile are derived from deploy/ so they never drift.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, cmd::Runner, setup::toolchain, workspace_root};

/// cargo-deb's newest release at the time of writing; builds with rustc 1.95.
const CARGO_DEB_VERSION: &str = "3.8.0";

/// Installs cargo-deb when it is missing.
pub fn ensure_cargo_deb(runner: Runner) -> Result<()> {
    if toolchain::find_on_path("cargo-deb").is_some() {
        println!("* cargo-deb: installed");
        return Ok(());
    }
    println!("* cargo-deb is missing: installing it");
    runner.run(Command::new("cargo").args([
        "install",
        "--locked",
        "cargo-deb",
        "--version",
        CARGO_DEB_VERSION,
    ]))
}

/// Builds the package; the path of the `.deb`.
pub fn build(runner: Runner) -> Result<PathBuf> {
    ensure_cargo_deb(runner)?;
    let root = workspace_root();
    let assets = root.join("target/deb-assets");
    let output = root.join("target/debian");
    fs::create_dir_all(&assets).with_context(|| format!("create {}", assets.display()))?;
    runner.run(cargo().args([
        "build",
        "--release",
        "-p",
        "egress-agent",
        "--bin",
        "egress-agent",
        "--example",
        "egress-docs",
    ]))?;
    runner.run(Command::new(root.join("target/release/examples/egress-docs")).arg(&assets))?;
    write_derived(&root, &assets)?;
    let _ = fs::remove_dir_all(&output);
    runner.run(
        cargo()
            .args([
                "deb",
                "-p",
                "egress-agent",
                "--no-build",
                "--strip",
                "--output",
            ])
            .arg(&output),
    )?;
    let deb = fs::read_dir(&output)
        .with_context(|| format!("read {}", output.display()))?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .with_context(|| format!("cargo deb left no .deb in {}", output.display()))?;
    println!("==> {}", deb.display());
    Ok(deb)
}

/// The unit with the packaged paths, and the example config starting in monitor mode.
fn write_derived(root: &Path, assets: &Path) -> Result<()> {
    let unit_path = root.join("deploy/systemd/egress-agent.service");
    let unit =
        fs::read_to_string(&unit_path).with_context(|| format!("read {}", unit_path.display()))?;
    let unit = unit
        .replace("/usr/local/bin/egress-agent", "/usr/sbin/egress-agent")
        .replace(
            "Documentation=file:///usr/local/share/doc/egress/README.md",
            "Documentation=man:egress-agent(8)",
        );
    fs::write(assets.join("egress-agent.service"), unit)?;

    let config_path = root.join("deploy/egress.toml");
    let config = fs::read_to_string(&config_path)
        .with_context(|| format!("read {}", config_path.display()))?;
    let enforce = "\nmode = \"enforce\"\n";
    if !config.contains(enforce) {
        bail!(
            "{}: no `mode = \"enforce\"` line to turn into monitor",
            config_path.display()
        );
    }
    let config = config.replacen(
        enforce,
        "\n# The package starts in monitor mode: nothing is dropped yet. To enforce, set\n\
         # mode = \"enforce\" and run `systemctl reload egress-agent`.\nmode = \"monitor\"\n",
        1,
    );
    fs::write(assets.join("egress.toml"), config)?;
    Ok(())
}
