//! Kernel features egress relies on, probed once at start. Each missing one is logged in one
//! line: what is missing, which kernel has it, and what egress does instead (or why it cannot
//! run). The TC attach method follows from the tcx probe (and the `EGRESS_TC_ATTACH` knob).

use std::{
    os::fd::{FromRawFd as _, OwnedFd},
    sync::OnceLock,
};

use aya::{
    maps::MapType,
    programs::{ProgramType, SchedClassifier, TcAttachType},
    sys::{BpfHelper, is_helper_supported, is_map_supported},
};

/// Environment knob forcing the TC attach method: `auto` (default), `tcx` or `legacy`.
pub const TC_ATTACH_ENV: &str = "EGRESS_TC_ATTACH";

/// What one missing feature costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impact {
    /// egress works around it, as described.
    Fallback(&'static str),
    /// The object or the agent cannot work without it, for the reason given.
    Fatal(&'static str),
}

/// One feature and whether this kernel has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub feature: &'static str,
    /// The first kernel that has it.
    pub since: &'static str,
    pub present: bool,
    pub impact: Impact,
}

impl Probe {
    /// The one log line for a missing feature; None when it is present.
    pub fn missing_line(&self) -> Option<String> {
        if self.present {
            return None;
        }
        Some(match self.impact {
            Impact::Fallback(instead) => format!(
                "kernel feature missing: {} (Linux {}+); egress {instead}",
                self.feature, self.since
            ),
            Impact::Fatal(why) => format!(
                "kernel feature missing: {} (Linux {}+); egress cannot run: {why}",
                self.feature, self.since
            ),
        })
    }
}

/// How the TC program is attached to an uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcMethod {
    /// A tcx bpf_link (Linux 6.6+), pinned.
    Tcx,
    /// A direct-action `cls_bpf` filter on a `clsact` qdisc, held by the kernel.
    Legacy,
}

impl TcMethod {
    /// The spelling in `status` and the `mode` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            TcMethod::Tcx => "tcx",
            TcMethod::Legacy => "tc-legacy",
        }
    }
}

/// The operator's choice through `EGRESS_TC_ATTACH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcChoice {
    Auto,
    Tcx,
    Legacy,
}

/// Parses the value of `EGRESS_TC_ATTACH` (unset or empty means auto).
pub fn parse_tc_choice(value: Option<&str>) -> Result<TcChoice, String> {
    match value.map(str::trim) {
        None | Some("") | Some("auto") => Ok(TcChoice::Auto),
        Some("tcx") => Ok(TcChoice::Tcx),
        Some("legacy") => Ok(TcChoice::Legacy),
        Some(other) => Err(format!(
            "{TC_ATTACH_ENV}={other:?} is not one of auto, tcx, legacy"
        )),
    }
}

/// tcx when the kernel has it and nobody asked for legacy; legacy otherwise (asking for tcx
/// on a kernel without it is reported and falls back, since legacy enforces the same way).
pub fn choose_tc_method(tcx_present: bool, choice: TcChoice) -> TcMethod {
    match choice {
        TcChoice::Legacy => TcMethod::Legacy,
        TcChoice::Auto | TcChoice::Tcx if tcx_present => TcMethod::Tcx,
        TcChoice::Auto | TcChoice::Tcx => TcMethod::Legacy,
    }
}

/// The probe results of this kernel.
#[derive(Clone, Debug)]
pub struct Features {
    pub kernel: String,
    pub probes: Vec<Probe>,
    pub tc_method: TcMethod,
}

impl Features {
    pub fn missing_lines(&self) -> Vec<String> {
        self.probes.iter().filter_map(Probe::missing_line).collect()
    }

    fn present(&self, feature: &str) -> bool {
        self.probes
            .iter()
            .any(|probe| probe.feature == feature && probe.present)
    }

    /// Logs one line per missing feature and the TC attach method.
    fn log(&self, choice: Result<TcChoice, String>) {
        for probe in &self.probes {
            let Some(line) = probe.missing_line() else {
                continue;
            };
            match probe.impact {
                Impact::Fallback(_) => tracing::warn!("{line}"),
                Impact::Fatal(_) => tracing::error!("{line}"),
            }
        }
        match choice {
            Err(problem) => tracing::error!("{problem}; using auto"),
            Ok(TcChoice::Tcx) if !self.present(TCX) => {
                tracing::warn!("{TC_ATTACH_ENV}=tcx but this kernel has no tcx: using tc-legacy")
            }
            Ok(_) => {}
        }
        tracing::info!(kernel = %self.kernel, tc_attach = self.tc_method.as_str(),
            missing = self.missing_lines().len(), "kernel features probed");
    }
}

const TCX: &str = "tcx links";

/// The features of the running kernel, probed (and logged) on first use.
pub fn get() -> &'static Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    FEATURES.get_or_init(|| {
        let features = probe_kernel();
        let choice = parse_tc_choice(std::env::var(TC_ATTACH_ENV).ok().as_deref());
        let features = Features {
            tc_method: choose_tc_method(
                features.present(TCX),
                choice.clone().unwrap_or(TcChoice::Auto),
            ),
            ..features
        };
        features.log(choice);
        features
    })
}

const BOTH: &[ProgramType] = &[ProgramType::Xdp, ProgramType::SchedClassifier];

/// The helpers the object calls, each with the program types that call it (a test checks
/// the object's helper calls against this list): name, helper, first kernel, program types.
const HELPERS: &[(&str, BpfHelper, &str, &[ProgramType])] = &[
    (
        "bpf_map_lookup_elem",
        BpfHelper::BPF_FUNC_map_lookup_elem,
        "3.19",
        BOTH,
    ),
    (
        "bpf_map_update_elem",
        BpfHelper::BPF_FUNC_map_update_elem,
        "3.19",
        BOTH,
    ),
    // The inbound program's token bucket.
    (
        "bpf_ktime_get_ns",
        BpfHelper::BPF_FUNC_ktime_get_ns,
        "4.1",
        &[ProgramType::Xdp],
    ),
    (
        "bpf_ktime_get_coarse_ns",
        BpfHelper::BPF_FUNC_ktime_get_coarse_ns,
        "5.11",
        BOTH,
    ),
    // The TC program pulls non-linear headers into the linear area.
    (
        "bpf_skb_pull_data",
        BpfHelper::BPF_FUNC_skb_pull_data,
        "4.9",
        &[ProgramType::SchedClassifier],
    ),
    (
        "bpf_ringbuf_reserve",
        BpfHelper::BPF_FUNC_ringbuf_reserve,
        "5.8",
        BOTH,
    ),
    (
        "bpf_ringbuf_submit",
        BpfHelper::BPF_FUNC_ringbuf_submit,
        "5.8",
        BOTH,
    ),
    (
        "bpf_ringbuf_discard",
        BpfHelper::BPF_FUNC_ringbuf_discard,
        "5.8",
        BOTH,
    ),
];

fn probe_kernel() -> Features {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let map = |kind| is_map_supported(kind).unwrap_or(false);
    let mut probes = vec![
        Probe {
            feature: TCX,
            since: "6.6",
            // BPF_PROG_QUERY for tcx egress on loopback: EINVAL where the attach type is unknown.
            present: SchedClassifier::query_tcx("lo", TcAttachType::Egress).is_ok(),
            impact: Impact::Fallback(
                "attaches TC as a direct-action cls_bpf filter on a clsact qdisc (tc-legacy)",
            ),
        },
        Probe {
            feature: "XDP bpf_link",
            since: "5.9",
            present: xdp_link_supported(),
            impact: Impact::Fatal("XDP attachments are pinned bpf_links"),
        },
        Probe {
            feature: "BPF ring buffer",
            since: "5.8",
            present: map(MapType::RingBuf),
            impact: Impact::Fatal("the object's event map is a ring buffer"),
        },
        Probe {
            feature: "LPM trie, LRU hash and per-CPU array maps",
            since: "4.11",
            present: map(MapType::LpmTrie) && map(MapType::LruHash) && map(MapType::PerCpuArray),
            impact: Impact::Fatal("the allowlists, subscribers and counters use them"),
        },
        Probe {
            feature: "mmapable array maps",
            since: "5.5",
            present: map_creates(BPF_MAP_TYPE_ARRAY, BPF_F_MMAPABLE),
            impact: Impact::Fatal("the IPv4 source index is an mmapable array"),
        },
        Probe {
            feature: "batch map operations",
            since: "5.6",
            present: batch_supported(),
            impact: Impact::Fallback("reads and writes maps one entry per syscall"),
        },
        Probe {
            feature: "bpffs",
            since: "4.4",
            present: std::fs::read_to_string("/proc/filesystems")
                .is_ok_and(|list| list.lines().any(|line| line.trim_end().ends_with("\tbpf"))),
            impact: Impact::Fatal("maps and links are pinned in bpffs"),
        },
    ];
    for (name, helper, since, programs) in HELPERS {
        let present = programs
            .iter()
            .all(|program| is_helper_supported(*program, *helper).unwrap_or(false));
        probes.push(Probe {
            feature: name,
            since,
            present,
            impact: Impact::Fatal("the verifier rejects programs calling it"),
        });
    }
    Features {
        kernel,
        probes,
        tc_method: TcMethod::Tcx,
    }
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const BPF_MAP_TYPE_HASH: libc::c_uint = 1;
const BPF_MAP_TYPE_ARRAY: libc::c_uint = 2;
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Creates (and closes) a one-entry map with 4-byte keys and 8-byte values.
fn create_map(map_type: libc::c_uint, flags: u32) -> Option<OwnedFd> {
    // map_type, key_size, value_size, max_entries, map_flags: the head of bpf_attr.
    let mut attr = [0u32; 30];
    attr[..5].copy_from_slice(&[map_type, 4, 8, 1, flags]);
    // SAFETY: attr is a zero-padded bpf_attr of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    // SAFETY: the kernel just returned this fd to us.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `bpf(cmd, attr)` with a zero-padded bpf_attr; the fd it returns, or the errno.
fn bpf_fd(cmd: libc::c_long, attr: &mut [u64; 16]) -> Result<OwnedFd, i32> {
    // SAFETY: attr is a zero-padded bpf_attr of the size passed; the pointers in it (set by
    // the callers) outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A real XDP bpf_link: loads a two-instruction `XDP_PASS` program and links it to loopback
/// in generic mode, then closes both (the link detaches with its last fd; nothing is
/// pinned). Kernels without XDP links answer EINVAL; EBUSY or EEXIST (loopback already has
/// an XDP program of someone else's, which stays untouched) still means the kernel has them.
fn xdp_link_supported() -> bool {
    // r0 = XDP_PASS (2); exit.
    let insns: [u64; 2] = [0x0000_0002_0000_00b7, 0x0000_0000_0000_0095];
    let license = c"GPL";
    let mut attr = [0u64; 16];
    attr[0] = u64::from(BPF_PROG_TYPE_XDP) | (insns.len() as u64) << 32;
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    let Ok(prog) = bpf_fd(BPF_PROG_LOAD, &mut attr) else {
        return false;
    };
    // SAFETY: plain libc call on a NUL-terminated name.
    let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
    if lo == 0 {
        return false;
    }
    let mut attr = [0u64; 16];
    // prog_fd, target_ifindex, attach_type, flags.
    attr[0] = u64::from(std::os::fd::AsRawFd::as_raw_fd(&prog) as u32) | u64::from(lo) << 32;
    attr[1] = u64::from(BPF_XDP) | u64::from(XDP_FLAGS_SKB_MODE) << 32;
    match bpf_fd(BPF_LINK_CREATE, &mut attr) {
        Ok(_link) => true,
        Err(errno) => errno == libc::EBUSY || errno == libc::EEXIST,
    }
}

fn map_creates(map_type: libc::c_uint, flags: u32) -> bool {
    create_map(map_type, flags).is_some()
}

/// A batch lookup on an empty hash map: nothing to read where supported, EINVAL where not.
fn batch_supported() -> bool {
    let Some(fd) = create_map(BPF_MAP_TYPE_HASH, 0) else {
        return false;
    };
    egress_common::batch::lookup_all::<u32, u64>(std::os::fd::AsFd::as_fd(&fd), |_, _| {}).is_ok()
}

#[cfg(test)]
mod tests {
    use aya::util::KernelVersion;

    use super::*;

    #[test]
    fn the_knob_parses_and_rejects_typos() {
        assert_eq!(parse_tc_choice(None), Ok(TcChoice::Auto));
        assert_eq!(parse_tc_choice(Some("")), Ok(TcChoice::Auto));
        assert_eq!(parse_tc_choice(Some("legacy")), Ok(TcChoice::Legacy));
        assert_eq!(parse_tc_choice(Some(" tcx ")), Ok(TcChoice::Tcx));
        let err = parse_tc_choice(Some("netlink")).expect_err("not a choice");
        assert!(
            err.contains("EGRESS_TC_ATTACH") && err.contains("netlink"),
            "{err}"
        );
    }

    #[test]
    fn tc_method_follows_the_kernel_unless_forced_to_legacy() {
        assert_eq!(choose_tc_method(true, TcChoice::Auto), TcMethod::Tcx);
        assert_eq!(choose_tc_method(false, TcChoice::Auto), TcMethod::Legacy);
        assert_eq!(choose_tc_method(true, TcChoice::Legacy), TcMethod::Legacy);
        assert_eq!(choose_tc_method(false, TcChoice::Tcx), TcMethod::Legacy);
        assert_eq!(choose_tc_method(true, TcChoice::Tcx), TcMethod::Tcx);
    }

    #[test]
    fn a_missing_feature_is_one_line_naming_kernel_and_consequence() {
        let probe = Probe {
            feature: TCX,
            since: "6.6",
            present: false,
            impact: Impact::Fallback("attaches TC as a cls_bpf filter"),
        };
        let line = probe.missing_line().expect("missing");
        assert!(!line.contains('\n'));
        assert!(
            line.contains("tcx links") && line.contains("6.6+"),
            "{line}"
        );
        assert!(line.contains("cls_bpf"), "{line}");
        let fatal = Probe {
            impact: Impact::Fatal("the events map is a ring buffer"),
            ..probe.clone()
        };
        assert!(
            fatal
                .missing_line()
                .expect("missing")
                .contains("cannot run")
        );
        assert_eq!(
            Probe {
                present: true,
                ..probe
            }
            .missing_line(),
            None
        );
    }

    /// On the machine's own kernel (root needed, like every dataplane test): everything the
    /// object uses is there, and the tcx probe agrees with the kernel version.
    #[test]
    fn this_kernel_has_what_the_object_needs() {
        let features = probe_kernel();
        let fatal: Vec<String> = features
            .probes
            .iter()
            .filter(|p| matches!(p.impact, Impact::Fatal(_)))
            .filter_map(Probe::missing_line)
            .collect();
        assert!(fatal.is_empty(), "{fatal:?}");
        let version = KernelVersion::current().expect("kernel version");
        assert_eq!(
            features.present(TCX),
            version >= KernelVersion::new(6, 6, 0),
            "tcx probe vs kernel {}",
            features.kernel
        );
        assert!(features.present("batch map operations"));
        assert!(
            features.present("XDP bpf_link"),
            "XDP link probe on {}",
            features.kernel
        );
    }

    /// Every helper the built object calls is probed (a new helper call without a probe
    /// fails here, not on an old kernel's verifier).
    #[test]
    fn every_helper_the_object_calls_is_probed() {
        const BPF_JMP_CALL: u8 = 0x85;
        let object = aya_obj::Object::parse(crate::EBPF_OBJECT).expect("parse the eBPF object");
        let mut called = std::collections::BTreeSet::new();
        for function in object.functions.values() {
            for insn in &function.instructions {
                // src_reg 0: a helper call (1 is a bpf-to-bpf call, 2 a kfunc).
                if insn.code == BPF_JMP_CALL && insn.src_reg() == 0 {
                    called.insert(insn.imm as u32);
                }
            }
        }
        assert!(!called.is_empty(), "no helper calls found in the object");
        let probed: std::collections::BTreeSet<u32> = HELPERS
            .iter()
            .map(|(_, helper, _, _)| *helper as u32)
            .collect();
        let unprobed: Vec<u32> = called.difference(&probed).copied().collect();
        assert!(
            unprobed.is_empty(),
            "helper ids the object calls but features.rs does not probe: {unprobed:?}"
        );
    }
}
