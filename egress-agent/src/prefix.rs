//! Allowlist prefixes as operators type them: bare addresses mean /32 or /128, and anything that
//! is not the canonical form of a specific network is refused with a message showing why.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrefixError {
    #[error("`{input}` is not an IP address or CIDR prefix")]
    Invalid { input: String },
    #[error("`{input}` is not canonical (host bits set): did you mean {canonical}?")]
    NotCanonical { input: String, canonical: IpNet },
    #[error("`{input}` would match every address; refusing a default route prefix")]
    Everything { input: String },
    #[error("`{input}` is IPv4-mapped IPv6, which never appears on the wire; use the IPv4 form")]
    Ipv4Mapped { input: String },
}

/// Parses `input` into a canonical prefix.
pub fn parse(input: &str) -> Result<IpNet, PrefixError> {
    let trimmed = input.trim();
    let net = match trimmed.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match trimmed.parse::<IpAddr>() {
            Ok(addr) => IpNet::from(addr),
            Err(_) => {
                return Err(PrefixError::Invalid {
                    input: input.to_owned(),
                });
            }
        },
    };
    if net.prefix_len() == 0 {
        return Err(PrefixError::Everything {
            input: input.to_owned(),
        });
    }
    if let IpNet::V6(v6) = net
        && v6.network().to_ipv4_mapped().is_some()
        && v6.prefix_len() >= 96
    {
        return Err(PrefixError::Ipv4Mapped {
            input: input.to_owned(),
        });
    }
    let canonical = net.trunc();
    if canonical != net {
        return Err(PrefixError::NotCanonical {
            input: input.to_owned(),
            canonical,
        });
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_addresses_are_host_prefixes() {
        assert_eq!(
            parse("192.0.2.10").map(|n| n.to_string()),
            Ok("192.0.2.10/32".into())
        );
        assert_eq!(
            parse("2001:db8::25").map(|n| n.to_string()),
            Ok("2001:db8::25/128".into())
        );
    }

    #[test]
    fn non_canonical_shows_the_canonical_form() {
        let err = parse("10.1.2.3/8")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("10.0.0.0/8"), "{err}");
    }

    #[test]
    fn refuses_everything_mapped_and_garbage() {
        assert!(matches!(
            parse("0.0.0.0/0"),
            Err(PrefixError::Everything { .. })
        ));
        assert!(matches!(parse("::/0"), Err(PrefixError::Everything { .. })));
        assert!(matches!(
            parse("::ffff:192.0.2.1"),
            Err(PrefixError::Ipv4Mapped { .. })
        ));
        assert!(matches!(
            parse("192.0.2.300"),
            Err(PrefixError::Invalid { .. })
        ));
        assert!(matches!(
            parse("192.0.2.0/33"),
            Err(PrefixError::Invalid { .. })
        ));
    }
}
