//! Accepting control connections: root peers only, bounded request size, every failure answered
//! with an error response while the agent keeps running.

use std::{
    os::unix::fs::{DirBuilderExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

use super::protocol::{ErrorKind, MAX_REQUEST_BYTES, Request, Response};

/// A request waiting for the daemon to answer it.
pub type Pending = (Request, oneshot::Sender<Response>);

const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog, so a flood of clients costs
/// bounded memory and file descriptors.
const MAX_CONNECTIONS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("control socket {path}: another agent is already listening there")]
    InUse { path: PathBuf },
    #[error("control socket {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
}

/// Binds the socket (mode 0600, parent created 0755) replacing a stale one.
pub fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let io = |what| {
        let path = path.to_owned();
        move |source| ServerError::Io { path, what, source }
    };
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(io("cannot create parent directory"))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServerError::InUse {
                path: path.to_owned(),
            });
        }
        std::fs::remove_file(path).map_err(io("cannot remove stale socket"))?;
    }
    let listener = UnixListener::bind(path).map_err(io("cannot bind"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io("cannot set mode 0600"))?;
    Ok(listener)
}

/// Accepts connections forever, handing valid requests to the daemon through `requests`.
pub async fn serve(listener: UnixListener, requests: mpsc::Sender<Pending>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let requests = requests.clone();
                tokio::spawn(async move {
                    if let Err(err) = handle(stream, requests).await {
                        tracing::debug!(%err, "control connection failed");
                    }
                    drop(slot);
                });
            }
            Err(err) => {
                tracing::warn!(%err, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut stream: UnixStream, requests: mpsc::Sender<Pending>) -> std::io::Result<()> {
    // Read before judging the peer: a reply to a client whose request sits unread would
    // reach it as a connection reset instead of the refusal.
    let request = read_request(&mut stream).await;
    let response = match stream.peer_cred() {
        Ok(cred) if cred.uid() == 0 => match request {
            Ok(request) => dispatch(request, &requests).await,
            Err(response) => response,
        },
        Ok(cred) => {
            tracing::warn!(
                uid = cred.uid(),
                "control request from a non-root peer refused"
            );
            Response::error(
                ErrorKind::Refused,
                "permission denied: the control socket is for root only",
            )
        }
        Err(err) => Response::error(
            ErrorKind::Refused,
            format!("cannot check peer credentials: {err}"),
        ),
    };
    let mut line = serde_json::to_vec(&response).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.shutdown().await?;
    drain(&mut stream).await;
    Ok(())
}

/// Discards what the client still sends (the rest of an oversized request) for a moment, so
/// closing does not turn into a reset that hides the reply from it.
async fn drain(stream: &mut UnixStream) {
    const LIMIT: usize = 1024 * 1024;
    let mut chunk = [0u8; 4096];
    let mut total = 0;
    let read_rest = async {
        while total < LIMIT {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), read_rest).await;
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, Response> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            buffer.extend_from_slice(&chunk[..n]);
            if buffer.contains(&b'\n') || buffer.len() > MAX_REQUEST_BYTES {
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            return Err(Response::error(
                ErrorKind::Invalid,
                format!("read error: {err}"),
            ));
        }
        Err(_) => {
            return Err(Response::error(
                ErrorKind::Invalid,
                "timed out waiting for the request line",
            ));
        }
    }
    let line = match buffer.iter().position(|b| *b == b'\n') {
        Some(end) if end <= MAX_REQUEST_BYTES => &buffer[..end],
        None if buffer.len() <= MAX_REQUEST_BYTES => &buffer[..],
        _ => {
            return Err(Response::error(
                ErrorKind::Invalid,
                format!("request longer than {MAX_REQUEST_BYTES} bytes"),
            ));
        }
    };
    serde_json::from_slice(line)
        .map_err(|err| Response::error(ErrorKind::Invalid, format!("malformed request: {err}")))
}

async fn dispatch(request: Request, requests: &mpsc::Sender<Pending>) -> Response {
    let (reply, answer) = oneshot::channel();
    if requests.send((request, reply)).await.is_err() {
        return Response::error(ErrorKind::Internal, "the agent is shutting down");
    }
    answer
        .await
        .unwrap_or_else(|_| Response::error(ErrorKind::Internal, "the agent dropped the request"))
}
