//! Zone files for the ISP `isp.example`: a correct set-up and the broken variants operators
//! ship (each breaks one thing, and says which check must catch it).

/// A PTR lives in `2.0.192.in-addr.arpa` (192.0.2.0/24) and `1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa`
/// (2001:db8:1::/48).
pub const V4_REVERSE: &str = "2.0.192.in-addr.arpa";
pub const V6_REVERSE: &str = "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
/// The owner name of 2001:db8:1::25 inside [`V6_REVERSE`].
const V6_RELAY_OWNER: &str = "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0";

/// The records of the three zones, one per line, before the SOA/NS header is added.
#[derive(Clone)]
pub struct Zones {
    pub forward: Vec<String>,
    pub v4: Vec<String>,
    pub v6: Vec<String>,
}

impl Zones {
    /// Every check passes: MX 10 mx1 (primary) and 20 mx2 (spam checker), each with its own
    /// A and MX; the relay smtp.isp.example with forward-confirmed PTRs; SPF listing it.
    pub fn correct() -> Zones {
        let lines = |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
        Zones {
            forward: lines(
                "@ MX 10 mx1\n\
                 @ MX 20 mx2\n\
                 @ TXT \"v=spf1 ip4:192.0.2.25 ip6:2001:db8:1::25 -all\"\n\
                 mx1 A 192.0.2.30\n\
                 mx1 MX 10 mx1\n\
                 mx2 A 192.0.2.40\n\
                 mx2 MX 10 mx2\n\
                 smtp A 192.0.2.25\n\
                 smtp AAAA 2001:db8:1::25",
            ),
            v4: lines("25 PTR smtp.isp.example.\n30 PTR mx1.isp.example.\n40 PTR mx2.isp.example."),
            v6: vec![format!("{V6_RELAY_OWNER} PTR smtp.isp.example.")],
        }
    }

    /// Removes the forward records starting with `prefix`.
    pub fn without(mut self, prefix: &str) -> Zones {
        self.forward.retain(|line| !line.starts_with(prefix));
        self
    }

    /// Adds a forward record.
    pub fn with(mut self, line: &str) -> Zones {
        self.forward.push(line.to_owned());
        self
    }

    /// Replaces the IPv4 reverse zone's records.
    pub fn with_v4_reverse(mut self, lines: &[&str]) -> Zones {
        self.v4 = lines.iter().map(|l| (*l).to_owned()).collect();
        self
    }

    /// Replaces the SPF record.
    pub fn with_spf(self, record: &str) -> Zones {
        self.without("@ TXT").with(&format!("@ TXT \"{record}\""))
    }

    /// (origin, zone file text) for knot.
    pub fn files(&self) -> Vec<(String, String)> {
        let file = |origin: &str, records: &[String]| {
            let mut text = format!(
                "$ORIGIN {origin}.\n$TTL 60\n\
                 @ SOA ns.isp.example. hostmaster.isp.example. 1 3600 600 86400 60\n\
                 @ NS ns.isp.example.\n"
            );
            if origin == "isp.example" {
                text.push_str("ns A 192.0.2.53\n");
            }
            for line in records {
                text.push_str(line);
                text.push('\n');
            }
            (origin.to_owned(), text)
        };
        vec![
            file("isp.example", &self.forward),
            file(V4_REVERSE, &self.v4),
            file(V6_REVERSE, &self.v6),
        ]
    }
}
