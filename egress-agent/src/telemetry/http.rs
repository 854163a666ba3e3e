//! A minimal HTTP/1.1 server for `GET /metrics`: one request per connection, bounded in size,
//! time and concurrency, so a misbehaving client cannot hold the agent.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

use super::{TelemetryContext, TelemetryError, collector, exposition::CONTENT_TYPE};

const MAX_REQUEST_HEAD: usize = 8192;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 32;

/// Answers requests on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, ctx: TelemetryContext) -> Result<(), TelemetryError> {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Scrapes walk the whole subscriber map: one at a time.
    let scrapes = Arc::new(Semaphore::new(1));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(error = %err, "metrics listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many metrics connections; closing");
            continue;
        };
        let ctx = ctx.clone();
        let scrapes = scrapes.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let answered =
                tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &ctx, &scrapes)).await;
            match answered {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "metrics request failed"),
                Err(_) => tracing::debug!(%peer, "metrics request timed out"),
            }
        });
    }
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

async fn answer(
    mut stream: TcpStream,
    ctx: &TelemetryContext,
    scrapes: &Semaphore,
) -> std::io::Result<()> {
    let Some(head) = read_head(&mut stream).await? else {
        return Ok(());
    };
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let response = match (method, path) {
        ("GET" | "HEAD", "/metrics") => scrape(ctx, scrapes).await,
        ("GET" | "HEAD", "/") => Response::text("200 OK", "egress-agent: see /metrics\n"),
        ("GET" | "HEAD", _) => Response::text("404 Not Found", "not found; see /metrics\n"),
        _ => Response::text("405 Method Not Allowed", "only GET and HEAD\n"),
    };
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(response.body.as_bytes()).await?;
    }
    stream.shutdown().await
}

/// Reads up to the blank line ending the request head; `None` when the client sent nothing.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX_REQUEST_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok((!head.is_empty()).then(|| String::from_utf8_lossy(&head).into_owned()));
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

async fn scrape(ctx: &TelemetryContext, scrapes: &Semaphore) -> Response {
    let Ok(_turn) = scrapes.acquire().await else {
        return Response::text("503 Service Unavailable", "shutting down\n");
    };
    let ctx = ctx.clone();
    match tokio::task::spawn_blocking(move || collector::render(&ctx)).await {
        Ok(Ok(body)) => Response {
            status: "200 OK",
            content_type: CONTENT_TYPE,
            body,
        },
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "metrics scrape failed");
            Response::text("500 Internal Server Error", format!("{err}\n"))
        }
        Err(err) => Response::text(
            "500 Internal Server Error",
            format!("metrics collector failed: {err}\n"),
        ),
    }
}
