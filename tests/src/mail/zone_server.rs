//! A DNS server on 127.0.0.1 (UDP and TCP, one ephemeral port) answering from the zone data
//! of one scenario of the OpenSPF RFC 7208 test suite, with the suite's conventions: `SPF`
//! records double as `TXT` unless the name says `TXT: NONE`, and `TIMEOUT` makes queries that
//! found nothing before it go unanswered. Stopped on drop.

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, ResponseCode},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA, CNAME, MX, PTR, TXT},
    },
};

/// One entry of a name's zone data, in order.
#[derive(Clone, Debug)]
pub enum Entry {
    Record(RecordType, RData),
    /// `TXT: NONE`: no TXT record, and SPF records are not copied to TXT.
    NoTxt,
    Timeout,
}

pub type ZoneData = HashMap<String, Vec<Entry>>;

/// Lower case, no trailing dot.
pub fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

enum Answer {
    Records(Vec<Record>),
    NxDomain,
    Timeout,
}

/// The zone data key of a queried name from its raw labels: `to_ascii` would escape the
/// spaces and other bytes some of the suite's names hold (`macro%percent  space...`).
fn query_key(name: &Name) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|label| String::from_utf8_lossy(label).into_owned())
        .collect();
    key(&labels.join("."))
}

fn lookup(zones: &ZoneData, name: &Name, kind: RecordType, depth: u8) -> Answer {
    let Some(entries) = zones.get(&query_key(name)) else {
        return Answer::NxDomain;
    };
    let copies_spf = !entries
        .iter()
        .any(|e| matches!(e, Entry::NoTxt | Entry::Record(RecordType::TXT, _)));
    let mut found = Vec::new();
    for entry in entries {
        match entry {
            Entry::Timeout if found.is_empty() => return Answer::Timeout,
            Entry::Record(RecordType::CNAME, data) if kind != RecordType::CNAME && depth < 8 => {
                found.push(Record::from_rdata(name.clone(), 60, data.clone()));
                if let RData::CNAME(target) = data {
                    match lookup(zones, &target.0, kind, depth + 1) {
                        Answer::Records(more) => found.extend(more),
                        Answer::Timeout => return Answer::Timeout,
                        Answer::NxDomain => {}
                    }
                }
            }
            Entry::Record(record_kind, data)
                if *record_kind == kind
                    || (kind == RecordType::TXT
                        && copies_spf
                        && *record_kind == RecordType::Unknown(99)) =>
            {
                found.push(Record::from_rdata(name.clone(), 60, data.clone()));
            }
            _ => {}
        }
    }
    Answer::Records(found)
}

fn respond(zones: &ZoneData, query: &[u8], limit: usize) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let question = request.queries.first()?.clone();
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.message_type = MessageType::Response;
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.add_query(question.clone());
    match lookup(zones, question.name(), question.query_type(), 0) {
        Answer::Timeout => return None,
        Answer::NxDomain => response.metadata.response_code = ResponseCode::NXDomain,
        Answer::Records(records) => {
            response.add_answers(records);
        }
    }
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.answers.clear();
    response.metadata.truncation = true;
    response.to_vec().ok()
}

pub struct ZoneServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ZoneServer {
    pub fn start(zones: ZoneData) -> ZoneServer {
        let zones = Arc::new(zones);
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("udp addr");
        let stop = Arc::new(AtomicBool::new(false));
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("udp timeout");
        tcp.set_nonblocking(true).expect("tcp nonblocking");
        let udp_thread = {
            let (zones, stop) = (zones.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, peer)) = udp.recv_from(&mut buf)
                        && let Some(reply) = respond(&zones, &buf[..n], 512)
                    {
                        let _ = udp.send_to(&reply, peer);
                    }
                }
            })
        };
        let tcp_thread = {
            let (zones, stop) = (zones, stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                            let mut len = [0u8; 2];
                            if stream.read_exact(&mut len).is_err() {
                                continue;
                            }
                            let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                            if stream.read_exact(&mut query).is_err() {
                                continue;
                            }
                            if let Some(reply) = respond(&zones, &query, 65535) {
                                let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                                framed.extend_from_slice(&reply);
                                let _ = stream.write_all(&framed);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        ZoneServer {
            addr,
            stop,
            threads: vec![udp_thread, tcp_thread],
        }
    }
}

/// A UDP socket and a TCP listener on the same ephemeral loopback port.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

impl Drop for ZoneServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Record data from the suite's YAML: `A: 1.2.3.4`, `MX: [10, host]`, `TXT: "..."` or a list
/// of strings, `SPF` (kept under type 99, served as TXT), `PTR`, `CNAME`, `AAAA`.
pub fn entry(kind: &str, value: &serde_norway::Value) -> Option<Entry> {
    use serde_norway::Value;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let name = |v: &Value| {
        text(v).and_then(|s| Name::from_ascii(format!("{}.", s.trim_end_matches('.'))).ok())
    };
    // A TXT record needs at least one string on the wire; the suite's "null text" (`SPF: []`)
    // becomes one empty string rather than a reply that cannot be encoded (and times out).
    let strings = |v: &Value| {
        let mut strings = match v {
            Value::Sequence(items) => items.iter().filter_map(text).collect::<Vec<_>>(),
            other => text(other).into_iter().collect(),
        };
        if strings.is_empty() {
            strings.push(String::new());
        }
        strings
    };
    Some(match kind {
        "TXT" if text(value).as_deref() == Some("NONE") => Entry::NoTxt,
        "TXT" => Entry::Record(RecordType::TXT, RData::TXT(TXT::new(strings(value)))),
        // Type 99 records are only ever served as TXT here; the TXT data rides along.
        "SPF" => Entry::Record(
            RecordType::Unknown(99),
            RData::TXT(TXT::new(strings(value))),
        ),
        "A" => Entry::Record(
            RecordType::A,
            RData::A(A(text(value)?.parse::<Ipv4Addr>().ok()?)),
        ),
        "AAAA" => Entry::Record(
            RecordType::AAAA,
            RData::AAAA(AAAA(text(value)?.parse::<Ipv6Addr>().ok()?)),
        ),
        "PTR" => Entry::Record(RecordType::PTR, RData::PTR(PTR(name(value)?))),
        "CNAME" => Entry::Record(RecordType::CNAME, RData::CNAME(CNAME(name(value)?))),
        "MX" => {
            let Value::Sequence(pair) = value else {
                return None;
            };
            let preference = pair.first().and_then(Value::as_u64)? as u16;
            Entry::Record(
                RecordType::MX,
                RData::MX(MX::new(preference, name(pair.get(1)?)?)),
            )
        }
        _ => return None,
    })
}
