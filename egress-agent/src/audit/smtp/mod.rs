//! `smtp.*`: the relays (banner, not an open relay) and the submission service customers use
//! (STARTTLS on 587, implicit TLS on 465, AUTH only after TLS, no relaying without AUTH, no
//! forged FROM after AUTH). Probes stop at RCPT and end with RSET/QUIT: no mail is ever sent.

mod session;
mod submission;
mod tls;

use std::net::{IpAddr, SocketAddr};

use session::{EHLO_NAME, Session};

use super::{
    AuditInputs,
    checks::{RELAY_BANNER_MATCHES_PTR, RELAY_NOT_OPEN},
    report::Row,
    resolver::{Dns, normalise},
};

/// Addresses in reserved example domains (RFC 2606): foreign to any ISP, never delivered.
const FOREIGN_SENDER: &str = "egress-audit@example.com";
const FOREIGN_RECIPIENT: &str = "egress-audit@example.net";

pub async fn checks(dns: &Dns, inputs: &AuditInputs) -> Vec<Row> {
    let tls = tls::TlsConfigs::new(inputs.mail.ca_file.as_deref());
    let mut rows = Vec::new();
    for relay in &inputs.relays {
        rows.push(banner(dns, *relay).await);
    }
    for relay in &inputs.relays {
        for port in [25, 587] {
            rows.push(not_open(SocketAddr::new(*relay, port), tls.as_ref().ok()).await);
        }
    }
    for host in &inputs.mail.submission_hosts {
        rows.extend(submission::checks(dns, host, &tls, inputs).await);
    }
    rows
}

/// `smtp.relay_banner_matches_ptr`: the name in the 220 banner (and EHLO) is the PTR name.
async fn banner(dns: &Dns, relay: IpAddr) -> Row {
    let target = relay.to_string();
    let fail = |why: String| Row::fail(RELAY_BANNER_MATCHES_PTR, &target, why);
    let mut session = match Session::connect(SocketAddr::new(relay, 25)).await {
        Ok(session) => session,
        Err(first) => match Session::connect(SocketAddr::new(relay, 587)).await {
            Ok(session) => session,
            Err(_) => return fail(first),
        },
    };
    let names = (async {
        let greeting = session.reply().await?;
        if greeting.code != 220 {
            return Err(format!("greeting is not 220: {}", greeting.summary()));
        }
        let ehlo = session.command(&format!("EHLO {EHLO_NAME}")).await?;
        Ok((
            first_word(&greeting.lines),
            ehlo.positive().then(|| first_word(&ehlo.lines)),
        ))
    })
    .await;
    session.quit().await;
    let (banner_name, ehlo_name) = match names {
        Ok(names) => names,
        Err(err) => return fail(err),
    };
    let ptr = match dns.ptr(relay).await {
        Ok(ptr) if ptr.is_empty() => {
            return fail(format!("banner says {banner_name}, but {relay} has no PTR"));
        }
        Ok(ptr) => ptr,
        Err(err) => return fail(err),
    };
    let ehlo_name = ehlo_name.unwrap_or_else(|| banner_name.clone());
    if ptr.contains(&banner_name) && ptr.contains(&ehlo_name) {
        Row::pass(
            RELAY_BANNER_MATCHES_PTR,
            &target,
            format!("banner and EHLO say {banner_name}, the PTR name"),
        )
    } else {
        fail(format!(
            "banner says {banner_name}, EHLO {ehlo_name}; the PTR says {}",
            ptr.join(", ")
        ))
    }
}

fn first_word(lines: &[String]) -> String {
    normalise(
        lines
            .first()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or(""),
    )
}

/// `smtp.relay_not_open`: an unauthenticated RCPT from and to foreign domains is refused.
/// STARTTLS is used when offered (without judging the certificate: that is not this check).
async fn not_open(peer: SocketAddr, tls: Option<&tls::TlsConfigs>) -> Row {
    let target = peer.to_string();
    let mut session = match Session::connect(peer).await {
        Ok(session) => session,
        Err(err) if err.contains("refused") => {
            return Row::warn(RELAY_NOT_OPEN, target, format!("not tested: {err}"));
        }
        Err(err) => return Row::fail(RELAY_NOT_OPEN, target, err),
    };
    let outcome = (async {
        let greeting = session.reply().await?;
        if !greeting.positive() {
            return Ok((
                false,
                format!("greeting refuses service: {}", greeting.summary()),
            ));
        }
        let ehlo = session.command(&format!("EHLO {EHLO_NAME}")).await?;
        if let Some(tls) = tls
            && session::offers(&ehlo.capabilities(), "STARTTLS")
            && session.command("STARTTLS").await?.code == 220
        {
            let host = peer.ip().to_string();
            session
                .handshake(tls.unverified.clone(), &host)
                .await
                .map_err(|err| err.text().to_owned())?;
            session.command(&format!("EHLO {EHLO_NAME}")).await?;
        }
        unauthenticated_relay(&mut session).await
    })
    .await;
    session.quit().await;
    match outcome {
        Ok((false, detail)) => Row::pass(RELAY_NOT_OPEN, target, format!("refused: {detail}")),
        Ok((true, detail)) => Row::fail(
            RELAY_NOT_OPEN,
            target,
            format!(
                "open relay: RCPT from {FOREIGN_SENDER} to {FOREIGN_RECIPIENT} accepted without AUTH ({detail})"
            ),
        ),
        Err(err) => Row::fail(RELAY_NOT_OPEN, target, err),
    }
}

/// MAIL FROM and RCPT TO foreign domains without AUTH: (accepted, the deciding reply).
async fn unauthenticated_relay(session: &mut Session) -> Result<(bool, String), String> {
    attempt(session, FOREIGN_SENDER).await
}

/// MAIL FROM `sender`, RCPT to a foreign domain, RSET: (accepted, the deciding reply).
async fn attempt(session: &mut Session, sender: &str) -> Result<(bool, String), String> {
    let mail = session.command(&format!("MAIL FROM:<{sender}>")).await?;
    if !mail.positive() {
        // The refusal is the answer; RSET only readies the session for a further attempt,
        // and a session it cannot ready fails that attempt's own MAIL.
        let _ = session.command("RSET").await;
        return Ok((false, format!("MAIL {}", mail.summary())));
    }
    let rcpt = session
        .command(&format!("RCPT TO:<{FOREIGN_RECIPIENT}>"))
        .await?;
    session.command("RSET").await?;
    Ok((rcpt.positive(), format!("RCPT {}", rcpt.summary())))
}
