//! The programs' own cost, from the kernel's `bpf_prog_info` while `kernel.bpf_stats_enabled`
//! is 1: `egress_program_runs_total` and `egress_program_run_seconds_total` of the real agent
//! rise with the traffic its XDP program sees, and are absent while the kernel does not count.

use std::{net::SocketAddr, net::TcpStream, time::Duration};

use tests::{
    agent::{Agent, AgentFiles, Lab},
    metrics::{http_get, promtool_check_metrics, samples, value},
    netns::in_netns,
};

const METRICS: &str = "127.0.0.1:9725";
const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Sets `kernel.bpf_stats_enabled` and puts the previous value back on drop.
struct BpfStats {
    previous: String,
}

impl BpfStats {
    fn set(value: &str) -> BpfStats {
        let previous = std::fs::read_to_string(SYSCTL)
            .unwrap_or_else(|err| panic!("read {SYSCTL}: {err}"))
            .trim()
            .to_owned();
        std::fs::write(SYSCTL, value).unwrap_or_else(|err| panic!("write {SYSCTL}: {err}"));
        BpfStats { previous }
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Err(err) = std::fs::write(SYSCTL, &self.previous) {
            eprintln!(
                "warning: cannot restore {SYSCTL} to {}: {err}",
                self.previous
            );
        }
    }
}

fn scrape(lab: &Lab, agent: &Agent) -> String {
    let (status, text) = in_netns(&lab.rtr, || {
        http_get(METRICS.parse().expect("addr"), "/metrics")
    });
    assert_eq!(status, 200, "{text}\nagent log:\n{}", agent.log_text());
    promtool_check_metrics(&text);
    text
}

fn xdp(text: &str, name: &str) -> f64 {
    value(text, name, &[("program", "egress_xdp")])
        .unwrap_or_else(|| panic!("no {name}{{program=\"egress_xdp\"}} in:\n{text}"))
}

#[test]
fn metrics_program_cost_rises_with_traffic_while_the_kernel_counts() {
    const SYNS: u8 = 12;
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, &format!("[metrics]\nlisten = \"{METRICS}\"\n"));
    let agent = Agent::start(&lab, files);

    {
        let _off = BpfStats::set("0");
        let text = scrape(&lab, &agent);
        assert!(
            !samples(&text)
                .iter()
                .any(|s| s.name.starts_with("egress_program_")),
            "no program cost while the kernel does not count it:\n{text}"
        );
    }

    let _on = BpfStats::set("1");
    let before = scrape(&lab, &agent);
    let (runs_before, seconds_before) = (
        xdp(&before, "egress_program_runs_total"),
        xdp(&before, "egress_program_run_seconds_total"),
    );
    in_netns(&lab.sub, || {
        for i in 0..SYNS {
            let server: SocketAddr = format!("198.51.100.{}:25", 10 + i).parse().expect("addr");
            let connected = TcpStream::connect_timeout(&server, Duration::from_millis(300));
            assert!(connected.is_err(), "SYN to {server} must be dropped");
        }
    });
    let after = scrape(&lab, &agent);
    let runs_after = xdp(&after, "egress_program_runs_total");
    let seconds_after = xdp(&after, "egress_program_run_seconds_total");
    assert!(
        runs_after >= runs_before + f64::from(SYNS),
        "{SYNS} SYNs ran the XDP program: runs {runs_before} -> {runs_after}"
    );
    assert!(
        seconds_after > seconds_before,
        "run time must grow: {seconds_before} -> {seconds_after}"
    );
    // The uplink's TC program is reported under its own name.
    assert!(
        value(
            &after,
            "egress_program_runs_total",
            &[("program", "egress_tc")]
        )
        .is_some(),
        "{after}"
    );
}
