//! The few raw `bpf(2)` calls the bench needs beyond aya: loading the empty baseline program,
//! opening a foreign program by its pin, and `BPF_PROG_TEST_RUN` on any program fd, so every
//! program (ours, the baseline, xdp-filter) is timed through exactly the same path.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::Path,
};

use anyhow::{Context as _, Result, bail};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_XDP: u32 = 6;

/// The attribute union is 144+ bytes in current kernels; unused trailing bytes must be zero.
#[repr(C, align(8))]
struct Attr([u8; 160]);

impl Attr {
    fn zeroed() -> Attr {
        Attr([0; 160])
    }

    fn put_u32(&mut self, offset: usize, value: u32) {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
    }

    fn put_u64(&mut self, offset: usize, value: u64) {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
    }

    fn u32_at(&self, offset: usize) -> u32 {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(&self.0[offset..offset + 4]);
        u32::from_ne_bytes(bytes)
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: attr is a zero-padded bpf_attr of the size passed; the kernel reads and writes
    // only within it, and every pointer stored in it outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned_fd(raw: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this new fd to us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(raw as i32) }
}

/// Loads `r0 = XDP_PASS; exit`: the harness cost every figure is measured above.
pub fn load_empty_xdp() -> Result<OwnedFd> {
    // BPF_ALU64|BPF_MOV|BPF_K r0, 2 ; BPF_JMP|BPF_EXIT
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0, 0, 0, 2, 0, 0, 0]),
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
    ];
    let license = CString::new("GPL").context("license string")?;
    let mut attr = Attr::zeroed();
    attr.put_u32(0, BPF_PROG_TYPE_XDP);
    attr.put_u32(4, insns.len() as u32);
    attr.put_u64(8, insns.as_ptr() as u64);
    attr.put_u64(16, license.as_ptr() as u64);
    attr.0[48..58].copy_from_slice(b"egress_nop");
    let fd = bpf(BPF_PROG_LOAD, &mut attr).context("BPF_PROG_LOAD of the empty XDP program")?;
    Ok(owned_fd(fd))
}

/// Opens a pinned BPF object (here: xdp-filter's program).
pub fn open_pinned(path: &Path) -> Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("pin path {}", path.display()))?;
    let mut attr = Attr::zeroed();
    attr.put_u64(0, c_path.as_ptr() as u64);
    let fd =
        bpf(BPF_OBJ_GET, &mut attr).with_context(|| format!("BPF_OBJ_GET {}", path.display()))?;
    Ok(owned_fd(fd))
}

/// One `BPF_PROG_TEST_RUN`: the program's return value and the kernel-measured mean ns per
/// execution (whole ns: the kernel divides before reporting).
#[derive(Clone, Copy, Debug)]
pub struct TestRunResult {
    pub retval: u32,
    pub ns_per_run: u32,
}

pub fn test_run(prog: BorrowedFd<'_>, frame: &[u8], repeat: u32) -> Result<TestRunResult> {
    let mut attr = Attr::zeroed();
    attr.put_u32(0, prog.as_raw_fd() as u32);
    attr.put_u32(8, frame.len() as u32);
    attr.put_u64(16, frame.as_ptr() as u64);
    attr.put_u32(32, repeat);
    match bpf(BPF_PROG_TEST_RUN, &mut attr) {
        Ok(_) => Ok(TestRunResult {
            retval: attr.u32_at(4),
            ns_per_run: attr.u32_at(36),
        }),
        Err(err) => bail!(
            "BPF_PROG_TEST_RUN (fd {}, {}-byte frame): {err}",
            prog.as_raw_fd(),
            frame.len()
        ),
    }
}
