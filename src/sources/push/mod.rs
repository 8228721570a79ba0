//! The HTTP push sources: Promtail's `loki_push_api:` (Loki's push API, protobuf or JSON, and
//! `/promtail/api/v1/raw`) and `heroku_drain:` (Heroku's logplex drains), each with its own
//! listener from the job's `server:` block (served by [`crate::http_listener`]: timeouts,
//! connection limit, TLS).
//!
//! Owns the routes, turning a request into labelled line batches ([`loki`], [`heroku`] read
//! the bodies, [`labels`] the label strings) and the answer. A request is answered 204 only
//! once every entry of it is settled by every client: delivered to Loki, written to the
//! client's disk buffer where one is on, or dropped on purpose and counted. That is the
//! acknowledgement every other source's position waits for, reached through this source's
//! one handle on delivery ([`ReceiptPosition`]); a sender therefore never loses a batch it saw
//! acknowledged, even if this agent is killed right after. Until then the request waits,
//! within [`SETTLE_WAIT`] (below a sender's 10 s timeout); while the pipeline cannot take the
//! entries (a client's queue is full) the request is answered 429 with `Retry-After` after
//! [`ACCEPT_WAIT`]. It must not know stages or how clients deliver.

pub mod heroku;
pub mod labels;
pub mod loki;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::config::{
    DEFAULT_MAX_REQUEST_SIZE, HerokuDrainTargetConfig, LokiPushTargetConfig, PushServerConfig,
    ScrapeConfig,
};
use crate::delivery::positions::{PositionsView, ReceiptPosition};
use crate::http_listener::Listener;
use crate::metrics::PushMetrics;
use crate::model::ack::AckToken;
use crate::model::entry::{LineBatch, LineStamp};
use crate::model::labels::{LabelSet, TENANT_LABEL};
use crate::sources::relabel::{self, Relabeled, Relabeler};
use crate::sources::targets_view::TargetView;

/// How long a request waits for the pipeline to take its entries before it is answered 429:
/// the pipeline waits only while a client's queue is full.
pub const ACCEPT_WAIT: Duration = Duration::from_secs(1);

/// How long a request waits for its entries to be settled before it is answered 429 (they
/// may then arrive twice, once resent): below Promtail's default client `timeout` of 10 s,
/// and well above a client's default `batchwait` of 1 s plus a push.
pub const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// What `Retry-After` tells a sender held back.
const RETRY_AFTER_SECS: u64 = 1;

/// Request bodies held at once, in bytes as received, by requests not yet handed on: at
/// least this, or two of the largest allowed.
const BODY_BUDGET: usize = 64 * 1024 * 1024;

/// Loki's answer to a push without streams.
const MISSING_STREAMS: &str = "error at least one valid stream is required for ingestion";

/// Which of the two sources a listener is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    LokiPush,
    Heroku,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::LokiPush => "loki_push_api",
            Kind::Heroku => "heroku_drain",
        }
    }
}

/// A request refused, with its status and wording; `reason` labels the refusal counter.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub retry_after: bool,
}

impl Refusal {
    pub fn new(status: StatusCode, reason: &'static str, message: String) -> Self {
        Refusal {
            status,
            reason,
            message,
            retry_after: false,
        }
    }

    fn held_back(reason: &'static str, message: &str) -> Self {
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            reason,
            message: message.to_string(),
            retry_after: true,
        }
    }

    fn shutting_down() -> Self {
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "shutting_down",
            message: "the push source is stopping; send again".into(),
            retry_after: true,
        }
    }
}

/// What every request of a job shares.
struct Settings {
    job: String,
    kind: Kind,
    labels: BTreeMap<String, String>,
    /// `labels` as a set: the raw endpoint's streams have these alone.
    config_labels: Arc<LabelSet>,
    relabelers: Vec<Relabeler>,
    use_incoming_timestamp: bool,
    max_request: usize,
    metrics: PushMetrics,
}

/// A bound push listener, ready to run.
pub struct PushSource {
    settings: Arc<Settings>,
    listener: Listener,
    prefix: String,
    receipts: ReceiptPosition,
}

impl PushSource {
    /// Binds a `loki_push_api` job's listener now, so a port in use fails the job's start.
    /// Must be called within the Tokio runtime.
    pub fn bind_loki(
        job: &ScrapeConfig,
        config: &LokiPushTargetConfig,
        relabelers: Vec<Relabeler>,
        metrics: PushMetrics,
        positions: &PositionsView,
    ) -> Result<Self, String> {
        let size = config.max_request_size.0;
        Self::bind(
            Kind::LokiPush,
            job,
            &config.server,
            &config.labels,
            config.use_incoming_timestamp,
            size,
            relabelers,
            metrics,
            positions,
        )
    }

    /// As [`Self::bind_loki`], for a `heroku_drain` job.
    pub fn bind_heroku(
        job: &ScrapeConfig,
        config: &HerokuDrainTargetConfig,
        relabelers: Vec<Relabeler>,
        metrics: PushMetrics,
        positions: &PositionsView,
    ) -> Result<Self, String> {
        let size = config.max_request_size.0;
        Self::bind(
            Kind::Heroku,
            job,
            &config.server,
            &config.labels,
            config.use_incoming_timestamp,
            size,
            relabelers,
            metrics,
            positions,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn bind(
        kind: Kind,
        job: &ScrapeConfig,
        server: &PushServerConfig,
        labels: &BTreeMap<String, String>,
        use_incoming_timestamp: bool,
        max_request_size: u64,
        relabelers: Vec<Relabeler>,
        metrics: PushMetrics,
        positions: &PositionsView,
    ) -> Result<Self, String> {
        let key = kind.key();
        if server.proxy_protocol_enabled {
            return Err(format!(
                "{key}.server.proxy_protocol_enabled: the PROXY protocol is not supported; put no proxy-protocol balancer in front, or leave it off"
            ));
        }
        let listen = server.as_listener_config();
        let tls = crate::http_listener::tls::acceptor(&listen).map_err(|e| format!("{key}.{e}"))?;
        let listener = Listener::bind_now(&listen, tls).map_err(|e| format!("{key}.{e}"))?;
        let max_request = match max_request_size {
            0 => DEFAULT_MAX_REQUEST_SIZE,
            n => n,
        };
        let settings = Settings {
            job: job.job_name.clone(),
            kind,
            labels: labels.clone(),
            config_labels: Arc::new(LabelSet::from_pairs(
                labels
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.clone())),
            )),
            relabelers,
            use_incoming_timestamp,
            max_request: usize::try_from(max_request).unwrap_or(usize::MAX),
            metrics,
        };
        let prefix = format!("/{}", server.http_path_prefix.trim_matches('/'));
        let prefix = prefix.trim_end_matches('/').to_string();
        let source = PushSource {
            settings: Arc::new(settings),
            listener,
            prefix,
            receipts: positions.open_receipts(&format!("{key}:{}", job.job_name)),
        };
        let address = source
            .local_addr()
            .map_or_else(String::new, |a| a.to_string());
        tracing::info!(
            job = %source.settings.job,
            source = key,
            address = %address,
            "push source listening"
        );
        Ok(source)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr()
    }

    /// The job's one target, as `/targets` and `/service-discovery` show it.
    pub fn target_view(&self) -> TargetView {
        let address = self
            .local_addr()
            .map_or_else(String::new, |a| a.to_string());
        let mut discovered = self.settings.labels.clone();
        discovered.insert("__address__".into(), address);
        TargetView {
            discovered,
            labels: (*self.settings.config_labels).clone(),
            path_pattern: String::new(),
        }
    }

    /// Serves until `stop`: then takes no more requests, answers those in hand (each once its
    /// entries are settled, or held back), and returns.
    pub async fn run(self, out: mpsc::Sender<LineBatch>, stop: watch::Receiver<bool>) {
        let budget = BODY_BUDGET
            .max(2 * self.settings.max_request)
            .min(Semaphore::MAX_PERMITS);
        let intake = Arc::new(Intake {
            out: Mutex::new(Some(out)),
            settled: self.receipts.settled(),
            order: tokio::sync::Mutex::new(Order {
                last: 0,
                receipts: Some(self.receipts),
            }),
            budget: Arc::new(Semaphore::new(budget)),
        });
        let handler = Arc::new(Handler {
            settings: self.settings.clone(),
            intake: intake.clone(),
        });
        let p = &self.prefix;
        let app = match self.settings.kind {
            Kind::LokiPush => Router::new()
                .route(&format!("{p}/loki/api/v1/push"), post(loki_push))
                .route(&format!("{p}/promtail/api/v1/raw"), post(raw_push)),
            Kind::Heroku => {
                Router::new().route(&format!("{p}/heroku/api/v1/drain"), post(heroku_drain))
            }
        }
        .route(&format!("{p}/ready"), get(|| async { "ready" }))
        .with_state(handler);
        self.listener.serve(app, stop).await;
        intake.close().await;
    }
}

/// Numbers entries in the order they are handed on, so the finalizer of this source sees
/// them as a file's lines.
struct Order {
    /// The number of the last entry handed on.
    last: u64,
    receipts: Option<ReceiptPosition>,
}

/// Where requests hand their entries: the job's pipeline, in order.
struct Intake {
    /// Taken at stop, so the pipeline ends once the requests in hand are done.
    out: Mutex<Option<mpsc::Sender<LineBatch>>>,
    order: tokio::sync::Mutex<Order>,
    settled: watch::Receiver<u64>,
    /// Bytes of bodies held by requests not yet handed on.
    budget: Arc<Semaphore>,
}

impl Intake {
    /// Waits until every entry up to number `last` is settled by every client.
    async fn settled(&self, last: u64) -> Result<(), Refusal> {
        let mut settled = self.settled.clone();
        match tokio::time::timeout(SETTLE_WAIT, settled.wait_for(|s| *s >= last)).await {
            Ok(Ok(_)) => Ok(()),
            // Delivery forgot this source: its clients were replaced by a reload.
            Ok(Err(_)) => Err(Refusal::shutting_down()),
            Err(_) => Err(Refusal::held_back(
                "not_settled",
                "entries not yet delivered by this agent's clients; send again later",
            )),
        }
    }

    /// Numbers, issues and sends every batch; returns the number of the last entry.
    async fn hand_on(&self, batches: Vec<LineBatch>) -> Result<u64, Refusal> {
        let full = || {
            Refusal::held_back(
                "back_pressure",
                "this agent's queues are full; send again later",
            )
        };
        let deadline = tokio::time::Instant::now() + ACCEPT_WAIT;
        let mut order = tokio::time::timeout_at(deadline, self.order.lock())
            .await
            .map_err(|_| full())?;
        let out = self
            .out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(Refusal::shutting_down)?;
        let id = match &order.receipts {
            Some(r) => r.id(),
            None => return Err(Refusal::shutting_down()),
        };
        for (i, mut batch) in batches.into_iter().enumerate() {
            // The first batch waits for room only so long; once some entries are handed on,
            // the rest follow them (within the settle wait) rather than leave a request half sent.
            let wait_until = if i == 0 {
                deadline
            } else {
                tokio::time::Instant::now() + SETTLE_WAIT
            };
            let permit = match tokio::time::timeout_at(wait_until, out.reserve()).await {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(Refusal::shutting_down()),
                Err(_) => return Err(full()),
            };
            for span in &mut batch.lines {
                order.last += 1;
                span.ack = Some(AckToken::line(id, order.last));
            }
            if let Some(r) = &order.receipts {
                r.issue(&batch);
            }
            permit.send(batch);
        }
        Ok(order.last)
    }

    /// Room for a body of `bytes`, within [`ACCEPT_WAIT`].
    async fn room_for(&self, bytes: usize) -> Result<OwnedSemaphorePermit, Refusal> {
        let permits = u32::try_from(bytes.max(1))
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        match tokio::time::timeout(ACCEPT_WAIT, self.budget.clone().acquire_many_owned(permits))
            .await
        {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Refusal::held_back(
                "back_pressure",
                "too many request bodies in hand; send again later",
            )),
        }
    }

    /// No more entries are taken; delivery forgets this source once those handed on settle.
    async fn close(&self) {
        *self.out.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut order = self.order.lock().await;
        if let Some(r) = order.receipts.take() {
            r.close(order.last);
        }
    }
}

struct Handler {
    settings: Arc<Settings>,
    intake: Arc<Intake>,
}

async fn loki_push(State(h): State<Arc<Handler>>, headers: HeaderMap, body: Body) -> Response {
    let result = h.loki_push(&headers, body).await;
    h.answer(result)
}

async fn raw_push(State(h): State<Arc<Handler>>, headers: HeaderMap, body: Body) -> Response {
    let result = h.raw_push(&headers, body).await;
    h.answer(result)
}

async fn heroku_drain(
    State(h): State<Arc<Handler>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = h.heroku_drain(query.as_deref(), &headers, body).await;
    h.answer(result)
}

fn tenant_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

impl Handler {
    /// The answer, counted: 204, or the refusal with its status, wording and `Retry-After`.
    fn answer(&self, result: Result<(), Refusal>) -> Response {
        let source = self.settings.kind.key();
        let metrics = &self.settings.metrics;
        let response = match result {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(r) => {
                metrics
                    .rejected
                    .with_label_values(&[source, r.reason])
                    .inc();
                if r.status.is_client_error() && r.status != StatusCode::TOO_MANY_REQUESTS {
                    tracing::debug!(job = %self.settings.job, source, status = %r.status, error = %r.message, "push refused");
                }
                let mut response = (r.status, format!("{}\n", r.message)).into_response();
                if r.retry_after {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                }
                response
            }
        };
        metrics
            .requests
            .with_label_values(&[source, response.status().as_str()])
            .inc();
        response
    }

    /// The body, within `max_request_size`, with room for it in the bytes requests may hold.
    async fn read_body(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(axum::body::Bytes, OwnedSemaphorePermit), Refusal> {
        let max = self.settings.max_request;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(n) = declared.filter(|n| *n > max) {
            return Err(loki::too_large(n, max));
        }
        let room = self.intake.room_for(declared.unwrap_or(max)).await?;
        match axum::body::to_bytes(body, max).await {
            Ok(bytes) => Ok((bytes, room)),
            Err(e) => {
                let over = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                Err(if over {
                    loki::too_large(max + 1, max)
                } else {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "bad_body",
                        format!("reading the request body: {e}"),
                    )
                })
            }
        }
    }

    async fn loki_push(&self, headers: &HeaderMap, body: Body) -> Result<(), Refusal> {
        let (body, room) = self.read_body(headers, body).await?;
        let streams = loki::decode(headers, &body, self.settings.max_request)?;
        drop(body);
        if streams.is_empty() {
            return Err(Refusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_streams",
                MISSING_STREAMS.into(),
            ));
        }
        let tenant = tenant_of(headers);
        let s = &self.settings;
        let now = crate::model::clock::now();
        let (mut bytes, mut metadata_bytes) = (0u64, 0u64);
        let mut batches = Vec::with_capacity(streams.len());
        for stream in streams {
            if stream.entries.is_empty() {
                continue;
            }
            let Some(labels) =
                s.stream_labels(stream.labels, tenant.as_deref(), stream.entries.len())
            else {
                continue;
            };
            let text: usize = stream.entries.iter().map(|e| e.line.len()).sum();
            let mut batch = LineBatch::with_capacity(Arc::new(labels), now, text);
            for e in stream.entries {
                bytes += e.line.len() as u64;
                metadata_bytes += e
                    .structured_metadata
                    .iter()
                    .map(|(k, v)| (k.len() + v.len()) as u64)
                    .sum::<u64>();
                let timestamp = match e.timestamp {
                    Some(t) if s.use_incoming_timestamp => t,
                    _ => now,
                };
                batch.push_stamped(
                    &e.line,
                    None,
                    LineStamp {
                        timestamp,
                        structured_metadata: e.structured_metadata,
                    },
                );
            }
            batches.push(batch);
        }
        let tenant_label = [tenant.as_deref().unwrap_or(""), "", "false"];
        s.metrics
            .bytes_received
            .with_label_values(&tenant_label)
            .inc_by(bytes);
        s.metrics
            .structured_metadata_bytes_received
            .with_label_values(&tenant_label)
            .inc_by(metadata_bytes);
        self.hand_on(batches, room).await
    }

    /// `/promtail/api/v1/raw`: one entry per non-empty line, labelled with `labels` alone,
    /// timestamped on arrival (as Promtail: no relabeling, no decompression).
    async fn raw_push(&self, headers: &HeaderMap, body: Body) -> Result<(), Refusal> {
        let (body, room) = self.read_body(headers, body).await?;
        let s = &self.settings;
        let text = String::from_utf8_lossy(&body);
        let mut batch = LineBatch::with_capacity(
            s.config_labels.clone(),
            crate::model::clock::now(),
            text.len(),
        );
        for line in text.split('\n') {
            let line = line.trim_end_matches(['\r', '\n']);
            if !line.is_empty() {
                batch.push(line, None);
            }
        }
        drop(body);
        if batch.is_empty() {
            return Ok(());
        }
        if s.config_labels.is_empty() {
            s.count_no_labels(batch.len());
            return Ok(());
        }
        self.hand_on(vec![batch], room).await
    }

    async fn heroku_drain(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(), Refusal> {
        let (body, room) = self.read_body(headers, body).await?;
        let s = &self.settings;
        let (messages, error) = heroku::messages(&body);
        drop(body);
        let mut meta = BTreeMap::new();
        for (name, values) in query_params(query) {
            meta.insert(format!("__heroku_drain_param_{name}"), values);
        }
        if let Some(token) = headers
            .get("logplex-drain-token")
            .and_then(|v| v.to_str().ok())
        {
            meta.insert("__heroku_drain_token".into(), token.to_string());
        }
        let tenant = tenant_of(headers);
        if let Some(t) = &tenant {
            meta.insert(TENANT_LABEL.into(), t.clone());
        }
        let now = crate::model::clock::now();
        let mut batches: Vec<LineBatch> = Vec::new();
        for m in messages {
            let mut labels = meta.clone();
            for (name, value) in [
                ("__heroku_drain_host", m.hostname),
                ("__heroku_drain_app", m.app_name),
                ("__heroku_drain_proc", m.proc_id),
                ("__heroku_drain_log_id", m.msg_id),
            ] {
                labels.insert(name.into(), value);
            }
            let Some(labels) = s.heroku_labels(labels, tenant.as_deref()) else {
                continue;
            };
            let timestamp = if s.use_incoming_timestamp {
                m.timestamp
            } else {
                now
            };
            let stamp = LineStamp {
                timestamp,
                structured_metadata: Vec::new(),
            };
            match batches.last_mut() {
                Some(b) if *b.labels == labels => b.push_stamped(&m.message, None, stamp),
                _ => {
                    let mut b = LineBatch::new(Arc::new(labels), now);
                    b.push_stamped(&m.message, None, stamp);
                    batches.push(b);
                }
            }
        }
        let delivered = self.hand_on(batches, room).await;
        if let Some(e) = error {
            s.metrics.heroku_parsing_errors.inc();
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "bad_body", e));
        }
        delivered
    }

    /// Hands the batches on (the body's room is given back once they are in the pipeline)
    /// and waits for them to be settled.
    async fn hand_on(
        &self,
        batches: Vec<LineBatch>,
        room: OwnedSemaphorePermit,
    ) -> Result<(), Refusal> {
        if batches.is_empty() {
            return Ok(());
        }
        let entries: usize = batches.iter().map(LineBatch::len).sum();
        let last = self.intake.hand_on(batches).await;
        drop(room);
        let last = last?;
        let metrics = &self.settings.metrics;
        metrics
            .entries
            .with_label_values(&[self.settings.kind.key()])
            .inc_by(entries as u64);
        if self.settings.kind == Kind::Heroku {
            metrics.heroku_entries.inc_by(entries as u64);
        }
        self.intake.settled(last).await
    }
}

/// The URL query as Go's `url.Query()` reads it, values of a name joined with `,`.
fn query_params(query: Option<&str>) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return params;
    };
    let Ok(url) = reqwest::Url::parse(&format!("http://drain/?{query}")) else {
        return params;
    };
    for (k, v) in url.query_pairs() {
        params
            .entry(k.into_owned())
            .and_modify(|all| {
                all.push(',');
                all.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    params
}

impl Settings {
    fn count_no_labels(&self, entries: usize) {
        self.metrics
            .dropped
            .with_label_values(&[self.kind.key(), "no_labels"])
            .inc_by(entries as u64);
    }

    /// A pushed stream's labels: incoming, `labels` over them, relabeled, `__` ones gone;
    /// the sender's `X-Scope-OrgID` as the tenant. `None` (counted) when nothing is left or
    /// relabeling dropped the stream.
    fn stream_labels(
        &self,
        mut labels: BTreeMap<String, String>,
        tenant: Option<&str>,
        entries: usize,
    ) -> Option<LabelSet> {
        for (k, v) in &self.labels {
            labels.insert(k.clone(), v.clone());
        }
        let mut set = match relabel::stream_labels(&self.relabelers, labels) {
            Relabeled::Labels(set) => set,
            Relabeled::Dropped => return None,
            Relabeled::NoLabels => {
                self.count_no_labels(entries);
                return None;
            }
        };
        if let Some(t) = tenant {
            set.insert(TENANT_LABEL.into(), t.to_string());
        }
        Some(set)
    }

    /// A drained message's labels as Promtail builds them: `labels`, then what relabeling
    /// made of the meta labels (without `__` ones), then the tenant forced back.
    fn heroku_labels(
        &self,
        mut meta: BTreeMap<String, String>,
        tenant: Option<&str>,
    ) -> Option<LabelSet> {
        meta.retain(|_, v| !v.is_empty());
        if !self.relabelers.iter().all(|r| r.apply(&mut meta)) {
            return None;
        }
        let mut labels = self.labels.clone();
        for (k, v) in meta {
            if !k.starts_with("__") {
                labels.insert(k, v);
            }
        }
        let mut set = LabelSet::from_pairs(labels.into_iter().filter(|(_, v)| !v.is_empty()));
        if set.is_empty() {
            self.count_no_labels(1);
            return None;
        }
        if let Some(t) = tenant {
            set.insert(TENANT_LABEL.into(), t.to_string());
        }
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelabelConfig;

    fn settings(kind: Kind, labels: &[(&str, &str)], relabel: &[(&str, &str)]) -> Settings {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings {
            job: "push".into(),
            kind,
            config_labels: Arc::new(LabelSet::from_pairs(labels.clone())),
            labels,
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
            use_incoming_timestamp: false,
            max_request: 1 << 20,
            metrics: crate::metrics::Metrics::new().push,
        }
    }

    #[test]
    fn pushed_labels_take_config_labels_over_them_relabeling_and_the_tenant_header() {
        let s = settings(
            Kind::LokiPush,
            &[("pushserver", "agg")],
            &[("__meta", "from_meta")],
        );
        let incoming = BTreeMap::from([
            ("job".to_string(), "app".to_string()),
            ("pushserver".to_string(), "sender".to_string()),
            ("__meta".to_string(), "m".to_string()),
            ("empty".to_string(), String::new()),
        ]);
        let set = s.stream_labels(incoming, Some("team-a"), 1).unwrap();
        let got: Vec<(&str, &str)> = set.iter().collect();
        assert_eq!(
            got,
            [
                ("__tenant_id__", "team-a"),
                ("from_meta", "m"),
                ("job", "app"),
                ("pushserver", "agg")
            ]
        );
        let none = settings(Kind::LokiPush, &[], &[]);
        assert!(
            none.stream_labels(
                BTreeMap::from([("__x".to_string(), "y".to_string())]),
                None,
                3
            )
            .is_none()
        );
        assert_eq!(
            none.metrics
                .dropped
                .with_label_values(&["loki_push_api", "no_labels"])
                .get(),
            3
        );
    }

    #[test]
    fn heroku_meta_labels_relabeled_over_config_labels_with_the_tenant_forced_back() {
        let s = settings(
            Kind::Heroku,
            &[("job", "heroku")],
            &[
                ("__heroku_drain_app", "app"),
                ("__heroku_drain_param_env", "env"),
                ("__tenant_id__", "tenant_copy"),
            ],
        );
        let meta = BTreeMap::from([
            ("__heroku_drain_app".to_string(), "shop".to_string()),
            (
                "__heroku_drain_param_env".to_string(),
                "prod,eu".to_string(),
            ),
            ("__tenant_id__".to_string(), "t1".to_string()),
        ]);
        let set = s.heroku_labels(meta, Some("t1")).unwrap();
        let got: Vec<(&str, &str)> = set.iter().collect();
        assert_eq!(
            got,
            [
                ("__tenant_id__", "t1"),
                ("app", "shop"),
                ("env", "prod,eu"),
                ("job", "heroku"),
                ("tenant_copy", "t1")
            ]
        );
    }

    fn batch(lines: usize) -> LineBatch {
        let mut b = LineBatch::new(
            Arc::new(LabelSet::from_pairs([("job", "t")])),
            crate::model::clock::now(),
        );
        for i in 0..lines {
            b.push(&format!("line {i}"), None);
        }
        b
    }

    // Paused clock: the waits run in virtual time, exactly.
    #[tokio::test(start_paused = true)]
    async fn a_full_pipeline_holds_a_request_back_and_only_settled_entries_are_acknowledged() {
        let store = crate::delivery::positions::Positions::in_memory("");
        let receipts = store.view().open_receipts("loki_push_api:t");
        let (tx, mut rx) = mpsc::channel(1);
        let intake = Intake {
            out: Mutex::new(Some(tx)),
            settled: receipts.settled(),
            order: tokio::sync::Mutex::new(Order {
                last: 0,
                receipts: Some(receipts),
            }),
            budget: Arc::new(Semaphore::new(1024)),
        };
        assert_eq!(intake.hand_on(vec![batch(2)]).await.unwrap(), 2);
        // The pipeline holds one batch and has not taken it: the next request waits its
        // bound, then is held back, numbering nothing.
        let started = tokio::time::Instant::now();
        let held = intake.hand_on(vec![batch(1)]).await.unwrap_err();
        assert_eq!(started.elapsed(), ACCEPT_WAIT);
        assert_eq!(
            (held.status.as_u16(), held.reason, held.retry_after),
            (429, "back_pressure", true)
        );
        let taken = rx.recv().await.unwrap();
        let tokens: Vec<AckToken> = taken.lines.iter().filter_map(|l| l.ack).collect();
        assert_eq!(tokens.iter().map(|t| t.offset).collect::<Vec<_>>(), [1, 2]);
        // Not settled yet: no answer but a 429 once the settle wait is over.
        let pending = intake.settled(2).await.unwrap_err();
        assert_eq!(
            (pending.status.as_u16(), pending.reason),
            (429, "not_settled")
        );
        let (factory, acks) = crate::model::ack::channel();
        factory.for_client(0).settle(tokens);
        drop(factory);
        store.clone().run_acks(acks).await;
        intake
            .settled(2)
            .await
            .expect("settled entries are acknowledged");
        assert_eq!(
            intake.hand_on(vec![batch(1)]).await.unwrap(),
            3,
            "numbering goes on"
        );
        intake.close().await;
        let closed = intake.hand_on(vec![batch(1)]).await.unwrap_err();
        assert_eq!(closed.status.as_u16(), 503);
    }

    #[test]
    fn query_values_of_one_name_are_joined_with_commas_as_go_reads_them() {
        let p = query_params(Some("env=prod&env=eu&app%20name=a%2Fb&flag"));
        assert_eq!(p["env"], "prod,eu");
        assert_eq!(p["app name"], "a/b");
        assert_eq!(p["flag"], "");
        assert!(query_params(None).is_empty());
    }
}
