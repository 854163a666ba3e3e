//! `egress-agent audit` against a real Postfix smart relay (Dovecot SASL with the test
//! account, TLS with a test CA) and knot for its DNS, in a namespace: the correct configuration
//! passes every `smtp.*` check; each misconfiguration fails exactly the check that names it.

use std::{net::SocketAddr, time::Duration};

use tests::mail::{
    self, BOTH_RELAYS, MAIL_SECTION, RELAY, TempDir, failing, knot,
    postfix::{self, ACCOUNT, HOST, PASSWORD, Relay, Setup},
    run_audit, run_audit_within, show,
    silent::SilentServer,
    verdicts,
    zones::Zones,
};

fn config(dir: &std::path::Path, ca: &std::path::Path) -> String {
    format!(
        "state_dir = \"{dir}/state\"\n{BOTH_RELAYS}{MAIL_SECTION}ca_file = \"{ca}\"\n\n\
         [mail.test_account]\nuser = \"{ACCOUNT}\"\npassword_file = \"{dir}/audit.password\"\n",
        dir = dir.display(),
        ca = ca.display(),
    )
}

/// The row of `check` for `target`, if the audit printed one.
fn row<'a>(
    rows: &'a [serde_json::Value],
    check: &str,
    target: &str,
) -> Option<&'a serde_json::Value> {
    rows.iter()
        .find(|r| r["check"] == check && r["target"] == target)
}

/// The relay's `myhostname` in the "banner name is not the PTR name" variant.
const INTERNAL_NAME: &str = "mailgw.corp.example";

/// The detail of `check` on `target`, or a panic showing every row.
fn detail<'a>(rows: &'a [serde_json::Value], check: &str, target: &str, context: &str) -> &'a str {
    row(rows, check, target)
        .unwrap_or_else(|| panic!("no {check} row for {target} — {context}"))["detail"]
        .as_str()
        .unwrap_or_default()
}

/// A failing row says what it found: the sender that got through, the names that differ.
fn assert_details_name_the_fault(rows: &[serde_json::Value], setup: Setup, context: &str) {
    if setup.trusts_own_domain_senders {
        let requires_auth = detail(
            rows,
            "smtp.submission_requires_auth",
            "smtp.isp.example",
            context,
        );
        for address in ["192.0.2.25", "2001:db8:1::25"] {
            assert!(
                requires_auth.contains(&format!(
                    "{address}: RCPT from <egress-audit@isp.example> to egress-audit@example.net accepted without AUTH"
                )),
                "the row names each address and the sender relayed without AUTH — {context}"
            );
        }
    }
    if let Some(name) = setup.banner_hostname {
        for target in ["192.0.2.25", "2001:db8:1::25"] {
            let banner = detail(rows, "smtp.relay_banner_matches_ptr", target, context);
            assert!(
                banner.contains(&format!("banner says {name}"))
                    && banner.contains("the PTR says smtp.isp.example"),
                "the row names the banner's name and the PTR's — {context}"
            );
        }
    }
}

#[test]
fn audit_smtp_checks_against_postfix() {
    let ns = mail::mail_netns();
    let dir = TempDir::new("audit-smtp");
    let knot_dir = dir.path().join("knot");
    std::fs::create_dir_all(&knot_dir).expect("knot dir");
    let _knot = knot::start(&ns, &knot_dir, &Zones::correct().files());
    let certs = postfix::make_certificates(dir.path());
    std::fs::write(dir.path().join("audit.password"), format!("{PASSWORD}\n")).expect("password");
    let config_path = dir.path().join("egress.toml");
    std::fs::write(&config_path, config(dir.path(), &certs.ca)).expect("config");

    let smtp_checks = [
        ("smtp.relay_banner_matches_ptr", "192.0.2.25"),
        ("smtp.relay_not_open", "192.0.2.25:25"),
        ("smtp.relay_not_open", "192.0.2.25:587"),
        ("smtp.relay_banner_matches_ptr", "2001:db8:1::25"),
        ("smtp.relay_not_open", "[2001:db8:1::25]:25"),
        ("smtp.relay_not_open", "[2001:db8:1::25]:587"),
        ("smtp.submission_starttls", "smtp.isp.example"),
        ("smtp.submission_auth_after_tls_only", "smtp.isp.example"),
        ("smtp.submission_implicit_tls", "smtp.isp.example"),
        ("smtp.submission_requires_auth", "smtp.isp.example"),
        ("smtp.submission_rejects_forged_from", "smtp.isp.example"),
    ];
    let variants = [
        ("correct", Setup::default(), vec![]),
        (
            "open relay",
            Setup {
                open_relay: true,
                ..Setup::default()
            },
            vec![
                ("smtp.relay_not_open", "192.0.2.25:25"),
                ("smtp.relay_not_open", "[2001:db8:1::25]:25"),
            ],
        ),
        (
            "AUTH before TLS",
            Setup {
                auth_before_tls: true,
                ..Setup::default()
            },
            vec![("smtp.submission_auth_after_tls_only", "smtp.isp.example")],
        ),
        (
            "no STARTTLS",
            Setup {
                no_starttls: true,
                ..Setup::default()
            },
            vec![("smtp.submission_starttls", "smtp.isp.example")],
        ),
        (
            "no 465",
            Setup {
                no_465: true,
                ..Setup::default()
            },
            vec![("smtp.submission_implicit_tls", "smtp.isp.example")],
        ),
        (
            "no login mismatch",
            Setup {
                no_login_mismatch: true,
                ..Setup::default()
            },
            vec![("smtp.submission_rejects_forged_from", "smtp.isp.example")],
        ),
        (
            // Only the AAAA address fails: every address of the host is probed, not the first.
            "submission on IPv4 only",
            Setup {
                submission_v4_only: true,
                ..Setup::default()
            },
            // (relay_not_open on [2001:db8:1::25]:587 is a warn: nothing listens to test.)
            vec![
                ("smtp.submission_auth_after_tls_only", "smtp.isp.example"),
                ("smtp.submission_implicit_tls", "smtp.isp.example"),
                ("smtp.submission_rejects_forged_from", "smtp.isp.example"),
                ("smtp.submission_requires_auth", "smtp.isp.example"),
                ("smtp.submission_starttls", "smtp.isp.example"),
            ],
        ),
        (
            // 587 relays for its own domain's senders without AUTH; foreign senders are
            // refused, so smtp.relay_not_open on 587 (foreign to foreign) still passes.
            "relays own domain without AUTH",
            Setup {
                trusts_own_domain_senders: true,
                ..Setup::default()
            },
            vec![("smtp.submission_requires_auth", "smtp.isp.example")],
        ),
        (
            "banner name is not the PTR name",
            Setup {
                banner_hostname: Some(INTERNAL_NAME),
                ..Setup::default()
            },
            vec![
                ("smtp.relay_banner_matches_ptr", "192.0.2.25"),
                ("smtp.relay_banner_matches_ptr", "2001:db8:1::25"),
            ],
        ),
    ];
    for (index, (name, setup, broken)) in variants.into_iter().enumerate() {
        // Numbered, not named: Dovecot's sockets under it must stay within sun_path's 108 bytes.
        let relay_dir = dir.path().join(format!("postfix-{index}"));
        let relay = Relay::start(&ns, &relay_dir, &certs, setup);
        let (code, rows, _) = run_audit(&ns, &config_path);
        // Every row is judged: the exit code says whether any failed.
        assert_eq!(
            code,
            i32::from(rows.iter().any(|r| r["result"] == "fail")),
            "exit code"
        );
        let log = relay.postfix.log();
        let auth_log = relay.dovecot.log_text();
        drop(relay);
        let context = format!(
            "variant {name}:\n{}\n--- postfix log ---\n{log}\n--- dovecot log ---\n{auth_log}",
            show(&rows)
        );
        // The forged-FROM row must say why: which sender got through, or what was refused.
        let forged = row(
            &rows,
            "smtp.submission_rejects_forged_from",
            "smtp.isp.example",
        )
        .unwrap_or_else(|| panic!("no forged-FROM row — {context}"));
        let forged_detail = forged["detail"].as_str().unwrap_or_default();
        if setup.submission_v4_only {
            assert!(
                forged_detail.starts_with("2001:db8:1::25: "),
                "the failing row names the address that failed — {context}"
            );
        } else if setup.no_login_mismatch {
            assert!(
                forged_detail.contains(&format!(
                    "{ACCOUNT} may send as <egress-audit-forged@isp.example>"
                )),
                "the failing row names the forged sender it got through — {context}"
            );
        } else if broken.is_empty() {
            assert!(
                // Both of smtp.isp.example's addresses (A and AAAA) were probed.
                forged_detail
                    .starts_with("all 2 addresses: refused: <egress-audit-forged@isp.example>"),
                "the passing row names what was refused, on every address — {context}"
            );
        }
        assert_details_name_the_fault(&rows, setup, &context);
        let verdict = verdicts(&rows);
        match broken.as_slice() {
            [] => {
                for (check, target) in smtp_checks {
                    let got = verdict
                        .get(&(check.to_owned(), target.to_owned()))
                        .map(String::as_str);
                    assert_eq!(got, Some("pass"), "{check} {target} — {context}");
                }
                assert_eq!(failing(&rows, &["smtp."]), vec![], "{context}");
            }
            expected => {
                let expected: Vec<(String, String)> = expected
                    .iter()
                    .map(|(c, t)| ((*c).to_owned(), (*t).to_owned()))
                    .collect();
                assert_eq!(failing(&rows, &["smtp."]), expected, "{context}");
            }
        }
    }
}

/// How long the audit of a hanging relay may take: five probes each wait out one 10 s reply
/// timeout (banner, 25 and 587 not open, the 587 session, the 465 handshake), plus DNS.
const HANGING_AUDIT_LIMIT: Duration = Duration::from_secs(90);

/// The relay's address on `port`.
fn relay_on(port: u16) -> SocketAddr {
    SocketAddr::new(RELAY.parse().expect("relay address"), port)
}

/// A relay whose 25, 587 and 465 accept TCP and never answer: the audit ends within a bound
/// and every `smtp.*` row of that address is a `fail` saying the server hung.
#[test]
fn audit_smtp_fails_a_hanging_relay_with_a_reason() {
    let ns = mail::mail_netns();
    let dir = TempDir::new("audit-smtp-hanging");
    let knot_dir = dir.path().join("knot");
    std::fs::create_dir_all(&knot_dir).expect("knot dir");
    let _knot = knot::start(&ns, &knot_dir, &Zones::correct().files());
    let config_path = dir.path().join("egress.toml");
    std::fs::write(
        &config_path,
        format!(
            "state_dir = \"{}/state\"\n[allow]\nrelays = [\"{RELAY}/32\"]\n{MAIL_SECTION}",
            dir.path().display()
        ),
    )
    .expect("config");
    let silent = SilentServer::start(&ns, &[relay_on(25), relay_on(587), relay_on(465)]);

    let (code, rows, took) = run_audit_within(&ns, &config_path, HANGING_AUDIT_LIMIT);
    let accepted = silent.stop();
    let context = format!(
        "audit took {took:?}, {accepted} connections accepted:\n{}",
        show(&rows)
    );
    assert_eq!(code, 1, "a failing check exits 1 — {context}");
    assert!(accepted >= 5, "every probe connected — {context}");

    let no_reply = |port: u16| format!("{RELAY}:{port} sent no reply within 10s (hanging server)");
    let submission_hung = format!("{RELAY}: {}", no_reply(587));
    let expected = [
        (
            "smtp.relay_banner_matches_ptr",
            RELAY.to_owned(),
            no_reply(25),
        ),
        (
            "smtp.relay_not_open",
            relay_on(25).to_string(),
            no_reply(25),
        ),
        (
            "smtp.relay_not_open",
            relay_on(587).to_string(),
            no_reply(587),
        ),
        (
            "smtp.submission_auth_after_tls_only",
            HOST.to_owned(),
            submission_hung.clone(),
        ),
        (
            "smtp.submission_implicit_tls",
            HOST.to_owned(),
            format!("{RELAY}: port 465: TLS handshake with {RELAY}:465 timed out after 10s"),
        ),
        (
            "smtp.submission_rejects_forged_from",
            HOST.to_owned(),
            submission_hung.clone(),
        ),
        (
            "smtp.submission_requires_auth",
            HOST.to_owned(),
            submission_hung.clone(),
        ),
        ("smtp.submission_starttls", HOST.to_owned(), submission_hung),
    ];
    for (check, target, reason) in &expected {
        let found = row(&rows, check, target)
            .unwrap_or_else(|| panic!("no {check} row for {target} — {context}"));
        assert_eq!(found["result"], "fail", "{check} {target} — {context}");
        let detail = found["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(reason.as_str()),
            "{check} {target}: want {reason:?} — {context}"
        );
    }
    let expected_failing: Vec<(String, String)> = expected
        .iter()
        .map(|(check, target, _)| ((*check).to_owned(), target.clone()))
        .collect();
    assert_eq!(failing(&rows, &["smtp."]), expected_failing, "{context}");
}

/// A relay whose certificate the audit cannot verify (`ca_file` names another CA): STARTTLS
/// and implicit TLS are a `warn` that says why, and the checks behind them still run.
#[test]
fn audit_smtp_warns_on_a_certificate_that_does_not_verify() {
    let ns = mail::mail_netns();
    let dir = TempDir::new("audit-cert");
    let knot_dir = dir.path().join("knot");
    std::fs::create_dir_all(&knot_dir).expect("knot dir");
    let _knot = knot::start(&ns, &knot_dir, &Zones::correct().files());
    let certs = postfix::make_certificates(dir.path());
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).expect("other CA dir");
    let other_ca = postfix::make_certificates(&other_dir).ca;
    std::fs::write(dir.path().join("audit.password"), format!("{PASSWORD}\n")).expect("password");
    let config_path = dir.path().join("egress.toml");
    std::fs::write(&config_path, config(dir.path(), &other_ca)).expect("config");
    let relay = Relay::start(&ns, &dir.path().join("postfix"), &certs, Setup::default());
    let (code, rows, _) = run_audit(&ns, &config_path);
    drop(relay);
    let context = show(&rows);
    assert_eq!(code, 0, "a warn is not a failure — {context}");
    assert_eq!(failing(&rows, &["smtp."]), vec![], "{context}");
    let verdict = verdicts(&rows);
    for check in ["smtp.submission_starttls", "smtp.submission_implicit_tls"] {
        let key = (check.to_owned(), HOST.to_owned());
        assert_eq!(
            verdict.get(&key).map(String::as_str),
            Some("warn"),
            "{check} — {context}"
        );
        let why = detail(&rows, check, HOST, &context);
        assert!(
            why.contains("certificate does not verify"),
            "{check}: {why}"
        );
    }
    for check in [
        "smtp.submission_auth_after_tls_only",
        "smtp.submission_requires_auth",
        "smtp.submission_rejects_forged_from",
    ] {
        let key = (check.to_owned(), HOST.to_owned());
        assert_eq!(
            verdict.get(&key).map(String::as_str),
            Some("pass"),
            "{check} — {context}"
        );
    }
}
