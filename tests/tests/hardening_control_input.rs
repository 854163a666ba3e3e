//! Control-socket robustness: oversized, truncated, mistyped, unknown, non-UTF-8 and randomly
//! mutated requests, and a thousand connections at once, all get an answer (an error where
//! the request is bad); the agent keeps running and its allowlists do not change.
use std::{
    io::{Read as _, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use egress_agent::control::Request;
use tests::agent::{
    Agent, AgentFiles, Lab, RELAY,
    mutate::{Rng, mutate},
};

const SEED: u64 = 0x0063_6f6e_7472_6f6c; // "control"

/// Sends raw bytes, half-closes, and returns the reply (bounded by a 30 s hang guard).
fn exchange(socket: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut stream = UnixStream::connect(socket).expect("connect to the control socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // A large request may be cut off by the agent mid-write; its reply still counts.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read the reply");
    reply
}

fn reply_json(reply: &[u8], what: &str) -> serde_json::Value {
    serde_json::from_slice(reply).unwrap_or_else(|err| {
        panic!(
            "{what}: the reply is not JSON ({err}): {:?}",
            String::from_utf8_lossy(reply)
        )
    })
}

fn assert_refused(socket: &Path, bytes: &[u8], what: &str) {
    let reply = reply_json(&exchange(socket, bytes), what);
    assert_eq!(reply["ok"], false, "{what}: {reply}");
    assert!(
        !reply["message"].as_str().unwrap_or("").is_empty(),
        "{what}: an error says what is wrong: {reply}"
    );
}

/// True for requests that would legitimately change state if a mutation made them valid.
fn mutates_state(bytes: &[u8]) -> bool {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or(bytes);
    matches!(
        serde_json::from_slice::<Request>(line),
        Ok(Request::AllowAdd { .. } | Request::AllowRemove { .. } | Request::Detach { .. })
    )
}

#[test]
fn bad_requests_get_errors_and_change_nothing() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, &format!("[allow]\nrelays = [\"{RELAY}/32\"]"));
    let mut agent = Agent::start(&lab, files);
    agent.cli_ok(&["exempt", "add", "203.0.113.0/24", "--comment", "fixture"]);
    let before = agent.allowlists();
    let socket = agent.files.socket.clone();

    let oversized = format!(
        "{{\"request\":\"allow_add\",\"kind\":\"relay\",\"prefix\":\"192.0.2.99\",\"comment\":\"{}\"}}\n",
        "x".repeat(200_000)
    );
    let fixed: Vec<(&str, Vec<u8>)> = vec![
        ("oversized", oversized.into_bytes()),
        ("oversized without newline", vec![b'{'; 100_000]),
        (
            "truncated",
            br#"{"request":"allow_add","kind":"relay","prefix":"#.to_vec(),
        ),
        ("empty", Vec::new()),
        (
            "wrong type",
            br#"{"request":"allow_add","kind":"relay","prefix":42}"#.to_vec(),
        ),
        (
            "wrong kind",
            br#"{"request":"allow_add","kind":"mx","prefix":"192.0.2.99"}"#.to_vec(),
        ),
        (
            "unknown field",
            br#"{"request":"status","extra":1}"#.to_vec(),
        ),
        ("unknown request", br#"{"request":"format_disk"}"#.to_vec()),
        (
            "non-UTF-8",
            b"{\"request\":\"allow_add\",\"kind\":\"relay\",\"prefix\":\"\xff\xfe\"}\n".to_vec(),
        ),
        ("NUL bytes", b"\x00\x00\x00\n".to_vec()),
        (
            "deep nesting",
            [vec![b'['; 50_000], b"\n".to_vec()].concat(),
        ),
        (
            "bad prefix",
            br#"{"request":"allow_add","kind":"relay","prefix":"0.0.0.0/0"}"#.to_vec(),
        ),
        (
            "remove config entry",
            br#"{"request":"allow_remove","kind":"relay","prefix":"192.0.2.10/32"}"#.to_vec(),
        ),
        ("negative n", br#"{"request":"top","n":-1}"#.to_vec()),
    ];
    for (what, bytes) in &fixed {
        assert_refused(&socket, bytes, what);
    }

    let templates: &[&[u8]] = &[
        br#"{"request":"allow_add","kind":"relay","prefix":"192.0.2.99","comment":"c"}"#,
        br#"{"request":"allow_remove","kind":"exempt","prefix":"203.0.113.0/24"}"#,
        br#"{"request":"allow_list","kind":"relay"}"#,
        br#"{"request":"status"}"#,
        br#"{"request":"top","n":5}"#,
        br#"{"request":"subscriber","address":"192.0.2.2"}"#,
        br#"{"request":"detach"}"#,
    ];
    let mut rng = Rng::new(SEED);
    let mut sent = 0;
    while sent < 400 {
        let template = templates[rng.below(templates.len())];
        let mut bytes = mutate(&mut rng, template);
        bytes.push(b'\n');
        if mutates_state(&bytes) {
            continue;
        }
        let reply = exchange(&socket, &bytes);
        reply_json(
            &reply,
            &format!("mutated {:?}", String::from_utf8_lossy(&bytes)),
        );
        sent += 1;
    }

    assert!(
        agent.is_running(),
        "the agent survived:\n{}",
        agent.log_text()
    );
    assert_eq!(agent.allowlists(), before, "no state changed");
}

#[test]
fn a_thousand_connections_at_once_are_all_answered() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, &format!("[allow]\nrelays = [\"{RELAY}/32\"]"));
    let mut agent = Agent::start(&lab, files);
    let before = agent.allowlists();
    let socket = agent.files.socket.clone();

    let mut streams = Vec::new();
    for i in 0..1000 {
        let mut stream = UnixStream::connect(&socket).expect("connect (backlog holds the rest)");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let request: &[u8] = if i % 2 == 0 {
            b"{\"request\":\"allow_list\",\"kind\":\"relay\"}\n"
        } else {
            b"{\"request\":\"allow_add\",\"kind\":\"relay\"\n"
        };
        stream.write_all(request).expect("send request");
        streams.push((i, stream));
    }
    for (i, mut stream) in streams {
        let mut reply = Vec::new();
        stream
            .read_to_end(&mut reply)
            .expect("every connection is answered");
        let reply = reply_json(&reply, &format!("connection {i}"));
        assert_eq!(reply["ok"], i % 2 == 0, "connection {i}: {reply}");
    }
    assert!(
        agent.is_running(),
        "the agent survived:\n{}",
        agent.log_text()
    );
    assert_eq!(agent.allowlists(), before, "no state changed");
}
