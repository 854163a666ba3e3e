//! The abuse desk's webhook, for the tests, the demo and the bench: accepts POSTs on a socket
//! bound inside a lab namespace, verifies `X-Egress-Signature` (HMAC-SHA256 of the body,
//! computed here, not by the agent's code), records each delivery with its path and the moment
//! it arrived, and answers 200 (or, started with [`Receiver::start_failing`], 500 to the first
//! requests, for retries). Stops on drop.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use hmac::{KeyInit as _, Mac as _};

use crate::{LabError, Netns};

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub path: String,
    pub received: Instant,
    pub body: String,
    pub signature_valid: bool,
}

pub struct Receiver {
    pub addr: SocketAddr,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on `addr` (port 0: any free one) inside `netns`.
    pub fn start(netns: &Netns, addr: &str, secret: &[u8]) -> Result<Receiver, LabError> {
        Receiver::start_failing(netns, addr, secret, 0)
    }

    /// Like [`Receiver::start`], answering `500 Internal Server Error` to the first `failures`
    /// whole requests: those are counted by [`Receiver::refused`], not recorded as deliveries.
    pub fn start_failing(
        netns: &Netns,
        addr: &str,
        secret: &[u8],
        failures: usize,
    ) -> Result<Receiver, LabError> {
        let io = |source| LabError::Io {
            what: format!("the webhook receiver on {addr}"),
            source,
        };
        let listener = netns.within(|| TcpListener::bind(addr))?.map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let bound = listener.local_addr().map_err(io)?;
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let (seen, stopping, key) = (Arc::clone(&deliveries), Arc::clone(&stop), secret.to_vec());
        let refusing = Arc::clone(&refused);
        let thread = std::thread::Builder::new()
            .name("webhook".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let fail = refusing.load(Ordering::Relaxed) < failures;
                            let delivery = serve(stream, &key, fail);
                            if fail && delivery.is_some() {
                                refusing.fetch_add(1, Ordering::Relaxed);
                            } else if let Some(delivery) = delivery {
                                seen.lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push(delivery);
                            }
                        }
                        // Polled: a 2 ms pause keeps the latency it adds well under the
                        // bench's resolution.
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
            .map_err(io)?;
        Ok(Receiver {
            addr: bound,
            deliveries,
            refused,
            stop,
            thread: Some(thread),
        })
    }

    /// What `[notify] webhook_url` is set to.
    pub fn url(&self) -> String {
        format!("http://{}/egress", self.addr)
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many requests were answered 500 (see [`Receiver::start_failing`]).
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `sha256=<hex>` of `body` under `key`, as the header carries it.
pub fn expected_signature(key: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Reads one POST and answers it (500 when `fail`); None when it was not a whole request.
fn serve(stream: TcpStream, key: &[u8], fail: bool) -> Option<Delivery> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let (mut length, mut signature) = (0usize, String::new());
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "x-egress-signature" => signature = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    let received = Instant::now();
    let mut stream = reader.into_inner();
    let answer: &[u8] = if fail {
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    };
    let _ = stream.write_all(answer);
    Some(Delivery {
        path,
        received,
        signature_valid: !signature.is_empty() && signature == expected_signature(key, &body),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
