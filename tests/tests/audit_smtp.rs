//! `egress-agent audit` against a real Postfix smart relay (Dovecot SASL with the test
//! account, TLS with a test CA) and knot for its DNS, in a namespace: the correct configuration
//! passes every `smtp.*` check; each misconfiguration fails exactly the check that names it.

use tests::mail::{
    self, BOTH_RELAYS, MAIL_SECTION, TempDir, failing, knot,
    postfix::{self, ACCOUNT, PASSWORD, Relay, Setup},
    run_audit, show, verdicts,
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
    ];
    for (name, setup, broken) in variants {
        let relay_dir = dir
            .path()
            .join(format!("postfix-{}", name.replace(' ', "-")));
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
