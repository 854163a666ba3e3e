//! `egress-agent audit`'s `guard.*` checks with the inbound rules configured, against real DNS
//! (knot) in a namespace: what the zones say the primary MX, the spam checker and the
//! submission host are, compared with `[inbound] protected_mx`, `mx_senders` and the relay
//! allowlist. Lists that match the MX records pass; each list that misses an address fails
//! exactly the row of that address, naming the list. Every guard row's status is asserted.

use std::{collections::BTreeMap, path::Path};

use tests::mail::{self, MAIL_SECTION, TempDir, knot, run_audit, show, zones::Zones};

const PROTECTED: &str = "guard.primary_mx_protected";
const ALLOWED: &str = "guard.spam_checkers_allowed";
const RELAYS: &str = "guard.submission_relays_allowlisted";

/// One configuration of the lists and the guard rows it must produce.
struct Variant {
    name: &'static str,
    relays: &'static [&'static str],
    protected_mx: &'static [&'static str],
    mx_senders: &'static [&'static str],
    /// Whether each row of [`ROWS`] passes (every other result is a failure).
    passes: [bool; 5],
}

/// Every guard.* row the zones produce, whatever the lists: the primary MX's two addresses,
/// the spam checker's, the submission host's two.
const ROWS: [(&str, &str); 5] = [
    (PROTECTED, "192.0.2.30"),
    (PROTECTED, "2001:db8:1::30"),
    (ALLOWED, "192.0.2.40"),
    (RELAYS, "192.0.2.25"),
    (RELAYS, "2001:db8:1::25"),
];

/// What a row's detail must say: the host DNS named, and whether it is in the list.
fn expected_detail(check: &str, passes: bool) -> String {
    let (host, list) = match check {
        PROTECTED => ("mx1.isp.example", "[inbound] protected_mx"),
        ALLOWED => ("mx2.isp.example", "[inbound] mx_senders"),
        _ => ("smtp.isp.example", "the relay allowlist"),
    };
    match (passes, check) {
        (true, _) => format!("{host}: in {list}"),
        (false, RELAYS) => format!("{host}: not in {list}: it cannot deliver on port 25"),
        (false, _) => format!("{host}: not in {list}"),
    }
}

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("\"{item}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

fn config(dir: &Path, variant: &Variant) -> String {
    format!(
        "state_dir = \"{dir}/state\"\n[allow]\nrelays = {relays}\n\n\
         [inbound]\nprotected_mx = {protected}\nmx_senders = {senders}\n{MAIL_SECTION}",
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
    let _knot = knot::start(&ns, &dir.path().join("knot"), &zones.files());

    let both_relays: &[&str] = &["192.0.2.25/32", "2001:db8:1::25/128"];
    let variants = [
        Variant {
            name: "lists match the MX records",
            relays: both_relays,
            protected_mx: &["192.0.2.30/32", "2001:db8:1::30/128"],
            mx_senders: &["192.0.2.40/32"],
            passes: [true, true, true, true, true],
        },
        Variant {
            // A covering prefix counts: the lists hold prefixes, not just host entries.
            name: "lists as covering prefixes",
            relays: &["192.0.2.0/24", "2001:db8:1::/64"],
            protected_mx: &["192.0.2.28/30", "2001:db8:1::/64"],
            mx_senders: &["192.0.2.32/27"],
            passes: [true, true, true, true, true],
        },
        Variant {
            name: "spam checker not in mx_senders",
            relays: both_relays,
            protected_mx: &["192.0.2.30/32", "2001:db8:1::30/128"],
            mx_senders: &["192.0.2.41/32"],
            passes: [true, true, false, true, true],
        },
        Variant {
            // Only the IPv4 address protected: the MX is still reachable for spam over IPv6.
            name: "primary MX protected on one address of two",
            relays: both_relays,
            protected_mx: &["192.0.2.30/32"],
            mx_senders: &["192.0.2.40/32"],
            passes: [true, false, true, true, true],
        },
        Variant {
            // The spam checker's address protected instead of the primary's (a swap operators
            // make), and the relay allowlisted on IPv4 only.
            name: "primary MX not protected",
            relays: &["192.0.2.25/32"],
            protected_mx: &["192.0.2.40/32"],
            mx_senders: &["192.0.2.40/32"],
            passes: [false, false, true, true, false],
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
        let mut expected_keys: Vec<(String, String)> = ROWS
            .iter()
            .map(|(check, target)| ((*check).to_owned(), (*target).to_owned()))
            .collect();
        expected_keys.sort();
        assert_eq!(keys, expected_keys, "the guard rows — {context}");
        for ((check, target), passes) in ROWS.iter().zip(&variant.passes) {
            let (got, got_detail) = &guard[&((*check).to_owned(), (*target).to_owned())];
            let result = if *passes { "pass" } else { "fail" };
            assert_eq!(got, result, "{check} {target} — {context}");
            assert_eq!(
                got_detail,
                &expected_detail(check, *passes),
                "{check} {target} — {context}"
            );
        }
    }
}
