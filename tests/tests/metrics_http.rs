//! `/metrics` behaves like every other exporter's: keep-alive, HEAD, 404/405, gzip when asked,
//! and bounded request heads and connections. Served in-process over real pinned maps.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use egress_agent::{config::ModeSetting, status::AgentStatus};
use tests::{
    dataplane::Policy,
    metrics::{PinnedDataplane, Served, default_config, promtool_check_metrics, value},
};

struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// One request on an open connection; reads exactly one response (Content-Length framed).
fn exchange(stream: &mut BufReader<TcpStream>, request: &str) -> Answer {
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .expect("send request");
    let mut status_line = String::new();
    stream.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("header has a colon");
        headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |len| len.parse().expect("content-length"));
    let mut body = vec![0; length];
    if !request.starts_with("HEAD ") {
        stream.read_exact(&mut body).expect("body");
    } else {
        body.clear();
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    BufReader::new(stream)
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: egress\r\n{extra}\r\n")
}

fn served() -> (PinnedDataplane, Served) {
    let dataplane = PinnedDataplane::load(&Policy::default(), 1024);
    let root = dataplane.pins().root().display().to_string();
    let status = AgentStatus::new(ModeSetting::Enforce, &root, 1024);
    let served = Served::start(dataplane.context(default_config(), status));
    (dataplane, served)
}

#[test]
fn metrics_http_keeps_alive_answers_head_404_405_and_gzips_when_asked() {
    let (_dataplane, served) = served();
    let mut stream = connect(served.addr);

    // Several requests on one connection, as Prometheus scrapes.
    let plain = exchange(&mut stream, &get("/metrics", ""));
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(!plain.headers.contains_key("content-encoding"));
    let text = String::from_utf8(plain.body).expect("utf-8 exposition");
    promtool_check_metrics(&text);
    assert_eq!(
        value(&text, "egress_tracked_subscribers_max", &[]),
        Some(1024.0)
    );

    let zipped = exchange(&mut stream, &get("/metrics", "Accept-Encoding: gzip\r\n"));
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.headers["content-encoding"], "gzip");
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(zipped.body.as_slice())
        .read_to_string(&mut unzipped)
        .expect("a gzip body");
    promtool_check_metrics(&unzipped);
    assert_eq!(
        value(&unzipped, "egress_tracked_subscribers_max", &[]),
        Some(1024.0)
    );
    assert!(
        zipped.body.len() < unzipped.len() / 2,
        "gzip should shrink {} bytes, gave {}",
        unzipped.len(),
        zipped.body.len()
    );
    let refused = exchange(
        &mut stream,
        &get("/metrics", "Accept-Encoding: gzip;q=0\r\n"),
    );
    assert!(!refused.headers.contains_key("content-encoding"));

    let head = exchange(
        &mut stream,
        "HEAD /metrics HTTP/1.1\r\nHost: egress\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    let length: usize = head.headers["content-length"].parse().expect("length");
    assert!(length > 1000, "HEAD announces the body's length: {length}");

    let missing = exchange(&mut stream, &get("/nope", ""));
    assert_eq!(missing.status, 404);
    let post = exchange(
        &mut stream,
        "POST /metrics HTTP/1.1\r\nHost: egress\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET, HEAD");

    // Still the same connection.
    assert_eq!(exchange(&mut stream, &get("/metrics", "")).status, 200);
}

#[test]
fn metrics_http_bounds_request_heads_and_connections() {
    let (_dataplane, served) = served();

    // A 64 KiB header is refused, not buffered.
    let mut stream = connect(served.addr);
    let huge = format!("X-Filler: {}\r\n", "a".repeat(64 * 1024));
    let _ = stream
        .get_mut()
        .write_all(get("/metrics", &huge).as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "an oversized head must be refused: {answer:?}"
    );

    // 32 idle connections take every slot; the next one is closed at once.
    let idle: Vec<_> = (0..32).map(|_| connect(served.addr)).collect();
    // Let the server accept all of them first.
    std::thread::sleep(Duration::from_millis(500));
    let mut extra = connect(served.addr);
    let _ = extra.get_mut().write_all(get("/metrics", "").as_bytes());
    let mut rest = Vec::new();
    let _ = extra.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "a 33rd connection must be closed unanswered, got {} bytes",
        rest.len()
    );
    drop(idle);
    // Slots are released when the idle clients go away.
    let mut answered = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let mut again = connect(served.addr);
        let _ = again.get_mut().write_all(get("/metrics", "").as_bytes());
        let mut line = String::new();
        if again.read_line(&mut line).is_ok() && line.starts_with("HTTP/1.1 200") {
            answered = true;
            break;
        }
    }
    assert!(
        answered,
        "the server answers again once the idle connections are gone"
    );
}
