//! The inbound program's lifecycle under traffic: a new program version (inbound.ports
//! changes) replaces the old one by link update with no gap, and a SIGHUP reload of the inbound
//! lists adds before it removes. Continuous connection attempts from a non-sender to the
//! protected MX never get through, and the spam checker's never fail.

use std::{
    net::{SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use socket2::{Domain, Socket, Type};
use tests::{
    agent::{
        Agent, AgentFiles, EXEMPT, Lab, RELAY,
        kernel::{pinned_link, xdp_prog_id},
        wait_for,
    },
    netns::{addr, in_netns},
};

const MX: &str = RELAY;
const HOST: &str = EXEMPT;
const CHECKER: &str = "198.51.100.40";
const OTHER: &str = "198.51.100.3";

fn write(files: &AgentFiles, lab: &Lab, ports: &str, protected: &str, senders: &str) {
    files.write_config_for(
        &[(&lab.rtr_up_if, "xdp-inbound")],
        &format!(
            "[inbound]\nports = [{ports}]\nprotected_mx = [{protected}]\nmx_senders = [{senders}]\n"
        ),
    );
}

fn connects(lab: &Lab, source: &str, destination: &str, port: u16) -> bool {
    tests::agent::traffic::connects_between(&lab.net, source, destination, port)
}

/// Connection attempts from `source` to the MX's port 25 in a loop until stopped (bounded).
struct Probe {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Probe {
    fn start(lab: &Lab, source: &'static str, timeout: Duration) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let net = lab.net.path().to_owned();
        let thread = {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let ns = std::fs::File::open(&net).expect("open the Internet namespace");
                // SAFETY: setns on this thread only, with a namespace fd we own.
                assert_eq!(
                    unsafe {
                        libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET)
                    },
                    0
                );
                let target = SocketAddr::new(MX.parse().expect("ip"), 25);
                for _ in 0..5000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
                    socket
                        .bind(&SocketAddr::new(source.parse().expect("ip"), 0).into())
                        .expect("bind");
                    let counter = if socket.connect_timeout(&target.into(), timeout).is_ok() {
                        &ok
                    } else {
                        &failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Probe {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    fn total(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    /// (connected, failed)
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("probe thread");
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn inbound_program_upgrade_and_list_reload_have_no_gap() {
    let lab = Lab::new();
    for extra in [CHECKER, OTHER] {
        addr(&lab.net, &lab.net_if, &format!("{extra}/24"));
    }
    let _listeners: Vec<TcpListener> = [(MX, 25), (MX, 2526), (HOST, 25)]
        .into_iter()
        .map(|(a, p)| {
            in_netns(&lab.sub, || {
                TcpListener::bind((a, p)).unwrap_or_else(|err| panic!("bind {a}:{p}: {err}"))
            })
        })
        .collect();
    // Accept and close what arrives, so a full backlog never refuses the checker's SYNs.
    for listener in &_listeners {
        let listener = listener.try_clone().expect("clone listener");
        std::thread::spawn(move || listener.incoming().for_each(drop));
    }
    let files = AgentFiles::new();
    let protected_both = format!("\"{MX}/32\", \"{HOST}/32\"");
    let checker = format!("\"{CHECKER}/32\"");
    write(&files, &lab, "25", &protected_both, &checker);
    let mut agent = Agent::start(&lab, files);
    let up = lab.rtr_up_if.clone();
    let pin = agent
        .files
        .pin_dir
        .join("links")
        .join("xdp-inbound")
        .join(&up);
    assert!(!connects(&lab, OTHER, MX, 25), "the guard is on");
    assert!(connects(&lab, CHECKER, MX, 25), "the checker passes");
    assert!(
        connects(&lab, OTHER, MX, 2526),
        "2526 is not an inbound port yet"
    );
    let (link, first) = pinned_link(&pin);
    assert_eq!(xdp_prog_id(&lab.rtr, &up), Some(first));

    // (a) A new program version (inbound.ports changes) and a restart, under traffic.
    let refused = Probe::start(&lab, OTHER, Duration::from_millis(100));
    let accepted = Probe::start(&lab, CHECKER, Duration::from_millis(900));
    wait_for("probes running", 10, || {
        refused.total() > 5 && accepted.total() > 5
    });
    write(&agent.files, &lab, "25, 2526", &protected_both, &checker);
    agent.signal(libc::SIGHUP);
    wait_for("the new inbound program in the link", 30, || {
        pinned_link(&pin).1 != first
    });
    let (same_link, upgraded) = pinned_link(&pin);
    assert_eq!(
        same_link, link,
        "the program was swapped into the same link"
    );
    assert_eq!(
        xdp_prog_id(&lab.rtr, &up),
        Some(upgraded),
        "the new version enforces"
    );
    assert!(agent.stop_with(libc::SIGTERM).success());
    agent.restart(&lab);
    let (restart_link, restarted) = pinned_link(&pin);
    assert_eq!(restart_link, link, "adopted, not re-attached");
    assert_ne!(
        restarted, upgraded,
        "the restarted agent swapped its program in"
    );

    // (b) Reload of the lists: the checker moves to a covering prefix, HOST is unprotected.
    let before = (refused.total(), accepted.total());
    write(
        &agent.files,
        &lab,
        "25, 2526",
        &format!("\"{MX}/32\""),
        "\"198.51.100.32/27\"",
    );
    agent.signal(libc::SIGHUP);
    wait_for("the reload to unprotect HOST", 20, || {
        connects(&lab, OTHER, HOST, 25)
    });
    // Enough attempts on both sides of every change for the counts below to mean something;
    // a fast upgrade must not leave the probes with too few to judge.
    const ENOUGH: u64 = 20;
    wait_for("probes after the reload", 20, || {
        refused.total() > (before.0 + 5).max(ENOUGH)
            && accepted.total() > (before.1 + 5).max(ENOUGH)
    });
    let (leaked, refused_count) = refused.finish();
    let (passed, failed) = accepted.finish();
    assert_eq!(
        leaked, 0,
        "non-sender connections leaked (of {refused_count} refused)"
    );
    assert_eq!(
        failed, 0,
        "spam checker connections failed (of {passed} passed)"
    );
    assert!(
        refused_count > ENOUGH && passed > ENOUGH,
        "too few attempts: {refused_count}, {passed}"
    );
    assert!(
        !connects(&lab, OTHER, MX, 2526),
        "the upgraded program guards 2526"
    );
    assert!(
        connects(&lab, CHECKER, MX, 2526),
        "the checker passes on 2526"
    );
    assert!(!connects(&lab, OTHER, MX, 25), "still guarded");
}
