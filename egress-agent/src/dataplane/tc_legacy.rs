//! TC without tcx (kernels before 6.6): our program as a direct-action `cls_bpf` filter on
//! the egress hook of a `clsact` qdisc, at a fixed priority and handle. The kernel's filter
//! holds the program, so enforcement outlives the agent like a pinned link does.
//!
//! - attach: add clsact if the interface has none (remembered, so `detach` removes only a
//!   qdisc egress created), then create the filter (exclusive: never over someone else's);
//! - upgrade and restart: the filter at our priority and handle is changed in place (an
//!   RTM_NEWTFILTER without NLM_F_EXCL on the same prio/handle: cls_bpf swaps the program
//!   under RCU, so no packet goes unjudged);
//! - ours is recognised by priority, handle and program name; everything else on the hook is
//!   foreign: kept, logged and shown in `status`.
//!
//! Bookkeeping in bpffs (directories only): `pin_dir/tc-legacy/<interface>/` while we hold a
//! filter there, with a `qdisc-created` subdirectory when the clsact qdisc is ours.

use std::path::{Path, PathBuf};

use aya::{
    Ebpf,
    programs::{
        SchedClassifier, TcAttachType,
        tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcError, TcHandle},
    },
};
use egress_common::names;

use super::{
    attach::{AttachError, Replace, ifindex},
    tc_netlink::{self, CLSACT_EGRESS, CLSACT_INGRESS, Filter},
};
use crate::{config::InterfaceConfig, paths::PinLayout, status::Attachment};

/// Priority 1 runs before any other filter on the hook: nothing ahead of us can wave SMTP
/// through.
pub const PRIORITY: u16 = 1;
pub const HANDLE: u32 = 0x25;
pub const MODE: &str = "tc-legacy";
const HOOK: &str = "tc-egress";

/// Whether `filter` is the one egress attaches.
pub fn is_ours(filter: &Filter) -> bool {
    filter.priority == PRIORITY
        && filter.handle == HANDLE
        && filter.kind == "bpf"
        && filter.bpf_name == names::TC_PROGRAM
}

/// `pin_dir/tc-legacy`.
pub fn state_root(pins: &PinLayout) -> PathBuf {
    pins.root().join("tc-legacy")
}

fn state_dir(pins: &PinLayout, interface: &str) -> PathBuf {
    state_root(pins).join(interface.replace('.', ":"))
}

fn qdisc_marker(pins: &PinLayout, interface: &str) -> PathBuf {
    state_dir(pins, interface).join("qdisc-created")
}

fn io_err(
    interface: &str,
    what: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> AttachError {
    let (interface, path) = (interface.to_owned(), path.to_owned());
    move |source| AttachError::Io {
        interface,
        hook: HOOK,
        what,
        path,
        source,
    }
}

fn netlink_err(interface: &str, what: &'static str) -> impl FnOnce(std::io::Error) -> AttachError {
    let interface = interface.to_owned();
    move |source| AttachError::Io {
        interface,
        hook: HOOK,
        what,
        path: PathBuf::from("rtnetlink"),
        source,
    }
}

/// Makes sure our filter enforces on `interface`; returns what is attached now.
pub fn ensure(
    ebpf: &mut Ebpf,
    pins: &PinLayout,
    interface: &InterfaceConfig,
    replace: Replace,
) -> Result<Attachment, AttachError> {
    let name = interface.name.as_str();
    let mut attachment = Attachment {
        interface: name.to_owned(),
        hook: interface.hook,
        mode: MODE.to_owned(),
        attached: false,
        foreign_program: false,
        method: MODE.to_owned(),
        foreign_filters: Vec::new(),
    };
    let index = ifindex(name);
    if index == 0 {
        attachment.mode.clear();
        return Ok(attachment);
    }
    let filters = tc_netlink::filters(index, CLSACT_EGRESS)
        .map_err(netlink_err(name, "cannot list the TC egress filters"))?;
    let (ours, foreign): (Vec<Filter>, Vec<Filter>) = filters.into_iter().partition(is_ours);
    attachment.foreign_filters = foreign.iter().map(Filter::describe).collect();
    let dir = state_dir(pins, name);
    if !ours.is_empty() {
        if replace == Replace::Program {
            replace_program(ebpf, interface)?;
            tracing::info!(
                interface = name,
                hook = HOOK,
                mode = MODE,
                priority = PRIORITY,
                handle = HANDLE,
                "adopted our cls_bpf filter, program replaced atomically"
            );
        }
        std::fs::create_dir_all(&dir).map_err(io_err(name, "cannot create", &dir))?;
        attachment.attached = true;
        return Ok(attachment);
    }
    if foreign
        .iter()
        .any(|f| f.priority == PRIORITY && f.handle == HANDLE)
    {
        // Someone else's filter sits where ours goes: reported, never removed.
        attachment.foreign_program = true;
        return Ok(attachment);
    }
    std::fs::create_dir_all(&dir).map_err(io_err(name, "cannot create", &dir))?;
    match tc::qdisc_add_clsact(name) {
        Ok(()) => {
            let marker = qdisc_marker(pins, name);
            std::fs::create_dir_all(&marker).map_err(io_err(name, "cannot create", &marker))?;
            tracing::info!(
                interface = name,
                "added a clsact qdisc (egress removes it on detach)"
            );
        }
        Err(TcError::NetlinkError(err)) if err.raw_os_error() == Some(libc::EEXIST) => {}
        Err(err) => {
            return Err(AttachError::Program {
                interface: name.to_owned(),
                hook: HOOK,
                what: "cannot add the clsact qdisc",
                source: Box::new(err.into()),
            });
        }
    }
    let program = tc_program(ebpf, interface)?;
    let options = NlOptions {
        priority: PRIORITY,
        handle: TcHandle::from(HANDLE),
        classid: None,
    };
    let id = program
        .attach_with_options(
            name,
            TcAttachType::Egress,
            TcAttachOptions::Netlink(options),
        )
        .map_err(program_err(name, "cannot attach the cls_bpf filter"))?;
    keep_filter(program, id, name)?;
    attachment.attached = true;
    tracing::info!(
        interface = name,
        hook = HOOK,
        mode = MODE,
        priority = PRIORITY,
        handle = HANDLE,
        "attached"
    );
    Ok(attachment)
}

fn tc_program<'a>(
    ebpf: &'a mut Ebpf,
    interface: &InterfaceConfig,
) -> Result<&'a mut SchedClassifier, AttachError> {
    let missing = || AttachError::MissingProgram {
        interface: interface.name.clone(),
        hook: HOOK,
        name: names::TC_PROGRAM,
    };
    ebpf.program_mut(names::TC_PROGRAM)
        .ok_or_else(missing)?
        .try_into()
        .map_err(|_| missing())
}

fn program_err(
    interface: &str,
    what: &'static str,
) -> impl FnOnce(aya::programs::ProgramError) -> AttachError {
    let interface = interface.to_owned();
    move |source| AttachError::Program {
        interface,
        hook: HOOK,
        what,
        source: Box::new(source),
    }
}

/// Puts our program into the existing filter at our priority and handle.
fn replace_program(ebpf: &mut Ebpf, interface: &InterfaceConfig) -> Result<(), AttachError> {
    let name = interface.name.as_str();
    let link = our_filter(name).map_err(netlink_err(name, "cannot address the filter"))?;
    let program = tc_program(ebpf, interface)?;
    let id = program
        .attach_to_link(link)
        .map_err(program_err(name, "cannot replace the filter's program"))?;
    keep_filter(program, id, name)
}

/// aya removes a netlink filter when its link handle is dropped; the filter must outlive us.
fn keep_filter(
    program: &mut SchedClassifier,
    id: tc::SchedClassifierLinkId,
    interface: &str,
) -> Result<(), AttachError> {
    let link = program
        .take_link(id)
        .map_err(program_err(interface, "cannot take the filter handle"))?;
    std::mem::forget(link);
    Ok(())
}

/// A handle on the filter at our priority and handle of `interface` (dropping it deletes the
/// filter).
fn our_filter(interface: &str) -> std::io::Result<SchedClassifierLink> {
    SchedClassifierLink::attached(
        interface,
        TcAttachType::Egress,
        PRIORITY,
        TcHandle::from(HANDLE),
        None,
    )
}

/// What `detach` did on one interface.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    /// Our filter (and the qdisc, when `qdisc` and ours) removed.
    Removed { qdisc: bool },
    /// The qdisc was ours but foreign filters are on it: they and the qdisc stay.
    QdiscKept { foreign: Vec<String> },
    /// The interface is not in this network namespace (or gone): nothing to remove here.
    NoInterface,
}

/// Removes our filter from `interface`, and the clsact qdisc if egress created it and nothing
/// foreign is on it. Forgets the interface's bookkeeping unless it is not reachable here.
pub fn remove(pins: &PinLayout, interface: &str) -> std::io::Result<Removal> {
    let index = ifindex(interface);
    if index == 0 {
        return Ok(Removal::NoInterface);
    }
    let egress = tc_netlink::filters(index, CLSACT_EGRESS)?;
    if egress.iter().any(is_ours) {
        // Dropping the handle sends RTM_DELTFILTER for our priority and handle.
        drop(our_filter(interface)?);
    }
    let mut removal = Removal::Removed { qdisc: false };
    if qdisc_marker(pins, interface).exists() {
        let mut left = tc_netlink::filters(index, CLSACT_EGRESS)?;
        left.extend(tc_netlink::filters(index, CLSACT_INGRESS)?);
        if left.is_empty() {
            match tc_netlink::delete_clsact(index) {
                Ok(()) => removal = Removal::Removed { qdisc: true },
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
                Err(err) => return Err(err),
            }
        } else {
            removal = Removal::QdiscKept {
                foreign: left.iter().map(Filter::describe).collect(),
            };
        }
    }
    forget(pins, interface)?;
    Ok(removal)
}

/// Switching to tcx across a restart (tcx arrived with a kernel upgrade, or
/// `EGRESS_TC_ATTACH=legacy` was dropped): once the tcx link enforces on `interface`, our own
/// cls_bpf filter goes, and the clsact qdisc if egress created it and nothing else is on it, so
/// exactly one attachment is left and there was never a moment with none. Foreign filters and
/// qdiscs stay. `thorough` asks the kernel even without bookkeeping (at start and reload); the
/// periodic check only looks at the bookkeeping. None when nothing of ours was there.
pub fn retire(
    pins: &PinLayout,
    interface: &str,
    thorough: bool,
) -> std::io::Result<Option<Removal>> {
    let recorded = state_dir(pins, interface).exists();
    if !recorded && !thorough {
        return Ok(None);
    }
    let index = ifindex(interface);
    if index == 0 {
        return Ok(None);
    }
    if !recorded
        && !tc_netlink::filters(index, CLSACT_EGRESS)?
            .iter()
            .any(is_ours)
    {
        return Ok(None);
    }
    remove(pins, interface).map(Some)
}

/// Drops the bookkeeping of one interface.
pub fn forget(pins: &PinLayout, interface: &str) -> std::io::Result<()> {
    let dir = state_dir(pins, interface);
    for path in [qdisc_marker(pins, interface), dir] {
        match std::fs::remove_dir(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    Ok(())
}

/// Interfaces with bookkeeping under `pin_dir/tc-legacy`.
pub fn recorded(pins: &PinLayout) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state_root(pins)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| PinLayout::link_interface(&e.file_name().to_string_lossy()))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_is_the_egress_program_at_our_priority_and_handle() {
        let ours = Filter {
            priority: PRIORITY,
            handle: HANDLE,
            kind: "bpf".into(),
            bpf_name: names::TC_PROGRAM.into(),
            prog_id: 7,
            tag: String::new(),
        };
        assert!(is_ours(&ours));
        for other in [
            Filter {
                priority: 2,
                ..ours.clone()
            },
            Filter {
                handle: 1,
                ..ours.clone()
            },
            Filter {
                bpf_name: "someone_else".into(),
                ..ours.clone()
            },
            Filter {
                kind: "u32".into(),
                ..ours.clone()
            },
        ] {
            assert!(!is_ours(&other), "{other:?}");
        }
    }

    #[test]
    fn bookkeeping_paths_escape_dots() {
        let pins = PinLayout::new("/sys/fs/bpf/egress");
        assert_eq!(
            qdisc_marker(&pins, "bond0.100"),
            PathBuf::from("/sys/fs/bpf/egress/tc-legacy/bond0:100/qdisc-created")
        );
    }
}
