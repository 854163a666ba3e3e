//! What the periodic check reports about attachments: interfaces gone and back, foreign
//! programs and filters.

use crate::status::Attachment;

pub(super) fn interface_missing(name: &str) -> bool {
    crate::dataplane::attach::ifindex(name) == 0
}

pub(super) fn log_transition(before: &Attachment, now: &Attachment) {
    let (interface, hook) = (&now.interface, now.hook.as_str());
    if before.attached && !now.attached && !now.foreign_program {
        tracing::warn!(%interface, hook, "interface gone or link lost: not enforcing here");
    } else if !before.attached && now.attached {
        tracing::info!(%interface, hook, mode = %now.mode, "re-attached");
    }
    if !before.foreign_program && now.foreign_program {
        log_foreign(now);
    }
    if before.foreign_filters != now.foreign_filters {
        log_foreign_filters(now);
    }
}

/// Other tools' filters next to our cls_bpf filter: kept (never removed silently), said once.
pub(super) fn log_foreign_filters(now: &Attachment) {
    for filter in &now.foreign_filters {
        tracing::warn!(interface = %now.interface, hook = now.hook.as_str(), %filter,
            "foreign TC filter on the hook: kept as it is (egress runs first, at priority 1)");
    }
}

/// A foreign program we are not allowed to replace (or could not): said once per occurrence.
pub(super) fn log_foreign(now: &Attachment) {
    if now.hook == crate::config::Hook::TcEgress {
        tracing::error!(interface = %now.interface, hook = now.hook.as_str(),
            "FOREIGN TC FILTER holds our priority and handle (1, 0x25): it is kept, and port 25 \
             is NOT enforced here by TC");
        return;
    }
    tracing::error!(interface = %now.interface, hook = now.hook.as_str(), mode = %now.mode,
        "FOREIGN XDP PROGRAM holds the hook: port 25 is NOT enforced here \
         (control.reattach = false, or replacing it failed)");
}
