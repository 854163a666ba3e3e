//! Traceability in the demo: the BNG's accounting names the infected subscriber (FreeRADIUS's
//! `radclient` plays the BNG and sends a Start to the agent's `[identity]` listener), and
//! when the story flags it, the abuse desk's webhook (`crate::webhook`, in the router's
//! namespace) receives the signed evidence report; `who` and `reports` answer afterwards.

use std::{fs, path::Path, process::Command, time::Duration};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{
    agent::Agent,
    interrupt::wait_until,
    lab::{self, Lab},
    narrate::Narrator,
};
use egress_lab::webhook::Receiver;

const RADIUS_LISTEN: &str = "127.0.0.1:1813";
const RADIUS_SECRET: &str = "demo-radius-secret";
const WEBHOOK_SECRET: &[u8] = b"demo-webhook-secret";
pub const INFECTED_USER: &str = "infected@isp.example";
const INFECTED_SESSION: &str = "bng-1-0002";

/// The abuse desk's side: its webhook receiver and the secrets shared with the agent.
pub struct Desk {
    receiver: Receiver,
    radius_secret: std::path::PathBuf,
    webhook_secret: std::path::PathBuf,
}

impl Desk {
    /// Writes the shared secrets into `dir` and starts the webhook receiver in the router.
    pub fn open(lab: &Lab, dir: &Path) -> Result<Desk> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let radius_secret = dir.join("radius.secret");
        let webhook_secret = dir.join("webhook.secret");
        fs::write(&radius_secret, RADIUS_SECRET)
            .with_context(|| format!("cannot write {}", radius_secret.display()))?;
        fs::write(&webhook_secret, WEBHOOK_SECRET)
            .with_context(|| format!("cannot write {}", webhook_secret.display()))?;
        let receiver = Receiver::start(&lab.router, "127.0.0.1:0", WEBHOOK_SECRET)?;
        Ok(Desk {
            receiver,
            radius_secret,
            webhook_secret,
        })
    }

    /// The agent's `[identity]` and `[notify]` tables.
    pub fn config(&self) -> String {
        format!(
            "[identity]\nradius_listen = \"{RADIUS_LISTEN}\"\nradius_clients = [\"127.0.0.1/32\"]\n\
             radius_secret_file = \"{}\"\nretention_days = 90\n\n\
             [notify]\nwebhook_url = \"{}\"\nsecret_file = \"{}\"\ntimeout_seconds = 5\n",
            self.radius_secret.display(),
            self.receiver.url(),
            self.webhook_secret.display()
        )
    }
}

/// The BNG reports the infected subscriber's session (a RADIUS Accounting Start).
pub fn infected_session_starts(lab: &Lab, dir: &Path, narrator: Narrator) -> Result<()> {
    narrator.say(&format!(
        "  The BNG copies its RADIUS accounting to the edge router: a session Start for {} \
         (radclient plays the BNG) ...",
        lab::INFECTED
    ));
    let request = dir.join("radius-start.txt");
    fs::write(
        &request,
        format!(
            "Acct-Status-Type = Start, Acct-Session-Id = \"{INFECTED_SESSION}\", \
             User-Name = \"{INFECTED_USER}\", Calling-Station-Id = \"02-00-00-00-02-20\", \
             NAS-Identifier = \"bng-1\", NAS-Port-Id = \"eth1.220\", Framed-IP-Address = {}\n",
            lab::INFECTED
        ),
    )
    .with_context(|| format!("cannot write {}", request.display()))?;
    let mut radclient = Command::new("nsenter");
    radclient
        .arg(format!("--net={}", lab.router.path().display()))
        .args(["radclient", "-r", "3", "-t", "2", "-f"])
        .arg(&request)
        .args([RADIUS_LISTEN, "acct", RADIUS_SECRET]);
    let answer = narrator
        .runner()
        .capture(&mut radclient)
        .context("radclient (Debian freeradius-utils) got no Accounting-Response")?;
    narrator.show(answer.trim());
    narrator.ok("the agent stored the session and answered with an Accounting-Response");
    Ok(())
}

/// The flagged subscriber's signed report at the webhook, then `who` and `reports`.
pub fn the_abuse_desk_is_told(
    desk: &Desk,
    agent: &Agent,
    top: &[Value],
    narrator: Narrator,
) -> Result<()> {
    narrator.chapter(
        "8. Who was it? The abuse desk's webhook has a signed report, and the history answers",
    );
    let flagged = top.iter().find(|row| row["subscriber"] == lab::INFECTED);
    match flagged.map(|row| &row["identity"]["user_name"]) {
        Some(user) if user == INFECTED_USER => narrator.ok(&format!(
            "`egress-agent top` in chapter 3 already named it: {INFECTED_USER} (WHO column)"
        )),
        _ => bail!(
            "`egress-agent top` did not name {INFECTED_USER} for {}: {top:?}",
            lab::INFECTED
        ),
    }
    narrator.say(
        "  When the story flagged the infected subscriber, the agent stored an evidence report\n  \
         and POSTed it to the abuse desk's webhook, signed with X-Egress-Signature (HMAC-SHA256).\n  \
         The receiver checks the signature itself and prints what it got:",
    );
    let needle = format!("\"subscriber\":\"{}\"", lab::INFECTED);
    wait_until(
        Duration::from_secs(30),
        "the report on the infected subscriber at the webhook",
        || {
            Ok(desk
                .receiver
                .deliveries()
                .iter()
                .any(|d| d.body.contains(&needle)))
        },
    )?;
    let deliveries = desk.receiver.deliveries();
    let Some(delivery) = deliveries.iter().find(|d| d.body.contains(&needle)) else {
        bail!("no report on {} at the webhook", lab::INFECTED);
    };
    if !delivery.signature_valid {
        bail!(
            "the report's X-Egress-Signature does not verify: {}",
            delivery.body
        );
    }
    let report: Value = serde_json::from_str(&delivery.body).context("the report is not JSON")?;
    if report["identity"]["user_name"] != INFECTED_USER {
        bail!("the report does not name {INFECTED_USER}: {report}");
    }
    narrator.show(&serde_json::to_string_pretty(&report)?);
    narrator.ok(&format!(
        "signature verified; the report names {INFECTED_USER}, the session that held {} when it was flagged",
        lab::INFECTED
    ));

    narrator.say(&format!(
        "\n  A complaint arrives about {}: the operator asks who held it.",
        lab::INFECTED
    ));
    let who = agent.cli(&["who", lab::INFECTED])?;
    narrator.show(&who);
    if !who.contains(INFECTED_USER) {
        bail!(
            "`egress-agent who {}` does not name {INFECTED_USER}:\n{who}",
            lab::INFECTED
        );
    }
    narrator.say("\n  And the reports with their delivery state:");
    let reports = agent.cli(&["reports"])?;
    narrator.show(&reports);
    if !reports.contains("delivered") {
        bail!("`egress-agent reports` shows no delivered report:\n{reports}");
    }
    narrator.ok("the abuse desk knows who it was, and can act; the history keeps it 90 days");
    Ok(())
}
