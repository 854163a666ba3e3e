//! The traceability bench rows at quick scale against the real agent: RADIUS Interim-Update
//! ingest (answered after commit), peak RSS, `who --at` over a seeded history (each
//! lookup must name the right subscriber, or the bench fails), and flag to webhook delivery
//! (each report must arrive signed, or the bench fails). No figure is asserted:
//! timings belong to the bench.

#[test]
fn bench_identity_rows_run_in_quick_mode() {
    let rows = xtask::bench::identity_rows_quick(&tests::agent::binary())
        .expect("the identity bench rows must run to completion");
    for case in [
        "RADIUS Interim-Update ingest, 10k open sessions",
        "agent peak RSS, RADIUS ingest with 10k open sessions",
        "`who ADDR --at TIME`, 10k sessions and 90 days of history",
        "flag to webhook delivery latency, p99 of 5 flags",
    ] {
        let row = rows.iter().find(|(name, _)| name == case);
        assert!(
            row.is_some_and(|(_, median)| median.is_some_and(|m| m > 0.0)),
            "no figure for {case}: {rows:?}"
        );
    }
}
