//! What our programs cost, as the kernel counts it while `kernel.bpf_stats_enabled` is 1:
//! `egress_program_run_seconds_total{program}` and `egress_program_runs_total{program}`.
//!
//! The programs are the ones our pinned links (`pin_dir/links/<hook>/<interface>`) run, so the
//! figures are those of the enforcing programs, whichever process loaded them. aya 0.14's
//! `ProgramInfo` hides `run_time_ns` and `run_cnt`, so they are read with
//! `BPF_OBJ_GET_INFO_BY_FD` into the kernel's own `bpf_prog_info` layout (aya-obj's bindings).

use std::{
    collections::{BTreeMap, BTreeSet},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
};

use aya::programs::links::{FdLink, PinnedLink};
use aya_obj::generated::bpf_prog_info;

use super::exposition::{Exposition, MetricType};
use crate::paths::PinLayout;

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// Run time and run count of one program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramCost {
    pub run_time_ns: u64,
    pub runs: u64,
}

/// Whether the kernel is counting program run time (`kernel.bpf_stats_enabled`, or a
/// `BPF_ENABLE_STATS` file descriptor held by someone).
pub fn stats_enabled() -> bool {
    std::fs::read_to_string(STATS_SYSCTL).is_ok_and(|value| value.trim() == "1")
}

/// Writes both families when the kernel keeps the figures; nothing otherwise (a run count
/// frozen at 0 would read as "never ran").
pub fn write(out: &mut Exposition, pins: &PinLayout) {
    if !stats_enabled() {
        return;
    }
    let costs = by_program(pins);
    let name = "egress_program_run_seconds_total";
    out.family(
        name,
        MetricType::Counter,
        "Time the kernel spent running our attached programs (kernel.bpf_stats_enabled=1), by program.",
    );
    for (program, cost) in &costs {
        out.sample(name, &[("program", program)], cost.run_time_ns as f64 / 1e9);
    }
    let name = "egress_program_runs_total";
    out.family(
        name,
        MetricType::Counter,
        "Runs of our attached programs counted by the kernel (kernel.bpf_stats_enabled=1), by program.",
    );
    for (program, cost) in &costs {
        out.sample(name, &[("program", program)], cost.runs);
    }
}

/// The cost of every program our pinned links run, summed by program name (`egress_xdp`,
/// `egress_tc`). Links that cannot be read are skipped: they are reported by `egress_attached`.
pub fn by_program(pins: &PinLayout) -> BTreeMap<String, ProgramCost> {
    let mut ids = BTreeSet::new();
    let Ok(hooks) = std::fs::read_dir(pins.links_dir()) else {
        return BTreeMap::new();
    };
    for hook in hooks.flatten() {
        let Ok(links) = std::fs::read_dir(hook.path()) else {
            continue;
        };
        for link in links.flatten() {
            if let Some(id) = linked_program(&link.path()) {
                ids.insert(id);
            }
        }
    }
    let mut costs = BTreeMap::<String, ProgramCost>::new();
    for id in ids {
        match program_info(id) {
            Ok((name, cost)) => {
                let total = costs.entry(name).or_default();
                total.run_time_ns = total.run_time_ns.wrapping_add(cost.run_time_ns);
                total.runs = total.runs.wrapping_add(cost.runs);
            }
            Err(err) => tracing::debug!(id, error = %err, "cannot read program info"),
        }
    }
    costs
}

fn linked_program(pin: &Path) -> Option<u32> {
    let link = FdLink::from(PinnedLink::from_pin(pin).ok()?);
    link.info().ok().map(|info| info.program_id())
}

/// Name and cost of the program with kernel id `id`.
pub fn program_info(id: u32) -> std::io::Result<(String, ProgramCost)> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(id);
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: the kernel just returned this new file descriptor to us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };

    // SAFETY: bpf_prog_info is plain old data; all zeroes is a valid value.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = [0u64; 16];
    let info_len = std::mem::size_of::<bpf_prog_info>() as u64;
    attr[0] = fd.as_raw_fd() as u64 | (info_len << 32);
    attr[1] = (&raw mut info) as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let name: Vec<u8> = info
        .name
        .iter()
        .map(|&c| c as u8)
        .take_while(|&c| c != 0)
        .collect();
    Ok((
        String::from_utf8_lossy(&name).into_owned(),
        ProgramCost {
            run_time_ns: info.run_time_ns,
            runs: info.run_cnt,
        },
    ))
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<i32> {
    // SAFETY: attr is a zero-padded bpf_attr of the size passed; the pointer it may carry
    // (the info buffer) outlives the call.
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
