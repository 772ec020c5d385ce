//! The website's HTTP server loop: accepting connections under a cap that leaves file
//! descriptors to the gateway's own work, and the timeouts that end connections which send
//! too slowly or not at all.
//!
//! What it owns (issue 17, point 1):
//! * **Connection cap** ([`Budget`]): at most [`Limits::max_connections`] connections at once,
//!   [`Limits::per_client`] of them from one address, and never more than the file
//!   descriptors left after [`Limits::reserved_fds`] for Modbus, KNX and the data directory
//!   ([`connection_budget`]). A connection over the cap is answered `503` and closed at once
//!   (at most [`REFUSING`] such answers in flight; beyond that it is just closed), so a flood of
//!   half-sent requests can never make the charging-point connections fail with `EMFILE`.
//! * **Header timeout**: the request head must arrive within [`Limits::header_timeout`]
//!   (hyper's `header_read_timeout`).
//! * **Idle timeout** ([`IdleIo`]): a connection on which nothing moves in either direction for
//!   [`Limits::idle_timeout`] is closed (keep-alive connections, stalled clients).
//! * **Body timeout** ([`TimeoutBody`], applied by the router): a request body that stops
//!   arriving for [`Limits::body_timeout`] fails, the route answers an error and the
//!   connection is closed (a `Content-Length: 10 GB` with no body).

use std::collections::HashMap;
use std::future::Future as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tracing::{debug, warn};

/// Limits of the website's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The request head must be complete within this time.
    pub header_timeout: Duration,
    /// A request body must go on arriving: at most this long between two of its parts.
    pub body_timeout: Duration,
    /// A connection with no traffic in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections at once from one client address.
    pub per_client: usize,
    /// File descriptors kept free for the gateway's own work (Modbus TCP and RS485, KNX,
    /// the data directory, the log): the website never takes them.
    pub reserved_fds: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(20),
            max_connections: 64,
            per_client: 16,
            reserved_fds: 64,
        }
    }
}

/// Most `503` answers to refused connections in flight at once (each holds its socket for at
/// most [`REFUSE_LINGER`]); further refused connections are closed without an answer.
pub const REFUSING: usize = 16;

/// How long a refused connection is kept to deliver its `503`.
pub const REFUSE_LINGER: Duration = Duration::from_millis(500);

/// How many connections the website may hold: `wanted`, but no more than what is left of the
/// descriptor `limit` after the `open` ones, the `reserve` and the [`REFUSING`] answers.
/// `None` for the limit: unknown, `wanted` is taken.
pub fn connection_budget(limit: Option<u64>, open: usize, reserve: usize, wanted: usize) -> usize {
    let Some(limit) = limit else { return wanted };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let left = limit.saturating_sub(open + reserve + REFUSING);
    wanted.min(left).max(1)
}

/// Test-only (debug builds; the release firmware ignores it): the environment variable
/// `KNX_ECHARGE_TEST_NO_CONNECTION_CAP=1` lifts the connection cap and the descriptor reserve,
/// so that `tests/web_hardening.rs` can show the flood starving charging-point polling without
/// them — the failure the cap prevents.
pub fn cap_lifted_for_test() -> bool {
    cfg!(debug_assertions) && std::env::var_os("KNX_ECHARGE_TEST_NO_CONNECTION_CAP").is_some()
}

/// The soft limit of open files of this process, if it can be read.
#[cfg(target_os = "linux")]
pub fn fd_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// The soft limit of open files (unknown on this platform).
#[cfg(not(target_os = "linux"))]
pub fn fd_limit() -> Option<u64> {
    None
}

/// How many files this process has open now (0 where this cannot be read).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// The connections the website holds, in total and by client address.
#[derive(Debug)]
pub struct Budget {
    max: usize,
    per_client: usize,
    held: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; gives its place back when dropped.
#[derive(Debug)]
pub struct Slot {
    budget: Arc<Budget>,
    client: IpAddr,
}

impl Budget {
    /// At most `max` connections, `per_client` from one address.
    pub fn new(max: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            per_client,
            held: Mutex::new((0, HashMap::new())),
        })
    }

    /// The most connections at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for a connection from `client`, if one is free.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Option<Slot> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, by_client) = &mut *held;
        let mine = by_client.get(&client).copied().unwrap_or(0);
        if *total >= self.max || mine >= self.per_client {
            return None;
        }
        *total += 1;
        by_client.insert(client, mine + 1);
        Some(Slot {
            budget: self.clone(),
            client,
        })
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self
            .budget
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, by_client) = &mut *held;
        *total = total.saturating_sub(1);
        if let Some(n) = by_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_client.remove(&self.client);
            }
        }
    }
}

/// A connection that fails with `TimedOut` when nothing was read or written for the idle
/// time while the server waits on it.
#[derive(Debug)]
pub struct IdleIo<T> {
    io: T,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    /// `io` closed after `idle` without traffic.
    pub fn new(io: T, idle: Duration) -> Self {
        Self {
            io,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn touch(&mut self) {
        let at = Instant::now() + self.idle;
        self.timer.as_mut().reset(at);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle too long")
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The request body did not go on arriving.
#[derive(Debug, thiserror::Error)]
#[error("request body stalled for {0:?}")]
pub struct BodyStalled(pub Duration);

/// A request body that fails when no part of it arrives for the body timeout.
#[derive(Debug)]
pub struct TimeoutBody {
    inner: Body,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
}

impl TimeoutBody {
    /// `inner`, failing after `timeout` without a frame.
    pub fn new(inner: Body, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl http_body::Body for TimeoutBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let at = Instant::now() + self.timeout;
                self.timer.as_mut().reset(at);
                Poll::Ready(frame.map(|f| f.map_err(axum::BoxError::from)))
            }
            Poll::Pending => {
                if self.timer.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Some(Err(Box::new(BodyStalled(self.timeout)))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the accept loop needs.
#[derive(Debug)]
pub struct Server {
    /// The bound listener.
    pub listener: TcpListener,
    /// The website.
    pub router: Router,
    /// Its limits.
    pub limits: Limits,
    /// The connection budget (see [`connection_budget`]).
    pub budget: Arc<Budget>,
}

/// The answer to a connection over the cap.
fn busy_answer() -> String {
    let body = r#"{"error":"too many connections, try again later","key":"busy"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Accepts connections until `stop` turns true, then ends open connections gracefully
/// (those still open after 3 s are dropped).
pub async fn run(server: Server, mut stop: watch::Receiver<bool>) {
    let Server {
        listener,
        router,
        limits,
        budget,
    } = server;
    let refusing = Arc::new(AtomicUsize::new(0));
    let (closing_tx, closing) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            () = turned_true(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE/ENFILE and friends: the pending connection stays queued; try later.
                debug!("website accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = budget.admit(peer.ip()) else {
            refused += 1;
            if refused.is_power_of_two() {
                warn!(
                    client = %peer.ip(),
                    "website: {refused} connections refused so far (at most {} at once, {} per client)",
                    budget.max(),
                    limits.per_client
                );
            }
            refuse(stream, &refusing);
            continue;
        };
        let router = router.clone();
        let closing = closing.clone();
        connections.spawn(serve_connection(
            stream, peer, router, limits, slot, closing,
        ));
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

/// Answers `503` on a connection over the cap, or just closes it when too many such answers
/// are in flight.
fn refuse(mut stream: TcpStream, refusing: &Arc<AtomicUsize>) {
    if refusing.fetch_add(1, Ordering::SeqCst) >= REFUSING {
        refusing.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let refusing = refusing.clone();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSE_LINGER, async {
            stream.write_all(busy_answer().as_bytes()).await?;
            stream.shutdown().await?;
            // Read what the client sent so that closing does not reset the connection
            // before it read the answer.
            let mut sink = [0u8; 1024];
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await?;
                if n == 0 {
                    break;
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        refusing.fetch_sub(1, Ordering::SeqCst);
    });
}

/// Resolves when `flag` is true (or its sender is gone).
async fn turned_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|f| *f).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    slot: Slot,
    mut closing: watch::Receiver<bool>,
) {
    let _slot = slot;
    let io = hyper_util::rt::TokioIo::new(IdleIo::new(stream, limits.idle_timeout));
    let service =
        hyper::service::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let req = req.map(Body::new);
                tower::ServiceExt::oneshot(router, req).await
            }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(client = %peer, "website connection: {e}");
            }
        }
        () = turned_true(&mut closing) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_the_reserve_free() {
        assert_eq!(connection_budget(Some(256), 20, 64, 64), 64);
        assert_eq!(connection_budget(Some(128), 20, 64, 64), 28);
        assert_eq!(connection_budget(Some(64), 20, 64, 64), 1);
        assert_eq!(connection_budget(None, 20, 64, 64), 64);
    }

    #[test]
    fn admission_caps_in_total_and_per_client() {
        let budget = Budget::new(3, 2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let s1 = budget.admit(a).unwrap();
        let _s2 = budget.admit(a).unwrap();
        assert!(budget.admit(a).is_none(), "per client");
        let _s3 = budget.admit(b).unwrap();
        assert!(budget.admit(b).is_none(), "in total");
        drop(s1);
        assert_eq!(budget.held(), 2);
        assert!(budget.admit(b).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_timeout() {
        use http_body_util::BodyExt as _;
        let (tx, body) = {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|f| (f, rx))
            });
            (tx, Body::new(http_body_util::StreamBody::new(stream)))
        };
        tx.send(Ok(Frame::data(Bytes::from_static(b"ab"))))
            .await
            .unwrap();
        let mut body = TimeoutBody::new(body, Duration::from_secs(10));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"ab"));
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyStalled>(), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        drop(tx);
    }
}
