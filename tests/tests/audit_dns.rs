//! `egress-agent audit` against a real authoritative DNS server (knot) in a namespace: the
//! correct zones pass every `dns.*` check; each broken variant fails exactly the checks that
//! name what is broken. The audit runs inside the namespace, so its queries never leave it.

use std::path::Path;

use tests::mail::{
    self, BOTH_RELAYS, MAIL_SECTION, TempDir, failing, knot, run_audit, show, verdicts,
    zones::Zones,
};

/// A broken zone set: its name, the zones, the (check, target) rows that must fail.
type Variant = (&'static str, Zones, Vec<(&'static str, &'static str)>);

fn key(check: &str, target: &str) -> (String, String) {
    (check.to_owned(), target.to_owned())
}

/// Runs the audit against `zones` and returns its rows (exit code checked against them).
fn audit(ns: &egress_lab::Netns, dir: &Path, zones: &Zones) -> Vec<serde_json::Value> {
    let knot_dir = dir.join(format!("knot-{}", rand_suffix()));
    std::fs::create_dir_all(&knot_dir).expect("knot dir");
    let _knot = knot::start(ns, &knot_dir, &zones.files());
    let config = dir.join("egress.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}/state\"\n{BOTH_RELAYS}{MAIL_SECTION}",
            dir.display()
        ),
    )
    .expect("config");
    let (code, rows, _) = run_audit(ns, &config);
    let any_fail = rows.iter().any(|row| row["result"] == "fail");
    assert_eq!(
        code,
        if any_fail { 1 } else { 0 },
        "exit code vs rows:\n{}",
        show(&rows)
    );
    rows
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The failing dns.* and guard.* rows must be exactly `expected`.
fn assert_fails(rows: &[serde_json::Value], expected: &[(&str, &str)], variant: &str) {
    let mut expected: Vec<(String, String)> = expected.iter().map(|(c, t)| key(c, t)).collect();
    expected.sort();
    let actual = failing(rows, &["dns.", "guard."]);
    assert_eq!(
        actual,
        expected,
        "variant {variant}: failing dns/guard checks\n{}",
        show(rows)
    );
}

#[test]
fn audit_dns_checks_against_knot() {
    let ns = mail::mail_netns();
    let dir = TempDir::new("audit-dns");

    let rows = audit(&ns, dir.path(), &Zones::correct());
    let verdict = verdicts(&rows);
    let expected_pass = [
        ("dns.mx_present", "isp.example"),
        ("dns.mx_not_cname", "mx1.isp.example"),
        ("dns.mx_not_cname", "mx2.isp.example"),
        ("dns.mx_resolves", "mx1.isp.example"),
        ("dns.mx_resolves", "mx2.isp.example"),
        ("dns.primary_mx_preferred", "isp.example"),
        ("dns.mx_host_has_mx", "mx1.isp.example"),
        ("dns.mx_host_has_mx", "mx2.isp.example"),
        ("dns.relay_ptr", "192.0.2.25"),
        ("dns.relay_ptr", "2001:db8:1::25"),
        ("dns.relay_fcrdns", "192.0.2.25"),
        ("dns.relay_fcrdns", "2001:db8:1::25"),
        ("dns.spf_authorises_relay", "isp.example/192.0.2.25"),
        ("dns.spf_authorises_relay", "isp.example/2001:db8:1::25"),
        ("dns.spf_within_limits", "isp.example"),
        ("guard.submission_relays_allowlisted", "192.0.2.25"),
        ("guard.submission_relays_allowlisted", "2001:db8:1::25"),
    ];
    for (check, target) in expected_pass {
        assert_eq!(
            verdict.get(&key(check, target)).map(String::as_str),
            Some("pass"),
            "{check} {target}\n{}",
            show(&rows)
        );
    }
    // No [inbound] lists here (audit_guard has them): the guard says so, without failing.
    for (check, target) in [
        ("guard.primary_mx_protected", "192.0.2.30"),
        ("guard.spam_checkers_allowed", "192.0.2.40"),
    ] {
        assert_eq!(
            verdict.get(&key(check, target)).map(String::as_str),
            Some("warn"),
            "{check}\n{}",
            show(&rows)
        );
    }
    assert_fails(&rows, &[], "correct");
    // Every check of the spec's table has a row.
    for check in egress_agent::audit::checks::ALL {
        assert!(
            rows.iter().any(|row| row["check"] == check),
            "no row for {check}\n{}",
            show(&rows)
        );
    }

    let variants: Vec<Variant> = vec![
        ("no MX", Zones::correct().without("@ MX"), vec![("dns.mx_present", "isp.example"), ("dns.primary_mx_preferred", "isp.example")]),
        (
            "missing PTR",
            Zones::correct().with_v4_reverse(&["30 PTR mx1.isp.example.", "40 PTR mx2.isp.example."]),
            vec![("dns.relay_ptr", "192.0.2.25"), ("dns.relay_fcrdns", "192.0.2.25")],
        ),
        (
            "PTR that does not forward-confirm",
            Zones::correct().with_v4_reverse(&["25 PTR mailout.isp.example."]).with("mailout A 192.0.2.99"),
            vec![("dns.relay_fcrdns", "192.0.2.25")],
        ),
        (
            "MX that is a CNAME",
            Zones::correct().without("mx1 ").with("mx1 CNAME mailhost").with("mailhost A 192.0.2.30").with("mailhost MX 10 mailhost"),
            vec![("dns.mx_not_cname", "mx1.isp.example")],
        ),
        (
            "MX host without an address",
            Zones::correct().without("mx2 A"),
            vec![("dns.mx_resolves", "mx2.isp.example"), ("guard.spam_checkers_allowed", "mx2.isp.example")],
        ),
        (
            "primary MX not preferred",
            Zones::correct().without("@ MX").with("@ MX 20 mx1").with("@ MX 10 mx2"),
            vec![("dns.primary_mx_preferred", "isp.example")],
        ),
        ("no MX for the MX host's own name", Zones::correct().without("mx2 MX"), vec![("dns.mx_host_has_mx", "mx2.isp.example")]),
        (
            "SPF that omits a relay",
            Zones::correct().with_spf("v=spf1 ip4:192.0.2.25 -all"),
            vec![("dns.spf_authorises_relay", "isp.example/2001:db8:1::25")],
        ),
        (
            "SPF over the 10-lookup limit",
            (1..=11).fold(
                Zones::correct().with_spf(&format!(
                    "v=spf1 ip4:192.0.2.25 ip6:2001:db8:1::25 {} -all",
                    (1..=11).map(|i| format!("a:h{i}.isp.example")).collect::<Vec<_>>().join(" ")
                )),
                |zones, i| zones.with(&format!("h{i} A 192.0.2.{}", 100 + i)),
            ),
            vec![("dns.spf_within_limits", "isp.example")],
        ),
        (
            "SPF with three void lookups",
            Zones::correct().with_spf("v=spf1 ip4:192.0.2.25 ip6:2001:db8:1::25 a:v1.isp.example a:v2.isp.example a:v3.isp.example -all"),
            vec![("dns.spf_within_limits", "isp.example")],
        ),
    ];
    for (name, zones, expected) in variants {
        let rows = audit(&ns, dir.path(), &zones);
        assert_fails(&rows, &expected, name);
    }
    assert_null_mx_warns(&ns, dir.path());
}

/// A null MX (RFC 7505, `MX 0 .`): the domain says it takes no mail. `dns.mx_present` is a
/// `warn` saying so; the configured primary MX is then no MX at all, which fails.
fn assert_null_mx_warns(ns: &egress_lab::Netns, dir: &Path) {
    let zones = Zones::correct().without("@ MX").with("@ MX 0 .");
    let rows = audit(ns, dir, &zones);
    let present = rows
        .iter()
        .find(|row| row["check"] == "dns.mx_present" && row["target"] == "isp.example")
        .unwrap_or_else(|| panic!("no dns.mx_present row\n{}", show(&rows)));
    assert_eq!(present["result"], "warn", "null MX\n{}", show(&rows));
    assert!(
        present["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("null MX (RFC 7505)"),
        "the warn names the null MX\n{}",
        show(&rows)
    );
    assert_fails(
        &rows,
        &[("dns.primary_mx_preferred", "isp.example")],
        "null MX",
    );
}

/// Configs `egress-agent audit` must refuse before probing anything: (what is wrong, the
/// config after `state_dir`, what stderr must name).
const BAD_INPUTS: &[(&str, &str, &[&str])] = &[
    (
        "unknown [mail] key",
        "[mail]\ndomains = [\"isp.example\"]\nresolvr = \"192.0.2.53:53\"\n",
        &["egress.toml", "line 4", "resolvr", "unknown field"],
    ),
    (
        "resolver that is not an address",
        "[mail]\ndomains = [\"isp.example\"]\nresolver = \"dns.isp.example\"\n",
        &["egress.toml", "mail.resolver", "dns.isp.example"],
    ),
    (
        "negative audit interval",
        "[mail]\ndomains = [\"isp.example\"]\naudit_interval_seconds = -5\n",
        &["egress.toml", "audit_interval_seconds", "-5"],
    ),
    (
        "no [mail] section",
        "[allow]\nrelays = [\"192.0.2.25/32\"]\n",
        &["egress.toml", "[mail] is missing"],
    ),
];

/// Bad input is exit 2 with an error naming file, key and value, and no rows: end to end,
/// through the binary (inside a namespace, so a bug that probed anyway would stay in it).
#[test]
fn audit_exits_2_on_bad_input() {
    let ns = mail::mail_netns();
    let dir = TempDir::new("audit-bad-input");
    let config = dir.path().join("egress.toml");
    for (what, body, named) in BAD_INPUTS {
        std::fs::write(
            &config,
            format!("state_dir = \"{}/state\"\n{body}", dir.path().display()),
        )
        .expect("config");
        let output = ns
            .command(tests::agent::binary())
            .args(["audit", "--json", "--config"])
            .arg(&config)
            .output()
            .expect("cannot run egress-agent audit");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{what}: exit code; stderr: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{what}: no rows on bad input");
        for word in *named {
            assert!(
                stderr.contains(word),
                "{what}: stderr names {word:?}: {stderr}"
            );
        }
    }
}
