//! The HTTP server's connections: accepting within a limit, closing slow, idle and half-sent
//! connections on time, and TLS when configured.
//!
//! dskit (Promtail's server) sets Go's `ReadHeaderTimeout`, `ReadTimeout`, `WriteTimeout` and
//! `IdleTimeout`; without them any host that reaches the port can hold connections open for
//! ever and use up the agent's descriptors. Here:
//! - a request's headers must arrive within `http_server_read_header_timeout` (0: the read
//!   timeout), counted from the connection's start or the end of the previous response, so an
//!   idle keep-alive connection is closed after that time too;
//! - a connection on which nothing moves, in either direction, for `http_server_idle_timeout`
//!   is closed, and a response write that makes no progress for `http_server_write_timeout`;
//! - at most `http_listen_conn_limit` connections are open (default [`DEFAULT_CONN_LIMIT`]);
//!   a connection over the limit takes the place of the one quiet for longest, so a
//!   fresh `/ready` or scrape is answered while idle connections hold every place.
//!
//! Owns the accept loop and the per-connection I/O. It must not know the routes: it serves
//! whatever [`Router`] it is given (the agent's pages, a push source's routes); [`tls`] owns
//! the certificate. It sits outside `agent/` so sources can listen through it too.

pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;

/// Connections kept open at once when `http_listen_conn_limit` is 0 (dskit: no limit). A
/// scraper and a few people need a handful; the agent's descriptors are for its files.
pub const DEFAULT_CONN_LIMIT: usize = 256;

/// How the server treats its connections, from `server:`.
#[derive(Clone)]
pub struct Limits {
    pub conn_limit: usize,
    pub read_header_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
}

impl Limits {
    pub fn of(server: &ServerConfig) -> Self {
        let read = server.http_server_read_timeout.0;
        let header = match server.http_server_read_header_timeout.0 {
            d if d.is_zero() => read,
            d => d,
        };
        // Go reads 0 as "no timeout"; an unbounded wait is what this module exists to
        // prevent, so 0 falls back to dskit's defaults instead.
        let or = |d: Duration, default: u64| {
            if d.is_zero() {
                Duration::from_secs(default)
            } else {
                d
            }
        };
        Limits {
            conn_limit: match server.http_listen_conn_limit {
                0 => DEFAULT_CONN_LIMIT,
                n => n as usize,
            },
            read_header_timeout: or(header, 30),
            idle_timeout: or(server.http_server_idle_timeout.0, 120),
            write_timeout: or(server.http_server_write_timeout.0, 30),
        }
    }
}

/// A bound listener, ready to serve.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
}

impl Listener {
    /// Binds `server.http_listen_network` / `_address` / `_port`; a failure (port in use, bad
    /// address, unknown network) stops startup.
    pub async fn bind(server: &ServerConfig, tls: Option<TlsAcceptor>) -> Result<Listener, String> {
        let tcp = bind_tcp(
            &server.http_listen_network,
            &server.http_listen_address,
            server.http_listen_port,
        )
        .await?;
        Ok(Listener {
            tcp,
            tls,
            limits: Limits::of(server),
        })
    }

    /// [`Self::bind`] for a caller outside async code (a source bound as its job starts):
    /// the address is resolved by the system resolver, blocking. Must run inside the runtime.
    pub fn bind_now(server: &ServerConfig, tls: Option<TlsAcceptor>) -> Result<Listener, String> {
        let network = server.http_listen_network.as_str();
        let host = listen_host(network, &server.http_listen_address)?;
        let port = server.http_listen_port;
        let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?
            .collect();
        let tcp = listen_on(network, host, port, addrs)?;
        Ok(Listener {
            tcp,
            tls,
            limits: Limits::of(server),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.local_addr().ok()
    }

    /// Serves `app` until `stop` turns true; open connections then finish the request in
    /// hand (within the write timeout) and close.
    pub async fn serve(self, app: Router, mut stop: watch::Receiver<bool>) {
        let open = Connections::default();
        let mut accept_errors = AcceptBackoff::default();
        let service = TowerToHyperService::new(app);
        loop {
            let accepted = tokio::select! {
                a = self.tcp.accept() => a,
                _ = stopped(&mut stop) => break,
            };
            let stream = match accepted {
                Ok((stream, _)) => {
                    accept_errors.reset();
                    stream
                }
                Err(e) => {
                    // EMFILE and the like: the descriptors may come back, so wait and go on
                    // rather than spin or stop serving.
                    accept_errors.wait(&e).await;
                    continue;
                }
            };
            let Some(slot) = open.admit(self.limits.conn_limit) else {
                // Every place is held by a connection that is in the middle of a request.
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_connection(
                stream,
                self.tls.clone(),
                service.clone(),
                self.limits.clone(),
                slot,
                stop.clone(),
            ));
        }
        // Let the connections that are still open see the stop and finish.
        open.wait_empty(self.limits.write_timeout).await;
    }
}

fn listen_host<'a>(network: &str, address: &'a str) -> Result<&'a str, String> {
    Ok(match (network, address) {
        ("tcp" | "tcp4" | "", "") => "0.0.0.0",
        ("tcp6", "") => "::",
        ("tcp" | "tcp4" | "tcp6" | "", a) => a,
        (other, _) => {
            return Err(format!(
                "server.http_listen_network: expected tcp, tcp4 or tcp6, got {other:?}"
            ));
        }
    })
}

async fn bind_tcp(network: &str, address: &str, port: u16) -> Result<TcpListener, String> {
    let host = listen_host(network, address)?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?
        .collect();
    listen_on(network, host, port, addrs)
}

fn listen_on(
    network: &str,
    host: &str,
    port: u16,
    addrs: Vec<SocketAddr>,
) -> Result<TcpListener, String> {
    let addrs: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match network {
            "tcp4" => a.is_ipv4(),
            "tcp6" => a.is_ipv6(),
            _ => true,
        })
        .collect();
    let mut last = format!("cannot listen on {host}:{port}: no {network} address");
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        let bound = socket.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(1024)
        });
        match bound {
            Ok(l) => return Ok(l),
            Err(e) => last = format!("cannot listen on {addr}: {e}"),
        }
    }
    Err(last)
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    service: TowerToHyperService<Router>,
    limits: Limits,
    slot: Slot,
    mut stop: watch::Receiver<bool>,
) {
    let io = TimedIo::new(stream, slot.activity.clone(), &limits);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_header_timeout);
    let evicted = slot.evicted.clone();
    match tls {
        None => {
            let conn = builder.serve_connection(TokioIo::new(io), service);
            drive(conn, &evicted, &mut stop).await;
        }
        Some(acceptor) => {
            // The handshake is part of reading the request: it gets the header timeout.
            let handshake = tokio::time::timeout(limits.read_header_timeout, acceptor.accept(io));
            let io = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(io)) => io,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                _ = evicted.notified() => return,
            };
            let conn = builder.serve_connection(TokioIo::new(io), service);
            drive(conn, &evicted, &mut stop).await;
        }
    }
    drop(slot);
}

/// Runs one connection until it ends, it is evicted, or the server stops (then the request
/// in hand is finished first).
async fn drive<I, S>(
    conn: http1::Connection<I, S>,
    evicted: &Notify,
    stop: &mut watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = evicted.notified() => {}
        _ = stopped(stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone), holding no borrow of it.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The open connections and when each last moved a byte.
#[derive(Clone, Default)]
struct Connections {
    inner: Arc<Mutex<ConnectionsInner>>,
    emptied: Arc<Notify>,
}

#[derive(Default)]
struct ConnectionsInner {
    next_id: u64,
    open: HashMap<u64, (Arc<Activity>, Arc<Notify>)>,
}

impl Connections {
    /// A place for a new connection; at the limit, the connection quiet for longest gives its
    /// place up, unless every connection moved a byte within the last second (all busy).
    fn admit(&self, limit: usize) -> Option<Slot> {
        let Ok(mut inner) = self.inner.lock() else {
            return None;
        };
        if inner.open.len() >= limit {
            let quietest = inner
                .open
                .iter()
                .map(|(id, (activity, _))| (*id, activity.quiet_for()))
                .max_by_key(|(_, quiet)| *quiet);
            match quietest {
                Some((id, quiet)) if quiet >= Duration::from_secs(1) => {
                    if let Some((_, evicted)) = inner.open.remove(&id) {
                        evicted.notify_one();
                    }
                }
                _ => return None,
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let activity = Arc::new(Activity::new());
        let evicted = Arc::new(Notify::new());
        inner.open.insert(id, (activity.clone(), evicted.clone()));
        Some(Slot {
            id,
            activity,
            evicted,
            connections: self.clone(),
        })
    }

    fn release(&self, id: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.open.remove(&id);
            if inner.open.is_empty() {
                self.emptied.notify_waiters();
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.inner.lock().map_or(true, |i| i.open.is_empty())
    }

    async fn wait_empty(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, async {
            while !self.is_empty() {
                let emptied = self.emptied.notified();
                if self.is_empty() {
                    break;
                }
                // Also look again now and then: a release may race the registration above.
                let _ = tokio::time::timeout(Duration::from_millis(100), emptied).await;
            }
        })
        .await;
    }
}

/// One connection's place; released when the connection's task ends.
struct Slot {
    id: u64,
    activity: Arc<Activity>,
    evicted: Arc<Notify>,
    connections: Connections,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.release(self.id);
    }
}

/// When a connection last moved a byte, in milliseconds since it was opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let now = self.opened.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that fails a read waiting longer than the idle timeout, or a write waiting
/// longer than the write timeout, and records every byte moved.
struct TimedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    idle: Duration,
    write: Duration,
    read_wait: Option<Pin<Box<Sleep>>>,
    write_wait: Option<Pin<Box<Sleep>>>,
}

impl<T> TimedIo<T> {
    fn new(inner: T, activity: Arc<Activity>, limits: &Limits) -> Self {
        TimedIo {
            inner,
            activity,
            idle: limits.idle_timeout,
            write: limits.write_timeout,
            read_wait: None,
            write_wait: None,
        }
    }

    fn progressed(&mut self) {
        self.activity.touch();
        self.read_wait = None;
        self.write_wait = None;
    }
}

/// Polls the wait armed for a pending operation; `true` once it has run out.
fn expired(wait: &mut Option<Pin<Box<Sleep>>>, limit: Duration, cx: &mut Context<'_>) -> bool {
    let sleep = wait.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    sleep.as_mut().poll(cx).is_ready()
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if expired(&mut this.read_wait, this.idle, cx) {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection idle past http_server_idle_timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if expired(&mut this.write_wait, this.write, cx) {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "response write stalled past http_server_write_timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Go's net/http backoff after a failed accept: 5 ms doubling to 1 s, logged once per run
/// of failures.
#[derive(Default)]
struct AcceptBackoff {
    delay: Option<Duration>,
}

impl AcceptBackoff {
    async fn wait(&mut self, e: &io::Error) {
        let delay = match self.delay {
            None => {
                tracing::warn!(error = %e, "HTTP server cannot accept connections; retrying");
                Duration::from_millis(5)
            }
            Some(d) => (d * 2).min(Duration::from_secs(1)),
        };
        self.delay = Some(delay);
        tokio::time::sleep(delay).await;
    }

    fn reset(&mut self) {
        self.delay = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_timeouts_fall_back_to_dskit_defaults_and_header_timeout_to_read_timeout() {
        let mut server = ServerConfig {
            http_server_read_timeout: crate::config::GoDuration::from_secs(7),
            ..ServerConfig::default()
        };
        let l = Limits::of(&server);
        assert_eq!(l.read_header_timeout, Duration::from_secs(7));
        assert_eq!(l.conn_limit, DEFAULT_CONN_LIMIT);
        server.http_server_read_timeout = crate::config::GoDuration::from_secs(0);
        server.http_server_idle_timeout = crate::config::GoDuration::from_secs(0);
        server.http_listen_conn_limit = 3;
        let l = Limits::of(&server);
        assert_eq!(l.read_header_timeout, Duration::from_secs(30));
        assert_eq!(l.idle_timeout, Duration::from_secs(120));
        assert_eq!(l.conn_limit, 3);
    }

    #[test]
    fn at_the_limit_the_quietest_connection_gives_its_place_unless_all_are_busy() {
        let open = Connections::default();
        let a = open.admit(2).unwrap();
        let b = open.admit(2).unwrap();
        // Both just opened: busy, so a third is refused.
        assert!(open.admit(2).is_none());
        // `a` has been quiet for 5 s, `b` for 2 s: `a` is evicted.
        a.activity.last_ms.store(0, Ordering::Relaxed);
        let back = |d: u64| Instant::now() - Duration::from_secs(d);
        let a_opened = back(5);
        let b_opened = back(2);
        // Rebuild the activities with older opening times.
        {
            let mut inner = open.inner.lock().unwrap();
            let a_act = Arc::new(Activity {
                opened: a_opened,
                last_ms: AtomicU64::new(0),
            });
            let b_act = Arc::new(Activity {
                opened: b_opened,
                last_ms: AtomicU64::new(0),
            });
            inner.open.get_mut(&a.id).unwrap().0 = a_act;
            inner.open.get_mut(&b.id).unwrap().0 = b_act;
        }
        let c = open.admit(2).unwrap();
        let inner = open.inner.lock().unwrap();
        assert!(!inner.open.contains_key(&a.id));
        assert!(inner.open.contains_key(&b.id));
        assert!(inner.open.contains_key(&c.id));
    }
}
