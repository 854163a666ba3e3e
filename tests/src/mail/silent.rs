//! A server that hangs: TCP listeners inside a test namespace that accept every connection and
//! never send a byte (no greeting, no TLS handshake, no HTTP answer), held open until the guard
//! drops. The audit tests point the SMTP probes at it, the notify tests the webhook.

use std::{
    io::ErrorKind,
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use egress_lab::Netns;

/// How often the accepting thread looks for new connections and for the stop request.
const POLL: Duration = Duration::from_millis(50);

/// The listeners' thread; dropping it closes every listener and accepted connection.
pub struct SilentServer {
    addresses: Vec<SocketAddr>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentServer {
    /// Listens on every one of `addresses` inside `ns` (port 0: any free port, see
    /// [`SilentServer::addresses`]).
    pub fn start(ns: &Netns, addresses: &[SocketAddr]) -> SilentServer {
        let listeners: Vec<TcpListener> = ns
            .within(|| addresses.iter().map(|address| bind(*address)).collect())
            .unwrap_or_else(|err| panic!("cannot enter the test namespace: {err}"));
        let addresses = listeners
            .iter()
            .map(|listener| {
                listener
                    .local_addr()
                    .unwrap_or_else(|err| panic!("silent listener: no local address: {err}"))
            })
            .collect();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (Arc::clone(&accepted), Arc::clone(&stop));
            std::thread::spawn(move || accept_silently(&listeners, &accepted, &stop))
        };
        SilentServer {
            addresses,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    /// The addresses listened on, in the order given to [`SilentServer::start`], with the
    /// ports the kernel chose for port 0.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// How many connections were accepted (and left unanswered) so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Stops listening and says how many connections it accepted (and left unanswered).
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the silent listener panicked");
        }
        self.accepted()
    }
}

fn bind(address: SocketAddr) -> TcpListener {
    let listener = TcpListener::bind(address)
        .unwrap_or_else(|err| panic!("cannot listen on {address}: {err}"));
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|err| panic!("cannot make {address} non-blocking: {err}"));
    listener
}

/// Accepts until `stop`, keeping each connection open and unanswered and counting it in
/// `accepted`.
fn accept_silently(listeners: &[TcpListener], accepted: &AtomicUsize, stop: &AtomicBool) {
    let mut held: Vec<TcpStream> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        for listener in listeners {
            match listener.accept() {
                Ok((stream, _)) => {
                    held.push(stream);
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                Err(err) => panic!("silent listener: accept failed: {err}"),
            }
        }
        std::thread::sleep(POLL);
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
