//! The CLI side of the control socket.

use std::{
    io::{Read as _, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use super::protocol::{Request, Response};

/// Long enough for a reload of a large allowlist, short enough not to hang a script.
const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the agent is not running (cannot connect to {path}: {source})")]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("permission denied on control socket {path}: the agent accepts root only")]
    PermissionDenied { path: PathBuf },
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: unreadable response: {source}")]
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Sends one request and waits for the response.
pub fn call(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    let io = |source| ClientError::Io {
        path: socket.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| {
        let path = socket.to_owned();
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            ClientError::PermissionDenied { path }
        } else {
            ClientError::NotRunning { path, source }
        }
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let mut line = serde_json::to_vec(request).map_err(|e| io(std::io::Error::other(e)))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut reply = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut reply)
        .map_err(io)?;
    serde_json::from_slice(&reply).map_err(|source| ClientError::Decode {
        path: socket.to_owned(),
        source,
    })
}
