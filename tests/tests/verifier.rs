//! Verifier headroom: a compiler or code change that bloats any of the programs must fail here long
//! before the kernel's limit rejects it in production.

use tests::{dataplane::Dataplane, inbound::Inbound};

/// BPF_COMPLEXITY_LIMIT_INSNS: the most instructions the verifier will process for one program.
const KERNEL_LIMIT: u32 = 1_000_000;

#[test]
fn every_program_verifies_within_half_the_kernel_limit() {
    let mut dataplane = Dataplane::load(&[25]);
    let mut inbound = Inbound::load(&[25], 4096);
    let counts = [
        ("egress_xdp", dataplane.xdp().info()),
        ("egress_tc", dataplane.tc().info()),
        ("egress_inbound", inbound.program().info()),
    ]
    .map(|(name, info)| {
        let info = info.unwrap_or_else(|err| panic!("program info of {name}: {err}"));
        let count = info.verified_instruction_count().unwrap_or_else(|| {
            panic!("the kernel reports no verified instruction count for {name} (needs 5.16+)")
        });
        println!("{name}: {count} instructions processed by the verifier (limit {KERNEL_LIMIT})");
        (name, count)
    });
    for (name, count) in counts {
        assert!(
            count > 0,
            "{name}: implausible verified instruction count 0"
        );
        assert!(
            count < KERNEL_LIMIT / 2,
            "{name}: the verifier processed {count} instructions, more than half of {KERNEL_LIMIT}"
        );
    }
}
