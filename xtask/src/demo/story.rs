//! The story the demo tells, each step checked: if something does not happen as told, the
//! step fails with what was expected and what happened instead.

use std::{
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use anyhow::{Result, bail};
use serde_json::Value;

use super::{
    agent::Agent,
    interrupt::{self, wait_until},
    lab::{self, Lab},
    mail::{Mailbox, Relay, Send, parse_v4, swaks},
    narrate::{Narrator, swaks_outcome, tail},
};

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);
const FLAG_TIMEOUT: Duration = Duration::from_secs(20);
const SPRAY_ROUNDS: usize = 4;
const SPRAY_CONNECT_TIMEOUT: Duration = Duration::from_millis(50);
/// A blocked message is given this long to show up anyway before we call it not delivered.
const NOT_DELIVERED_GRACE: Duration = Duration::from_secs(1);

/// Everything running in the lab. Variables drop in reverse order: the agent first.
pub struct Cast<'a> {
    pub lab: &'a Lab,
    pub mailbox: &'a Mailbox,
    pub relay: &'a Relay,
    pub agent: &'a Agent,
    pub tag: u32,
}

/// What the story produced, for the scenario test to look at on top of the checks made here.
#[derive(Debug)]
pub struct Told {
    /// The clean subscriber's message as the MX stored it.
    pub relayed_message: String,
    /// `egress-agent top --json` once the infected subscriber was flagged.
    pub top: Vec<Value>,
    /// The whole /metrics exposition at that moment.
    pub metrics: String,
    /// The exempt subscriber's direct message as the MX stored it.
    pub exempt_message: String,
}

pub fn tell(cast: &Cast<'_>, narrator: Narrator) -> Result<Told> {
    let relayed_message = clean_subscriber_uses_the_relay(cast, narrator)?;
    narrator.chapter(&format!(
        "2. The infected subscriber ({}) tries to deliver spam straight to the MX on port 25",
        lab::INFECTED
    ));
    infected_subscriber_is_blocked(cast, narrator, "a direct delivery attempt")?;
    let (top, metrics) = infected_subscriber_is_flagged(cast, narrator)?;
    let exempt_message = operator_exempts_the_subscriber(cast, narrator)?;
    Ok(Told {
        relayed_message,
        top,
        metrics,
        exempt_message,
    })
}

fn clean_subscriber_uses_the_relay(cast: &Cast<'_>, narrator: Narrator) -> Result<String> {
    narrator.chapter(
        "1. The clean subscriber sends mail the right way: through the ISP's relay on port 587",
    );
    let subject = format!("Hello from the clean subscriber ({}-relay)", cast.tag);
    let sent = swaks(
        &Send {
            from_ns: &cast.lab.clean,
            server: format!("{}:587", lab::RELAY),
            from: "alice@subscriber.example",
            to: "bob@mx.example",
            subject: subject.clone(),
        },
        narrator.runner(),
    )?;
    narrator.show(&swaks_outcome(&sent.transcript));
    if !sent.delivered {
        bail!(
            "the relay did not accept the clean subscriber's message:\n{}",
            sent.transcript
        );
    }
    narrator.ok("the relay accepted the message on 587 (submission is never blocked)");
    narrator.say(
        "  The relay now delivers it to the remote MX on port 25: it is an allowlisted relay.",
    );
    let Some(message) = cast.mailbox.wait_for(&subject, DELIVERY_TIMEOUT)? else {
        bail!(
            "the relayed message did not arrive at the MX within {DELIVERY_TIMEOUT:?}; relay log:\n{}",
            tail(&cast.relay.log(), 10)
        );
    };
    narrator.ok("it arrived in the remote mailbox:");
    narrator.show(&message_excerpt(&message));
    Ok(message)
}

/// A direct connection from the infected subscriber to the MX on port 25 must fail and
/// deliver nothing.
fn infected_subscriber_is_blocked(cast: &Cast<'_>, narrator: Narrator, what: &str) -> Result<()> {
    let subject = format!("Cheap pills ({}-{})", cast.tag, what.replace(' ', "-"));
    let sent = swaks(&direct(cast, &subject), narrator.runner())?;
    narrator.show(&swaks_outcome(&sent.transcript));
    if sent.delivered {
        bail!(
            "{what} from the infected subscriber reached the MX on port 25: egress did not block it"
        );
    }
    interrupt::sleep(NOT_DELIVERED_GRACE)?;
    if cast.mailbox.find(&subject)?.is_some() {
        bail!("{what} from the infected subscriber arrived in the MX's mailbox");
    }
    narrator
        .ok("the connection never got through: the edge router dropped its SYNs; nothing arrived");
    Ok(())
}

fn direct<'a>(cast: &'a Cast<'_>, subject: &str) -> Send<'a> {
    Send {
        from_ns: &cast.lab.infected,
        server: format!("{}:25", lab::MX),
        from: "bot@subscriber.example",
        to: "victim@mx.example",
        subject: subject.to_owned(),
    }
}

fn infected_subscriber_is_flagged(
    cast: &Cast<'_>,
    narrator: Narrator,
) -> Result<(Vec<Value>, String)> {
    let targets: Vec<SocketAddr> = lab::SPRAY_TARGETS
        .map(|last| SocketAddr::from(([203, 0, 113, last], 25)))
        .collect();
    narrator.chapter(&format!(
        "3. The infected subscriber sprays: {} connection attempts to {} mail servers",
        SPRAY_ROUNDS * targets.len(),
        targets.len()
    ));
    let connected = cast.lab.infected.within(|| {
        (0..SPRAY_ROUNDS)
            .flat_map(|_| targets.iter())
            .filter(|target| TcpStream::connect_timeout(target, SPRAY_CONNECT_TIMEOUT).is_ok())
            .count()
    })?;
    if connected > 0 {
        bail!("{connected} of the infected subscriber's port-25 connections got through");
    }
    narrator.ok("none got through");
    let infected = parse_v4(lab::INFECTED)?.to_string();
    wait_until(
        FLAG_TIMEOUT,
        "egress-agent top to flag the infected subscriber",
        || {
            Ok(cast
                .agent
                .top()?
                .iter()
                .any(|row| is_flagged(row, &infected)))
        },
    )?;
    let top = cast.agent.top()?;
    match top.first() {
        Some(row) if is_flagged(row, &infected) => {}
        _ => bail!("the infected subscriber is not at the top of `egress-agent top`: {top:?}"),
    }
    if top.iter().any(|row| row["subscriber"] == lab::CLEAN) {
        bail!("the clean subscriber shows up in `egress-agent top`: {top:?}");
    }
    narrator.say("  The operator asks the agent for the worst subscribers:");
    narrator.show(&cast.agent.cli(&["top", "-n", "5"])?);
    narrator.ok("the infected subscriber is at the top, flagged as a suspected bot");
    let metrics = cast.agent.metrics(cast.lab)?;
    let lines = relevant_metrics(&metrics);
    narrator.say("  What Prometheus scrapes from the agent (/metrics, excerpt):");
    narrator.show(&lines.join("\n"));
    let flagged = format!("egress_subscriber_suspected_bot{{subscriber=\"{infected}\"}} 1");
    if !metrics.lines().any(|line| line == flagged) {
        bail!("/metrics has no `{flagged}`:\n{}", lines.join("\n"));
    }
    if !metrics
        .lines()
        .any(|line| is_positive(line, "egress_smtp_packets_total{verdict=\"dropped\""))
    {
        bail!(
            "/metrics counts no dropped SMTP packets:\n{}",
            lines.join("\n")
        );
    }
    narrator.ok("the metrics flag it too, ready for an alert");
    Ok((top, metrics))
}

fn is_flagged(row: &Value, subscriber: &str) -> bool {
    row["subscriber"] == subscriber && row["suspected_bot"] == true
}

fn is_positive(line: &str, prefix: &str) -> bool {
    line.starts_with(prefix)
        && line
            .rsplit(' ')
            .next()
            .and_then(|value| value.parse::<f64>().ok())
            .is_some_and(|value| value > 0.0)
}

/// The per-subscriber series and the non-zero SMTP verdict counters.
fn relevant_metrics(metrics: &str) -> Vec<&str> {
    const SHOWN: [&str; 4] = [
        "egress_subscriber_smtp_attempts_total",
        "egress_subscriber_distinct_destinations",
        "egress_subscriber_suspected_bot",
        "egress_suspected_bots",
    ];
    metrics
        .lines()
        .filter(|line| {
            is_positive(line, "egress_smtp_packets_total")
                || SHOWN.iter().any(|name| line.starts_with(name))
        })
        .collect()
}

fn operator_exempts_the_subscriber(cast: &Cast<'_>, narrator: Narrator) -> Result<String> {
    narrator.chapter("4. It turns out to be a business customer running its own mail server: the operator exempts it");
    narrator.show(&cast.agent.cli(&[
        "exempt",
        "add",
        lab::INFECTED,
        "--comment",
        "business customer",
    ])?);
    narrator.show(&cast.agent.cli(&["exempt", "list"])?);
    let subject = format!("Invoice from a business customer ({}-exempt)", cast.tag);
    let sent = swaks(&direct(cast, &subject), narrator.runner())?;
    narrator.show(&swaks_outcome(&sent.transcript));
    if !sent.delivered {
        bail!(
            "the exempt subscriber could not deliver to the MX on port 25:\n{}",
            sent.transcript
        );
    }
    let Some(message) = cast.mailbox.wait_for(&subject, DELIVERY_TIMEOUT)? else {
        bail!("the exempt subscriber's message did not arrive at the MX");
    };
    narrator.ok("direct delivery on port 25 works now; it arrived:");
    narrator.show(&message_excerpt(&message));

    narrator.chapter("5. The exemption is removed again");
    narrator.show(&cast.agent.cli(&["exempt", "remove", lab::INFECTED])?);
    narrator.say("  The subscriber tries port 25 again:");
    infected_subscriber_is_blocked(
        cast,
        narrator,
        "a direct delivery after the exemption was removed",
    )?;
    Ok(message)
}

/// The envelope and headers smtp-sink stored, without the body.
fn message_excerpt(message: &str) -> String {
    message
        .lines()
        .take_while(|line| !line.is_empty())
        .filter(|line| {
            [
                "X-Client-Addr",
                "X-Mail-Args",
                "X-Rcpt-Args",
                "From:",
                "To:",
                "Subject:",
            ]
            .iter()
            .any(|name| line.starts_with(name))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts the lab's servers and the agent, in the order the story needs them.
pub fn start_servers(lab: &Lab, dir: &Path, narrator: Narrator) -> Result<(Mailbox, Relay)> {
    narrator.say("  Starting the Internet MX (smtp-sink, stores every message) ...");
    let mailbox = Mailbox::start(&lab.internet, &dir.join("mx"), narrator)?;
    narrator.say("  Starting the ISP's mail relay (Postfix, submission on 587) ...");
    let relay = Relay::start(&lab.relay, &dir.join("relay"), narrator)?;
    Ok((mailbox, relay))
}
