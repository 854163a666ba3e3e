//! Attaching our programs through pinned links: adopt a live pinned link and swap its program
//! atomically (bpf_link_update, no gap), or create and pin a new link when there is none or the
//! old one no longer enforces anything (interface recreated, program displaced).

use std::path::{Path, PathBuf};

use aya::{
    Ebpf,
    programs::{
        LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc::SchedClassifierLink,
        tc::TcAttachOptions,
        xdp::XdpLink,
    },
};
use egress_common::names;

use super::{
    features::{self, TcMethod},
    netlink, tc_legacy,
};
use crate::{
    config::{Hook, InterfaceConfig, XdpModeSetting},
    paths::PinLayout,
    status::Attachment,
};

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("{interface} ({hook}): {what}: {source}")]
    Program {
        interface: String,
        hook: &'static str,
        what: &'static str,
        source: Box<aya::programs::ProgramError>,
    },
    #[error("{interface} ({hook}): {what}: {source}")]
    Link {
        interface: String,
        hook: &'static str,
        what: &'static str,
        source: LinkError,
    },
    #[error("{interface} ({hook}): {what} {path}: {source}")]
    Io {
        interface: String,
        hook: &'static str,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{interface} (xdp): cannot remove the foreign XDP program {prog_id} that displaced ours \
         (a bpf_link only its owner can release gives EBUSY): {source}"
    )]
    Foreign {
        interface: String,
        prog_id: u32,
        source: std::io::Error,
    },
    #[error("{interface} ({hook}): program {name} missing from the eBPF object")]
    MissingProgram {
        interface: String,
        hook: &'static str,
        name: &'static str,
    },
}

/// What to do with a live link that already runs a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// Swap in the program loaded by this agent (start, reload).
    Program,
    /// Leave it alone (periodic check).
    Keep,
}

/// Programs currently on the interface's hook, and the XDP mode if any.
fn hook_programs(interface: &InterfaceConfig, ifindex: u32) -> (Vec<u32>, Option<&'static str>) {
    match interface.hook {
        Hook::Xdp | Hook::XdpInbound => match netlink::xdp_state(ifindex) {
            Ok(state) if state.prog_id != 0 => (vec![state.prog_id], state.mode),
            Ok(_) => (Vec::new(), None),
            Err(err) => {
                tracing::warn!(interface = %interface.name, %err, "cannot query the XDP program");
                (Vec::new(), None)
            }
        },
        Hook::TcEgress => match SchedClassifier::query_tcx(&interface.name, TcAttachType::Egress) {
            Ok((_, programs)) => (programs.iter().map(|p| p.id()).collect(), Some("tcx")),
            Err(err) => {
                tracing::warn!(interface = %interface.name, %err, "cannot query tcx programs");
                (Vec::new(), None)
            }
        },
    }
}

pub fn ifindex(name: &str) -> u32 {
    let Ok(c_name) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: NUL-terminated name; the call only reads it.
    unsafe { libc::if_nametoindex(c_name.as_ptr()) }
}

/// Makes sure our program enforces on `interface`; returns what is attached now. On the TC
/// hook, the other method's attachment left by an earlier run goes once this one enforces.
pub fn ensure(
    ebpf: &mut Ebpf,
    pins: &PinLayout,
    interface: &InterfaceConfig,
    replace: Replace,
    reattach: bool,
) -> Result<Attachment, AttachError> {
    if interface.hook != Hook::TcEgress {
        return ensure_link(ebpf, pins, interface, replace, reattach);
    }
    let legacy = features::get().tc_method == TcMethod::Legacy;
    let attachment = if legacy {
        tc_legacy::ensure(ebpf, pins, interface, replace)?
    } else {
        ensure_link(ebpf, pins, interface, replace, reattach)?
    };
    if attachment.attached {
        retire_other_method(pins, &interface.name, legacy, replace == Replace::Program);
    }
    Ok(attachment)
}

/// Removes our attachment of the TC method not in use (ours only: the filter at our priority
/// and handle, or our pinned tcx link), after the one in use enforces. A failure is logged,
/// not returned: enforcement holds either way, and the next start or reload tries again.
fn retire_other_method(pins: &PinLayout, interface: &str, legacy: bool, thorough: bool) {
    let hook = Hook::TcEgress.as_str();
    if legacy {
        let pin = pins.link(interface, hook);
        match remove(pins, interface, Hook::TcEgress) {
            Ok(false) => {}
            Ok(true) => tracing::info!(interface, hook, pin = %pin.display(),
                "removed our tcx link: the cls_bpf filter enforces now (tc-legacy)"),
            Err(err) => tracing::error!(interface, hook, pin = %pin.display(), %err,
                "cannot remove our tcx link pin; both attachments run until it goes"),
        }
        return;
    }
    match tc_legacy::retire(pins, interface, thorough) {
        Ok(None) => {}
        Ok(Some(removal)) => tracing::info!(
            interface,
            hook,
            ?removal,
            "removed our cls_bpf filter: the tcx link enforces now"
        ),
        Err(err) => tracing::error!(interface, hook, %err,
            "cannot remove our cls_bpf filter (rtnetlink); both attachments run until it goes"),
    }
}

/// The pinned-link path: XDP links and tcx links.
fn ensure_link(
    ebpf: &mut Ebpf,
    pins: &PinLayout,
    interface: &InterfaceConfig,
    replace: Replace,
    reattach: bool,
) -> Result<Attachment, AttachError> {
    let hook = interface.hook.as_str();
    let mut attachment = Attachment {
        interface: interface.name.clone(),
        hook: interface.hook,
        mode: String::new(),
        attached: false,
        foreign_program: false,
        method: match interface.hook {
            Hook::Xdp | Hook::XdpInbound => "xdp-link",
            Hook::TcEgress => "tcx",
        }
        .to_owned(),
        foreign_filters: Vec::new(),
    };
    let ifindex = ifindex(&interface.name);
    if ifindex == 0 {
        return Ok(attachment);
    }
    let (on_hook, mode) = hook_programs(interface, ifindex);
    let link_pin = pins.link(&interface.name, hook);
    let io_err = |what, path: &Path| {
        let interface = interface.name.clone();
        let path = path.to_owned();
        move |source| AttachError::Io {
            interface,
            hook,
            what,
            path,
            source,
        }
    };

    if let Ok(pinned) = PinnedLink::from_pin(&link_pin) {
        let link = FdLink::from(pinned);
        let live = link
            .info()
            .map(|info| on_hook.contains(&info.program_id()))
            .unwrap_or(false);
        if live {
            if replace == Replace::Program {
                update_link(ebpf, interface, link)?;
                tracing::info!(interface = %interface.name, hook, mode = mode.unwrap_or(""),
                    pin = %link_pin.display(), "adopted pinned link, program replaced atomically");
            }
            attachment.attached = true;
            attachment.mode = mode.unwrap_or("").to_owned();
            return Ok(attachment);
        }
        // The pinned link no longer enforces: its interface was recreated, or something
        // detached it (perhaps to put its own program there, handled below).
        tracing::warn!(interface = %interface.name, hook,
            "our pinned link no longer enforces here (interface recreated or link detached)");
        std::fs::remove_file(&link_pin)
            .map_err(io_err("cannot remove stale link pin", &link_pin))?;
    }
    // tcx runs several programs in a chain (ours first); the XDP hook holds one, so a program
    // there that is not behind our pinned link displaced us.
    if matches!(interface.hook, Hook::Xdp | Hook::XdpInbound)
        && let Some(&prog_id) = on_hook.first()
    {
        attachment.foreign_program = true;
        attachment.mode = mode.unwrap_or("").to_owned();
        if !reattach {
            return Ok(attachment);
        }
        tracing::error!(interface = %interface.name, prog_id, mode = mode.unwrap_or(""),
            "FOREIGN XDP PROGRAM holds the hook: detaching it and attaching ours (control.reattach = true)");
        netlink::detach_xdp(ifindex, mode).map_err(|source| AttachError::Foreign {
            interface: interface.name.clone(),
            prog_id,
            source,
        })?;
    }

    let hook_dir = pins.hook_dir(hook);
    std::fs::create_dir_all(&hook_dir).map_err(io_err("cannot create", &hook_dir))?;
    let link = match interface.hook {
        Hook::Xdp | Hook::XdpInbound => attach_xdp(ebpf, interface)?,
        Hook::TcEgress => attach_tc(ebpf, interface)?,
    };
    link.pin(&link_pin).map_err(|source| AttachError::Io {
        interface: interface.name.clone(),
        hook,
        what: "cannot pin link at",
        path: link_pin.clone(),
        source: pin_io_error(source),
    })?;
    let (_, mode) = hook_programs(interface, ifindex);
    attachment.mode = mode.unwrap_or("").to_owned();
    attachment.attached = true;
    attachment.foreign_program = false;
    tracing::info!(interface = %interface.name, hook, mode = %attachment.mode,
        pin = %link_pin.display(), "attached");
    Ok(attachment)
}

/// The errno behind a pin failure (PinError's own message omits it).
fn pin_io_error(err: aya::pin::PinError) -> std::io::Error {
    match err {
        aya::pin::PinError::SyscallError(syscall) => syscall.io_error,
        other => std::io::Error::other(other),
    }
}

fn xdp_program<'a>(
    ebpf: &'a mut Ebpf,
    interface: &InterfaceConfig,
) -> Result<&'a mut Xdp, AttachError> {
    let name = match interface.hook {
        Hook::XdpInbound => egress_common::inbound::names::PROGRAM,
        Hook::Xdp | Hook::TcEgress => names::XDP_PROGRAM,
    };
    our_program(ebpf, interface, name)
}

fn tc_program<'a>(
    ebpf: &'a mut Ebpf,
    interface: &InterfaceConfig,
) -> Result<&'a mut SchedClassifier, AttachError> {
    our_program(ebpf, interface, names::TC_PROGRAM)
}

/// Program `name` of the object, as the type its hook needs.
fn our_program<'a, P>(
    ebpf: &'a mut Ebpf,
    interface: &InterfaceConfig,
    name: &'static str,
) -> Result<&'a mut P, AttachError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program>,
{
    let missing = || AttachError::MissingProgram {
        interface: interface.name.clone(),
        hook: interface.hook.as_str(),
        name,
    };
    let program = ebpf.program_mut(name).ok_or_else(missing)?;
    program.try_into().map_err(|_| missing())
}

fn program_err<'a>(
    interface: &'a InterfaceConfig,
    what: &'static str,
) -> impl Fn(aya::programs::ProgramError) -> AttachError + 'a {
    move |source| AttachError::Program {
        interface: interface.name.clone(),
        hook: interface.hook.as_str(),
        what,
        source: Box::new(source),
    }
}

fn link_err<'a>(
    interface: &'a InterfaceConfig,
    what: &'static str,
) -> impl Fn(LinkError) -> AttachError + 'a {
    move |source| AttachError::Link {
        interface: interface.name.clone(),
        hook: interface.hook.as_str(),
        what,
        source,
    }
}

/// Swaps our program into a live link (bpf_link_update): no moment without enforcement.
fn update_link(
    ebpf: &mut Ebpf,
    interface: &InterfaceConfig,
    link: FdLink,
) -> Result<(), AttachError> {
    // Xdp and SchedClassifier share these methods by name only (no common trait).
    macro_rules! swap {
        ($link:ty, $program:ident, $not_ours:literal) => {{
            let link = <$link>::try_from(link).map_err(link_err(interface, $not_ours))?;
            let program = $program(ebpf, interface)?;
            let id = program
                .attach_to_link(link)
                .map_err(program_err(interface, "cannot update link"))?;
            // Dropping our handle closes the fd; the pin keeps the link.
            drop(
                program
                    .take_link(id)
                    .map_err(program_err(interface, "cannot take link"))?,
            );
        }};
    }
    match interface.hook {
        Hook::Xdp | Hook::XdpInbound => {
            swap!(XdpLink, xdp_program, "pinned link is not an XDP link")
        }
        Hook::TcEgress => swap!(
            SchedClassifierLink,
            tc_program,
            "pinned link is not a tcx link"
        ),
    }
    Ok(())
}

fn attach_xdp(ebpf: &mut Ebpf, interface: &InterfaceConfig) -> Result<FdLink, AttachError> {
    let modes: &[XdpMode] = match interface.xdp_mode {
        XdpModeSetting::Auto => &[XdpMode::Driver, XdpMode::Skb],
        XdpModeSetting::Native => &[XdpMode::Driver],
        XdpModeSetting::Skb => &[XdpMode::Skb],
    };
    let program = xdp_program(ebpf, interface)?;
    let mut last_error = None;
    for mode in modes {
        match program.attach(&interface.name, *mode) {
            Ok(id) => {
                let link = program
                    .take_link(id)
                    .map_err(program_err(interface, "cannot take link"))?;
                return FdLink::try_from(link).map_err(link_err(
                    interface,
                    "kernel gave no bpf_link (too old for XDP links?)",
                ));
            }
            Err(err) => {
                tracing::info!(interface = %interface.name, ?mode, %err, "XDP attach mode not available");
                last_error = Some(err);
            }
        }
    }
    Err(program_err(interface, "cannot attach XDP")(
        last_error.unwrap_or(aya::programs::ProgramError::NotAttached),
    ))
}

fn attach_tc(ebpf: &mut Ebpf, interface: &InterfaceConfig) -> Result<FdLink, AttachError> {
    let program = tc_program(ebpf, interface)?;
    // First in the tcx chain: nothing ahead of us can wave SMTP through.
    let id = program
        .attach_with_options(
            &interface.name,
            TcAttachType::Egress,
            TcAttachOptions::TcxOrder(LinkOrder::first()),
        )
        .map_err(program_err(interface, "cannot attach tcx egress"))?;
    let link = program
        .take_link(id)
        .map_err(program_err(interface, "cannot take link"))?;
    FdLink::try_from(link).map_err(link_err(interface, "kernel gave no tcx link"))
}

/// Removes our link from one interface (the pin holds the only reference once we dropped ours).
pub fn remove(pins: &PinLayout, interface: &str, hook: Hook) -> std::io::Result<bool> {
    let path = pins.link(interface, hook.as_str());
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}
