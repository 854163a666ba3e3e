//! A foreign XDP program: `r0 = XDP_PASS; exit`, attached through netlink with `ip`, the way
//! another tool would take the hook once our link is gone. It lets port 25 through, so a test
//! can tell it apart from ours by traffic alone.

use std::{
    ffi::CString,
    os::fd::{FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use super::kernel::{bpftool, bpftool_json};
use crate::netns::Netns;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_PROG_TYPE_XDP: u32 = 6;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The loaded pass-all program, pinned so `ip` can attach it; the pin goes away on drop
/// (the attachment keeps the program alive until the interface or namespace does).
pub struct ForeignXdp {
    pin: PathBuf,
    _fd: OwnedFd,
}

impl ForeignXdp {
    pub fn load() -> ForeignXdp {
        // BPF_ALU64|BPF_MOV|BPF_K r0, 2 (XDP_PASS); BPF_JMP|BPF_EXIT
        let insns: [u64; 2] = [
            u64::from_le_bytes([0xb7, 0, 0, 0, 2, 0, 0, 0]),
            u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
        ];
        let license = CString::new("GPL").expect("license");
        let mut attr = [0u64; 20];
        attr[0] = u64::from(BPF_PROG_TYPE_XDP) | ((insns.len() as u64) << 32);
        attr[1] = insns.as_ptr() as u64;
        attr[2] = license.as_ptr() as u64;
        let fd = bpf(BPF_PROG_LOAD, &mut attr).expect("BPF_PROG_LOAD of a pass-all XDP program");
        // SAFETY: the kernel just returned this fd to us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let pin = PathBuf::from(format!(
            "/sys/fs/bpf/egress-test-foreign-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let c_pin = CString::new(pin.to_str().expect("utf-8")).expect("pin path");
        let mut attr = [0u64; 20];
        attr[0] = c_pin.as_ptr() as u64;
        attr[1] = std::os::fd::AsRawFd::as_raw_fd(&fd) as u64;
        bpf(BPF_OBJ_PIN, &mut attr)
            .unwrap_or_else(|err| panic!("BPF_OBJ_PIN {}: {err}", pin.display()));
        ForeignXdp { pin, _fd: fd }
    }

    pub fn id(&self) -> u64 {
        let path = self.pin.to_str().expect("utf-8 pin path");
        bpftool_json(&["prog", "show", "pinned", path])["id"]
            .as_u64()
            .expect("prog id")
    }

    /// `ip -force link set dev IF xdpgeneric pinned PIN` in `ns` (through nsenter: `ip netns
    /// exec` would hide the host's bpffs and so the pin).
    pub fn attach(&self, ns: &Netns, interface: &str) -> Result<(), String> {
        let pin = self.pin.to_str().expect("utf-8 pin path");
        let out = ns
            .command("ip")
            .args(["-force", "link", "set", "dev", interface])
            .args(["xdpgeneric", "pinned", pin])
            .output()
            .expect("cannot run nsenter ip");
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// Detaches our link (`bpftool link detach`) and puts this program on the hook in its
    /// place. The agent may re-attach in between (it checks every second); then it tries again.
    pub fn displace(&self, our_link_pin: &Path, ns: &Netns, interface: &str) {
        let mut last = String::new();
        for _ in 0..20 {
            if let Some(pin) = our_link_pin.to_str().filter(|_| our_link_pin.exists()) {
                bpftool(&["link", "detach", "pinned", pin]);
            }
            match self.attach(ns, interface) {
                Ok(()) => return,
                Err(err) => last = err,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not put the foreign program on {interface}: {last}");
    }
}

impl Drop for ForeignXdp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pin);
    }
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 20]) -> std::io::Result<i32> {
    // SAFETY: attr is a zero-padded bpf_attr of the size passed; every pointer in it outlives
    // the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc as i32)
    }
}
