//! `/metrics` over hyper's HTTP/1.1 server: keep-alive, `HEAD`, 404/405, gzip when the scraper
//! asks for it (Prometheus does). Bounded so that a misbehaving client cannot hold the agent:
//! at most 32 connections, request heads of at most 8 KiB read within 10 s, and a connection
//! closed gracefully after 5 minutes.

use std::{convert::Infallible, io::Write as _, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

use super::{TelemetryContext, TelemetryError, collector, exposition::CONTENT_TYPE};

/// hyper's smallest read buffer, which bounds the request head.
const MAX_REQUEST_HEAD: usize = 8192;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
const MAX_CONNECTIONS: usize = 32;
const TEXT: &str = "text/plain; charset=utf-8";

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
            if let Err(err) = connection(stream, ctx, scrapes).await {
                tracing::debug!(%peer, error = %err, "metrics connection failed");
            }
        });
    }
}

async fn connection(
    stream: TcpStream,
    ctx: TelemetryContext,
    scrapes: Arc<Semaphore>,
) -> Result<(), hyper::Error> {
    let service = service_fn(move |request| {
        let (ctx, scrapes) = (ctx.clone(), scrapes.clone());
        async move { Ok::<_, Infallible>(respond(&request, &ctx, &scrapes).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        done = connection.as_mut() => return done,
        () = tokio::time::sleep(MAX_CONNECTION_AGE) => connection.as_mut().graceful_shutdown(),
    }
    // Let an answer in progress finish, but not forever.
    match tokio::time::timeout(HEADER_READ_TIMEOUT, connection).await {
        Ok(done) => done,
        Err(_) => Ok(()),
    }
}

async fn respond(
    request: &Request<hyper::body::Incoming>,
    ctx: &TelemetryContext,
    scrapes: &Semaphore,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/metrics" => scrape(ctx, scrapes, accepts_gzip(request)).await,
        "/" => text(StatusCode::OK, "egress-agent: see /metrics\n"),
        _ => text(StatusCode::NOT_FOUND, "not found; see /metrics\n"),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT));
    response
}

/// Whether `Accept-Encoding` lists gzip (or `*`) with a non-zero quality.
fn accepts_gzip<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

async fn scrape(ctx: &TelemetryContext, scrapes: &Semaphore, gzip: bool) -> Response<Full<Bytes>> {
    let Ok(_turn) = scrapes.acquire().await else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    };
    let ctx = ctx.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let body = collector::render(&ctx)?;
        if gzip {
            compress(body.as_bytes()).map(|bytes| (bytes, true))
        } else {
            Ok((body.into_bytes(), false))
        }
    })
    .await;
    match rendered {
        Ok(Ok((body, gzipped))) => {
            let mut response = text(StatusCode::OK, body);
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            if gzipped {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "metrics scrape failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n"))
        }
        Err(err) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics collector failed: {err}\n"),
        ),
    }
}

/// gzip at a fast level: a scrape is compressible text, and the agent's CPU matters more.
fn compress(body: &[u8]) -> Result<Vec<u8>, TelemetryError> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map_err(|err| TelemetryError::Encode(format!("gzip: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(accept_encoding: &[&str]) -> Request<()> {
        let mut builder = Request::builder().uri("/metrics");
        for value in accept_encoding {
            builder = builder.header(header::ACCEPT_ENCODING, *value);
        }
        builder.body(()).expect("request")
    }

    #[test]
    fn telemetry_gzip_only_when_asked_with_nonzero_quality() {
        assert!(accepts_gzip(&request(&["gzip"])));
        assert!(accepts_gzip(&request(&["deflate, GZIP;q=0.5"])));
        assert!(accepts_gzip(&request(&["identity", "*"])));
        assert!(!accepts_gzip(&request(&[])));
        assert!(!accepts_gzip(&request(&["identity"])));
        assert!(!accepts_gzip(&request(&["gzip;q=0", "br"])));
        assert!(!accepts_gzip(&request(&["x-gzip-not"])));
    }
}
