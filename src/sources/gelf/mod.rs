//! The gelf source: Promtail's `gelf:` scrape config, a UDP listener receiving GELF
//! messages (Docker's `--log-driver gelf`, Graylog clients), whole or in chunks
//! ([`chunks`]), plain, gzip or zlib ([`message`]).
//!
//! Owns the socket, the chunk sets in progress and turning a message into an entry: labels
//! are `labels` plus the `__gelf_message_*` meta labels, relabeled by `relabel_configs`; the
//! line is the message re-serialised as Promtail ships it. A datagram cannot be held back,
//! so a message that finds the job's pipeline (and this source's bounded queue) full is
//! dropped and counted; so are chunk sets that expire incomplete and datagrams that do not
//! decode, and none of them stops the listener. Nothing is resumed, so messages carry no
//! acknowledgement token. It must not know stages or Loki.

pub mod chunks;
pub mod message;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::config::{GelfTargetConfig, ScrapeConfig, gelf::GELF_DEFAULT_LISTEN_ADDRESS};
use crate::metrics::network_sources::GelfMetrics;
use crate::model::entry::LineBatch;
use crate::model::labels::LabelSet;
use crate::sources::relabel::{Relabeled, Relabeler, stream_labels};
use chunks::{Assembler, Fed};
use message::{DecodeError, Message};

/// The largest UDP payload. Promtail reads into 1,420 bytes and so cuts (and fails to
/// decode) any larger datagram, such as a Graylog client's 8 KiB LAN chunks; this reads whole.
const DATAGRAM_MAX: usize = 65_535;

/// The longest decompressed message; a longer one (or a compression bomb) is dropped and
/// counted as `too_long`.
const MESSAGE_MAX: usize = 8 << 20;

/// Chunk sets in progress, and their bytes: the memory a sender of partial sets can hold.
const MAX_SETS: usize = 4096;
const MAX_SET_BYTES: usize = 32 << 20;

/// Batches received while the pipeline is busy, before messages are dropped; each holds at
/// most [`BURST`] messages, so at most 4,096 messages wait.
const QUEUE_BATCHES: usize = 128;

/// Datagrams already waiting in the socket read after one wake-up, at most: consecutive
/// messages with the same labels (and arrival time) then travel as one batch.
const BURST: usize = 32;

/// How often expired chunk sets are swept (they are also noticed when a late chunk comes).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// At shutdown, datagrams already in the socket's buffer read before stopping, at most.
const DRAIN_MAX: usize = 4096;

/// Promtail's GELF level names, by syslog severity.
const LEVELS: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
];

struct Settings {
    job: String,
    labels: BTreeMap<String, String>,
    relabelers: Vec<Relabeler>,
    use_incoming_timestamp: bool,
    metrics: GelfMetrics,
}

/// A bound gelf listener, ready to run.
pub struct GelfSource {
    settings: Settings,
    socket: UdpSocket,
}

impl GelfSource {
    /// Binds now, so a port in use fails the job's start (or reload) at once. Must be called
    /// within the Tokio runtime.
    pub fn bind(
        job: &ScrapeConfig,
        config: &GelfTargetConfig,
        relabelers: Vec<Relabeler>,
        metrics: GelfMetrics,
    ) -> Result<Self, String> {
        let addr = listen_address(&config.listen_address)?;
        let at = |e: std::io::Error| format!("gelf listen_address {addr}: {e}");
        let socket = std::net::UdpSocket::bind(addr).map_err(at)?;
        socket.set_nonblocking(true).map_err(at)?;
        // As the syslog listener: bursts (Docker restarting a busy container) wait in the
        // kernel rather than being dropped there.
        crate::sources::syslog::receive_buffer(&socket, 1 << 20);
        let socket = UdpSocket::from_std(socket).map_err(at)?;
        let source = GelfSource {
            settings: Settings {
                job: job.job_name.clone(),
                labels: config.labels.clone(),
                relabelers,
                use_incoming_timestamp: config.use_incoming_timestamp,
                metrics,
            },
            socket,
        };
        tracing::info!(job = %source.settings.job, address = ?source.local_addr(), "gelf listening");
        Ok(source)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    /// What `/targets` and `/service-discovery` show of this listener.
    pub fn target_view(&self) -> crate::sources::targets_view::SourceTargetView {
        let address = self
            .local_addr()
            .map_or_else(|| "?".to_string(), |a| a.to_string());
        crate::sources::targets_view::SourceTargetView::listener(
            "gelf",
            format!("udp {address}"),
            &self.settings.labels,
        )
    }

    /// Receives until `stop`: then reads what the socket already holds, ships what was
    /// received and returns.
    pub async fn run(self, out: mpsc::Sender<LineBatch>, mut stop: watch::Receiver<bool>) {
        let GelfSource { settings, socket } = self;
        let (queue, mut queued) = mpsc::channel::<LineBatch>(QUEUE_BATCHES);
        let forward = tokio::spawn(async move {
            while let Some(batch) = queued.recv().await {
                if out.send(batch).await.is_err() {
                    return;
                }
            }
        });
        let mut receiver = Receiver {
            settings,
            assembler: Assembler::new(MAX_SETS, MAX_SET_BYTES),
            queue,
            line: String::new(),
            pending: None,
        };
        let mut buf = vec![0u8; DATAGRAM_MAX];
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = sweep.tick() => {
                    let expired = receiver.assembler.expire(Instant::now());
                    receiver.count_expired(expired);
                }
                r = socket.recv_from(&mut buf) => match r {
                    Ok((n, peer)) => {
                        let now = crate::model::clock::now();
                        receiver.datagram(&buf[..n], peer, now);
                        // Tokio's readiness is still set: what else waits is read now.
                        for _ in 1..BURST {
                            match socket.try_recv_from(&mut buf) {
                                Ok((n, peer)) => receiver.datagram(&buf[..n], peer, now),
                                Err(_) => break,
                            }
                        }
                        receiver.flush();
                    }
                    Err(e) => {
                        tracing::debug!(job = %receiver.settings.job, error = %e, "gelf receive failed");
                    }
                },
            }
        }
        // Read through the plain socket: Tokio's `try_recv_from` answers from its cached
        // readiness and would miss datagrams that came since the last wake-up.
        if let Ok(socket) = socket.into_std() {
            for _ in 0..DRAIN_MAX {
                match socket.recv_from(&mut buf) {
                    Ok((n, peer)) => {
                        receiver.datagram(&buf[..n], peer, crate::model::clock::now());
                        if receiver.pending.as_ref().is_some_and(|b| b.len() >= BURST) {
                            receiver.flush();
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        receiver.flush();
        drop(receiver);
        let _ = forward.await;
    }
}

/// Promtail's forms: empty is `:12201`; `:port` is every interface.
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = if text.is_empty() {
        GELF_DEFAULT_LISTEN_ADDRESS
    } else {
        text
    };
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.to_socket_addrs()
        .map_err(|e| format!("gelf listen_address {text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("gelf listen_address {text:?}: no address"))
}

/// The receiving side of one listener: chunk sets in progress and the queue to the pipeline.
struct Receiver {
    settings: Settings,
    assembler: Assembler,
    queue: mpsc::Sender<LineBatch>,
    /// Reused for each message's line.
    line: String,
    /// Messages of this wake-up not yet queued.
    pending: Option<LineBatch>,
}

impl Receiver {
    fn datagram(&mut self, datagram: &[u8], peer: SocketAddr, now: DateTime<FixedOffset>) {
        let payload = if Assembler::is_chunk(datagram) {
            let mut expired = 0;
            let fed = self
                .assembler
                .feed(peer, datagram, Instant::now(), &mut expired);
            self.count_expired(expired);
            match fed {
                Fed::Complete(payload) => Cow::Owned(payload),
                Fed::Pending => return,
                Fed::Malformed(why) => {
                    self.malformed(peer, why);
                    return;
                }
                Fed::Overflow => {
                    self.drop_counted("chunks_overflow");
                    tracing::debug!(job = %self.settings.job, %peer, "gelf chunk dropped: too many chunk sets in progress");
                    return;
                }
            }
        } else {
            Cow::Borrowed(datagram)
        };
        match message::decode(&payload, MESSAGE_MAX) {
            Ok(m) => {
                self.settings.metrics.entries.inc();
                self.ship(&m, now);
            }
            Err(DecodeError::TooLong) => {
                self.settings.metrics.parsing_errors.inc();
                self.drop_counted("too_long");
            }
            Err(DecodeError::Malformed(why)) => self.malformed(peer, &why),
        }
    }

    fn malformed(&self, peer: SocketAddr, why: &str) {
        self.settings.metrics.parsing_errors.inc();
        self.drop_counted("malformed");
        tracing::debug!(job = %self.settings.job, %peer, error = why, "gelf datagram dropped");
    }

    fn count_expired(&self, expired: u64) {
        if expired > 0 {
            self.settings.metrics.parsing_errors.inc_by(expired);
            self.settings
                .metrics
                .dropped
                .with_label_values(&["gelf", "chunks_expired"])
                .inc_by(expired);
            tracing::debug!(job = %self.settings.job, expired, "incomplete gelf chunk sets expired");
        }
    }

    fn drop_counted(&self, reason: &str) {
        self.settings
            .metrics
            .dropped
            .with_label_values(&["gelf", reason])
            .inc();
    }

    /// Adds the message to the pending batch (a new one when its labels or time differ).
    fn ship(&mut self, m: &Message, now: DateTime<FixedOffset>) {
        let Some((labels, timestamp)) = self.settings.entry_labels(m, now) else {
            return;
        };
        self.line.clear();
        m.write_line(&mut self.line);
        let same = self
            .pending
            .as_ref()
            .is_some_and(|b| *b.labels == labels && b.read_time == timestamp);
        if !same {
            self.flush();
            self.pending = Some(LineBatch::new(Arc::new(labels), timestamp));
        }
        if let Some(batch) = self.pending.as_mut() {
            batch.push(&self.line, None);
        }
    }

    /// Queues the pending batch for the pipeline, or drops and counts it when the queue is
    /// full.
    fn flush(&mut self) {
        let Some(batch) = self.pending.take() else {
            return;
        };
        match self.queue.try_send(batch) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(batch)) => self
                .settings
                .metrics
                .dropped
                .with_label_values(&["gelf", "queue_full"])
                .inc_by(batch.len() as u64),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

impl Settings {
    /// A message's labels after relabeling, and its timestamp; `None` when it is not shipped.
    /// `now` is the arrival time, used unless the message's own time is.
    fn entry_labels(
        &self,
        m: &Message,
        now: DateTime<FixedOffset>,
    ) -> Option<(LabelSet, DateTime<FixedOffset>)> {
        let mut labels = self.labels.clone();
        let level = usize::try_from(m.level)
            .ok()
            .and_then(|l| LEVELS.get(l))
            .copied()
            .unwrap_or("");
        for (name, value) in [
            ("__gelf_message_level", level),
            ("__gelf_message_host", &m.host),
            ("__gelf_message_version", &m.version),
            ("__gelf_message_facility", &m.facility),
        ] {
            // As Prometheus' label builder: an empty value is no label.
            if !value.is_empty() {
                labels.insert(name.into(), value.to_string());
            }
        }
        let set = match stream_labels(&self.relabelers, labels) {
            Relabeled::Labels(set) => set,
            Relabeled::Dropped => return None,
            Relabeled::NoLabels => {
                self.metrics
                    .dropped
                    .with_label_values(&["gelf", "no_labels"])
                    .inc();
                return None;
            }
        };
        let timestamp = match m.timestamp {
            t if self.use_incoming_timestamp && t != 0.0 => incoming_time(t),
            _ => None,
        }
        .unwrap_or(now);
        Some((set, timestamp))
    }
}

/// GELF's seconds (with fractions) as a time, as Promtail converts them: nanoseconds
/// truncated to an integer.
fn incoming_time(seconds: f64) -> Option<DateTime<FixedOffset>> {
    let nanos = seconds * 1e9;
    if !nanos.is_finite() || nanos.abs() >= i64::MAX as f64 {
        return None;
    }
    Some(Utc.timestamp_nanos(nanos as i64).fixed_offset())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelabelConfig;

    fn settings(incoming: bool, relabel: &[(&str, &str)]) -> Settings {
        Settings {
            job: "gelf".into(),
            labels: BTreeMap::from([("job".into(), "gelf".into())]),
            relabelers: relabel
                .iter()
                .map(|(from, to)| {
                    Relabeler::new(&RelabelConfig {
                        source_labels: vec![from.to_string()],
                        target_label: to.to_string(),
                        ..RelabelConfig::default()
                    })
                    .unwrap()
                })
                .collect(),
            use_incoming_timestamp: incoming,
            metrics: crate::metrics::Metrics::new().gelf,
        }
    }

    #[test]
    fn meta_labels_relabeled_and_incoming_timestamp() {
        let s = settings(
            true,
            &[
                ("__gelf_message_level", "level"),
                ("__gelf_message_host", "host"),
                ("__gelf_message_version", "version"),
                ("__gelf_message_facility", "facility"),
            ],
        );
        let m = message::decode(
            br#"{"version":"1.1","host":"web-1","short_message":"x","level":3,"facility":"app","timestamp":1700000000.25}"#,
            1024,
        )
        .unwrap();
        let (labels, ts) = s.entry_labels(&m, crate::model::clock::now()).unwrap();
        let got: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(
            got,
            [
                ("facility", "app"),
                ("host", "web-1"),
                ("job", "gelf"),
                ("level", "error"),
                ("version", "1.1"),
            ]
        );
        // Promtail's `int64(seconds * 1e9)`: the float product, to a multiple of 256 here.
        assert_eq!(ts.timestamp_nanos_opt(), Some(1_700_000_000_249_999_872));
    }

    #[test]
    fn missing_level_is_emergency_and_out_of_range_levels_give_no_label() {
        let s = settings(false, &[("__gelf_message_level", "level")]);
        let level = |json: &[u8]| {
            let m = message::decode(json, 1024).unwrap();
            s.entry_labels(&m, crate::model::clock::now())
                .unwrap()
                .0
                .get("level")
                .map(str::to_string)
        };
        assert_eq!(
            level(br#"{"short_message":"x"}"#).as_deref(),
            Some("emergency")
        );
        assert_eq!(level(br#"{"short_message":"x","level":9}"#), None);
        assert_eq!(level(br#"{"short_message":"x","level":-1}"#), None);
    }

    #[test]
    fn arrival_time_without_use_incoming_timestamp_or_a_timestamp() {
        let before = crate::model::clock::now();
        let m = message::decode(br#"{"short_message":"x","timestamp":1.5}"#, 1024).unwrap();
        let (_, ts) = settings(false, &[])
            .entry_labels(&m, crate::model::clock::now())
            .unwrap();
        assert!(ts >= before);
        let m = message::decode(br#"{"short_message":"x"}"#, 1024).unwrap();
        let (_, ts) = settings(true, &[])
            .entry_labels(&m, crate::model::clock::now())
            .unwrap();
        assert!(ts >= before);
    }

    #[test]
    fn listen_addresses_in_promtails_forms() {
        assert_eq!(listen_address("").unwrap().to_string(), "0.0.0.0:12201");
        assert_eq!(listen_address(":1514").unwrap().to_string(), "0.0.0.0:1514");
        assert!(listen_address("nonsense").is_err());
    }
}
