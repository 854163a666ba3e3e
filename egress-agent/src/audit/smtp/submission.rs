//! The submission host's checks, on each of its addresses: one session on 587 (plain EHLO,
//! STARTTLS, EHLO again, an unauthenticated relay attempt, then AUTH and forged senders) and one
//! on 465.

use std::net::{IpAddr, SocketAddr};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};

use super::{
    FOREIGN_RECIPIENT, FOREIGN_SENDER, attempt,
    session::{self, EHLO_NAME, Session, TlsFailure},
    tls::TlsConfigs,
};
use crate::audit::{
    AuditInputs,
    checks::{
        SUBMISSION_AUTH_AFTER_TLS_ONLY, SUBMISSION_IMPLICIT_TLS, SUBMISSION_REJECTS_FORGED_FROM,
        SUBMISSION_REQUIRES_AUTH, SUBMISSION_STARTTLS,
    },
    report::{Row, worst_per_check},
    resolver::Dns,
};

const SUBMISSION: u16 = 587;
const SUBMISSIONS: u16 = 465;

pub async fn checks(
    dns: &Dns,
    host: &str,
    tls: &Result<TlsConfigs, String>,
    inputs: &AuditInputs,
) -> Vec<Row> {
    let names = [
        SUBMISSION_STARTTLS,
        SUBMISSION_AUTH_AFTER_TLS_ONLY,
        SUBMISSION_IMPLICIT_TLS,
        SUBMISSION_REQUIRES_AUTH,
        SUBMISSION_REJECTS_FORGED_FROM,
    ];
    let all_fail = |why: &str| {
        names
            .iter()
            .map(|check| Row::fail(check, host, why))
            .collect()
    };
    let addresses = match dns.addresses(host).await {
        Ok(addresses) if addresses.is_empty() => return all_fail("no A or AAAA record"),
        Ok(addresses) => addresses,
        Err(err) => return all_fail(&err),
    };
    let tls = match tls {
        Ok(tls) => tls,
        Err(err) => return all_fail(err),
    };
    let account = inputs
        .mail
        .test_account
        .as_ref()
        .zip(inputs.password.as_deref())
        .map(|(account, password)| (account.user.as_str(), password));
    let probe = Probe {
        host,
        tls,
        account,
        own_sender: own_domain_sender(inputs),
    };
    // Customers reach whichever address their resolver picks: every one is probed.
    let mut per_address = Vec::with_capacity(addresses.len());
    for address in addresses {
        per_address.push((address, probe.all(address).await));
    }
    worst_per_check(per_address)
}

struct Probe<'a> {
    host: &'a str,
    tls: &'a TlsConfigs,
    account: Option<(&'a str, &'a str)>,
    /// A sender in the ISP's first mail domain: what a customer who skips AUTH would send as.
    own_sender: Option<String>,
}

/// `egress-audit@<first mail domain>`: a relay that trusts its own domain's senders without
/// AUTH (a sender-address check instead of SASL) relays for anyone who forges one.
fn own_domain_sender(inputs: &AuditInputs) -> Option<String> {
    inputs
        .mail
        .domains
        .first()
        .map(|domain| format!("egress-audit@{}", domain.trim_end_matches('.')))
}

/// An EHLO'd session: the capabilities it got.
struct Greeted {
    session: Session,
    capabilities: Vec<String>,
}

impl Probe<'_> {
    /// Every submission row for one address of the host, in the spec's order.
    async fn all(&self, address: IpAddr) -> Vec<Row> {
        let [starttls, auth_after_tls, requires_auth, forged_from] =
            self.submission(SocketAddr::new(address, SUBMISSION)).await;
        let implicit = self
            .implicit_tls(SocketAddr::new(address, SUBMISSIONS))
            .await;
        vec![
            starttls,
            auth_after_tls,
            implicit,
            requires_auth,
            forged_from,
        ]
    }

    async fn greet(&self, peer: SocketAddr) -> Result<Greeted, String> {
        let mut session = Session::connect(peer).await?;
        let greeting = session.reply().await?;
        if greeting.code != 220 {
            return Err(format!("greeting is not 220: {}", greeting.summary()));
        }
        let capabilities = ehlo(&mut session).await?;
        Ok(Greeted {
            session,
            capabilities,
        })
    }

    /// Rows for STARTTLS, AUTH-after-TLS, requires-AUTH and forged FROM, from port 587.
    async fn submission(&self, peer: SocketAddr) -> [Row; 4] {
        let host = self.host;
        let plain = match self.greet(peer).await {
            Ok(greeted) => greeted,
            Err(err) => {
                return [
                    SUBMISSION_STARTTLS,
                    SUBMISSION_AUTH_AFTER_TLS_ONLY,
                    SUBMISSION_REQUIRES_AUTH,
                    SUBMISSION_REJECTS_FORGED_FROM,
                ]
                .map(|check| Row::fail(check, host, err.clone()));
            }
        };
        let auth_in_clear = session::offers(&plain.capabilities, "AUTH");
        let (starttls, secured) = self.starttls(peer, plain).await;
        let mut secured = match secured {
            Ok(secured) => secured,
            Err(plain) => return self.without_tls(peer, starttls, plain, auth_in_clear).await,
        };
        let auth_after_tls = if auth_in_clear {
            Row::fail(
                SUBMISSION_AUTH_AFTER_TLS_ONLY,
                host,
                "AUTH offered before STARTTLS: passwords can cross the network in clear",
            )
        } else if session::offers(&secured.capabilities, "AUTH") {
            Row::pass(
                SUBMISSION_AUTH_AFTER_TLS_ONLY,
                host,
                format!(
                    "AUTH offered only after STARTTLS ({})",
                    session::auth_mechanisms(&secured.capabilities).join(" ")
                ),
            )
        } else {
            Row::warn(
                SUBMISSION_AUTH_AFTER_TLS_ONLY,
                host,
                "AUTH not offered, even after STARTTLS",
            )
        };
        let requires_auth = self.requires_auth(&mut secured.session, "").await;
        let forged = match self.account {
            None => skipped(host),
            Some((user, password)) => forged_from(&mut secured, host, user, password).await,
        };
        secured.session.quit().await;
        [starttls, auth_after_tls, requires_auth, forged]
    }

    /// No TLS session on 587: AUTH and relaying are judged in clear (on a new session when
    /// the failed handshake took the old one).
    async fn without_tls(
        &self,
        peer: SocketAddr,
        starttls: Row,
        plain: Option<Greeted>,
        auth_in_clear: bool,
    ) -> [Row; 4] {
        let host = self.host;
        let auth_after_tls = if auth_in_clear {
            Row::fail(
                SUBMISSION_AUTH_AFTER_TLS_ONLY,
                host,
                "AUTH offered without TLS: passwords can cross the network in clear",
            )
        } else {
            Row::warn(
                SUBMISSION_AUTH_AFTER_TLS_ONLY,
                host,
                "no TLS session, and AUTH not offered without one",
            )
        };
        let plain = match plain {
            Some(plain) => Ok(plain),
            None => self.greet(peer).await,
        };
        let requires_auth = match plain {
            Ok(mut plain) => {
                let row = self
                    .requires_auth(&mut plain.session, " (tested without TLS)")
                    .await;
                plain.session.quit().await;
                row
            }
            Err(err) => Row::fail(SUBMISSION_REQUIRES_AUTH, host, err),
        };
        let forged = match self.account {
            None => skipped(host),
            Some(_) => Row::warn(
                SUBMISSION_REJECTS_FORGED_FROM,
                host,
                "not tested: no TLS session to authenticate over",
            ),
        };
        [starttls, auth_after_tls, requires_auth, forged]
    }

    /// STARTTLS with a verified certificate; after a certificate failure (a `warn`), a new
    /// session without verification so the other checks still run. `Err` carries the plain
    /// session when it is still usable.
    async fn starttls(
        &self,
        peer: SocketAddr,
        mut plain: Greeted,
    ) -> (Row, Result<Greeted, Option<Greeted>>) {
        let host = self.host;
        if !session::offers(&plain.capabilities, "STARTTLS") {
            let why = format!("port {SUBMISSION} does not offer STARTTLS");
            return (Row::fail(SUBMISSION_STARTTLS, host, why), Err(Some(plain)));
        }
        match upgrade(&mut plain.session, self.tls.verifying.clone(), host).await {
            Ok(()) => match ehlo(&mut plain.session).await {
                Ok(capabilities) => {
                    let version = plain.session.tls_version().unwrap_or_default();
                    let detail = format!("{version}, certificate valid for {host}");
                    let secured = Greeted {
                        session: plain.session,
                        capabilities,
                    };
                    (Row::pass(SUBMISSION_STARTTLS, host, detail), Ok(secured))
                }
                Err(err) => {
                    let why = format!("no EHLO after STARTTLS: {err}");
                    (Row::fail(SUBMISSION_STARTTLS, host, why), Err(None))
                }
            },
            Err(TlsFailure::Certificate(why)) => {
                let row = Row::warn(SUBMISSION_STARTTLS, host, why);
                let secured = async {
                    let mut again = self.greet(peer).await?;
                    upgrade(&mut again.session, self.tls.unverified.clone(), host)
                        .await
                        .map_err(|e| e.text().to_owned())?;
                    let capabilities = ehlo(&mut again.session).await?;
                    Ok::<_, String>(Greeted {
                        session: again.session,
                        capabilities,
                    })
                }
                .await;
                (row, secured.map_err(|_| None))
            }
            Err(TlsFailure::Other(why)) => (Row::fail(SUBMISSION_STARTTLS, host, why), Err(None)),
        }
    }

    /// `smtp.submission_requires_auth`: RCPT to a foreign domain without AUTH is refused,
    /// from a sender of the ISP's own domain and from a foreign one.
    async fn requires_auth(&self, session: &mut Session, note: &str) -> Row {
        let host = self.host;
        let senders = self
            .own_sender
            .as_deref()
            .into_iter()
            .chain([FOREIGN_SENDER]);
        let mut refused = Vec::new();
        for sender in senders {
            match attempt(session, sender).await {
                Ok((false, detail)) => refused.push(format!("<{sender}> {detail}")),
                Ok((true, detail)) => {
                    return Row::fail(
                        SUBMISSION_REQUIRES_AUTH,
                        host,
                        format!(
                            "RCPT from <{sender}> to {FOREIGN_RECIPIENT} accepted without AUTH: {detail}{note}"
                        ),
                    );
                }
                Err(err) => return Row::fail(SUBMISSION_REQUIRES_AUTH, host, err),
            }
        }
        Row::pass(
            SUBMISSION_REQUIRES_AUTH,
            host,
            format!(
                "relaying without AUTH refused: {}{note}",
                refused.join(", ")
            ),
        )
    }

    /// `smtp.submission_implicit_tls`: port 465 completes a TLS handshake and greets.
    async fn implicit_tls(&self, peer: SocketAddr) -> Row {
        let host = self.host;
        let (mut session, warning) =
            match Session::connect_tls(peer, self.tls.verifying.clone(), host).await {
                Ok(session) => (session, None),
                Err(TlsFailure::Certificate(why)) => {
                    match Session::connect_tls(peer, self.tls.unverified.clone(), host).await {
                        Ok(session) => (session, Some(why)),
                        Err(err) => {
                            return Row::fail(SUBMISSION_IMPLICIT_TLS, host, err.text().to_owned());
                        }
                    }
                }
                Err(err) => {
                    return Row::fail(
                        SUBMISSION_IMPLICIT_TLS,
                        host,
                        format!("port {SUBMISSIONS}: {}", err.text()),
                    );
                }
            };
        let version = session.tls_version().unwrap_or_default();
        let greeting = session.reply().await;
        session.quit().await;
        match (greeting, warning) {
            (Ok(reply), None) if reply.code == 220 => Row::pass(
                SUBMISSION_IMPLICIT_TLS,
                host,
                format!("{version}, greets: {}", reply.summary()),
            ),
            (Ok(reply), Some(why)) if reply.code == 220 => Row::warn(
                SUBMISSION_IMPLICIT_TLS,
                host,
                format!("{why}; the TLS session greets: {}", reply.summary()),
            ),
            (Ok(reply), _) => Row::fail(
                SUBMISSION_IMPLICIT_TLS,
                host,
                format!("greeting is not 220: {}", reply.summary()),
            ),
            (Err(err), _) => Row::fail(SUBMISSION_IMPLICIT_TLS, host, err),
        }
    }
}

fn skipped(host: &str) -> Row {
    Row::warn(
        SUBMISSION_REJECTS_FORGED_FROM,
        host,
        "skipped: no [mail.test_account] configured",
    )
}

async fn ehlo(session: &mut Session) -> Result<Vec<String>, String> {
    let reply = session.command(&format!("EHLO {EHLO_NAME}")).await?;
    if !reply.positive() {
        return Err(format!("EHLO refused: {}", reply.summary()));
    }
    Ok(reply.capabilities())
}

async fn upgrade(
    session: &mut Session,
    tls: std::sync::Arc<rustls::ClientConfig>,
    host: &str,
) -> Result<(), TlsFailure> {
    let reply = session
        .command("STARTTLS")
        .await
        .map_err(TlsFailure::Other)?;
    if reply.code != 220 {
        return Err(TlsFailure::Other(format!(
            "STARTTLS refused: {}",
            reply.summary()
        )));
    }
    session.handshake(tls, host).await
}

/// `smtp.submission_rejects_forged_from`: logged in as the test account, MAIL FROM another
/// user's and another domain's address is refused, and the account's own is not.
async fn forged_from(secured: &mut Greeted, host: &str, user: &str, password: &str) -> Row {
    let fail = |why: String| Row::fail(SUBMISSION_REJECTS_FORGED_FROM, host, why);
    if let Err(err) = authenticate(secured, user, password).await {
        return fail(err);
    }
    let domain = user.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    let other_user = format!("egress-audit-forged@{domain}");
    let mut refused = Vec::new();
    for (sender, whose) in [
        (other_user.as_str(), "another user's"),
        (FOREIGN_SENDER, "another domain's"),
    ] {
        match attempt(&mut secured.session, sender).await {
            Ok((true, detail)) => {
                return fail(format!(
                    "{user} may send as <{sender}> ({whose} address): {detail}"
                ));
            }
            Ok((false, detail)) => refused.push(format!("<{sender}> {detail}")),
            Err(err) => return fail(err),
        }
    }
    match attempt(&mut secured.session, user).await {
        Ok((true, _)) => Row::pass(
            SUBMISSION_REJECTS_FORGED_FROM,
            host,
            format!("refused: {}; own address accepted", refused.join(", ")),
        ),
        Ok((false, detail)) => Row::warn(
            SUBMISSION_REJECTS_FORGED_FROM,
            host,
            format!(
                "{user}'s own address is refused too ({detail}): cannot tell whether FROM is checked"
            ),
        ),
        Err(err) => fail(err),
    }
}

async fn authenticate(secured: &mut Greeted, user: &str, password: &str) -> Result<(), String> {
    let mechanisms = session::auth_mechanisms(&secured.capabilities);
    let session = &mut secured.session;
    let reply = if mechanisms.iter().any(|m| m == "PLAIN") {
        let token = BASE64.encode(format!("\0{user}\0{password}"));
        session.command(&format!("AUTH PLAIN {token}")).await?
    } else if mechanisms.iter().any(|m| m == "LOGIN") {
        let first = session.command("AUTH LOGIN").await?;
        if first.code != 334 {
            return Err(format!("AUTH LOGIN refused: {}", first.summary()));
        }
        let second = session.command(&BASE64.encode(user)).await?;
        if second.code != 334 {
            return Err(format!(
                "AUTH LOGIN refused the user name: {}",
                second.summary()
            ));
        }
        session.command(&BASE64.encode(password)).await?
    } else {
        return Err(format!(
            "no PLAIN or LOGIN among the AUTH mechanisms ({})",
            mechanisms.join(" ")
        ));
    };
    if reply.code != 235 {
        return Err(format!("AUTH as {user} failed: {}", reply.summary()));
    }
    Ok(())
}
