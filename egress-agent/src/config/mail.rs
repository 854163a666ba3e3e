//! The `[mail]` section: what `egress-agent audit` checks (spec: "Audit of the mail set-up").

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
};

use serde::{Deserialize, Serialize};

/// The ISP's mail set-up as the audit sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    pub domains: Vec<String>,
    #[serde(default)]
    pub submission_hosts: Vec<String>,
    #[serde(default)]
    pub primary_mx: Vec<String>,
    #[serde(default)]
    pub spam_checkers: Vec<String>,
    /// `IP:PORT` or a bare IP (port 53); absent: the system resolver (`/etc/resolv.conf`).
    #[serde(default)]
    pub resolver: Option<String>,
    /// Trust anchors for the relay's certificate; absent: the system roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default = "default_audit_interval_seconds")]
    pub audit_interval_seconds: u64,
    #[serde(default)]
    pub test_account: Option<TestAccount>,
}

/// A mailbox on the relay, for the forged-FROM check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestAccount {
    pub user: String,
    pub password_file: String,
}

fn default_audit_interval_seconds() -> u64 {
    3600
}

impl MailConfig {
    /// The resolver's address, when one is configured (validated, so it parses).
    pub fn resolver_addr(&self) -> Option<SocketAddr> {
        self.resolver
            .as_deref()
            .and_then(|text| parse_resolver(text).ok())
    }
}

/// `192.0.2.53:53`, `[2001:db8::53]:53`, or a bare address meaning port 53.
pub fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("`{text}` is not an address (IP or IP:PORT)"))
}

type Problem = (String, String);

pub fn validate(mail: &MailConfig) -> Result<(), Problem> {
    if mail.domains.is_empty() {
        return Err((
            "mail.domains".into(),
            "is empty: list the ISP's mail domains".into(),
        ));
    }
    let lists = [
        ("mail.domains", &mail.domains),
        ("mail.submission_hosts", &mail.submission_hosts),
        ("mail.primary_mx", &mail.primary_mx),
        ("mail.spam_checkers", &mail.spam_checkers),
    ];
    for (key, names) in lists {
        for (i, name) in names.iter().enumerate() {
            if let Some(why) = invalid_host_name(name) {
                return Err((format!("{key}[{i}]"), format!("`{name}` {why}")));
            }
        }
    }
    if let Some(resolver) = &mail.resolver {
        parse_resolver(resolver).map_err(|why| ("mail.resolver".to_owned(), why))?;
    }
    if let Some(ca_file) = &mail.ca_file {
        absolute("mail.ca_file", ca_file)?;
    }
    if let Some(account) = &mail.test_account {
        let user = &account.user;
        let valid = user.rsplit_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && invalid_host_name(domain).is_none()
        });
        if !valid {
            return Err((
                "mail.test_account.user".into(),
                format!("`{user}` is not a mail address (user@domain)"),
            ));
        }
        absolute("mail.test_account.password_file", &account.password_file)?;
    }
    Ok(())
}

fn absolute(key: &str, path: &str) -> Result<(), Problem> {
    if Path::new(path).is_absolute() {
        Ok(())
    } else {
        Err((key.to_owned(), format!("`{path}` must be an absolute path")))
    }
}

/// Why `name` is not a DNS host name (RFC 1123 labels), if it is not.
fn invalid_host_name(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Some("is not a host name (empty or longer than 253 bytes)");
    }
    if name.parse::<IpAddr>().is_ok() {
        return Some("is an address: give the host name");
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !name.split('.').all(label_ok) {
        return Some("is not a host name (letters, digits, '-' in dot-separated labels)");
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;

    fn error_of(text: &str) -> String {
        match parse(Path::new("/etc/egress/egress.toml"), text) {
            Ok(_) => panic!("config should be refused:\n{text}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn mail_section_parses_with_defaults() {
        let config = parse(
            Path::new("x.toml"),
            "[mail]\ndomains = [\"isp.example\"]\nresolver = \"192.0.2.53\"\n",
        )
        .expect("valid");
        let mail = config.mail.expect("mail section");
        assert_eq!(mail.audit_interval_seconds, 3600);
        assert_eq!(
            mail.resolver_addr(),
            Some("192.0.2.53:53".parse().expect("addr"))
        );
        assert!(
            parse(Path::new("x.toml"), "")
                .expect("valid")
                .mail
                .is_none()
        );
    }

    #[test]
    fn mail_errors_name_file_key_and_value() {
        let err = error_of("[mail]\ndomains = []");
        assert!(
            err.contains("/etc/egress/egress.toml: mail.domains"),
            "{err}"
        );
        let err = error_of("[mail]\ndomains = [\"isp.example\"]\nprimary_mx = [\"mx 1\"]");
        assert!(
            err.contains("mail.primary_mx[0]") && err.contains("`mx 1`"),
            "{err}"
        );
        let err = error_of("[mail]\ndomains = [\"isp.example\"]\nresolver = \"dns\"");
        assert!(
            err.contains("mail.resolver") && err.contains("`dns`"),
            "{err}"
        );
        let err = error_of("[mail]\ndomains = [\"isp.example\"]\nca_file = \"ca.pem\"");
        assert!(
            err.contains("mail.ca_file") && err.contains("`ca.pem`"),
            "{err}"
        );
        let err = error_of(
            "[mail]\ndomains = [\"a.example\"]\n[mail.test_account]\nuser = \"audit\"\npassword_file = \"/p\"",
        );
        assert!(err.contains("mail.test_account.user"), "{err}");
        let err = error_of("[mail]\ndomains = [\"a.example\"]\nbogus = 1");
        assert!(err.contains("bogus"), "{err}");
    }
}
