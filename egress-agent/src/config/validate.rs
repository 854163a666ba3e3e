//! What the config means: every key checked, errors as (key, problem).

use std::{collections::HashSet, path::Path};

use super::{Config, Hook, XdpModeSetting};
use crate::{allowlist::AllowKind, prefix};

/// Submission ports (RFC 6409, RFC 8314) that customers need to reach their mail provider.
const SUBMISSION_PORTS: [u16; 2] = [587, 465];
/// Linux IFNAMSIZ minus the terminating NUL.
const MAX_INTERFACE_NAME: usize = 15;

type Problem = (String, String);

pub fn validate(config: &Config) -> Result<(), Problem> {
    validate_ports(&config.blocked_ports)?;
    absolute("pin_dir", &config.pin_dir)?;
    absolute("state_dir", &config.state_dir)?;
    absolute("control.socket", &config.control.socket)?;
    validate_interfaces(config)?;
    validate_allowlists(config)?;
    crate::inbound::validate(config)?;
    validate_traceability(config)?;
    crate::fleet::validate(config)?;
    let len = config.subscribers.ipv6_prefix_len;
    if !(1..=128).contains(&len) {
        return problem(
            "subscribers.ipv6_prefix_len",
            format!("{len} is out of range 1..=128"),
        );
    }
    if config.subscribers.max_tracked == 0 {
        return problem("subscribers.max_tracked", "must be at least 1".into());
    }
    validate_pools(&config.subscribers.pools)?;
    if config.detection.window_seconds == 0 {
        return problem("detection.window_seconds", "must be at least 1".into());
    }
    if config.detection.window_seconds > u64::MAX / 1_000_000_000 {
        return problem("detection.window_seconds", "is too large".into());
    }
    if let Some(mail) = &config.mail {
        super::mail::validate(mail)?;
    }
    Ok(())
}

fn validate_pools(pools: &[String]) -> Result<(), Problem> {
    use egress_common::pools::{self, MAX_ADDRESSES, MAX_POOLS, PoolProblem};
    let mut parsed = Vec::new();
    for (i, text) in pools.iter().enumerate() {
        let key = format!("subscribers.pools[{i}]");
        match prefix::parse(text) {
            Ok(ipnet::IpNet::V4(net)) => parsed.push((u32::from(net.network()), net.prefix_len())),
            Ok(ipnet::IpNet::V6(_)) => {
                return problem(
                    &key,
                    format!(
                        "`{text}` is IPv6: pools are IPv4 (IPv6 subscribers stay in the LRU map)"
                    ),
                );
            }
            Err(err) => return problem(&key, err.to_string()),
        }
    }
    match pools::check(&parsed) {
        Ok(()) => Ok(()),
        Err(PoolProblem::TooMany) => problem(
            "subscribers.pools",
            format!("{} pools: at most {MAX_POOLS}", pools.len()),
        ),
        Err(PoolProblem::TooLarge) => problem(
            "subscribers.pools",
            format!(
                "more than {MAX_ADDRESSES} addresses in all (a /10): each address costs a {}-byte record",
                size_of::<egress_common::SubscriberRecord>()
            ),
        ),
        Err(PoolProblem::Overlap(a, b)) => problem(
            &format!("subscribers.pools[{b}]"),
            format!(
                "`{}` overlaps subscribers.pools[{a}] (`{}`)",
                pools[b], pools[a]
            ),
        ),
    }
}

fn problem<T>(key: &str, text: String) -> Result<T, Problem> {
    Err((key.to_owned(), text))
}

fn validate_ports(ports: &[u16]) -> Result<(), Problem> {
    if ports.is_empty() {
        return problem(
            "blocked_ports",
            "is empty: list at least one port (normally 25)".into(),
        );
    }
    for (i, port) in ports.iter().enumerate() {
        let key = format!("blocked_ports[{i}]");
        if *port == 0 {
            return problem(&key, "port 0 is not a valid TCP port".into());
        }
        if SUBMISSION_PORTS.contains(port) {
            return problem(
                &key,
                format!("port {port} is mail submission (RFC 6409/8314) and must never be blocked"),
            );
        }
    }
    Ok(())
}

fn absolute(key: &str, path: &str) -> Result<(), Problem> {
    if !Path::new(path).is_absolute() {
        return problem(key, format!("`{path}` must be an absolute path"));
    }
    Ok(())
}

fn validate_interfaces(config: &Config) -> Result<(), Problem> {
    let mut seen = HashSet::new();
    for (i, interface) in config.interfaces.iter().enumerate() {
        let key = format!("interface[{i}].name");
        let name = interface.name.as_str();
        if let Some(why) = invalid_interface_name(name) {
            return problem(
                &key,
                format!("`{name}` is not a valid interface name: {why}"),
            );
        }
        if !seen.insert((name, interface.hook)) {
            return problem(
                &format!("interface[{i}]"),
                format!(
                    "`{name}` with hook `{}` is listed twice",
                    interface.hook.as_str()
                ),
            );
        }
        if interface.hook == Hook::TcEgress && interface.xdp_mode != XdpModeSetting::Auto {
            return problem(
                &format!("interface[{i}].xdp_mode"),
                "applies only to hook = \"xdp\"".into(),
            );
        }
    }
    Ok(())
}

fn invalid_interface_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_INTERFACE_NAME {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("reserved")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        Some("contains '/', ':' or whitespace")
    } else {
        None
    }
}

fn validate_allowlists(config: &Config) -> Result<(), Problem> {
    // `[inbound]`'s lists are checked with the rest of it.
    for kind in [AllowKind::Relay, AllowKind::Exempt, AllowKind::Destination] {
        config.prefix_list(kind).check(kind.config_key())?;
    }
    Ok(())
}

/// `[identity]` and `[notify]`: the secret files are read at start, where a missing one is
/// named; here their paths, the clients and the URL.
fn validate_traceability(config: &Config) -> Result<(), Problem> {
    if let Some(identity) = &config.identity {
        absolute("identity.radius_secret_file", &identity.radius_secret_file)?;
        for (i, text) in identity.radius_clients.iter().enumerate() {
            prefix::parse(text)
                .map_err(|err| (format!("identity.radius_clients[{i}]"), err.to_string()))?;
        }
        if identity.retention_days == 0 {
            return problem("identity.retention_days", "must be at least 1".into());
        }
    }
    if let Some(notify) = &config.notify {
        crate::notify::delivery::check_url(&notify.webhook_url)
            .map_err(|why| ("notify.webhook_url".to_owned(), why))?;
        if let Some(file) = &notify.secret_file {
            absolute("notify.secret_file", file)?;
        }
        if notify.timeout_seconds == 0 || notify.timeout_seconds > 300 {
            return problem("notify.timeout_seconds", "must be within 1..=300".into());
        }
        if notify.max_queued == 0 {
            return problem("notify.max_queued", "must be at least 1".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::load::{ConfigError, parse};

    fn error_of(text: &str) -> String {
        match parse(Path::new("/etc/egress/egress.toml"), text) {
            Ok(_) => panic!("config should be refused:\n{text}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(parse(Path::new("x.toml"), "").is_ok());
    }

    #[test]
    fn errors_name_file_and_key() {
        let err = error_of("blocked_ports = [25, 587]");
        assert!(
            err.contains("/etc/egress/egress.toml: blocked_ports[1]"),
            "{err}"
        );
        let err = error_of("[allow]\nrelays = [\"10.1.2.3/8\"]");
        assert!(
            err.contains("allow.relays[0]") && err.contains("10.0.0.0/8"),
            "{err}"
        );
        let err = error_of("[allow]\nexempt = [\"::/0\"]");
        assert!(err.contains("allow.exempt[0]"), "{err}");
        let err = error_of("[subscribers]\nipv6_prefix_len = 0");
        assert!(err.contains("subscribers.ipv6_prefix_len"), "{err}");
        let err = error_of(
            "[[interface]]\nname = \"a\"\nhook = \"xdp\"\n[[interface]]\nname = \"a\"\nhook = \"xdp\"",
        );
        assert!(err.contains("interface[1]"), "{err}");
        let err = error_of("[[interface]]\nname = \"a/b\"\nhook = \"xdp\"");
        assert!(err.contains("interface[0].name"), "{err}");
    }

    #[test]
    fn identity_and_notify_errors_name_their_keys() {
        let identity = "[identity]\nradius_secret_file = \"/etc/egress/radius.secret\"\n";
        assert!(parse(Path::new("/etc/egress/egress.toml"), identity).is_ok());
        for (text, key) in [
            (
                "[identity]\nradius_secret_file = \"radius.secret\"",
                "identity.radius_secret_file",
            ),
            (
                "[identity]\nradius_secret_file = \"/s\"\nradius_clients = [\"192.0.2.300/32\"]",
                "identity.radius_clients[0]",
            ),
            (
                "[identity]\nradius_secret_file = \"/s\"\nretention_days = 0",
                "identity.retention_days",
            ),
            (
                "[identity]\nradius_listen = \"nowhere\"\nradius_secret_file = \"/s\"",
                "radius_listen",
            ),
            (
                "[notify]\nwebhook_url = \"ftp://abuse.example/\"",
                "notify.webhook_url",
            ),
            (
                "[notify]\nwebhook_url = \"https://a.example/\"\nsecret_file = \"x\"",
                "notify.secret_file",
            ),
            (
                "[notify]\nwebhook_url = \"https://a.example/\"\ntimeout_seconds = 0",
                "notify.timeout_seconds",
            ),
            (
                "[notify]\nwebhook_url = \"https://a.example/\"\nmax_queued = 0",
                "notify.max_queued",
            ),
            ("[notify]\nwebhook = \"https://a.example/\"", "webhook"),
        ] {
            let err = error_of(text);
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn syntax_errors_are_one_line_and_name_the_key() {
        let err = error_of("mode = \"bogus\"");
        assert!(!err.contains('\n') && err.contains("mode"), "{err}");
        let err = error_of("unknown_key = 1");
        assert!(err.contains("unknown_key"), "{err}");
        assert!(matches!(
            parse(Path::new("x"), "mode = 1"),
            Err(ConfigError::Syntax { .. })
        ));
    }
}
