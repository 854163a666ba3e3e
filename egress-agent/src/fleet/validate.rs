//! `[fleet]`: endpoints, key prefix, credentials. The files are read at start, where a
//! missing one is named; here their paths.

use crate::config::Config;

type Problem = (String, String);

/// Longest key prefix: keys carry it, and etcd keys are bounded (1.5 MiB requests) anyway.
const MAX_KEY_PREFIX: usize = 256;

pub fn validate(config: &Config) -> Result<(), Problem> {
    let Some(fleet) = &config.fleet else {
        return Ok(());
    };
    let problem = |key: &str, text: String| Err((format!("fleet.{key}"), text));
    if fleet.etcd_endpoints.is_empty() {
        return problem(
            "etcd_endpoints",
            "is empty: list the etcd members, e.g. [\"http://192.0.2.100:2379\"]".into(),
        );
    }
    let tls = fleet.ca_file.is_some();
    for (i, endpoint) in fleet.etcd_endpoints.iter().enumerate() {
        let key = format!("etcd_endpoints[{i}]");
        let (scheme, authority) = match endpoint.split_once("://") {
            Some(parts) => parts,
            None => {
                return problem(
                    &key,
                    format!("`{endpoint}` is not an http:// or https:// URL"),
                );
            }
        };
        match (scheme, tls) {
            ("http", false) | ("https", true) => {}
            ("https", false) => {
                return problem(&key, format!("`{endpoint}` is https: set fleet.ca_file"));
            }
            ("http", true) => {
                return problem(
                    &key,
                    format!("`{endpoint}` is plain http while fleet.ca_file asks for TLS"),
                );
            }
            _ => {
                return problem(
                    &key,
                    format!("`{endpoint}` is not an http:// or https:// URL"),
                );
            }
        }
        let host_port = authority.trim_end_matches('/');
        let has_port = host_port.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !has_port || host_port.contains(['/', '@', ' ']) {
            return problem(
                &key,
                format!("`{endpoint}` needs host:port, e.g. http://192.0.2.100:2379"),
            );
        }
    }
    let prefix = &fleet.key_prefix;
    if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.len() < 2 {
        return problem(
            "key_prefix",
            format!("`{prefix}` must start with '/' and not end with one, e.g. \"/egress/north\""),
        );
    }
    if prefix.len() > MAX_KEY_PREFIX || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return problem(
            "key_prefix",
            format!("`{prefix}` has whitespace or is over {MAX_KEY_PREFIX} bytes"),
        );
    }
    match (&fleet.username, &fleet.password_file) {
        (Some(_), None) => return problem("password_file", "is needed with fleet.username".into()),
        (None, Some(_)) => return problem("username", "is needed with fleet.password_file".into()),
        _ => {}
    }
    if fleet.cert_file.is_some() != fleet.key_file.is_some() {
        return problem("cert_file", "and fleet.key_file go together".into());
    }
    if fleet.cert_file.is_some() && !tls {
        return problem("ca_file", "is needed with fleet.cert_file (TLS)".into());
    }
    for (key, path) in [
        ("password_file", &fleet.password_file),
        ("ca_file", &fleet.ca_file),
        ("cert_file", &fleet.cert_file),
        ("key_file", &fleet.key_file),
    ] {
        if let Some(path) = path
            && !std::path::Path::new(path).is_absolute()
        {
            return problem(key, format!("`{path}` must be an absolute path"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{ConfigError, parse};

    fn error_of(fleet: &str) -> String {
        let text = format!("[fleet]\n{fleet}\n");
        match parse(Path::new("/etc/egress/egress.toml"), &text) {
            Err(err @ ConfigError::Invalid { .. }) => err.to_string(),
            other => panic!("expected an invalid config for {fleet:?}, got {other:?}"),
        }
    }

    const GOOD: &str =
        "etcd_endpoints = [\"http://192.0.2.100:2379\"]\nkey_prefix = \"/egress/north\"";

    #[test]
    fn a_plain_fleet_is_valid() {
        let text = format!("[fleet]\n{GOOD}\n");
        let config = parse(Path::new("/etc/egress/egress.toml"), &text).expect("valid");
        assert_eq!(config.fleet.expect("fleet").key_prefix, "/egress/north");
    }

    #[test]
    fn errors_name_the_key() {
        let prefix = "key_prefix = \"/egress/north\"";
        let cases = [
            (
                format!("etcd_endpoints = []\n{prefix}"),
                "fleet.etcd_endpoints",
            ),
            (
                format!("etcd_endpoints = [\"192.0.2.100:2379\"]\n{prefix}"),
                "fleet.etcd_endpoints[0]",
            ),
            (
                format!("etcd_endpoints = [\"https://192.0.2.100:2379\"]\n{prefix}"),
                "set fleet.ca_file",
            ),
            (
                format!("etcd_endpoints = [\"http://192.0.2.100\"]\n{prefix}"),
                "needs host:port",
            ),
            (
                format!("etcd_endpoints = [\"ftp://192.0.2.100:21\"]\n{prefix}"),
                "fleet.etcd_endpoints[0]",
            ),
            (GOOD.replace("/egress/north", "egress"), "fleet.key_prefix"),
            (
                GOOD.replace("/egress/north", "/egress/"),
                "fleet.key_prefix",
            ),
            (
                format!("{GOOD}\nusername = \"egress\""),
                "fleet.password_file",
            ),
            (
                format!("{GOOD}\npassword_file = \"/etc/egress/etcd.pw\""),
                "fleet.username",
            ),
            (
                format!("{GOOD}\nusername = \"e\"\npassword_file = \"etcd.pw\""),
                "absolute",
            ),
            (format!("{GOOD}\ncert_file = \"/c.pem\""), "fleet.cert_file"),
            (format!("{GOOD}\nca_file = \"/ca.pem\""), "plain http"),
        ];
        for (fleet, expected) in cases {
            let err = error_of(&fleet);
            assert!(err.contains(expected), "{fleet}: {err}");
            assert!(err.contains("/etc/egress/egress.toml"), "{err}");
        }
    }
}
