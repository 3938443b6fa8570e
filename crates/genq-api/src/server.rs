//! The HTTP server around the router: hyper's HTTP/1 connections with the limits a listener
//! open to careless or hostile clients needs, which `axum::serve` does not set: a cap on open
//! connections, a deadline for request headers that also closes idle keep-alive connections,
//! a bounded header size, and the SPEC's error shape on the answers hyper writes by itself.
//! The body deadline and the declared-length check live in the router (`extract`, `lib`).

use crate::AppState;
use crate::error::{Code, ErrorBody, ErrorInner};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Most bytes of a request line and headers (hyper's read buffer): more gets 431.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Longest path and query: more gets 414 (a longer one than hyper's buffer gets 431).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// How long a shutdown waits for requests in flight (a long-polling claim ends by itself
/// within `api.max_claim_wait`) before closing their connections.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

/// Serve the API of `state` on `listener` until `shutdown` resolves; then end the event streams
/// (they would never finish by themselves) and finish the other requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_router(listener, crate::router(state.clone()), &state, shutdown).await
}

/// `/metrics`, `/healthz` and `/readyz` only, on `[metrics] listen`: what Prometheus and a
/// load balancer need from a process, including a `genq worker` that serves no API.
pub async fn serve_metrics(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_router(
        listener,
        crate::metrics_router(state.clone()),
        &state,
        shutdown,
    )
    .await
}

async fn serve_router(
    listener: TcpListener,
    app: axum::Router,
    state: &AppState,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let api = state.config.api.clone();
    let closing = state.closing.clone();
    let permits = Arc::new(Semaphore::new(api.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(api.header_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(4 * MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // At the cap, stop accepting: new clients wait in the kernel's backlog until a
        // connection closes, and the header deadline bounds how long an idle one holds on.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore stays open"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(ParseErrorBodies::new(stream));
        let conn = http.serve_connection(io, TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away mid-request is not an error worth a log line.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    closing.cancel();
    if tokio::time::timeout(SHUTDOWN_WAIT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {SHUTDOWN_WAIT:?}; closing them");
    }
    Ok(())
}

/// Out of file descriptors and the like: wait a moment instead of spinning on the error.
async fn accept_failed(e: io::Error) {
    let per_connection = matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    );
    if !per_connection {
        tracing::warn!(error = %e, "accept failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// hyper answers a request it cannot parse (400), whose head is too large (431) or whose URI
/// is too long (414) by itself, with an empty body and no hook to change it. This wrapper
/// recognises those answers, the only empty-bodied 400, 414 and 431 genq ever sends, and
/// writes the same status with the SPEC's error body instead.
pub struct ParseErrorBodies<T> {
    inner: T,
    /// The answer written in place of hyper's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<T> ParseErrorBodies<T> {
    pub fn new(inner: T) -> Self {
        ParseErrorBodies {
            inner,
            replacement: None,
        }
    }
}

/// The error answer to write instead of `head`, if `head` is one of hyper's own.
fn replacement_for(head: &[u8]) -> Option<Vec<u8>> {
    let (code, message) = match head.get(..13)? {
        b"HTTP/1.1 400 " | b"HTTP/1.0 400 " => {
            (Code::InvalidRequest, "the request is not valid HTTP/1.1")
        }
        b"HTTP/1.1 414 " | b"HTTP/1.0 414 " => (Code::UriTooLong, "the request URI is too long"),
        b"HTTP/1.1 431 " | b"HTTP/1.0 431 " => (
            Code::HeadersTooLarge,
            "the request line and headers are larger than 32 KiB",
        ),
        _ => return None,
    };
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let lower = head[..end].to_ascii_lowercase();
    if !lower.windows(19).any(|w| w == b"\r\ncontent-length: 0") || head.len() != end + 4 {
        return None;
    }
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorInner {
            code: code.as_str().into(),
            message: message.into(),
            details: None,
        },
    })
    .ok()?;
    let status = code.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<T: AsyncRead + Unpin> AsyncRead for ParseErrorBodies<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> ParseErrorBodies<T> {
    /// Write the replacement for `head` if it is one of hyper's own answers; `None` to write
    /// as asked.
    fn poll_replace(&mut self, cx: &mut Context<'_>, head: &[u8]) -> Option<Poll<io::Result<()>>> {
        if self.replacement.is_none() {
            self.replacement = Some((replacement_for(head)?, 0));
        }
        let (answer, written) = self.replacement.as_mut()?;
        while *written < answer.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]) {
                Poll::Pending => return Some(Poll::Pending),
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Ready(Ok(0)) => {
                    return Some(Poll::Ready(Err(io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(n)) => *written += n,
            }
        }
        Some(Poll::Ready(Ok(())))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ParseErrorBodies<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // hyper's own bytes count as written: it closes the connection next.
        if let Some(done) = self.poll_replace(cx, buf) {
            return done.map_ok(|()| buf.len());
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // A response head is the first buffer hyper hands over, whole; its own error answers
        // have no body buffers after it.
        if let [head] = bufs
            && let Some(done) = self.poll_replace(cx, head)
        {
            return done.map_ok(|()| head.len());
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_answers_are_replaced() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 12:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(replacement_for(hyper_431).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.ends_with(r#"{"error":{"code":"headers_too_large","message":"the request line and headers are larger than 32 KiB"}}"#), "{out}");
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 70\r\n\r\n";
        assert!(replacement_for(ours).is_none());
        assert!(replacement_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        // A head followed by body bytes in the same write is never hyper's own error.
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nx";
        assert!(replacement_for(with_body).is_none());
    }
}
