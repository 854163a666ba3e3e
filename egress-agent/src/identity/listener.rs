//! The RADIUS accounting listener: a thread of its own with its own database connection.
//! It reads what has arrived (up to a batch), stores it in one transaction, and only then
//! answers each request, so a NAS never gets an Accounting-Response for a session that a
//! crash could lose. It also prunes history past `retention_days`, once an hour.

use std::{
    io::ErrorKind,
    net::{IpAddr, SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use rusqlite::Connection;

use super::{
    radius::{self, Accounting},
    sessions::{self, Outcome},
};
use crate::{
    config::IdentityConfig,
    history::{History, HistoryError, now_ms},
    prefix,
};

/// Requests stored per transaction at most: amortises the commit under load.
const MAX_BATCH: usize = 512;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const IDLE_WAKE: Duration = Duration::from_secs(30);

/// `egress_radius_requests_total{result}` and `egress_identity_sessions_open`.
#[derive(Debug, Default)]
pub struct RadiusStats {
    pub stored: AtomicU64,
    pub duplicate: AtomicU64,
    pub bad_authenticator: AtomicU64,
    pub unknown_client: AtomicU64,
    pub malformed: AtomicU64,
    pub sessions_open: AtomicI64,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("cannot read the RADIUS secret {path} (identity.radius_secret_file): {source}")]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the RADIUS secret {path} (identity.radius_secret_file) is empty")]
    EmptySecret { path: PathBuf },
    #[error("cannot listen for RADIUS accounting on {addr} (identity.radius_listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("identity.radius_clients: {0}")]
    Clients(String),
}

/// Reads a secret file: its first line, without the line end.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, std::io::Error> {
    let text = std::fs::read(path)?;
    let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

/// Binds the socket (so a bad address fails the start) and starts the listener thread.
pub fn spawn_listener(
    config: &IdentityConfig,
    history: &History,
    stats: Arc<RadiusStats>,
) -> Result<JoinHandle<()>, ListenerError> {
    let secret_path = PathBuf::from(&config.radius_secret_file);
    let secret = read_secret(&secret_path).map_err(|source| ListenerError::Secret {
        path: secret_path.clone(),
        source,
    })?;
    if secret.is_empty() {
        return Err(ListenerError::EmptySecret { path: secret_path });
    }
    let clients = config
        .radius_clients
        .iter()
        .map(|text| prefix::parse(text).map_err(|err| ListenerError::Clients(err.to_string())))
        .collect::<Result<Vec<IpNet>, _>>()?;
    let addr = config.radius_listen;
    let socket = UdpSocket::bind(addr).map_err(|source| ListenerError::Bind { addr, source })?;
    let conn = history.connect()?;
    let open = sessions::count_open(&conn).map_err(|e| history.error(e))?;
    stats.sessions_open.store(open, Relaxed);
    let retention_ms = i64::from(config.retention_days) * 86_400_000;
    tracing::info!(listen = %addr, clients = clients.len(), sessions_open = open,
        "listening for RADIUS accounting");
    let listener = Listener {
        socket,
        secret,
        clients,
        conn,
        stats,
        retention_ms,
    };
    std::thread::Builder::new()
        .name("radius".into())
        .spawn(move || listener.run())
        .map_err(|source| ListenerError::Bind { addr, source })
}

struct Listener {
    socket: UdpSocket,
    secret: Vec<u8>,
    clients: Vec<IpNet>,
    conn: Connection,
    stats: Arc<RadiusStats>,
    retention_ms: i64,
}

impl Listener {
    fn run(mut self) {
        let mut next_prune = Instant::now();
        // One byte more than the largest packet: a datagram that fills it is oversized.
        let mut buf = vec![0u8; radius::MAX_PACKET + 1];
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if let Err(err) = self.socket.set_read_timeout(Some(IDLE_WAKE)) {
            tracing::warn!(%err, "cannot set the RADIUS socket's timeout");
        }
        loop {
            if Instant::now() >= next_prune {
                self.prune();
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            batch.clear();
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => self.admit(&buf[..len], from, &mut batch),
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(err) => {
                    tracing::warn!(%err, "RADIUS socket receive failed");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            self.drain_ready(&mut buf, &mut batch);
            if !batch.is_empty() {
                self.store_and_answer(&batch);
            }
        }
    }

    /// Whatever has already arrived, up to a batch, without waiting: under load the queue
    /// fills while the previous batch commits, so one commit covers many requests (group
    /// commit); an idle NAS is answered at once. (A linger timer here cost at least a
    /// scheduler tick per batch, since the sender's window was already drained.)
    fn drain_ready(&self, buf: &mut [u8], batch: &mut Vec<(Accounting, SocketAddr)>) {
        if self.socket.set_nonblocking(true).is_err() {
            return;
        }
        for _ in 1..MAX_BATCH {
            match self.socket.recv_from(buf) {
                Ok((len, from)) => self.admit(&buf[..len], from, batch),
                Err(_) => break,
            }
        }
        if let Err(err) = self.socket.set_nonblocking(false) {
            tracing::warn!(%err, "cannot make the RADIUS socket blocking again");
        }
    }

    /// Checks one datagram: known client, well formed, authentic; counts what it is not.
    fn admit(&self, datagram: &[u8], from: SocketAddr, batch: &mut Vec<(Accounting, SocketAddr)>) {
        let sender = canonical(from.ip());
        if !self.clients.iter().any(|net| net.contains(&sender)) {
            self.stats.unknown_client.fetch_add(1, Relaxed);
            tracing::debug!(%from, "RADIUS request from a host not in identity.radius_clients");
            return;
        }
        if datagram.len() > radius::MAX_PACKET {
            self.stats.malformed.fetch_add(1, Relaxed);
            return;
        }
        let packet = match radius::packet_bytes(datagram) {
            Ok(packet) => packet,
            Err(err) => {
                self.stats.malformed.fetch_add(1, Relaxed);
                tracing::debug!(%from, %err, "malformed RADIUS packet");
                return;
            }
        };
        if !radius::request_authentic(packet, &self.secret) {
            self.stats.bad_authenticator.fetch_add(1, Relaxed);
            tracing::debug!(%from, "RADIUS request authenticator does not match the secret");
            return;
        }
        match radius::decode(packet) {
            Ok(acct) => batch.push((acct, from)),
            Err(err) => {
                self.stats.malformed.fetch_add(1, Relaxed);
                tracing::debug!(%from, %err, "malformed RADIUS accounting request");
            }
        }
    }

    fn store_and_answer(&mut self, batch: &[(Accounting, SocketAddr)]) {
        let now = now_ms();
        let applied = (|| {
            let tx = self.conn.transaction()?;
            let mut outcomes = Vec::with_capacity(batch.len());
            for (acct, from) in batch {
                outcomes.push(sessions::apply(&tx, acct, canonical(from.ip()), now)?);
            }
            tx.commit()?;
            Ok::<_, rusqlite::Error>(outcomes)
        })();
        let outcomes = match applied {
            Ok(outcomes) => outcomes,
            Err(err) => {
                // Unanswered: the NAS retransmits, and nothing was half stored.
                tracing::error!(%err, requests = batch.len(), "cannot store RADIUS accounting");
                return;
            }
        };
        for ((acct, from), applied) in batch.iter().zip(outcomes) {
            let counter = match applied.outcome {
                Outcome::Stored => &self.stats.stored,
                Outcome::Duplicate => &self.stats.duplicate,
            };
            counter.fetch_add(1, Relaxed);
            self.stats
                .sessions_open
                .fetch_add(applied.open_delta, Relaxed);
            if let Err(err) = self
                .socket
                .send_to(&radius::response(acct, &self.secret), from)
            {
                tracing::debug!(%from, %err, "cannot send Accounting-Response");
            }
        }
    }

    fn prune(&mut self) {
        let cutoff = now_ms() - self.retention_ms;
        let pruned = (|| {
            let tx = self.conn.transaction()?;
            let (deleted, stale_open) = sessions::prune(&tx, cutoff)?;
            let reports = crate::notify::queue::prune(&tx, cutoff)?;
            tx.commit()?;
            Ok::<_, rusqlite::Error>((deleted, stale_open, reports))
        })();
        match pruned {
            Ok((0, _, 0)) => {}
            Ok((deleted, stale_open, reports)) => {
                self.stats.sessions_open.fetch_sub(stale_open, Relaxed);
                tracing::info!(
                    sessions = deleted,
                    reports,
                    "history past retention_days pruned"
                );
            }
            Err(err) => tracing::warn!(%err, "cannot prune the history"),
        }
    }
}

/// An IPv4 peer on a dual-stack socket arrives as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}
