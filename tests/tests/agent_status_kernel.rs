//! `status` and `status --json` name the running kernel, the features it lacks (none on a
//! 6.6+ kernel) and how each interface is attached: `xdp-link` for the XDP hooks, `tcx` for
//! TC where the kernel has tcx, `tc-legacy` (cls_bpf on clsact) where it does not.

use aya::util::KernelVersion;
use tests::agent::{Agent, AgentFiles, Lab, RELAY};

#[test]
fn status_shows_each_attach_method_and_no_missing_feature_on_this_kernel() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config_for(
        &[
            (&lab.rtr_sub_if, "xdp"),
            (&lab.rtr_up_if, "tc-egress"),
            (&lab.rtr_up_if, "xdp-inbound"),
        ],
        &format!("[inbound]\nports = [25]\nprotected_mx = [\"{RELAY}/32\"]\n"),
    );
    let agent = Agent::start(&lab, files);
    let has_tcx = KernelVersion::current().expect("kernel version") >= KernelVersion::new(6, 6, 0);
    let tc_method = if has_tcx { "tcx" } else { "tc-legacy" };

    let status = agent.status();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert_eq!(status["kernel"], release.trim(), "{status}");
    let missing: Vec<&str> = status["missing_kernel_features"]
        .as_array()
        .unwrap_or_else(|| panic!("missing_kernel_features is a list: {status}"))
        .iter()
        .map(|line| line.as_str().expect("a line"))
        .collect();
    if has_tcx {
        assert!(
            missing.is_empty(),
            "nothing missing on this kernel: {missing:?}"
        );
    } else {
        assert!(
            missing.len() == 1 && missing[0].contains("tcx links (Linux 6.6+)"),
            "only tcx is missing before 6.6: {missing:?}"
        );
    }

    let attachments = status["attachments"].as_array().expect("attachments");
    let method = |interface: &str, hook: &str| {
        attachments
            .iter()
            .find(|a| a["interface"] == interface && a["hook"] == hook)
            .unwrap_or_else(|| panic!("no {hook} attachment on {interface}: {status}"))
            .clone()
    };
    for (interface, hook, expected) in [
        (lab.rtr_sub_if.as_str(), "xdp", "xdp-link"),
        (lab.rtr_up_if.as_str(), "tc-egress", tc_method),
        (lab.rtr_up_if.as_str(), "xdp-inbound", "xdp-link"),
    ] {
        let a = method(interface, hook);
        assert_eq!(a["attached"], true, "{a}");
        assert_eq!(a["method"], expected, "{interface} {hook}: {a}");
    }
    assert_eq!(attachments.len(), 3, "{status}");

    // The text form: the kernel line and a METHOD column with the same names.
    let text = agent.cli_ok(&["status"]);
    assert!(
        text.contains(&format!("kernel: {}", release.trim())),
        "{text}"
    );
    assert!(text.contains("METHOD"), "{text}");
    for (interface, hook, expected) in [
        (lab.rtr_sub_if.as_str(), "xdp", "xdp-link"),
        (lab.rtr_up_if.as_str(), "tc-egress", tc_method),
        (lab.rtr_up_if.as_str(), "xdp-inbound", "xdp-link"),
    ] {
        assert!(
            text.lines().any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.first() == Some(&interface)
                    && fields.get(1) == Some(&hook)
                    && fields.last() == Some(&expected)
            }),
            "a row `{interface} {hook} ... {expected}` in:\n{text}"
        );
    }
    assert_eq!(
        text.contains("kernel feature missing"),
        !has_tcx,
        "missing-feature lines in the text only where tcx is missing:\n{text}"
    );
}
