//! The few raw `bpf(2)` calls the bench needs beyond aya: loading tiny hand-written XDP
//! programs (the empty baseline, the frame generator), opening foreign programs by their pin or
//! through a pinned link, and `BPF_PROG_TEST_RUN` on any program fd, so every program (ours,
//! the baseline, xdp-filter, the running agent's) is timed through exactly the same path.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::Path,
};

use anyhow::{Context as _, Result, bail};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `BPF_F_TEST_XDP_LIVE_FRAMES`: the test run's XDP_TX/XDP_REDIRECT verdicts really transmit.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

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

pub const MAP_TYPE_PROG_ARRAY: u32 = 3;
pub const MAP_TYPE_ARRAY: u32 = 2;

/// Creates an unpinned map (gone with its last fd).
pub fn create_map(map_type: u32, key_size: u32, value_size: u32, entries: u32) -> Result<OwnedFd> {
    let mut attr = Attr::zeroed();
    attr.put_u32(0, map_type);
    attr.put_u32(4, key_size);
    attr.put_u32(8, value_size);
    attr.put_u32(12, entries);
    let fd = bpf(BPF_MAP_CREATE, &mut attr).with_context(|| {
        format!("BPF_MAP_CREATE type {map_type} ({entries} x {value_size}-byte values)")
    })?;
    Ok(owned_fd(fd))
}

pub fn update_elem(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> Result<()> {
    let mut attr = Attr::zeroed();
    attr.put_u32(0, map.as_raw_fd() as u32);
    attr.put_u64(8, key.as_ptr() as u64);
    attr.put_u64(16, value.as_ptr() as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
        .with_context(|| format!("BPF_MAP_UPDATE_ELEM on map fd {}", map.as_raw_fd()))?;
    Ok(())
}

/// Loads `r0 = XDP_PASS; exit`: the harness cost every figure is measured above.
pub fn load_empty_xdp() -> Result<OwnedFd> {
    load_verdict_xdp("egress_nop", 2)
}

/// Loads `r0 = XDP_DROP; exit`: the veth comparison's ceiling.
pub fn load_drop_all_xdp() -> Result<OwnedFd> {
    load_verdict_xdp("egress_drop", 1)
}

/// `r0 = verdict; exit` (BPF_ALU64|BPF_MOV|BPF_K, BPF_JMP|BPF_EXIT).
fn load_verdict_xdp(name: &str, verdict: u8) -> Result<OwnedFd> {
    load_verdict_xdp_as(name, verdict, Flavor::PLAIN)
}

/// The empty program in a given flavor (to share a tail-call map with another program).
pub fn load_empty_xdp_as(flavor: Flavor) -> Result<OwnedFd> {
    load_verdict_xdp_as("egress_nop", 2, flavor)
}

fn load_verdict_xdp_as(name: &str, verdict: u8, flavor: Flavor) -> Result<OwnedFd> {
    load_xdp_as(
        name,
        &[
            u64::from_le_bytes([0xb7, 0, 0, 0, verdict, 0, 0, 0]),
            u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
        ],
        flavor,
    )
}

/// What a program's tail-call partners must share with it (the kernel refuses a prog-array
/// entry whose expected attach type or frags support differs from the array's first program).
#[derive(Clone, Copy, Debug)]
pub struct Flavor {
    pub expected_attach_type: u32,
    pub prog_flags: u32,
}

impl Flavor {
    /// What `load_xdp` uses: no expected attach type, no frags.
    pub const PLAIN: Flavor = Flavor {
        expected_attach_type: 0,
        prog_flags: 0,
    };
    /// The flavors an XDP program loaded by aya, libbpf or libxdp can have.
    pub const XDP_ALL: [Flavor; 3] = [
        Flavor {
            expected_attach_type: BPF_XDP,
            prog_flags: 0,
        },
        Flavor {
            expected_attach_type: BPF_XDP,
            prog_flags: BPF_F_XDP_HAS_FRAGS,
        },
        Flavor::PLAIN,
    ];
}

const BPF_XDP: u32 = 37;
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// Loads hand-assembled XDP instructions (`name` at most 15 bytes).
pub fn load_xdp(name: &str, insns: &[u64]) -> Result<OwnedFd> {
    load_xdp_as(name, insns, Flavor::PLAIN)
}

/// `load_xdp` with a given flavor.
pub fn load_xdp_as(name: &str, insns: &[u64], flavor: Flavor) -> Result<OwnedFd> {
    let license = CString::new("GPL").context("license string")?;
    let mut log = vec![0u8; 4096];
    let mut attr = Attr::zeroed();
    attr.put_u32(0, BPF_PROG_TYPE_XDP);
    attr.put_u32(4, insns.len() as u32);
    attr.put_u64(8, insns.as_ptr() as u64);
    attr.put_u64(16, license.as_ptr() as u64);
    attr.put_u32(24, 1);
    attr.put_u32(28, log.len() as u32);
    attr.put_u64(32, log.as_mut_ptr() as u64);
    attr.put_u32(44, flavor.prog_flags);
    attr.put_u32(68, flavor.expected_attach_type);
    let name = &name.as_bytes()[..name.len().min(15)];
    attr.0[48..48 + name.len()].copy_from_slice(name);
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned_fd(fd)),
        Err(err) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            bail!(
                "BPF_PROG_LOAD of the bench's XDP program {}: {err}\n{}",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(&log[..end])
            )
        }
    }
}

/// Pins `fd` at `path` on bpffs (for `ip link set ... xdp pinned PATH`).
pub fn pin(fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("pin path {}", path.display()))?;
    let mut attr = Attr::zeroed();
    attr.put_u64(0, c_path.as_ptr() as u64);
    attr.put_u32(8, fd.as_raw_fd() as u32);
    bpf(BPF_OBJ_PIN, &mut attr).with_context(|| format!("BPF_OBJ_PIN {}", path.display()))?;
    Ok(())
}

/// The program a pinned link runs right now (re-read it to follow atomic program swaps).
pub fn program_of_link(link_pin: &Path) -> Result<OwnedFd> {
    let link = open_pinned(link_pin)?;
    // struct bpf_link_info starts with: u32 type, u32 id, u32 prog_id.
    let mut info = [0u8; 64];
    let mut attr = Attr::zeroed();
    attr.put_u32(0, link.as_raw_fd() as u32);
    attr.put_u32(4, info.len() as u32);
    attr.put_u64(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)
        .with_context(|| format!("BPF_OBJ_GET_INFO_BY_FD on the link {}", link_pin.display()))?;
    let prog_id = u32::from_ne_bytes([info[8], info[9], info[10], info[11]]);
    let mut attr = Attr::zeroed();
    attr.put_u32(0, prog_id);
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).with_context(|| {
        format!(
            "BPF_PROG_GET_FD_BY_ID {prog_id} (the program of {})",
            link_pin.display()
        )
    })?;
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

/// `BPF_PROG_TEST_RUN` in live-frames mode: runs `prog` `repeat` times on copies of `frame`,
/// and frames it redirects are really transmitted (as xdp_frames, the way a NIC's native XDP
/// hands them on). Uses the calling thread's network namespace.
pub fn test_run_live(prog: BorrowedFd<'_>, frame: &[u8], repeat: u32, batch: u32) -> Result<()> {
    let mut attr = Attr::zeroed();
    attr.put_u32(0, prog.as_raw_fd() as u32);
    attr.put_u32(8, frame.len() as u32);
    attr.put_u64(16, frame.as_ptr() as u64);
    attr.put_u32(32, repeat);
    attr.put_u32(64, BPF_F_TEST_XDP_LIVE_FRAMES);
    attr.put_u32(72, batch);
    bpf(BPF_PROG_TEST_RUN, &mut attr)
        .with_context(|| format!("BPF_PROG_TEST_RUN (live frames, repeat {repeat})"))?;
    Ok(())
}
