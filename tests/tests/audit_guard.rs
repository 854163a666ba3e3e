//! `egress-agent audit`'s `guard.*` checks with the inbound rules configured, against real DNS
//! (knot) in a namespace: what the zones say the primary MX, the spam checker and the
//! submission host are, compared with `[inbound] protected_mx`, `mx_senders` and the relay
//! allowlist. Lists that match the MX records pass; each list that misses an address fails
//! exactly the row of that address, naming the list. Every guard row's status is asserted.

use std::{collections::BTreeMap, path::Path};

use tests::mail::{self, TempDir, knot, run_audit, show, zones::Zones};

const MAIL: &str = r#"
[mail]
domains = ["isp.example"]
submission_hosts = ["smtp.isp.example"]
primary_mx = ["mx1.isp.example"]
spam_checkers = ["mx2.isp.example"]
resolver = "192.0.2.53:53"
audit_interval_seconds = 0
"#;

/// One configuration of the lists and the guard rows it must produce.
struct Variant {
    name: &'static str,
    relays: &'static [&'static str],
    protected_mx: &'static [&'static str],
    mx_senders: &'static [&'static str],
    /// Every guard.* row: (check, target) -> (result, what its detail must contain).
    expected: &'static [(&'static str, &'static str, &'static str, &'static str)],
}

const PROTECTED: &str = "guard.primary_mx_protected";
const ALLOWED: &str = "guard.spam_checkers_allowed";
const RELAYS: &str = "guard.submission_relays_allowlisted";

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("\"{item}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

fn config(dir: &Path, variant: &Variant) -> String {
    format!(
        "state_dir = \"{dir}/state\"\n[allow]\nrelays = {relays}\n\n\
         [inbound]\nprotected_mx = {protected}\nmx_senders = {senders}\n{MAIL}",
        dir = dir.display(),
        relays = toml_list(variant.relays),
        protected = toml_list(variant.protected_mx),
        senders = toml_list(variant.mx_senders),
    )
}

#[test]
fn audit_guard_compares_dns_with_the_inbound_lists() {
    let ns = mail::mail_netns();
    let dir = TempDir::new("audit-guard");
    // mx1 also has an IPv6 address: "every address of a primary MX" must be protected.
    let zones = Zones::correct().with("mx1 AAAA 2001:db8:1::30");
    let knot_dir = dir.path().join("knot");
    std::fs::create_dir_all(&knot_dir).expect("knot dir");
    let _knot = knot::start(&ns, &knot_dir, &zones.files());

    let both_relays: &[&str] = &["192.0.2.25/32", "2001:db8:1::25/128"];
    let variants = [
        Variant {
            name: "lists match the MX records",
            relays: both_relays,
            protected_mx: &["192.0.2.30/32", "2001:db8:1::30/128"],
            mx_senders: &["192.0.2.40/32"],
            expected: &[
                (
                    PROTECTED,
                    "192.0.2.30",
                    "pass",
                    "mx1.isp.example: in [inbound] protected_mx",
                ),
                (
                    PROTECTED,
                    "2001:db8:1::30",
                    "pass",
                    "mx1.isp.example: in [inbound] protected_mx",
                ),
                (
                    ALLOWED,
                    "192.0.2.40",
                    "pass",
                    "mx2.isp.example: in [inbound] mx_senders",
                ),
                (RELAYS, "192.0.2.25", "pass", "in the relay allowlist"),
                (RELAYS, "2001:db8:1::25", "pass", "in the relay allowlist"),
            ],
        },
        Variant {
            // A covering prefix counts: the lists hold prefixes, not just host entries.
            name: "lists as covering prefixes",
            relays: both_relays,
            protected_mx: &["192.0.2.28/30", "2001:db8:1::/64"],
            mx_senders: &["192.0.2.32/27"],
            expected: &[
                (PROTECTED, "192.0.2.30", "pass", "in [inbound] protected_mx"),
                (
                    PROTECTED,
                    "2001:db8:1::30",
                    "pass",
                    "in [inbound] protected_mx",
                ),
                (ALLOWED, "192.0.2.40", "pass", "in [inbound] mx_senders"),
                (RELAYS, "192.0.2.25", "pass", "in the relay allowlist"),
                (RELAYS, "2001:db8:1::25", "pass", "in the relay allowlist"),
            ],
        },
        Variant {
            name: "spam checker not in mx_senders",
            relays: both_relays,
            protected_mx: &["192.0.2.30/32", "2001:db8:1::30/128"],
            mx_senders: &["192.0.2.41/32"],
            expected: &[
                (PROTECTED, "192.0.2.30", "pass", "in [inbound] protected_mx"),
                (
                    PROTECTED,
                    "2001:db8:1::30",
                    "pass",
                    "in [inbound] protected_mx",
                ),
                (
                    ALLOWED,
                    "192.0.2.40",
                    "fail",
                    "mx2.isp.example: not in [inbound] mx_senders",
                ),
                (RELAYS, "192.0.2.25", "pass", "in the relay allowlist"),
                (RELAYS, "2001:db8:1::25", "pass", "in the relay allowlist"),
            ],
        },
        Variant {
            // Only the IPv4 address protected: the MX is still reachable for spam over IPv6.
            name: "primary MX protected on one address of two",
            relays: both_relays,
            protected_mx: &["192.0.2.30/32"],
            mx_senders: &["192.0.2.40/32"],
            expected: &[
                (PROTECTED, "192.0.2.30", "pass", "in [inbound] protected_mx"),
                (
                    PROTECTED,
                    "2001:db8:1::30",
                    "fail",
                    "mx1.isp.example: not in [inbound] protected_mx",
                ),
                (ALLOWED, "192.0.2.40", "pass", "in [inbound] mx_senders"),
                (RELAYS, "192.0.2.25", "pass", "in the relay allowlist"),
                (RELAYS, "2001:db8:1::25", "pass", "in the relay allowlist"),
            ],
        },
        Variant {
            // The spam checker's address protected instead of the primary's, a swap operators make.
            name: "primary MX not protected",
            relays: &["192.0.2.25/32"],
            protected_mx: &["192.0.2.40/32"],
            mx_senders: &["192.0.2.40/32"],
            expected: &[
                (
                    PROTECTED,
                    "192.0.2.30",
                    "fail",
                    "mx1.isp.example: not in [inbound] protected_mx",
                ),
                (
                    PROTECTED,
                    "2001:db8:1::30",
                    "fail",
                    "mx1.isp.example: not in [inbound] protected_mx",
                ),
                (ALLOWED, "192.0.2.40", "pass", "in [inbound] mx_senders"),
                (RELAYS, "192.0.2.25", "pass", "in the relay allowlist"),
                (
                    RELAYS,
                    "2001:db8:1::25",
                    "fail",
                    "smtp.isp.example: not in the relay allowlist: it cannot deliver on port 25",
                ),
            ],
        },
    ];

    for variant in &variants {
        let config_path = dir.path().join("egress.toml");
        std::fs::write(&config_path, config(dir.path(), variant)).expect("config");
        let (code, rows, output) = run_audit(&ns, &config_path);
        let context = format!(
            "variant {}:\n{}\nstderr: {}",
            variant.name,
            show(&rows),
            String::from_utf8_lossy(&output.stderr)
        );
        // Nothing listens for SMTP here, so smtp.* rows fail: the audit exits 1 in every variant.
        assert_eq!(code, 1, "exit code — {context}");
        let guard: BTreeMap<(String, String), (String, String)> = rows
            .iter()
            .filter(|row| {
                row["check"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("guard."))
            })
            .map(|row| {
                let field = |name: &str| row[name].as_str().unwrap_or_default().to_owned();
                (
                    (field("check"), field("target")),
                    (field("result"), field("detail")),
                )
            })
            .collect();
        let keys: Vec<(String, String)> = guard.keys().cloned().collect();
        let mut expected_keys: Vec<(String, String)> = variant
            .expected
            .iter()
            .map(|(check, target, _, _)| ((*check).to_owned(), (*target).to_owned()))
            .collect();
        expected_keys.sort();
        assert_eq!(keys, expected_keys, "the guard rows — {context}");
        for (check, target, result, detail) in variant.expected {
            let (got, got_detail) = &guard[&((*check).to_owned(), (*target).to_owned())];
            assert_eq!(got, result, "{check} {target} — {context}");
            assert!(
                got_detail.contains(detail),
                "{check} {target}: detail {got_detail:?} does not name {detail:?} — {context}"
            );
        }
    }
}
