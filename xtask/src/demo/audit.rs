//! The audit scene: the ISP's own DNS (a real knot, authoritative for isp.example and the
//! relay's reverse zone) comes up next to the relay, and `egress-agent audit` checks the lab's
//! mail set-up from the edge router. DNS is right; the lab's relay, built for the first
//! chapters, has no TLS and no SASL, and the audit says so.

use std::{fs, path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{interrupt::wait_until, lab::Lab, narrate::Narrator, process::Daemon};

const DNS: &str = "192.0.2.53";

const FORWARD_ZONE: &str = "$ORIGIN isp.example.
$TTL 60
@ SOA ns hostmaster 1 3600 600 86400 60
@ NS ns
ns A 192.0.2.53
@ MX 10 mx1
@ MX 20 mx2
@ TXT \"v=spf1 ip4:192.0.2.25 -all\"
mx1 A 192.0.2.30
mx1 MX 10 mx1
mx2 A 192.0.2.40
mx2 MX 10 mx2
relay A 192.0.2.25
";

const REVERSE_ZONE: &str = "$ORIGIN 2.0.192.in-addr.arpa.
$TTL 60
@ SOA ns.isp.example. hostmaster.isp.example. 1 3600 600 86400 60
@ NS ns.isp.example.
25 PTR relay.isp.example.
";

pub fn audit_the_mail_setup(
    lab: &Lab,
    dir: &Path,
    agent_bin: &Path,
    narrator: Narrator,
) -> Result<()> {
    narrator.chapter("6. The operator audits the mail set-up: DNS and the smart relay");
    let dir = dir.join("audit");
    fs::create_dir_all(dir.join("zones"))
        .and_then(|()| fs::create_dir_all(dir.join("db")))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    write(&dir.join("zones/isp.example.zone"), FORWARD_ZONE)?;
    write(&dir.join("zones/2.0.192.in-addr.arpa.zone"), REVERSE_ZONE)?;
    write(
        &dir.join("knot.conf"),
        &format!(
            "server:\n    listen: {DNS}@53\n    rundir: {d}\ndatabase:\n    storage: {d}/db\n\
             log:\n  - target: stderr\n    any: warning\n\
             template:\n  - id: default\n    storage: {d}/zones\n    file: \"%s.zone\"\n    zonefile-sync: -1\n    journal-content: none\n\
             zone:\n  - domain: isp.example\n  - domain: 2.0.192.in-addr.arpa\n",
            d = dir.display()
        ),
    )?;
    narrator.say("  Starting the ISP's DNS server (knot, authoritative for isp.example and 2.0.192.in-addr.arpa) ...");
    narrator.plumbing().run(lab.relay.command("ip").args([
        "addr",
        "add",
        &format!("{DNS}/32"),
        "dev",
        "lo",
    ]))?;
    let mut knotd = lab.relay.command("knotd");
    knotd.arg("-c").arg(dir.join("knot.conf"));
    let _knot = Daemon::spawn(
        "knotd",
        &mut knotd,
        &dir.join("knotd.log"),
        narrator.runner(),
    )?;
    wait_until(Duration::from_secs(10), "knot answering", || {
        let out = lab
            .router
            .command("kdig")
            .args([
                &format!("@{DNS}"),
                "+short",
                "+time=1",
                "isp.example",
                "SOA",
            ])
            .output()?;
        Ok(out.status.success() && !out.stdout.is_empty())
    })?;
    let config = dir.join("audit.toml");
    write(
        &config,
        &format!(
            "state_dir = \"{}/state\"\n[allow]\nrelays = [\"192.0.2.25/32\"]\n\n[mail]\n\
             domains = [\"isp.example\"]\nsubmission_hosts = [\"relay.isp.example\"]\n\
             primary_mx = [\"mx1.isp.example\"]\nspam_checkers = [\"mx2.isp.example\"]\n\
             resolver = \"{DNS}:53\"\naudit_interval_seconds = 0\n",
            dir.display()
        ),
    )?;
    narrator.say("  From the edge router: egress-agent audit --config audit.toml");
    let out = narrator.runner().output(
        lab.router
            .command(agent_bin)
            .arg("audit")
            .arg("--config")
            .arg(&config)
            .arg("--json"),
    )?;
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the audit printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    narrator.show(&table(&rows));
    let result = |check: &str| {
        rows.iter()
            .filter(|row| row["check"] == check)
            .map(|row| row["result"].as_str().unwrap_or(""))
            .collect::<Vec<_>>()
    };
    for check in [
        "dns.mx_present",
        "dns.relay_ptr",
        "dns.relay_fcrdns",
        "dns.spf_authorises_relay",
        "smtp.relay_banner_matches_ptr",
    ] {
        if result(check) != ["pass"] {
            bail!(
                "the audit should pass {check} in the lab, got {:?}",
                result(check)
            );
        }
    }
    if result("smtp.submission_starttls") != ["fail"] || out.status.code() != Some(1) {
        bail!(
            "the audit should fail smtp.submission_starttls (the lab's relay has no TLS) and exit 1"
        );
    }
    narrator.ok("DNS is right: MX, PTR, forward-confirmed reverse DNS and SPF all pass");
    narrator.ok("and the audit caught what a real ISP must fix: the lab's relay offers no STARTTLS, no port 465 and no AUTH");
    Ok(())
}

/// CHECK TARGET RESULT DETAIL, aligned, as `egress-agent audit` prints it.
fn table(rows: &[Value]) -> String {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|row| {
            ["check", "target", "result", "detail"]
                .map(|k| row[k].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let width = |i: usize| cells.iter().map(|c| c[i].len()).max().unwrap_or(0).max(6);
    let (w0, w1) = (width(0), width(1));
    let mut out = format!("{:w0$}  {:w1$}  RESULT  DETAIL", "CHECK", "TARGET");
    for [check, target, result, detail] in &cells {
        out.push_str(&format!(
            "\n{check:w0$}  {target:w1$}  {result:6}  {detail}"
        ));
    }
    out
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
