//! DNS for the audit: hickory's resolver, pointed at `[mail] resolver` or the system's, with
//! answers reduced to what the checks compare. "No such record" is an empty answer; anything
//! else that goes wrong (timeout, SERVFAIL, refused) is an error naming the query.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use hickory_resolver::{
    TokioResolver,
    config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts},
    net::{NetError, runtime::TokioRuntimeProvider},
    proto::rr::{Name, RData, RecordType},
};
use mail_auth::MessageAuthenticator;

pub const UNREACHABLE: &str = "the DNS resolver did not answer";

/// How long one query may take before the check fails with a timeout.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// The audit's resolver; cheap to clone.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    /// Set when the resolver did not answer the first query: every lookup then fails at once
    /// instead of waiting for its own timeout.
    unreachable: Arc<AtomicBool>,
}

impl Dns {
    /// A resolver for `server`, or the system's (`/etc/resolv.conf`) when `None`.
    pub fn new(server: Option<SocketAddr>) -> Result<Dns, String> {
        Dns::with_timeout(server, QUERY_TIMEOUT)
    }

    /// [`Dns::new`] with another per-query timeout (tests of servers that never answer).
    pub fn with_timeout(server: Option<SocketAddr>, timeout: Duration) -> Result<Dns, String> {
        let (config, mut options) = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                (
                    ResolverConfig::from_name_servers(vec![server]),
                    ResolverOpts::default(),
                )
            }
            None => hickory_resolver::system_conf::read_system_conf()
                .map_err(|err| format!("cannot read the system resolver configuration: {err}"))?,
        };
        options.timeout = timeout;
        options.attempts = 2;
        // What DNS says, not what /etc/hosts of this router says.
        options.use_hosts_file = ResolveHosts::Never;
        // Each run asks afresh: a fix made a minute ago must show.
        options.cache_size = 0;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|err| format!("cannot build the DNS resolver: {err}"))?;
        Ok(Dns {
            resolver,
            unreachable: Arc::default(),
        })
    }

    /// One query (the SOA of `domain`) to see whether the resolver answers at all.
    pub async fn preflight(&self, domain: &str) {
        if let Err(err) = self.records(domain, RecordType::SOA).await
            && err.contains("timed out")
        {
            self.unreachable.store(true, Ordering::Relaxed);
        }
    }

    /// True after a failed [`Dns::preflight`].
    pub fn is_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Relaxed)
    }

    /// The SPF evaluator sharing this resolver.
    pub fn spf_evaluator(&self) -> MessageAuthenticator {
        MessageAuthenticator(self.resolver.clone())
    }

    /// MX records of `name`: (preference, exchange), most preferred first.
    pub async fn mx(&self, name: &str) -> Result<Vec<(u16, String)>, String> {
        let mut records: Vec<(u16, String)> = self
            .records(name, RecordType::MX)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::MX(mx) => Some((mx.preference, display_name(&mx.exchange))),
                _ => None,
            })
            .collect();
        records.sort();
        Ok(records)
    }

    /// The A and AAAA addresses of `name`.
    pub async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        let mut addresses = Vec::new();
        for kind in [RecordType::A, RecordType::AAAA] {
            for data in self.records(name, kind).await? {
                match data {
                    RData::A(a) => addresses.push(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => addresses.push(IpAddr::V6(aaaa.0)),
                    _ => {}
                }
            }
        }
        Ok(addresses)
    }

    /// The target of `name` when it is an alias (a CNAME record).
    pub async fn cname(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self
            .records(name, RecordType::CNAME)
            .await?
            .into_iter()
            .find_map(|data| match data {
                RData::CNAME(target) => Some(display_name(&target.0)),
                _ => None,
            }))
    }

    /// PTR names of `address`.
    pub async fn ptr(&self, address: IpAddr) -> Result<Vec<String>, String> {
        let name = reverse_name(address);
        Ok(self
            .records(&name, RecordType::PTR)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::PTR(ptr) => Some(display_name(&ptr.0)),
                _ => None,
            })
            .collect())
    }

    /// TXT records of `name`, each with its strings joined (RFC 7208 3.3).
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        Ok(self
            .records(name, RecordType::TXT)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    /// The answers of type `kind` (no CNAME records followed to other types).
    async fn records(&self, name: &str, kind: RecordType) -> Result<Vec<RData>, String> {
        if self.is_unreachable() {
            return Err(format!("{kind} lookup of {name} not tried: {UNREACHABLE}"));
        }
        let fqdn = Name::from_ascii(fqdn(name))
            .map_err(|err| format!("`{name}` is not a DNS name: {err}"))?;
        match self.resolver.lookup(fqdn, kind).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter(|record| record.record_type() == kind)
                .map(|record| record.data.clone())
                .collect()),
            Err(err) if is_no_records(&err) => Ok(Vec::new()),
            Err(err) => Err(format!("{kind} lookup of {name} failed: {err}")),
        }
    }
}

fn is_no_records(err: &NetError) -> bool {
    err.is_no_records_found() || err.is_nx_domain()
}

/// `name.` (absolute, so no search domain is ever appended).
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// A name as operators write it: lower case, no trailing dot.
pub fn display_name(name: &Name) -> String {
    normalise(&name.to_ascii())
}

/// Lower case, no trailing dot: names compare equal however they were written.
pub fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The in-addr.arpa / ip6.arpa name of `address`.
fn reverse_name(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(73);
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            name.push_str("ip6.arpa.");
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.25".parse().expect("ip")),
            "25.2.0.192.in-addr.arpa."
        );
        let v6 = reverse_name("2001:db8::25".parse().expect("ip"));
        assert!(v6.starts_with("5.2.0.0.0.0.0.0."), "{v6}");
        assert!(v6.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa."), "{v6}");
        assert_eq!(normalise("MX1.Isp.Example."), "mx1.isp.example");
    }
}
