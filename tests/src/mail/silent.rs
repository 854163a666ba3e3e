//! A server that hangs: TCP listeners inside a test namespace that accept every connection and
//! never send a byte (no greeting, no TLS handshake), held open until the guard drops.

use std::{
    io::ErrorKind,
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use egress_lab::Netns;

/// How often the accepting thread looks for new connections and for the stop request.
const POLL: Duration = Duration::from_millis(50);

/// The listeners' thread; dropping it closes every listener and accepted connection.
pub struct SilentServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl SilentServer {
    /// Listens on every one of `addresses` inside `ns`.
    pub fn start(ns: &Netns, addresses: &[SocketAddr]) -> SilentServer {
        let listeners: Vec<TcpListener> = ns
            .within(|| addresses.iter().map(|address| bind(*address)).collect())
            .unwrap_or_else(|err| panic!("cannot enter the test namespace: {err}"));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || accept_silently(&listeners, &stop))
        };
        SilentServer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops listening and says how many connections it accepted (and left unanswered).
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|thread| thread.join().expect("the silent listener panicked"))
            .unwrap_or_default()
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

/// Accepts until `stop`, keeping each connection open and unanswered; returns how many.
fn accept_silently(listeners: &[TcpListener], stop: &AtomicBool) -> usize {
    let mut held: Vec<TcpStream> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        for listener in listeners {
            match listener.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                Err(err) => panic!("silent listener: accept failed: {err}"),
            }
        }
        std::thread::sleep(POLL);
    }
    held.len()
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
