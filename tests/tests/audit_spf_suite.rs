//! The SPF evaluator the audit uses (mail-auth's `check_host()` over hickory-resolver)
//! against the OpenSPF RFC 7208 test suite (release 2014.04, vendored from pyspf 2.0.14 with
//! its licence in tests/data/spf/). Each scenario's zone data is served by a DNS server on
//! loopback; a test passes when the result is one of those the suite allows. The score is
//! printed and must not fall below the one recorded here.

use std::{net::IpAddr, time::Duration};

use egress_agent::audit::{resolver::Dns, spf};
use serde_norway::Value;
use tests::mail::zone_server::{self, Entry, ZoneData, ZoneServer};

const SUITE: &str = include_str!("../data/spf/rfc7208-tests.yml");
/// Tests of the suite that pass today: the score may rise, never fall. 148 until the harness
/// served the suite's null TXT (it timed out) and the evaluator took IPv4-mapped clients as
/// IPv6. What still fails is mail-auth 0.13.3's own: syntax errors it accepts (bad CIDR
/// lengths, invalid modifiers, non-ASCII, numeric top labels: permerror expected), names it
/// cannot turn into a query reported as temperror (domain literals, long or empty labels,
/// spaces from macros), `ptr` not matching (ptr-match-implicit, ptr-match-ip6), `exists`
/// asking AAAA for an IPv6 client.
const BASELINE: usize = 151;

fn zone_data(doc: &Value) -> ZoneData {
    let mut zones = ZoneData::new();
    let Some(Value::Mapping(names)) = doc.get("zonedata") else {
        return zones;
    };
    for (name, entries) in names {
        let name = zone_server::key(name.as_str().unwrap_or_default());
        let list = zones.entry(name).or_default();
        for item in entries.as_sequence().into_iter().flatten() {
            match item {
                Value::String(s) if s == "TIMEOUT" => list.push(Entry::Timeout),
                Value::Mapping(map) => {
                    for (kind, value) in map {
                        if let Some(entry) =
                            zone_server::entry(kind.as_str().unwrap_or_default(), value)
                        {
                            list.push(entry);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    zones
}

fn expected(case: &Value) -> Vec<String> {
    match case.get("result") {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[test]
fn audit_spf_rfc7208_suite() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut total, mut passed, mut failures) = (0usize, 0usize, Vec::new());
    for document in serde_norway::Deserializer::from_str(SUITE) {
        let doc = <Value as serde::Deserialize>::deserialize(document).expect("suite YAML");
        let server = ZoneServer::start(zone_data(&doc));
        let dns =
            Dns::with_timeout(Some(server.addr), Duration::from_millis(500)).expect("resolver");
        let Some(Value::Mapping(cases)) = doc.get("tests") else {
            continue;
        };
        for (name, case) in cases {
            total += 1;
            let field = |key: &str| {
                case.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let ip: IpAddr = field("host").parse().expect("host is an address");
            let got = runtime.block_on(spf::evaluate(&dns, ip, &field("helo"), &field("mailfrom")));
            let want = expected(case);
            if want.iter().any(|w| w == got) {
                passed += 1;
            } else {
                failures.push(format!(
                    "{}: got {got}, want {}",
                    name.as_str().unwrap_or_default(),
                    want.join("|")
                ));
            }
        }
    }
    println!("RFC 7208 test suite: {passed} of {total} pass");
    for failure in &failures {
        println!("  {failure}");
    }
    assert!(
        total > 200,
        "the suite has {total} tests: not the whole file?"
    );
    assert!(
        passed >= BASELINE,
        "RFC 7208 score fell to {passed} of {total} (baseline {BASELINE})"
    );
}
