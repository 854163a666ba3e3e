//! The IPv4 source index under change: a reload that adds 200,000 exempt prefixes never
//! blocks the relay or the exempt customer that stay, and never lets the subscriber through
//! (real SYNs through the attached programs for the whole reload); and an index word changed
//! behind the agent's back (bpftool) is put back and counted as drift.

use std::{
    net::TcpListener,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tests::agent::{
    Agent, AgentFiles, EXEMPT, Lab, RELAY, SUBSCRIBER,
    allowlists::{allow, many_exempt},
    kernel::bpftool,
    subscriber_record,
    traffic::{SynStream, connects, smtp_listener},
    wait_for,
};

const EXTRA_PREFIXES: u32 = 200_000;

/// Addresses of the peers whose port-25 connections the listener accepted, until `stop`.
fn accepted_peers(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    std::thread::spawn(move || {
        let mut peers = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match listener.accept() {
                Ok((_, peer)) => peers.push(peer.ip().to_string()),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        peers
    })
}

fn was_blocked(pin_dir: &Path, address: &str) -> bool {
    subscriber_record(pin_dir, address.parse().expect("address")).is_some()
}

#[test]
fn large_reload_misjudges_nothing_and_index_drift_is_reverted() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, &allow(&[]));
    let agent = Agent::start(&lab, files);
    let listener = smtp_listener(&lab);
    assert!(connects(&lab, RELAY) && connects(&lab, EXEMPT));
    // First with a small allowlist, whose drift check runs every 2 s.
    drift_on_the_index_is_reverted(&lab, &agent);

    let stop = Arc::new(AtomicBool::new(false));
    let peers = accepted_peers(listener, stop.clone());

    // The subscriber sends a SYN every 10 ms and the relay and exempt customer connect in a
    // loop for the whole reload; none of their SYNs may be judged wrongly.
    let stream = SynStream::start(&lab, SUBSCRIBER, 15.0);
    agent
        .files
        .write_config(&lab, &allow(&many_exempt(EXTRA_PREFIXES)));
    let started = Instant::now();
    agent.signal(libc::SIGHUP);
    let wanted = u64::from(EXTRA_PREFIXES) + 64 + 1;
    let done = AtomicBool::new(false);
    let (rounds, refused) = std::thread::scope(|scope| {
        let allowed = scope.spawn(|| {
            let (mut rounds, mut refused) = (0u32, Vec::new());
            while !done.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(90) {
                for source in [RELAY, EXEMPT] {
                    if !connects(&lab, source) {
                        refused.push(source);
                    }
                }
                rounds += 1;
            }
            (rounds, refused)
        });
        wait_for("the reload to be applied", 60, || {
            agent.status()["allowlist_entries"]["exempt"].as_u64() == Some(wanted)
        });
        println!("reload applied after {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(500));
        done.store(true, Ordering::Relaxed);
        allowed.join().expect("connection thread")
    });
    assert!(refused.is_empty(), "refused during the reload: {refused:?}");
    println!("{rounds} relay + exempt connection rounds during the reload");
    for _ in 0..5 {
        assert!(connects(&lab, RELAY) && connects(&lab, EXEMPT));
    }
    let pin_dir = agent.files.pin_dir.clone();
    assert!(
        !was_blocked(&pin_dir, RELAY),
        "the relay hit the blocked path"
    );
    assert!(
        !was_blocked(&pin_dir, EXEMPT),
        "the exempt customer hit the blocked path"
    );
    assert!(
        was_blocked(&pin_dir, SUBSCRIBER),
        "the subscriber's SYNs were judged"
    );
    assert!(agent.status()["config_last_reload_successful"] == true);
    // A prefix from the reload passes: the index holds the new entries.
    assert!(
        agent.cli_ok(&["exempt", "list"]).contains("100.64.0.16/30"),
        "the reloaded exempt list is in effect"
    );

    stop.store(true, Ordering::Relaxed);
    stream.finish();
    let peers = peers.join().expect("listener thread");
    assert!(
        !peers.iter().any(|p| p == SUBSCRIBER),
        "the subscriber got through: {peers:?}"
    );
}

/// The index element holding 192.0.2.0/24 (relay /32 and exempt /32 inside): key and value
/// as bpftool hex bytes.
fn lab_word_key() -> Vec<String> {
    let slot = egress_common::index::slot_of(0xC000_0200);
    hex(&egress_common::index::word_of(slot).to_le_bytes())
}

fn hex(bytes: &[u8]) -> Vec<String> {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn index_word(map: &str) -> serde_json::Value {
    let mut args = vec!["-j", "map", "lookup", "pinned", map, "key", "hex"];
    let key = lab_word_key();
    args.extend(key.iter().map(String::as_str));
    let out = bpftool(&args);
    assert!(
        out.status.success(),
        "bpftool lookup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("bpftool json")["value"].clone()
}

fn write_index_word(map: &str, value: u64) {
    let mut args = vec!["map", "update", "pinned", map, "key", "hex"];
    let key = lab_word_key();
    let value = hex(&value.to_le_bytes());
    args.extend(key.iter().map(String::as_str));
    args.extend(["value", "hex"]);
    args.extend(value.iter().map(String::as_str));
    let out = bpftool(&args);
    assert!(
        out.status.success(),
        "bpftool update: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn drift_on_the_index_is_reverted(lab: &Lab, agent: &Agent) {
    let path = agent.files.pin_dir.join("maps/EGRESS_SOURCE_INDEX_V4");
    let map = path.to_str().expect("utf-8 pin path");
    let good = index_word(map);
    let drift = |kind: &str| {
        agent.status()["allowlist_drift"][kind]
            .as_u64()
            .unwrap_or(0)
    };
    let (relay_before, exempt_before) = (drift("relay"), drift("exempt"));

    // Every slot of the word says "exempt": the subscriber's /24 would pass.
    write_index_word(map, 0x0002_0002_0002_0002);
    wait_for("the index word to be restored", 20, || {
        index_word(map) == good
    });
    assert!(drift("exempt") > exempt_before, "index drift counted");
    assert!(
        !connects(lab, SUBSCRIBER),
        "the subscriber is blocked again"
    );

    // Zeroed: the relay's /32 is no longer named; restored and counted as relay drift.
    write_index_word(map, 0);
    wait_for("the zeroed index word to be restored", 20, || {
        index_word(map) == good
    });
    assert!(drift("relay") > relay_before, "relay drift counted");
    assert!(connects(lab, RELAY), "the relay passes again");
    assert!(
        agent
            .log_text()
            .contains("IPv4 source index was changed outside the agent"),
        "the drift is logged"
    );
}
