//! The syslog source: Promtail's `syslog:` scrape config, a TCP or UDP listener receiving
//! RFC 5424 or RFC 3164 messages, framed as RFC 6587 describes ([`framing`]) and parsed best
//! effort ([`parse`]).
//!
//! Owns the listener and its connections: each TCP connection is read by its own task, so a
//! malformed or silent sender only ever closes its own connection; labels are `labels` plus
//! the `__syslog_*` meta labels, relabeled by `relabel_configs`. Back-pressure: a TCP
//! connection stops reading while the job's pipeline is full (the sender is held back by the
//! kernel's window); a UDP message that finds the pipeline full is dropped and counted, since
//! a datagram cannot be held back. Messages carry no acknowledgement token: nothing is
//! resumed, so there is no position to keep. It must not know stages or Loki.

pub mod framing;
pub mod parse;
pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::{ScrapeConfig, SyslogProtocol, SyslogTargetConfig};
use crate::metrics::SyslogMetrics;
use crate::model::entry::LineBatch;
use crate::model::labels::LabelSet;
use crate::sources::relabel::{Relabeled, Relabeler, stream_labels};
use framing::{Framer, Problem};
use parse::{Format, Parsed};

/// How long a non-transparent message waits for continuation lines (which go-syslog joins
/// to it) once the sender goes quiet. Promtail waits for the next message or the idle
/// timeout, so the last message of a quiet connection could wait two minutes.
const CONTINUATION_WAIT: Duration = Duration::from_millis(100);

/// Bytes read from a TCP connection at a time: the most a stalled connection holds besides
/// its framer's one message.
const READ_CHUNK: usize = 16 * 1024;

/// At shutdown, how long a connection's read may wait before its drain counts as done.
const DRAIN_WAIT: Duration = Duration::from_millis(10);

/// UDP: batches received while the pipeline is busy, before messages are dropped. Each holds
/// one datagram's messages, so this bounds memory at this many datagrams.
const UDP_QUEUE_BATCHES: usize = 512;

/// How long a reverse lookup of a sender may take before its connection goes on without
/// `__syslog_connection_hostname`.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Senders whose reverse lookup is remembered, and for how long: a sender that reconnects
/// in a loop (or a flood of connections from one address) costs one lookup, not one each.
/// The cache starts over when full; a lookup that timed out counts as no name until then.
const NAME_CACHE: usize = 4096;
const NAME_TTL: Duration = Duration::from_secs(300);

/// What every connection of a job shares.
struct Settings {
    job: String,
    format: Format,
    labels: BTreeMap<String, String>,
    relabelers: Vec<Relabeler>,
    label_structured_data: bool,
    use_incoming_timestamp: bool,
    use_rfc5424_message: bool,
    max_message_length: usize,
    idle_timeout: Duration,
    max_connections: usize,
    metrics: SyslogMetrics,
    names: Names,
}

enum Listener {
    Tcp(TcpListener, Option<TlsAcceptor>),
    Udp(UdpSocket),
}

/// A bound syslog listener, ready to run.
pub struct SyslogSource {
    settings: Arc<Settings>,
    listener: Listener,
}

impl SyslogSource {
    /// Binds the listener now, so a port in use fails the job's start (or reload) at once.
    /// Must be called within the Tokio runtime.
    pub fn bind(
        job: &ScrapeConfig,
        config: &SyslogTargetConfig,
        relabelers: Vec<Relabeler>,
        metrics: SyslogMetrics,
    ) -> Result<Self, String> {
        let tls = match &config.tls_config {
            Some(t) => tls::acceptor(t).map_err(|e| format!("syslog.tls_config: {e}"))?,
            None => None,
        };
        let addr = listen_address(&config.listen_address)?;
        let at = |e: std::io::Error| format!("syslog listen_address {addr}: {e}");
        let listener = match config.listen_protocol {
            SyslogProtocol::Tcp => {
                let l = std::net::TcpListener::bind(addr).map_err(at)?;
                l.set_nonblocking(true).map_err(at)?;
                Listener::Tcp(TcpListener::from_std(l).map_err(at)?, tls)
            }
            SyslogProtocol::Udp if tls.is_some() => {
                return Err("syslog.tls_config: TLS needs listen_protocol: tcp".into());
            }
            SyslogProtocol::Udp => {
                let s = std::net::UdpSocket::bind(addr).map_err(at)?;
                s.set_nonblocking(true).map_err(at)?;
                receive_buffer(&s, 1 << 20);
                Listener::Udp(UdpSocket::from_std(s).map_err(at)?)
            }
        };
        let settings = Settings {
            job: job.job_name.clone(),
            format: if config.syslog_format == "rfc3164" {
                Format::Rfc3164
            } else {
                Format::Rfc5424
            },
            labels: config.labels.clone(),
            relabelers,
            label_structured_data: config.label_structured_data,
            use_incoming_timestamp: config.use_incoming_timestamp,
            use_rfc5424_message: config.use_rfc5424_message,
            max_message_length: match config.max_message_length {
                0 => 8192,
                n => n,
            },
            idle_timeout: match config.idle_timeout.0 {
                d if d.is_zero() => Duration::from_secs(120),
                d => d,
            },
            max_connections: config.max_connections.max(1),
            metrics,
            names: Names::default(),
        };
        let source = SyslogSource {
            settings: Arc::new(settings),
            listener,
        };
        tracing::info!(
            job = %source.settings.job,
            address = ?source.local_addr(),
            protocol = ?config.listen_protocol,
            "syslog listening"
        );
        Ok(source)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.listener {
            Listener::Tcp(l, _) => l.local_addr().ok(),
            Listener::Udp(s) => s.local_addr().ok(),
        }
    }

    /// What `/targets` and `/service-discovery` show of this listener.
    pub fn target_view(&self) -> crate::sources::targets_view::SourceTargetView {
        let protocol = match &self.listener {
            Listener::Tcp(_, Some(_)) => "tcp+tls",
            Listener::Tcp(_, None) => "tcp",
            Listener::Udp(_) => "udp",
        };
        let address = self
            .local_addr()
            .map_or_else(|| "?".to_string(), |a| a.to_string());
        crate::sources::targets_view::SourceTargetView::listener(
            "syslog",
            format!("{protocol} {address}"),
            &self.settings.labels,
        )
    }

    /// Receives until `stop`: then stops accepting, ships what was already received and
    /// returns once every connection has.
    pub async fn run(self, out: mpsc::Sender<LineBatch>, stop: watch::Receiver<bool>) {
        match self.listener {
            Listener::Tcp(l, tls) => run_tcp(self.settings, l, tls, out, stop).await,
            Listener::Udp(s) => run_udp(self.settings, s, out, stop).await,
        }
    }
}

/// Promtail's forms: empty is every interface on a random port, `:514` every interface.
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = if text.is_empty() { ":0" } else { text };
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.to_socket_addrs()
        .map_err(|e| format!("syslog listen_address {text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("syslog listen_address {text:?}: no address"))
}

/// Promtail's 1 MiB UDP receive buffer, so bursts wait in the kernel, not on the wire.
pub(crate) fn receive_buffer(socket: &std::net::UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a descriptor the socket owns, with a pointer to a live c_int
    // and its size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot set the syslog UDP receive buffer");
    }
}

async fn run_tcp(
    settings: Arc<Settings>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    out: mpsc::Sender<LineBatch>,
    mut stop: watch::Receiver<bool>,
) {
    let conn_stop = stop.clone();
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        let failed = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => false,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    if connections.len() >= settings.max_connections {
                        settings.metrics.refused_connections.inc();
                        tracing::warn!(job = %settings.job, %peer, limit = settings.max_connections, "syslog connection refused: max_connections are open");
                        drop(stream);
                    } else {
                        connections.spawn(accepted_connection(settings.clone(), stream, tls.clone(), peer, out.clone(), conn_stop.clone()));
                    }
                    false
                }
                Err(e) => {
                    tracing::warn!(job = %settings.job, error = %e, "syslog accept failed");
                    true
                }
            }
        };
        if failed {
            // Out of descriptors, most likely: back off as Go's listeners do.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// A connection just accepted: its TLS handshake first, when the listener has TLS.
async fn accepted_connection(
    settings: Arc<Settings>,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    peer: SocketAddr,
    out: mpsc::Sender<LineBatch>,
    stop: watch::Receiver<bool>,
) {
    let Some(acceptor) = tls else {
        return connection(settings, stream, peer, out, stop).await;
    };
    match tokio::time::timeout(settings.idle_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => connection(settings, stream, peer, out, stop).await,
        Ok(Err(e)) => {
            tracing::warn!(job = %settings.job, %peer, error = %e, "syslog TLS handshake failed");
        }
        Err(_) => {
            tracing::warn!(job = %settings.job, %peer, "syslog TLS handshake not finished within idle_timeout");
        }
    }
}

/// Reads one connection until it ends, goes idle, cannot be framed, or `stop`.
async fn connection(
    settings: Arc<Settings>,
    mut stream: impl AsyncRead + Unpin,
    peer: SocketAddr,
    out: mpsc::Sender<LineBatch>,
    mut stop: watch::Receiver<bool>,
) {
    let sender = settings.names.sender(peer.ip()).await;
    let mut framer = Framer::new(settings.max_message_length);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let wait = if framer.has_pending() {
            CONTINUATION_WAIT
        } else {
            settings.idle_timeout
        };
        let (mut frames, mut problems) = (Vec::new(), Vec::new());
        let read = tokio::select! {
            r = tokio::time::timeout(wait, stream.read(&mut buf)) => Some(r),
            _ = stop.wait_for(|s| *s) => None,
        };
        let end = match read {
            None => {
                drain(
                    &settings,
                    &mut stream,
                    &mut framer,
                    &mut buf,
                    &mut frames,
                    &mut problems,
                )
                .await;
                true
            }
            Some(Err(_)) if framer.has_pending() => {
                framer.flush(&mut frames);
                false
            }
            Some(Err(_)) => {
                tracing::debug!(job = %settings.job, %peer, "syslog connection idle; closing it");
                true
            }
            Some(Ok(Ok(0))) => true,
            Some(Ok(Ok(n))) => match framer.feed(&buf[..n], &mut frames, &mut problems) {
                Ok(()) => false,
                Err(e) => {
                    settings.metrics.parsing_errors.inc();
                    tracing::warn!(job = %settings.job, %peer, error = %e.0, "syslog stream cannot be framed; closing the connection");
                    true
                }
            },
            Some(Ok(Err(e))) => {
                tracing::debug!(job = %settings.job, %peer, error = %e, "syslog connection failed");
                true
            }
        };
        if end {
            framer.finish(&mut frames, &mut problems);
        }
        settings.count(&problems);
        for batch in settings.batches(&sender, frames) {
            let n = batch.len() as u64;
            if out.send(batch).await.is_err() {
                return;
            }
            settings.metrics.entries.inc_by(n);
        }
        if end {
            return;
        }
    }
}

/// At shutdown: what the sender already delivered to this host (the kernel's receive
/// buffer) is framed too, so a message written before the agent was told to stop is
/// shipped. Bounded, so a sender that keeps writing cannot hold shutdown up.
async fn drain(
    settings: &Settings,
    stream: &mut (impl AsyncRead + Unpin),
    framer: &mut Framer,
    buf: &mut [u8],
    frames: &mut Vec<Vec<u8>>,
    problems: &mut Vec<Problem>,
) {
    for _ in 0..64 {
        // Only what is already there: a read that has to wait means nothing is.
        match tokio::time::timeout(DRAIN_WAIT, stream.read(buf)).await {
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                if framer.feed(&buf[..n], frames, problems).is_err() {
                    settings.metrics.parsing_errors.inc();
                    return;
                }
            }
        }
    }
}

async fn run_udp(
    settings: Arc<Settings>,
    socket: UdpSocket,
    out: mpsc::Sender<LineBatch>,
    mut stop: watch::Receiver<bool>,
) {
    let (queue, mut queued) = mpsc::channel::<LineBatch>(UDP_QUEUE_BATCHES);
    let entries = settings.metrics.entries.clone();
    let forward = tokio::spawn(async move {
        while let Some(batch) = queued.recv().await {
            let n = batch.len() as u64;
            if out.send(batch).await.is_err() {
                return;
            }
            entries.inc_by(n);
        }
    });
    // One byte over the limit tells a datagram that was cut from one that fit.
    let mut buf = vec![0u8; settings.max_message_length + 1];
    loop {
        let received = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            r = socket.recv_from(&mut buf) => r,
        };
        let (mut n, peer) = match received {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(job = %settings.job, error = %e, "syslog UDP receive failed");
                continue;
            }
        };
        if n > settings.max_message_length {
            // Cut as Promtail cuts it, and counted, which Promtail does not.
            settings
                .metrics
                .dropped
                .with_label_values(&["syslog", "truncated"])
                .inc();
            n = settings.max_message_length;
        }
        let sender = settings.names.sender(peer.ip()).await;
        // Each datagram is framed on its own, as go-syslog parses it.
        let mut framer = Framer::new(settings.max_message_length);
        let (mut frames, mut problems) = (Vec::new(), Vec::new());
        if let Err(e) = framer.feed(&buf[..n], &mut frames, &mut problems) {
            settings.metrics.parsing_errors.inc();
            tracing::debug!(job = %settings.job, %peer, error = %e.0, "syslog datagram cannot be framed");
        }
        framer.finish(&mut frames, &mut problems);
        settings.count(&problems);
        for batch in settings.batches(&sender, frames) {
            match queue.try_send(batch) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(batch)) => settings
                    .metrics
                    .dropped
                    .with_label_values(&["syslog", "queue_full"])
                    .inc_by(batch.len() as u64),
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
    }
    drop(queue);
    let _ = forward.await;
}

/// The sender's address and, when it resolves, its name.
#[derive(Clone, Debug, Default)]
struct Sender {
    ip: String,
    hostname: Option<String>,
}

/// Reverse lookups remembered for [`NAME_TTL`], shared by a job's connections.
#[derive(Default)]
struct Names {
    cache: std::sync::Mutex<HashMap<IpAddr, (Instant, Option<String>)>>,
}

impl Names {
    async fn sender(&self, ip: IpAddr) -> Sender {
        let ip = ip.to_canonical();
        let now = Instant::now();
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&ip)
                .filter(|(at, _)| now.duration_since(*at) < NAME_TTL)
                .map(|(_, name)| name.clone())
        };
        let hostname = match cached {
            Some(name) => name,
            None => {
                let lookup = tokio::task::spawn_blocking(move || reverse_lookup(ip));
                let name = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                    Ok(Ok(name)) => name,
                    _ => None,
                };
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= NAME_CACHE {
                    cache.clear();
                }
                cache.insert(ip, (now, name.clone()));
                name
            }
        };
        Sender {
            ip: ip.to_string(),
            hostname,
        }
    }
}

/// The name of `ip` (getnameinfo, as Go's resolver would find it: hosts file, then DNS), with
/// the trailing dot Go's `net.LookupAddr` keeps; `None` when it has none.
fn reverse_lookup(ip: IpAddr) -> Option<String> {
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: the socket addresses are zeroed structs of the right family filled in
    // field by field, passed with their own sizes; getnameinfo writes at most `host.len()`
    // bytes (NUL-terminated) into `host`, which outlives the call.
    let rc = unsafe {
        match ip {
            IpAddr::V4(v4) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
                libc::getnameinfo(
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
            IpAddr::V6(v6) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = v6.octets();
                libc::getnameinfo(
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
        }
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo succeeded, so `host` holds a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) }.to_string_lossy();
    (!name.is_empty()).then(|| format!("{}.", name.trim_end_matches('.')))
}

impl Settings {
    fn count(&self, problems: &[Problem]) {
        for p in problems {
            match p {
                Problem::TooLong(len) => {
                    tracing::debug!(job = %self.job, len, "syslog frame over max_message_length skipped");
                    self.metrics.parsing_errors.inc();
                    self.metrics
                        .dropped
                        .with_label_values(&["syslog", "too_long"])
                        .inc();
                }
                Problem::Incomplete => self.metrics.parsing_errors.inc(),
                Problem::Truncated => self
                    .metrics
                    .dropped
                    .with_label_values(&["syslog", "truncated"])
                    .inc(),
            }
        }
    }

    /// The frames as line batches, consecutive lines with the same labels and timestamp in
    /// one batch.
    fn batches(&self, sender: &Sender, frames: Vec<Vec<u8>>) -> Vec<LineBatch> {
        let mut batches: Vec<LineBatch> = Vec::new();
        if frames.is_empty() {
            return batches;
        }
        let now = crate::model::clock::now();
        for frame in frames {
            let Some((labels, timestamp, line)) = self.entry(sender, &frame, now) else {
                continue;
            };
            match batches.last_mut() {
                Some(b) if *b.labels == labels && b.read_time == timestamp => b.push(&line, None),
                _ => {
                    let mut b = LineBatch::new(Arc::new(labels), timestamp);
                    b.push(&line, None);
                    batches.push(b);
                }
            }
        }
        batches
    }

    /// One frame's labels, timestamp and line; `None` (counted) when it is not shipped.
    fn entry(
        &self,
        sender: &Sender,
        frame: &[u8],
        now: DateTime<FixedOffset>,
    ) -> Option<(LabelSet, DateTime<FixedOffset>, String)> {
        let (message, error) = match parse::parse(frame, self.format, now.to_utc()) {
            Parsed::Ok(m) => (m, None),
            Parsed::Partial(m, why) => (m, Some(why)),
            Parsed::Invalid(why) => {
                self.metrics.parsing_errors.inc();
                tracing::debug!(job = %self.job, error = why, "syslog message dropped: no priority");
                return None;
            }
        };
        if let Some(why) = error {
            self.metrics.parsing_errors.inc();
            tracing::debug!(job = %self.job, error = why, "syslog message header malformed; shipped whole");
        }
        // rsyslog's RFC 5424 templates end the message with a newline inside the frame.
        let Some(text) = message
            .message
            .as_deref()
            .map(|m| m.trim_end_matches(['\n', '\r']))
            .filter(|m| !m.is_empty())
        else {
            self.metrics.empty_messages.inc();
            return None;
        };
        let line = if self.use_rfc5424_message && self.format == Format::Rfc5424 && error.is_none()
        {
            String::from_utf8_lossy(frame)
                .trim_end_matches(['\n', '\r'])
                .to_string()
        } else {
            text.to_string()
        };
        let mut labels = self.labels.clone();
        labels.insert("__syslog_connection_ip_address".into(), sender.ip.clone());
        if let Some(h) = &sender.hostname {
            labels.insert("__syslog_connection_hostname".into(), h.clone());
        }
        labels.insert(
            "__syslog_message_severity".into(),
            parse::severity_name(message.severity).into(),
        );
        labels.insert(
            "__syslog_message_facility".into(),
            parse::facility_name(message.facility).into(),
        );
        for (name, value) in [
            ("__syslog_message_hostname", &message.hostname),
            ("__syslog_message_app_name", &message.app_name),
            ("__syslog_message_proc_id", &message.proc_id),
            ("__syslog_message_msg_id", &message.msg_id),
        ] {
            if let Some(v) = value {
                labels.insert(name.into(), v.clone());
            }
        }
        if self.label_structured_data {
            for (id, params) in &message.structured_data {
                // Promtail replaces only `@`; other characters of the SD-ID stay.
                let id = id.replace('@', "_");
                for (param, value) in params {
                    labels.insert(format!("__syslog_message_sd_{id}_{param}"), value.clone());
                }
            }
        }
        let set = match stream_labels(&self.relabelers, labels) {
            Relabeled::Labels(set) => set,
            Relabeled::Dropped => return None,
            Relabeled::NoLabels => {
                self.metrics
                    .dropped
                    .with_label_values(&["syslog", "no_labels"])
                    .inc();
                return None;
            }
        };
        let timestamp = match message.timestamp {
            Some(t) if self.use_incoming_timestamp => t,
            _ => now,
        };
        Some((set, timestamp, line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelabelConfig;

    fn settings(config: SyslogTargetConfig, relabel: &[(&str, &str)]) -> Settings {
        let relabelers = relabel
            .iter()
            .map(|(from, to)| {
                Relabeler::new(&RelabelConfig {
                    source_labels: vec![from.to_string()],
                    target_label: to.to_string(),
                    ..RelabelConfig::default()
                })
                .unwrap()
            })
            .collect();
        Settings {
            job: "syslog".into(),
            format: if config.syslog_format == "rfc3164" {
                Format::Rfc3164
            } else {
                Format::Rfc5424
            },
            labels: config.labels.clone(),
            relabelers,
            label_structured_data: config.label_structured_data,
            use_incoming_timestamp: config.use_incoming_timestamp,
            use_rfc5424_message: config.use_rfc5424_message,
            max_message_length: 8192,
            idle_timeout: Duration::from_secs(120),
            max_connections: 10,
            metrics: crate::metrics::Metrics::new().syslog,
            names: Names::default(),
        }
    }

    const FRAME: &[u8] = b"<165>1 2003-10-11T22:14:15.003Z mymachine evntslog 42 ID47 [exampleSDID@32473 iut=\"3\"] An application event";

    #[test]
    fn meta_labels_relabeled_structured_data_and_incoming_timestamp() {
        let s = settings(
            SyslogTargetConfig {
                label_structured_data: true,
                use_incoming_timestamp: true,
                labels: BTreeMap::from([("job".into(), "syslog".into())]),
                ..SyslogTargetConfig::default()
            },
            &[
                ("__syslog_message_severity", "level"),
                ("__syslog_message_facility", "facility"),
                ("__syslog_message_hostname", "host"),
                ("__syslog_message_app_name", "app"),
                ("__syslog_message_proc_id", "pid"),
                ("__syslog_message_msg_id", "msgid"),
                ("__syslog_message_sd_exampleSDID_32473_iut", "iut"),
                ("__syslog_connection_ip_address", "ip"),
            ],
        );
        let sender = Sender {
            ip: "127.0.0.1".into(),
            hostname: Some("localhost.".into()),
        };
        let now = crate::model::clock::now();
        let (labels, ts, line) = s.entry(&sender, FRAME, now).unwrap();
        let got: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(
            got,
            [
                ("app", "evntslog"),
                ("facility", "local4"),
                ("host", "mymachine"),
                ("ip", "127.0.0.1"),
                ("iut", "3"),
                ("job", "syslog"),
                ("level", "notice"),
                ("msgid", "ID47"),
                ("pid", "42"),
            ]
        );
        assert_eq!(ts.to_rfc3339(), "2003-10-11T22:14:15.003+00:00");
        assert_eq!(line, "An application event");
    }

    #[test]
    fn whole_message_line_and_arrival_time_by_default() {
        let s = settings(
            SyslogTargetConfig {
                use_rfc5424_message: true,
                labels: BTreeMap::from([("job".into(), "syslog".into())]),
                ..SyslogTargetConfig::default()
            },
            &[],
        );
        let now = crate::model::clock::now();
        let (_, ts, line) = s.entry(&Sender::default(), FRAME, now).unwrap();
        assert_eq!(ts, now);
        assert_eq!(line.as_bytes(), FRAME);
    }

    #[test]
    fn no_labels_no_message_and_no_priority_are_not_shipped_but_counted() {
        let s = settings(SyslogTargetConfig::default(), &[]);
        let now = crate::model::clock::now();
        assert!(s.entry(&Sender::default(), FRAME, now).is_none());
        assert_eq!(
            s.metrics
                .dropped
                .with_label_values(&["syslog", "no_labels"])
                .get(),
            1
        );
        let s = settings(
            SyslogTargetConfig {
                labels: BTreeMap::from([("job".into(), "syslog".into())]),
                ..SyslogTargetConfig::default()
            },
            &[],
        );
        assert!(
            s.entry(&Sender::default(), b"<13>1 - - - - - -", now)
                .is_none()
        );
        assert_eq!(s.metrics.empty_messages.get(), 1);
        assert!(s.entry(&Sender::default(), b"garbage", now).is_none());
        let partial = s.entry(&Sender::default(), b"<13>1 nope x", now).unwrap();
        assert_eq!(partial.2, "<13>1 nope x");
        assert_eq!(s.metrics.parsing_errors.get(), 2);
    }

    #[test]
    fn listen_addresses_in_promtails_forms() {
        assert_eq!(listen_address("").unwrap().to_string(), "0.0.0.0:0");
        assert_eq!(listen_address(":1514").unwrap().to_string(), "0.0.0.0:1514");
        assert_eq!(
            listen_address("127.0.0.1:1514").unwrap().to_string(),
            "127.0.0.1:1514"
        );
        assert!(listen_address("nonsense").is_err());
    }
}
