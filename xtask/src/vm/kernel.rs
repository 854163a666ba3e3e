//! Debian 12's own kernel for the VM tests: the newest `linux-image-6.1.0-<abi>-amd64-unsigned`
//! the package registry has (the `-cloud` flavour lacks 9p), downloaded with
//! `apt-get download` (never installed), unpacked into a cache, its compressed image turned
//! into a plain `vmlinux` (PVH entry: boots about twice as fast under TCG), and a module index
//! built with busybox's depmod so the guest can load modules on demand.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::cmd::Runner;

/// Where kernels are cached (outside target/: `cargo clean` keeps them).
pub const CACHE: &str = "/var/cache/egress/kernel";
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];

/// One unpacked kernel.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// e.g. `6.1.0-57-amd64`
    pub release: String,
    pub vmlinux: PathBuf,
    /// The package's root: `lib/modules/<release>/` lives under it.
    pub root: PathBuf,
}

impl Kernel {
    pub fn modules(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }
}

/// The newest 6.1 `-amd64-unsigned` package named in `apt-cache search` output.
pub fn newest_package(search: &str) -> Option<(u32, String)> {
    search
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|name| {
            let abi = name
                .strip_prefix("linux-image-6.1.0-")?
                .strip_suffix("-amd64-unsigned")?;
            Some((abi.parse::<u32>().ok()?, name.to_owned()))
        })
        .max()
}

/// Offset of the xz stream inside a bzImage.
pub fn xz_offset(image: &[u8]) -> Option<usize> {
    image.windows(XZ_MAGIC.len()).position(|w| w == XZ_MAGIC)
}

/// Makes sure the newest Debian 12 kernel is unpacked in the cache; returns it.
pub fn ensure(runner: Runner) -> Result<Kernel> {
    println!("* Debian 12's kernel for the VM tests (linux-image-6.1.0-*-amd64-unsigned)");
    let pattern = "^linux-image-6\\.1\\.0-[0-9]+-amd64-unsigned$";
    let search = |runner: Runner| {
        runner.capture(Command::new("apt-cache").args(["search", "--names-only", pattern]))
    };
    let found = match newest_package(&search(runner)?) {
        Some(found) => found,
        None => {
            runner.run(Command::new("apt-get").args(["-q", "update"]))?;
            newest_package(&search(runner)?).context(
                "no linux-image-6.1.0-*-amd64-unsigned package in the apt sources \
                 (Debian 12 bookworm's main archive has them)",
            )?
        }
    };
    let (abi, package) = found;
    let release = format!("6.1.0-{abi}-amd64");
    let dir = Path::new(CACHE).join(&release);
    let kernel = Kernel {
        vmlinux: dir.join("vmlinux"),
        root: dir.join("root"),
        release,
    };
    let index = kernel.modules().join("modules.dep");
    if kernel.vmlinux.is_file() && index.is_file() {
        println!("  {package}: cached in {}", dir.display());
        return Ok(kernel);
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    runner.run(
        Command::new("apt-get")
            .current_dir(&dir)
            .args(["-q", "download", &package]),
    )?;
    let deb = fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", dir.display()))?;
    if kernel.root.exists() {
        fs::remove_dir_all(&kernel.root)
            .with_context(|| format!("cannot clear {}", kernel.root.display()))?;
    }
    runner.run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&kernel.root),
    )?;
    let vmlinuz = kernel
        .root
        .join("boot")
        .join(format!("vmlinuz-{}", kernel.release));
    decompress(&vmlinuz, &kernel.vmlinux)?;
    runner.run(
        Command::new("busybox")
            .args(["depmod", "-b"])
            .arg(&kernel.root)
            .arg(&kernel.release),
    )?;
    fs::remove_file(&deb).with_context(|| format!("cannot remove {}", deb.display()))?;
    println!("  unpacked into {}", dir.display());
    Ok(kernel)
}

/// The vmlinux inside a bzImage: the xz stream after the setup code, through `xz -dc` (which
/// complains about the trailing bytes after the stream, hence only the output is checked).
fn decompress(vmlinuz: &Path, vmlinux: &Path) -> Result<()> {
    let image = fs::read(vmlinuz).with_context(|| format!("cannot read {}", vmlinuz.display()))?;
    let offset =
        xz_offset(&image).with_context(|| format!("{} holds no xz stream", vmlinuz.display()))?;
    println!(
        "  $ xz -dc < {}[{offset}..] > {}",
        vmlinuz.display(),
        vmlinux.display()
    );
    let out = fs::File::create(vmlinux)
        .with_context(|| format!("cannot create {}", vmlinux.display()))?;
    let mut child = Command::new("xz")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run xz")?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().context("xz has no stdin")?;
        // xz stops reading after the stream; a broken pipe then is expected.
        let _ = stdin.write_all(&image[offset..]);
    }
    child.wait().context("xz did not finish")?;
    let head = fs::read(vmlinux)
        .ok()
        .and_then(|bytes| bytes.get(..4).map(<[u8]>::to_vec));
    if head.as_deref() != Some(b"\x7fELF") {
        let _ = fs::remove_file(vmlinux);
        bail!("decompressing {} gave no ELF vmlinux", vmlinuz.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_amd64_unsigned_package() {
        let search = "linux-image-6.1.0-9-amd64-unsigned - Linux 6.1 for 64-bit PCs\n\
                      linux-image-6.1.0-57-amd64-unsigned - Linux 6.1 for 64-bit PCs\n\
                      linux-image-6.1.0-60-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud\n\
                      linux-image-6.1.0-56-amd64-unsigned - Linux 6.1 for 64-bit PCs\n";
        assert_eq!(
            newest_package(search),
            Some((57, "linux-image-6.1.0-57-amd64-unsigned".to_owned()))
        );
        assert_eq!(newest_package(""), None);
    }

    #[test]
    fn finds_the_xz_stream() {
        let mut image = vec![0u8; 100];
        image.extend_from_slice(XZ_MAGIC);
        image.extend_from_slice(b"rest");
        assert_eq!(xz_offset(&image), Some(100));
        assert_eq!(xz_offset(b"no stream here"), None);
    }
}
