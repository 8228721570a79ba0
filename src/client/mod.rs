//! The Loki push client: one tokio task per configured client that batches outgoing entries
//! as Promtail does, pushes them (protobuf+snappy or JSON), retries as Promtail does, and
//! settles every ack token once the batch holding it is delivered or dropped on purpose.
//!
//! Owns the client task, its input channel and shutdown. Batching lives in `batch`, wire
//! bodies in `encode` (schema in `logproto`), HTTP and retries in `push`, TLS in `tls`, short
//! lists of recently seen values in `recent`. It must not read files or positions: acks
//! leave only through [`AckSender::settle`], in the order their tokens arrived.
//!
//! While a batch is being retried the task does not read its input, so its queue (bounded by
//! bytes, `clients[].queue.max_bytes`; see `queue`) fills and then the pipeline waits. Each
//! client has its own queue, so until it is full the other clients are not delayed.

mod batch;
mod encode;
/// The wire schema lives in the model, so the push API source reads it without knowing the client.
pub use crate::model::logproto;
mod push;
pub mod queue;
mod recent;
mod rejections;
/// The rustls client configuration from `tls_config`; the docker source's TLS daemon uses it too.
/// Also builds the Kubernetes discovery client's TLS (same `tls_config` semantics).
pub(crate) mod tls;
pub mod wal;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

use self::batch::{BatchLimits, Batcher, Shaped, StreamLimited};
use self::push::{Abandon, Delivery, Pusher, REASON_QUEUE_FULL};
use self::queue::{QueueGauges, QueueReceiver, QueueSender};
use self::wal::{Wal, WalReader};
use crate::config::{ClientConfig, LimitsConfig, QueueWhenFull, WalConfig};
use crate::metrics::Metrics;
use crate::model::ack::AckSender;
use crate::model::entry::Outgoing;
use crate::model::labels::LabelSet;

const REASON_LINE_TOO_LONG: &str = "line_too_long";
const REASON_STREAM_LIMITED: &str = "stream_limited";

/// A configuration value the client cannot use; `key` is relative to the client's block,
/// e.g. `tls_config.ca_file`.
#[derive(Debug)]
pub struct ClientError {
    pub key: String,
    pub message: String,
}

impl ClientError {
    pub(crate) fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ClientError {}

/// A running client: its input and its task.
pub struct ClientHandle {
    sender: QueueSender,
    abandon: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// With a disk buffer: the task moving the queue into it.
    wal_writer: Option<JoinHandle<()>>,
    wal: Option<Arc<Wal>>,
}

impl ClientHandle {
    /// A sender of the client's bounded input queue.
    pub fn sender(&self) -> QueueSender {
        self.sender.clone()
    }

    /// The client's disk buffer, if it has one: the lines in it are settled for positions
    /// already, so only the buffer knows how long the oldest has waited for Loki.
    pub fn disk_buffer(&self) -> Option<Arc<Wal>> {
        self.wal.clone()
    }

    /// Input is closed by dropping all senders; then the client flushes what it holds and
    /// exits. Waits at most `deadline`, then abandons retries (logging what was not delivered).
    pub async fn finish(self, deadline: Duration) {
        let ClientHandle {
            sender,
            abandon,
            mut task,
            wal_writer,
            wal: _,
        } = self;
        drop(sender);
        let started = Instant::now();
        if let Some(mut writer) = wal_writer {
            // Entries in the disk buffer are safe; what is still queued goes there first.
            if tokio::time::timeout(deadline, &mut writer).await.is_err() {
                tracing::warn!(
                    "disk buffer (WAL) did not take the queue within the shutdown deadline"
                );
                writer.abort();
            }
        }
        let deadline = deadline.saturating_sub(started.elapsed());
        let joined = match tokio::time::timeout(deadline, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                tracing::warn!(
                    ?deadline,
                    "client did not finish within the shutdown deadline; abandoning retries"
                );
                // An error means the task already ended and dropped its receiver.
                let _ = abandon.send(true);
                task.await
            }
        };
        if let Err(e) = joined {
            tracing::error!(error = %e, "client task failed");
        }
    }
}

/// Starts client number `index`. Everything the client needs is read and checked here, once.
/// Must be called inside a tokio runtime.
pub fn spawn(
    index: usize,
    cfg: &ClientConfig,
    limits: &LimitsConfig,
    metrics: Arc<Metrics>,
    acks: AckSender,
    wal_config: Option<(WalConfig, std::path::PathBuf)>,
) -> Result<ClientHandle, ClientError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        ClientError::new("url", "the client must be started inside a tokio runtime")
    })?;
    let url = reqwest::Url::parse(&cfg.url)
        .map_err(|e| ClientError::new("url", format!("invalid URL {:?}: {e}", cfg.url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ClientError::new(
            "url",
            format!("expected an http or https URL, got {:?}", cfg.url),
        ));
    }
    if cfg.batchsize.0 == 0 {
        return Err(ClientError::new(
            "batchsize",
            "expected a batch size above 0 bytes",
        ));
    }
    if cfg.backoff_config.min_period.0 > cfg.backoff_config.max_period.0 {
        return Err(ClientError::new(
            "backoff_config.min_period",
            "expected min_period <= max_period",
        ));
    }
    let host = push::url_host(&cfg.url);
    let tls = tls::client_config(&cfg.tls_config, url.scheme() == "https")?;
    if cfg.tls_config.insecure_skip_verify {
        tracing::warn!(
            client = index,
            host,
            "tls_config.insecure_skip_verify is set: the server certificate is not verified"
        );
    }
    let pusher = Pusher::new(cfg, url, host.clone(), tls, metrics.clone())?;
    let pusher = if wal_config.is_some() {
        pusher.retry_until_delivered()
    } else {
        pusher
    };
    let external_labels = LabelSet::from_pairs(
        cfg.external_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let batcher = Batcher::new(
        BatchLimits {
            batch_size: usize::try_from(cfg.batchsize.0).unwrap_or(usize::MAX),
            max_streams: limits.max_streams as usize,
            max_line_size: usize::try_from(limits.max_line_size.0).unwrap_or(usize::MAX),
            truncate_long_lines: limits.max_line_size_truncate,
        },
        external_labels,
        &cfg.tenant_id,
        cfg.structured_metadata,
    );
    init_tenant_metrics(&metrics, &host, batcher.default_tenant());
    let mut known_tenants = HashSet::new();
    known_tenants.insert(batcher.default_tenant().to_string());

    let gauges = QueueGauges {
        entries: metrics.client.queued_entries.with_label_values(&[&host]),
        bytes: metrics.client.queued_bytes.with_label_values(&[&host]),
    };
    let (sender, queue) = queue::bounded(cfg.queue.max_bytes.0, Some(gauges));
    let sender = match cfg.queue.when_full {
        QueueWhenFull::Block => sender,
        QueueWhenFull::Drop => sender.with_drop_policy(queue::DropPolicy {
            after: cfg.queue.drop_after.0,
            dropped: metrics.client.dropped_entries.with_label_values(&[
                &host,
                batcher.default_tenant(),
                REASON_QUEUE_FULL,
            ]),
            acks: acks.clone(),
        }),
    };
    let (input, settle, wal_writer, wal) = match wal_config {
        Some((wal_cfg, dir)) => {
            if dir.as_os_str().is_empty() {
                return Err(ClientError::new(
                    "wal.dir",
                    "expected the directory of the disk buffer",
                ));
            }
            let wal = Wal::new(&wal_cfg, dir, &host, metrics.clone());
            let writer = runtime.spawn(wal::run_writer(wal.clone(), queue, acks));
            (
                Input::Wal(WalReader::new(wal.clone())),
                Settle::Wal(wal.clone()),
                Some(writer),
                Some(wal),
            )
        }
        None => (Input::Queue(queue), Settle::Acks(acks), None, None),
    };
    let (abandon_tx, abandon_rx) = watch::channel(false);
    let name = if cfg.name.is_empty() {
        format!("clients[{index}]")
    } else {
        cfg.name.clone()
    };
    let span = tracing::info_span!("client", client = %name, host = %host);
    let task = ClientTask {
        host,
        batch_wait: cfg.batchwait.0,
        batcher,
        pusher,
        metrics,
        settle,
        known_tenants,
        stream_limited: 0,
        abandon: Abandon::new(abandon_rx),
    };
    let task = runtime.spawn(task.run(input).instrument(span));
    Ok(ClientHandle {
        sender,
        abandon: abandon_tx,
        task,
        wal_writer,
        wal,
    })
}

/// Where the client takes entries from: its queue, or its disk buffer.
enum Input {
    Queue(QueueReceiver),
    Wal(WalReader),
}

impl Input {
    async fn recv(&mut self) -> Option<Vec<Outgoing>> {
        match self {
            Input::Queue(q) => q.recv().await,
            Input::Wal(w) => w.recv().await,
        }
    }
}

/// What a delivered (or dropped on purpose) set settles: the pipeline's acknowledgements, or
/// with a disk buffer, its records (the writer settled the acknowledgements already).
enum Settle {
    Acks(AckSender),
    Wal(Arc<Wal>),
}

/// Creates the per-tenant series at zero, as Promtail does when it first sees a tenant.
fn init_tenant_metrics(metrics: &Metrics, host: &str, tenant: &str) {
    metrics.init_client(host, tenant);
    metrics
        .client
        .batch_retries
        .with_label_values(&[host, tenant]);
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Abandoned at the shutdown deadline.
    Stop,
}

struct ClientTask {
    host: String,
    batch_wait: Duration,
    batcher: Batcher,
    pusher: Pusher,
    metrics: Arc<Metrics>,
    settle: Settle,
    /// Tenants whose per-tenant series exist (Promtail initialises them on first sight).
    known_tenants: HashSet<String>,
    /// Entries of the open set dropped by `max_streams`, reported once per set.
    stream_limited: u64,
    abandon: Abandon,
}

impl ClientTask {
    async fn run(mut self, mut input: Input) {
        loop {
            let wait_until = self.batcher.opened_at().map(|t| t + self.batch_wait);
            let chunk = tokio::select! {
                biased;
                _ = self.abandon.signalled() => {
                    self.report_abandoned();
                    return;
                }
                _ = tokio::time::sleep_until(wait_until.unwrap_or_else(Instant::now)), if wait_until.is_some() => {
                    if self.flush().await == Flow::Stop {
                        return;
                    }
                    continue;
                }
                chunk = input.recv() => chunk,
            };
            let Some(chunk) = chunk else { break };
            // One clock read per chunk: a chunk arrives at once, and the time only opens the set.
            let now = Instant::now();
            for outgoing in chunk {
                if self.accept(outgoing, now).await == Flow::Stop {
                    return;
                }
            }
        }
        self.flush().await;
    }

    async fn accept(&mut self, outgoing: Outgoing, mut now: Instant) -> Flow {
        let (entry, ack) = match outgoing {
            Outgoing::Consumed { ack } => {
                self.batcher.hold_token(ack, now);
                return Flow::Continue;
            }
            Outgoing::Entry { entry, ack } => (entry, ack),
        };
        match self.batcher.shape(entry) {
            Shaped::TooLong { tenant, bytes } => {
                self.count_drop(&tenant, REASON_LINE_TOO_LONG, bytes);
            }
            Shaped::Ready(prepared) => {
                if prepared.truncated > 0 {
                    let tenant = self.batcher.tenant_of(&prepared);
                    let labels = [self.host.as_str(), tenant, REASON_LINE_TOO_LONG];
                    self.metrics
                        .client
                        .mutated_entries
                        .with_label_values(&labels)
                        .inc();
                    self.metrics
                        .client
                        .mutated_bytes
                        .with_label_values(&labels)
                        .inc_by(prepared.truncated as u64);
                }
                if self.batcher.needs_flush_before(&prepared) {
                    if self.flush().await == Flow::Stop {
                        return Flow::Stop;
                    }
                    // The next set opens now, not when the chunk arrived before the push.
                    now = Instant::now();
                }
                if let Err(StreamLimited { tenant, bytes }) = self.batcher.add(prepared, now) {
                    self.stream_limited += 1;
                    self.count_drop(&tenant, REASON_STREAM_LIMITED, bytes);
                }
            }
        }
        // After any flush above, so the token is settled with the set its entry joined.
        if let Some(ack) = ack {
            self.batcher.hold_token(ack, now);
        }
        Flow::Continue
    }

    /// Sends every tenant batch of the open set, then settles the set's tokens together.
    async fn flush(&mut self) -> Flow {
        if self.batcher.is_empty() {
            return Flow::Continue;
        }
        for batch in self.batcher.batches() {
            if !self.known_tenants.contains(&batch.tenant) {
                init_tenant_metrics(&self.metrics, &self.host, &batch.tenant);
                self.known_tenants.insert(batch.tenant.clone());
            }
            if self.pusher.deliver(batch, &self.abandon).await == Delivery::Abandoned {
                self.report_abandoned();
                return Flow::Stop;
            }
        }
        if self.stream_limited > 0 {
            tracing::warn!(
                dropped = self.stream_limited,
                "entries dropped: their streams would exceed limits_config.max_streams in the batch"
            );
            self.stream_limited = 0;
        }
        if !self.pusher.sends_structured_metadata() {
            self.batcher.stop_structured_metadata();
        }
        let tokens = self.batcher.clear();
        match &self.settle {
            Settle::Acks(acks) => acks.settle(tokens),
            Settle::Wal(wal) => {
                if let Some(position) = wal::acknowledged_position(&tokens) {
                    wal.acknowledge(position);
                }
            }
        }
        Flow::Continue
    }

    fn report_abandoned(&self) {
        if self.batcher.is_empty() {
            return;
        }
        tracing::error!(
            entries = self.batcher.entry_count(),
            "shutdown deadline passed: abandoning undelivered entries; their positions are not \
             acknowledged, so they are read again on the next start"
        );
    }

    fn count_drop(&self, tenant: &str, reason: &str, bytes: usize) {
        let labels = [self.host.as_str(), tenant, reason];
        self.metrics
            .client
            .dropped_entries
            .with_label_values(&labels)
            .inc();
        self.metrics
            .client
            .dropped_bytes
            .with_label_values(&labels)
            .inc_by(bytes as u64);
    }
}
