//! A minimal SMTP client for probes: replies read line by line under a timeout, STARTTLS and
//! implicit TLS through rustls. It never sends DATA.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::TcpStream,
    time::timeout,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A server that says nothing for this long is hanging.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies longer than this are not SMTP (RFC 5321 allows 512-byte lines).
const MAX_REPLY: usize = 64 * 1024;
/// What the probes say in EHLO.
pub const EHLO_NAME: &str = "egress-audit.invalid";

/// An SMTP reply: the code and the text of every line.
#[derive(Clone, Debug)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// `550 5.7.1 relay access denied` (first line), for details.
    pub fn summary(&self) -> String {
        format!(
            "{} {}",
            self.code,
            self.lines.first().map(String::as_str).unwrap_or("")
        )
    }

    /// The EHLO keywords (upper case), from the lines after the greeting line.
    pub fn capabilities(&self) -> Vec<String> {
        self.lines
            .iter()
            .skip(1)
            .map(|line| line.to_ascii_uppercase())
            .collect()
    }
}

/// True when EHLO capabilities list `keyword` (`STARTTLS`, `AUTH`).
pub fn offers(capabilities: &[String], keyword: &str) -> bool {
    capabilities
        .iter()
        .any(|line| line.split([' ', '=']).next() == Some(keyword))
}

/// The SASL mechanisms of the `AUTH` capability.
pub fn auth_mechanisms(capabilities: &[String]) -> Vec<String> {
    capabilities
        .iter()
        .filter(|line| line.split([' ', '=']).next() == Some("AUTH"))
        .flat_map(|line| {
            line[5.min(line.len())..]
                .split(' ')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|mech| !mech.is_empty())
        .collect()
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// During an upgrade, or after a failed one.
    Gone,
}

impl Conn {
    fn stream(&mut self) -> Result<&mut dyn Stream, String> {
        match self {
            Conn::Plain(tcp) => Ok(tcp),
            Conn::Tls(tls) => Ok(tls.as_mut()),
            Conn::Gone => Err("connection lost after a failed TLS handshake".into()),
        }
    }
}

pub struct Session {
    conn: Conn,
    buffer: Vec<u8>,
    pub peer: SocketAddr,
    /// The server let a reply or a send time out: it is not answering, so the goodbye
    /// (RSET, QUIT) is not waited for a second time.
    hanging: bool,
}

impl Session {
    pub async fn connect(peer: SocketAddr) -> Result<Session, String> {
        let tcp = match timeout(CONNECT_TIMEOUT, TcpStream::connect(peer)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(err)) => return Err(format!("cannot connect to {peer}: {err}")),
            Err(_) => {
                return Err(format!(
                    "connecting to {peer} timed out after {CONNECT_TIMEOUT:?}"
                ));
            }
        };
        Ok(Session {
            conn: Conn::Plain(tcp),
            buffer: Vec::new(),
            peer,
            hanging: false,
        })
    }

    /// Implicit TLS (port 465): the handshake before anything else.
    pub async fn connect_tls(
        peer: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<Session, TlsFailure> {
        let mut session = Session::connect(peer).await.map_err(TlsFailure::Other)?;
        session.handshake(tls, server_name).await?;
        Ok(session)
    }

    /// Sends STARTTLS's handshake after the server's 220 to it.
    pub async fn handshake(
        &mut self,
        tls: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<(), TlsFailure> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|err| TlsFailure::Other(format!("`{server_name}`: {err}")))?;
        let Conn::Plain(tcp) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err(TlsFailure::Other("TLS is already on".into()));
        };
        // Anything the server sent before the handshake is discarded (STARTTLS injection).
        self.buffer.clear();
        let connect = TlsConnector::from(tls).connect(name, tcp);
        match timeout(REPLY_TIMEOUT, connect).await {
            Ok(Ok(stream)) => {
                self.conn = Conn::Tls(Box::new(stream));
                Ok(())
            }
            Ok(Err(err)) => Err(TlsFailure::from_io(&err)),
            Err(_) => Err(TlsFailure::Other(format!(
                "TLS handshake with {} timed out after {REPLY_TIMEOUT:?}",
                self.peer
            ))),
        }
    }

    /// The negotiated TLS version, when TLS is on.
    pub fn tls_version(&self) -> Option<String> {
        match &self.conn {
            Conn::Tls(tls) => tls.get_ref().1.protocol_version().map(|v| format!("{v:?}")),
            _ => None,
        }
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn reply(&mut self) -> Result<Reply, String> {
        let peer = self.peer;
        match timeout(REPLY_TIMEOUT, self.read_reply()).await {
            Ok(result) => result,
            Err(_) => {
                self.hanging = true;
                Err(format!(
                    "{peer} sent no reply within {REPLY_TIMEOUT:?} (hanging server)"
                ))
            }
        }
    }

    /// Sends a command and reads its reply.
    pub async fn command(&mut self, line: &str) -> Result<Reply, String> {
        let peer = self.peer;
        let mut bytes = line.as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\n");
        let stream = self.conn.stream()?;
        match timeout(REPLY_TIMEOUT, stream.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(format!("cannot send to {peer}: {err}")),
            Err(_) => {
                self.hanging = true;
                return Err(format!("sending to {peer} timed out"));
            }
        }
        self.reply().await
    }

    /// RSET and QUIT, ignoring what comes back: the probe is over. A hanging server is
    /// just disconnected: waiting for its replies again would only add two timeouts.
    pub async fn quit(mut self) {
        if self.hanging {
            return;
        }
        let _ = self.command("RSET").await;
        let _ = self.command("QUIT").await;
    }

    async fn read_reply(&mut self) -> Result<Reply, String> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let code: u16 = line
                .get(..3)
                .and_then(|digits| digits.parse().ok())
                .ok_or_else(|| {
                    format!(
                        "{} sent a line that is not an SMTP reply: {line:?}",
                        self.peer
                    )
                })?;
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_owned());
            if last {
                return Ok(Reply { code, lines });
            }
        }
    }

    async fn read_line(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buffer.drain(..end + 2).take(end).collect();
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buffer.len() > MAX_REPLY {
                return Err(format!(
                    "{} sent a reply longer than {MAX_REPLY} bytes",
                    self.peer
                ));
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .conn
                .stream()?
                .read(&mut chunk)
                .await
                .map_err(|err| format!("cannot read from {}: {err}", self.peer))?;
            if n == 0 {
                return Err(format!("{} closed the connection", self.peer));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Why a TLS handshake failed: the certificate did not verify, or anything else.
#[derive(Debug)]
pub enum TlsFailure {
    Certificate(String),
    Other(String),
}

impl TlsFailure {
    fn from_io(err: &std::io::Error) -> TlsFailure {
        match err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::InvalidCertificate(why)) => {
                TlsFailure::Certificate(format!("certificate does not verify: {why:?}"))
            }
            Some(other) => TlsFailure::Other(format!("TLS handshake failed: {other}")),
            None => TlsFailure::Other(format!("TLS handshake failed: {err}")),
        }
    }

    pub fn text(&self) -> &str {
        match self {
            TlsFailure::Certificate(text) | TlsFailure::Other(text) => text,
        }
    }
}
