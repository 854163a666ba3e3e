//! `cargo xtask demo`'s scenario, run without narration: real Postfix relay, real smtp-sink
//! MX, the real agent binary on a lab edge router. The scenario checks every step itself and
//! fails on the first one that did not happen as told (and if cleanup left anything behind);
//! this test then looks at what each step produced.

use xtask::{
    cmd::Runner,
    demo::{self, Narrator},
};

#[test]
fn demo_scenario_delivers_via_relay_blocks_direct_flags_the_bot_and_exempts_both_ways() {
    let agent = demo::build_agent(Runner::quiet()).expect("cargo build -p egress-agent");
    let told = demo::scenario(&agent, Narrator::new(true, false))
        .unwrap_or_else(|err| panic!("the demo scenario failed: {err:#}"));

    // The clean subscriber's message reached the MX from the relay, not from the subscriber.
    assert!(
        told.relayed_message.contains("X-Client-Addr: 192.0.2.25"),
        "{}",
        told.relayed_message
    );
    // The infected subscriber tops `top` as a suspected bot, and the metrics say so too.
    let first = told.top.first().expect("top lists the infected subscriber");
    assert_eq!(first["subscriber"], "100.64.2.20");
    assert_eq!(first["suspected_bot"], true);
    assert!(
        first["attempts"].as_u64().is_some_and(|n| n >= 40),
        "{first}"
    );
    assert!(
        told.metrics
            .lines()
            .any(|line| line == "egress_subscriber_suspected_bot{subscriber=\"100.64.2.20\"} 1"),
        "{}",
        told.metrics
    );
    // Exempted, it delivered directly (the scenario also checked it is blocked once removed).
    assert!(
        told.exempt_message.contains("X-Client-Addr: 100.64.2.20"),
        "{}",
        told.exempt_message
    );
}
