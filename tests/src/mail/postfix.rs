//! A real Postfix smart relay: its own config and queue directories, Dovecot's SASL holding
//! the test account, and TLS with a certificate from a CA the test generates
//! (crate::tls). Started inside a test namespace with egress-lab's Postfix; stopped on drop.

use std::{
    fs,
    net::SocketAddr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use egress_lab::{
    Echo, Netns,
    postfix::{Layout, Postfix, chown_postfix},
};

use super::{RELAY, RELAY_V6, dovecot::Dovecot, lab, wait_listening};
use crate::tls::{TestCa, Usage};

pub const ACCOUNT: &str = "audit@isp.example";
pub const PASSWORD: &str = "correct horse battery staple";
pub const HOST: &str = "smtp.isp.example";

/// How the relay is (mis)configured; `Default` is the correct set-up.
#[derive(Clone, Copy, Debug, Default)]
pub struct Setup {
    /// Port 25 relays for anyone.
    pub open_relay: bool,
    /// `smtpd_tls_auth_only = no`: AUTH offered before STARTTLS.
    pub auth_before_tls: bool,
    /// 587 without STARTTLS.
    pub no_starttls: bool,
    /// No implicit-TLS service on 465.
    pub no_465: bool,
    /// No `reject_sender_login_mismatch`: a logged-in user may send as anyone.
    pub no_login_mismatch: bool,
    /// 587 and 465 listen on the IPv4 address only, though the host name has an AAAA too.
    pub submission_v4_only: bool,
    /// 587 relays without AUTH for senders of the ISP's own domain (`check_sender_access`
    /// instead of SASL): foreign senders are still refused, so only the submission check sees it.
    pub trusts_own_domain_senders: bool,
    /// `myhostname` (the 220 banner and the EHLO name) when it is not the PTR name
    /// `smtp.isp.example`.
    pub banner_hostname: Option<&'static str>,
}

/// 587's relay rule in the `trusts_own_domain_senders` set-up (a main.cf parameter: master.cf's
/// `-o` cannot hold the spaces of an inline table).
const SENDER_TRUSTING_RELAY: &str =
    "permit_sasl_authenticated, check_sender_access inline:{ isp.example=OK }, reject";

/// The test CA and the relay's certificate (for `smtp.isp.example`).
pub struct Certificates {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certificates(dir: &Path) -> Certificates {
    let ca = TestCa::new(dir, "ca", "egress audit test CA");
    let smtp = ca.issue("smtp", HOST, &format!("DNS:{HOST}"), Usage::Server);
    Certificates {
        ca: ca.cert,
        cert: smtp.cert,
        key: smtp.key,
    }
}

/// The relay and its SASL server; fields drop in order, so Postfix stops before Dovecot and
/// smtpd never loses its auth socket.
pub struct Relay {
    pub postfix: Postfix,
    pub dovecot: Dovecot,
}

impl Relay {
    pub fn start(ns: &Netns, dir: &Path, certs: &Certificates, setup: Setup) -> Relay {
        let layout = lab(Layout::create(dir, Echo::Quiet));
        // Dovecot puts its auth socket in the queue's private/ (smtpd_sasl_path is relative to
        // the queue directory); Postfix wants that directory its own, mode 0700.
        let private = layout.queue.join("private");
        fs::create_dir_all(&private).expect("create the queue's private/");
        lab(chown_postfix(&private, Echo::Quiet));
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).expect("chmod private");
        let dovecot = Dovecot::start(
            ns,
            &dir.join("dovecot"),
            &private.join("auth"),
            ACCOUNT,
            PASSWORD,
        );
        lab(layout.write_config(&main_cf(&layout, certs, setup), &master_cf(setup)));
        let postfix = lab(Postfix::start(ns, &layout, None, Echo::Quiet));
        let ports: &[u16] = if setup.no_465 {
            &[25, 587]
        } else {
            &[25, 587, 465]
        };
        let listeners: Vec<SocketAddr> = ports
            .iter()
            .map(|port| SocketAddr::new(RELAY.parse().expect("relay address"), *port))
            .collect();
        wait_listening(ns, &listeners, "the relay's smtpd", || postfix.log());
        Relay { postfix, dovecot }
    }
}

fn main_cf(layout: &Layout, certs: &Certificates, setup: Setup) -> String {
    format!(
        "{base}mydomain = isp.example
inet_interfaces = {RELAY}, [{RELAY_V6}]
inet_protocols = all
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_auth_only = {auth_only}
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
{login_maps}smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
submission_relay_restrictions = {submission_relay}
",
        base = layout.main_cf_base(setup.banner_hostname.unwrap_or(HOST)),
        submission_relay = if setup.trusts_own_domain_senders {
            SENDER_TRUSTING_RELAY
        } else {
            "permit_sasl_authenticated, reject"
        },
        // Without the map the mismatch restriction has nothing to compare: both go together.
        login_maps = if setup.no_login_mismatch {
            String::new()
        } else {
            format!("smtpd_sender_login_maps = inline:{{ {ACCOUNT}={ACCOUNT} }}\n")
        },
        cert = certs.cert.display(),
        key = certs.key.display(),
        auth_only = if setup.auth_before_tls { "no" } else { "yes" },
    )
}

/// The listeners: 25, 587 and (unless `no_465`) 465; the shared services follow.
fn master_cf(setup: Setup) -> String {
    let relay_25 = if setup.open_relay {
        "\n  -o mynetworks=0.0.0.0/0,[::]/0"
    } else {
        ""
    };
    let tls_587 = if setup.no_starttls { "none" } else { "may" };
    let sender = if setup.no_login_mismatch {
        ""
    } else {
        "reject_sender_login_mismatch"
    };
    let submission_opts = |relay: &str| {
        format!(
            "  -o smtpd_sasl_auth_enable=yes\n  -o smtpd_sender_restrictions={sender}\n  -o smtpd_relay_restrictions={relay}"
        )
    };
    let smtps_opts = submission_opts("permit_sasl_authenticated,reject");
    let submission_587_opts = submission_opts("$submission_relay_restrictions");
    let on = if setup.submission_v4_only {
        format!("{RELAY}:")
    } else {
        String::new()
    };
    let smtps = if setup.no_465 {
        String::new()
    } else {
        format!(
            "{on}465 inet  n       -       n       -       -       smtpd\n  -o smtpd_tls_wrappermode=yes\n{smtps_opts}\n"
        )
    };
    format!(
        "25        inet  n       -       n       -       -       smtpd{relay_25}
{on}587 inet  n       -       n       -       -       smtpd
  -o smtpd_tls_security_level={tls_587}
{submission_587_opts}
{smtps}"
    )
}
