//! A strict stand-in for Loki's push endpoint, `POST /loki/api/v1/push`, for end-to-end tests.
//!
//! It owns the wire contract the agent must honour: it decodes what Loki decodes (snappy
//! block-compressed protobuf, optionally gzip-encoded, and JSON, optionally gzip-encoded),
//! validates streams the way Loki's distributor does, answers with Loki's status codes and
//! messages, and records every accepted entry for assertions. It can also script failures
//! (`script`) and play dead (`set_down`) so retry and back-off paths can be exercised.
//!
//! It must not be lenient: anything Loki would reject is rejected here. Where this receiver is
//! deliberately *stricter* than Loki, the rule says so ("stricter than Loki"), because a client
//! that needs Loki's leniency is a client with a bug. It must not depend on tailward's own code:
//! it is the oracle the agent is tested against. The one exception is the protobuf schema,
//! `tailward::client::logproto` (message declarations only, no encoding logic: the agent's
//! encoder writes the wire format itself). `loki_receiver_is_strict` pins those declarations
//! to push.proto with a hand-encoded request, so a wrong field number there fails that test
//! instead of being agreed with here.
//!
//! Sources checked (grafana/loki): `pkg/push/push.proto`, `pkg/loghttp/push/push.go`
//! (`ParseLokiRequest`), `pkg/loghttp/entry.go`, `pkg/distributor/{http,distributor,validator}.go`,
//! `pkg/validation/validate.go`, `pkg/logql/syntax` (`ParseLabels` = Prometheus `ParseMetric`).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tailward::client::logproto;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PUSH_PATH: &str = "/loki/api/v1/push";
/// Loki's distributor caps push bodies at 100 MiB (`max_recv_msg_size`).
const MAX_BODY_BYTES: usize = 100 << 20;
const MISSING_LABELS: &str = "error at least one label pair is required per stream";
const MISSING_STREAMS: &str = "error at least one valid stream is required for ingestion";

/// Which Loki behaviour to imitate. `Default` is Loki 3.x with default limits.
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// Loki 2.x (before structured metadata, <= 2.8): a JSON entry with a third element is a
    /// decode error (400), and protobuf structured metadata is an unknown field, silently dropped.
    pub reject_structured_metadata_json: bool,
    /// Loki 3.x answers a push with no streams 422; Loki 2.x answered 204.
    pub reject_empty_push: bool,
    /// `max_line_size`; `None` is off (Loki 3's default is 256 KiB, Loki 2's is off).
    pub max_line_size: Option<usize>,
    pub max_label_names_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// `reject_old_samples_max_age` (Loki default: on, 1 week); `None` is off so replayed
    /// sample logs are accepted.
    pub reject_old_samples_max_age: Option<Duration>,
    /// `creation_grace_period` (Loki default 10 minutes); `None` is off.
    pub creation_grace_period: Option<Duration>,
    /// `auth_enabled: true`: a push without `X-Scope-OrgID` gets 401 "no org id".
    pub require_tenant: bool,
    /// The largest push body accepted, as received (Loki's `distributor.max_recv_msg_size`,
    /// default 100 MB, checked before decoding); a larger one gets 413. `None` is off.
    pub max_body_bytes: Option<usize>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            reject_structured_metadata_json: false,
            reject_empty_push: true,
            max_line_size: None,
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            reject_old_samples_max_age: None,
            creation_grace_period: None,
            require_tenant: false,
            max_body_bytes: None,
        }
    }
}

impl ReceiverConfig {
    /// Loki 2.x defaults: no structured metadata, empty pushes accepted, 30 label names.
    pub fn loki2() -> Self {
        ReceiverConfig {
            reject_structured_metadata_json: true,
            reject_empty_push: false,
            max_label_names_per_series: 30,
            ..ReceiverConfig::default()
        }
    }
}

/// A scripted answer for one upcoming request, given before any decoding or validation.
/// An error reply means the push is not recorded.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    TooManyRequests {
        retry_after_secs: Option<u64>,
    },
    BadRequest(String),
    /// Wait, then handle the request normally (it is recorded if valid), e.g. to trip a client
    /// timeout while the server still ingests, as a slow Loki does.
    Delay(Duration),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    ProtobufGzip,
    Json,
    JsonGzip,
}

/// One accepted log entry, flattened with its stream.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedEntry {
    /// Labels as Loki stores them: empty values dropped, sorted by name.
    pub labels: BTreeMap<String, String>,
    /// The stream's label string as sent (protobuf) or as Loki renders the JSON object.
    pub labels_raw: String,
    pub timestamp_ns: i128,
    pub line: String,
    /// In the order sent; names are kept as sent (Loki would normalise invalid ones).
    pub structured_metadata: Vec<(String, String)>,
    pub tenant: Option<String>,
    pub encoding: Encoding,
}

/// One request as it arrived, whatever its fate.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub tenant: Option<String>,
    /// The status this receiver answered with.
    pub status: u16,
}

#[derive(Default)]
struct Recorded {
    entries: Vec<ReceivedEntry>,
    requests: Vec<RecordedRequest>,
    script: VecDeque<Reply>,
}

struct Shared {
    config: ReceiverConfig,
    recorded: Mutex<Recorded>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // A panicking test thread must not hide the data from the tests that follow it.
        self.recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The running receiver. Dropping it stops the server.
pub struct Receiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Mutex<Option<Running>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::start_with(ReceiverConfig::default()).await
    }

    pub async fn start_with(config: ReceiverConfig) -> Receiver {
        let shared = Arc::new(Shared {
            config,
            recorded: Mutex::new(Recorded::default()),
        });
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)));
        let addr = listener
            .local_addr()
            .expect("receiver: listener has no local address");
        let running = serve(listener, shared.clone());
        Receiver {
            shared,
            addr,
            running: Mutex::new(Some(running)),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}{PUSH_PATH}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn received(&self) -> Vec<ReceivedEntry> {
        self.shared.lock().entries.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Queues replies for the next requests, after any still queued.
    pub fn script(&self, replies: Vec<Reply>) {
        self.shared.lock().script.extend(replies);
    }

    /// Polls until at least `n` entries were accepted or `timeout` passed; returns what is there.
    pub async fn wait_for_entries(&self, n: usize, timeout: Duration) -> Vec<ReceivedEntry> {
        poll_until(timeout, || self.shared.lock().entries.len() >= n).await;
        self.received()
    }

    /// Polls until at least `n` requests arrived or `timeout` passed; returns what is there.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        poll_until(timeout, || self.request_count() >= n).await;
        self.requests()
    }

    /// `true` closes the listening socket so clients get connection errors; `false` listens
    /// again on the same port.
    pub async fn set_down(&self, down: bool) {
        if down {
            let running = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(running) = running {
                shut_down(running).await;
            }
        } else {
            let mut slot = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(serve(bind(self.addr), self.shared.clone()));
            }
        }
    }

    /// Stops the server and waits until the port is closed.
    pub async fn stop(self) {
        self.set_down(true).await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(running) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = running.shutdown.send(());
            running.task.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> TcpListener {
    // SO_REUSEADDR so `set_down(false)` can take the port back while old connections linger.
    let socket = TcpSocket::new_v4().expect("receiver: cannot create socket");
    socket
        .set_reuseaddr(true)
        .expect("receiver: cannot set SO_REUSEADDR");
    socket
        .bind(addr)
        .unwrap_or_else(|e| panic!("receiver: cannot bind {addr}: {e}"));
    socket
        .listen(1024)
        .unwrap_or_else(|e| panic!("receiver: cannot listen on {addr}: {e}"))
}

fn serve(listener: TcpListener, shared: Arc<Shared>) -> Running {
    let router = Router::new()
        .route(PUSH_PATH, post(push))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared);
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, router).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = server.await {
            eprintln!("loki test receiver: server error: {e}");
        }
    });
    Running { shutdown, task }
}

async fn shut_down(running: Running) {
    let _ = running.shutdown.send(());
    let mut task = running.task;
    // Graceful shutdown closes idle keep-alive connections; a request still in flight (a
    // `Reply::Delay`) must not keep the port open for long.
    if tokio::time::timeout(Duration::from_secs(2), &mut task)
        .await
        .is_err()
    {
        task.abort();
    }
}

async fn poll_until(timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !ready() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

async fn push(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    // Answer in a task of its own: a client that times out and hangs up must not cancel the
    // push half-way, just as Loki finishes a push it has started.
    tokio::spawn(answer(shared, headers, body))
        .await
        .unwrap_or_else(|e| {
            let message = format!("receiver task failed: {e}\n");
            (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
        })
}

async fn answer(shared: Arc<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let scripted = shared.lock().script.pop_front();
    let mut accepted = Vec::new();
    let response = match scripted {
        Some(Reply::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, "scripted reply\n").into_response()
        }
        Some(Reply::TooManyRequests { retry_after_secs }) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                "scripted: too many requests\n",
            )
                .into_response();
            if let Some(secs) = retry_after_secs {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        Some(Reply::BadRequest(message)) => {
            (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
        }
        Some(Reply::Delay(pause)) => {
            tokio::time::sleep(pause).await;
            handle_push(&shared, &headers, &body, &mut accepted)
        }
        None => handle_push(&shared, &headers, &body, &mut accepted),
    };
    // Entries and their request are recorded together: a test that saw the entries arrive
    // also sees the request and the status it got.
    let mut recorded = shared.lock();
    recorded.entries.extend(accepted);
    recorded.requests.push(RecordedRequest {
        authorization: header_text(&headers, "authorization"),
        user_agent: header_text(&headers, "user-agent"),
        content_type: header_text(&headers, "content-type"),
        content_encoding: header_text(&headers, "content-encoding"),
        tenant: header_text(&headers, "x-scope-orgid"),
        status: response.status().as_u16(),
    });
    response
}

/// A failed push: Loki writes the message as a plain-text body.
struct Rejection(StatusCode, String);

impl Rejection {
    fn bad_request(message: impl fmt::Display) -> Rejection {
        Rejection(StatusCode::BAD_REQUEST, message.to_string())
    }
}

/// The refusals as Loki's distributor answers them (dskit's `GroupedErrors.Error()`):
/// identical messages grouped, `N errors like: <message>` joined by `; `, the prefix left
/// out when there is a single refusal. Go iterates a map there; first-seen order here.
fn grouped(errors: &[String]) -> String {
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for e in errors {
        match groups.iter_mut().find(|(m, _)| *m == e.as_str()) {
            Some((_, n)) => *n += 1,
            None => groups.push((e, 1)),
        }
    }
    let unique = groups.len();
    groups
        .iter()
        .map(|(m, n)| {
            if unique > 1 || *n > 1 {
                format!("{n} errors like: {m}")
            } else {
                m.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Answers one push; what it accepts goes to `accepted`.
fn handle_push(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    accepted: &mut Vec<ReceivedEntry>,
) -> Response {
    if let Some(max) = shared.config.max_body_bytes
        && body.len() > max
    {
        // Loki: util.ErrMessageSizeTooLarge, answered 413 by the push handler.
        let message = format!(
            "message size too large than max ({} vs {max})\n",
            body.len()
        );
        return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    }
    let tenant = header_text(headers, "x-scope-orgid").filter(|t| !t.is_empty());
    match decode_and_validate(&shared.config, headers, body, tenant) {
        Ok((valid, errors)) => {
            accepted.extend(valid);
            if errors.is_empty() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                // Loki keeps the valid entries and reports the invalid ones with a 400.
                (StatusCode::BAD_REQUEST, format!("{}\n", grouped(&errors))).into_response()
            }
        }
        Err(Rejection(status, message)) => (status, format!("{message}\n")).into_response(),
    }
}

/// A stream after decoding, before validation.
struct DecodedStream {
    labels_raw: String,
    labels: Vec<(String, String)>,
    entries: Vec<DecodedEntry>,
}

struct DecodedEntry {
    timestamp_ns: i128,
    line: String,
    structured_metadata: Vec<(String, String)>,
}

type Outcome = (Vec<ReceivedEntry>, Vec<String>);

fn decode_and_validate(
    config: &ReceiverConfig,
    headers: &HeaderMap,
    body: &[u8],
    tenant: Option<String>,
) -> Result<Outcome, Rejection> {
    if config.require_tenant && tenant.is_none() {
        return Err(Rejection(StatusCode::UNAUTHORIZED, "no org id".into()));
    }
    let gzipped = match header_text(headers, "content-encoding").as_deref() {
        // Loki treats "snappy" as a no-op marker: protobuf bodies are always snappy.
        None | Some("") | Some("snappy") => false,
        Some("gzip") => true,
        // Stricter than Loki, which also takes deflate (and lz4/zstd in recent versions).
        Some(other) => {
            return Err(Rejection::bad_request(format!(
                "Content-Encoding {other:?} not supported"
            )));
        }
    };
    let body = if gzipped {
        gunzip(body)?
    } else {
        body.to_vec()
    };
    let content_type = header_text(headers, "content-type").unwrap_or_default();
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (streams, encoding) = match media_type.as_str() {
        "" => return Err(Rejection::bad_request("mime: no media type")),
        "application/json" => {
            let encoding = if gzipped {
                Encoding::JsonGzip
            } else {
                Encoding::Json
            };
            (decode_json(&body, config)?, encoding)
        }
        "application/x-protobuf" => {
            let encoding = if gzipped {
                Encoding::ProtobufGzip
            } else {
                Encoding::Protobuf
            };
            (decode_protobuf(&body, config)?, encoding)
        }
        // Stricter than Loki, which decodes any other media type as protobuf.
        other => {
            return Err(Rejection(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Type {other:?}"),
            ));
        }
    };
    if streams.is_empty() {
        if config.reject_empty_push {
            return Err(Rejection(
                StatusCode::UNPROCESSABLE_ENTITY,
                MISSING_STREAMS.into(),
            ));
        }
        return Ok((Vec::new(), Vec::new()));
    }
    Ok(validate(config, streams, &tenant, encoding))
}

fn gunzip(body: &[u8]) -> Result<Vec<u8>, Rejection> {
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .read_to_end(&mut plain)
        .map_err(|e| Rejection::bad_request(format!("gzip: {e}")))?;
    Ok(plain)
}

fn decode_protobuf(body: &[u8], config: &ReceiverConfig) -> Result<Vec<DecodedStream>, Rejection> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| Rejection::bad_request(format!("snappy: {e}")))?;
    // prost rejects invalid UTF-8 in string fields; Loki's gogo decoder does not (stricter).
    let request = logproto::PushRequest::decode(raw.as_slice())
        .map_err(|e| Rejection::bad_request(format!("proto: {e}")))?;
    let mut streams = Vec::with_capacity(request.streams.len());
    for stream in request.streams {
        let labels = parse_stream_labels(&stream.labels)?;
        let mut entries = Vec::with_capacity(stream.entries.len());
        for entry in stream.entries {
            let structured_metadata = if config.reject_structured_metadata_json {
                Vec::new()
            } else {
                entry
                    .structured_metadata
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect()
            };
            let timestamp_ns = timestamp_ns(entry.timestamp.as_ref())?;
            entries.push(DecodedEntry {
                timestamp_ns,
                line: entry.line,
                structured_metadata,
            });
        }
        streams.push(DecodedStream {
            labels_raw: stream.labels,
            labels,
            entries,
        });
    }
    Ok(streams)
}

/// The range gogo's `StdTimeUnmarshal` accepts: 0001-01-01 to 9999-12-31, nanos in [0, 1e9).
fn timestamp_ns(ts: Option<&logproto::Timestamp>) -> Result<i128, Rejection> {
    // Stricter than Loki, which reads a missing timestamp as the zero time.
    let ts = ts.ok_or_else(|| Rejection::bad_request("proto: entry has no timestamp"))?;
    if !(-62_135_596_800..253_402_300_800).contains(&ts.seconds) {
        return Err(Rejection::bad_request(format!(
            "timestamp: seconds {} out of range",
            ts.seconds
        )));
    }
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(Rejection::bad_request(format!(
            "timestamp: nanos {} out of range",
            ts.nanos
        )));
    }
    Ok(i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos))
}

fn parse_stream_labels(raw: &str) -> Result<Vec<(String, String)>, Rejection> {
    parse_label_selector(raw)
        .map_err(|e| Rejection::bad_request(format!("couldn't parse labels: {e}")))
}

#[derive(serde::Deserialize)]
struct JsonPush {
    #[serde(default)]
    streams: Option<Vec<JsonStream>>,
}

#[derive(serde::Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<JsonEntry>,
}

/// One `values` item: `["<unix ns>", "<line>"]` or `["<unix ns>", "<line>", {"k": "v"}]`.
struct JsonEntry {
    timestamp_ns: i64,
    line: String,
    structured_metadata: Option<Vec<(String, String)>>,
}

impl<'de> serde::Deserialize<'de> for JsonEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(JsonEntryVisitor)
    }
}

struct JsonEntryVisitor;

impl<'de> Visitor<'de> for JsonEntryVisitor {
    type Value = JsonEntry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of 2 or 3 values: \"<unix ns>\", \"<line>\", {structured metadata}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonEntry, A::Error> {
        let ts: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        // Loki: `strconv.ParseInt(s, 10, 64)` on the string; numbers are not accepted.
        let timestamp_ns = ts
            .parse::<i64>()
            .map_err(|e| de::Error::custom(format!("error reading entry timestamp {ts:?}: {e}")))?;
        let line: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let structured_metadata = seq.next_element::<OrderedPairs>()?.map(|p| p.0);
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(4, &self));
        }
        Ok(JsonEntry {
            timestamp_ns,
            line,
            structured_metadata,
        })
    }
}

/// A JSON object of string values, in document order.
struct OrderedPairs(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for OrderedPairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = OrderedPairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string values (structured metadata)")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<OrderedPairs, M::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(OrderedPairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

fn decode_json(body: &[u8], config: &ReceiverConfig) -> Result<Vec<DecodedStream>, Rejection> {
    // Stricter than Loki's jsoniter decoder: trailing data, non-string label values and
    // one-element `values` items are errors here.
    let request: JsonPush = serde_json::from_slice(body).map_err(Rejection::bad_request)?;
    let mut streams = Vec::new();
    for stream in request.streams.unwrap_or_default() {
        // Loki renders the object with `LabelSet.String()` and parses that string.
        let labels_raw = render_labels(stream.stream.iter());
        let labels = parse_stream_labels(&labels_raw)?;
        let mut entries = Vec::with_capacity(stream.values.len());
        for entry in stream.values {
            if entry.structured_metadata.is_some() && config.reject_structured_metadata_json {
                return Err(Rejection::bad_request(
                    "ReadArrayCB: error reading entry, array must contains 2 values",
                ));
            }
            entries.push(DecodedEntry {
                timestamp_ns: i128::from(entry.timestamp_ns),
                line: entry.line,
                structured_metadata: entry.structured_metadata.unwrap_or_default(),
            });
        }
        streams.push(DecodedStream {
            labels_raw,
            labels,
            entries,
        });
    }
    Ok(streams)
}

/// The distributor's checks: per stream (labels), then per entry; valid data is kept.
fn validate(
    config: &ReceiverConfig,
    streams: Vec<DecodedStream>,
    tenant: &Option<String>,
    encoding: Encoding,
) -> Outcome {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let oldest_ns = config
        .reject_old_samples_max_age
        .map(|age| now_ns - age.as_nanos() as i128);
    let newest_ns = config
        .creation_grace_period
        .map(|grace| now_ns + grace.as_nanos() as i128);
    let (mut accepted, mut errors) = (Vec::new(), Vec::new());
    for stream in streams {
        if stream.entries.is_empty() {
            continue;
        }
        let labels = match validate_labels(config, &stream.labels_raw, &stream.labels) {
            Ok(labels) => labels,
            Err(message) => {
                errors.push(message);
                continue;
            }
        };
        let canonical = render_labels(labels.iter());
        for entry in stream.entries {
            if let Some(oldest) = oldest_ns.filter(|oldest| entry.timestamp_ns < *oldest) {
                errors.push(format!(
                    "entry for stream '{canonical}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                    rfc3339(entry.timestamp_ns),
                    rfc3339(oldest)
                ));
                continue;
            }
            if newest_ns.is_some_and(|newest| entry.timestamp_ns > newest) {
                errors.push(format!(
                    "entry for stream '{canonical}' has timestamp too new: {}",
                    rfc3339(entry.timestamp_ns)
                ));
                continue;
            }
            if let Some(max) = config.max_line_size.filter(|max| entry.line.len() > *max) {
                errors.push(format!(
                    "Max entry size '{max}' bytes exceeded for stream '{canonical}' while adding an entry with length '{}' bytes",
                    entry.line.len()
                ));
                continue;
            }
            accepted.push(ReceivedEntry {
                labels: labels.clone(),
                labels_raw: stream.labels_raw.clone(),
                timestamp_ns: entry.timestamp_ns,
                line: entry.line,
                structured_metadata: entry.structured_metadata,
                tenant: tenant.clone(),
                encoding,
            });
        }
    }
    (accepted, errors)
}

/// Loki's `ValidateLabels` on the parsed set (empty values already mean "absent").
fn validate_labels(
    config: &ReceiverConfig,
    raw: &str,
    pairs: &[(String, String)],
) -> Result<BTreeMap<String, String>, String> {
    let mut present: Vec<&(String, String)> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    present.sort_by(|a, b| a.0.cmp(&b.0));
    if present.is_empty() {
        return Err(MISSING_LABELS.to_string());
    }
    // `service_name` is often added by Loki itself, so it does not count against the limit.
    let counted = present.len() - usize::from(present.iter().any(|(n, _)| n == "service_name"));
    if counted > config.max_label_names_per_series {
        let limit = config.max_label_names_per_series;
        return Err(format!(
            "entry for stream '{raw}' has {counted} label names; limit {limit}"
        ));
    }
    let mut labels = BTreeMap::new();
    for (name, value) in present {
        if name.len() > config.max_label_name_length {
            return Err(format!("stream '{raw}' has label name too long: '{name}'"));
        }
        if value.len() > config.max_label_value_length {
            return Err(format!(
                "stream '{raw}' has label value too long: '{value}'"
            ));
        }
        if labels.insert(name.clone(), value.clone()).is_some() {
            return Err(format!("stream '{raw}' has duplicate label name: '{name}'"));
        }
    }
    Ok(labels)
}

fn rfc3339(timestamp_ns: i128) -> String {
    let secs = i64::try_from(timestamp_ns.div_euclid(1_000_000_000)).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || format!("{timestamp_ns}ns"),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// `{a="1", b="2"}` with Go `strconv.Quote`-style escapes, as Prometheus and Loki render labels.
fn render_labels<'a>(labels: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in labels.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Parses a stream selector such as `{job="varlogs", host='a',}` as Prometheus' `ParseMetric`
/// does (the parser behind Loki's `syntax.ParseLabels`), keeping document order.
/// Stricter than Loki: a metric name before `{` and quoted label names are not accepted.
pub fn parse_label_selector(input: &str) -> Result<Vec<(String, String)>, String> {
    let mut p = SelectorParser { rest: input };
    p.skip_space();
    if !p.eat('{') {
        return Err(format!("expected '{{' at the start of {input:?}"));
    }
    let mut pairs = Vec::new();
    loop {
        p.skip_space();
        if p.eat('}') {
            break;
        }
        let name = p.label_name()?;
        p.skip_space();
        if !p.eat('=') || p.rest.starts_with('~') {
            return Err(format!(
                "expected '=' after label name {name:?} in {input:?}"
            ));
        }
        p.skip_space();
        let value = p.string()?;
        pairs.push((name, value));
        p.skip_space();
        if p.eat(',') {
            continue;
        }
        if p.eat('}') {
            break;
        }
        return Err(format!(
            "expected ',' or '}}' after label value in {input:?}"
        ));
    }
    p.skip_space();
    if !p.rest.is_empty() {
        return Err(format!("unexpected {:?} after '}}' in {input:?}", p.rest));
    }
    Ok(pairs)
}

struct SelectorParser<'a> {
    rest: &'a str,
}

impl SelectorParser<'_> {
    fn bump(&mut self) -> Option<char> {
        let c = self.rest.chars().next()?;
        self.rest = &self.rest[c.len_utf8()..];
        Some(c)
    }

    fn eat(&mut self, expected: char) -> bool {
        let found = self.rest.starts_with(expected);
        if found {
            self.rest = &self.rest[expected.len_utf8()..];
        }
        found
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t', '\n', '\r']);
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`
    fn label_name(&mut self) -> Result<String, String> {
        let len = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest.len());
        let name = &self.rest[..len];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            let found: String = self.rest.chars().take(12).collect();
            return Err(format!("invalid label name at {found:?}"));
        }
        self.rest = &self.rest[len..];
        Ok(name.to_string())
    }

    /// A PromQL string: "..." or '...' with Go escapes, or `...` raw.
    fn string(&mut self) -> Result<String, String> {
        let quote = self
            .bump()
            .ok_or("expected a quoted label value, found the end")?;
        if quote == '`' {
            let end = self.rest.find('`').ok_or("unterminated raw string")?;
            let value = self.rest[..end].to_string();
            self.rest = &self.rest[end + 1..];
            return Ok(value);
        }
        if quote != '"' && quote != '\'' {
            return Err(format!("expected a quoted label value, found {quote:?}"));
        }
        // Bytes, because `\x` and octal escapes produce bytes, as in Go.
        let mut value = Vec::new();
        loop {
            match self.bump() {
                None | Some('\n') => return Err("unterminated quoted string".into()),
                Some(c) if c == quote => break,
                Some('\\') => self.escape(quote, &mut value)?,
                Some(c) => value.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        String::from_utf8(value).map_err(|_| "label value is not valid UTF-8".to_string())
    }

    fn escape(&mut self, quote: char, value: &mut Vec<u8>) -> Result<(), String> {
        let c = self.bump().ok_or("unterminated escape sequence")?;
        let simple = match c {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            c if c == quote => Some(c as u8),
            _ => None,
        };
        if let Some(byte) = simple {
            value.push(byte);
            return Ok(());
        }
        let (digits, radix) = match c {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            other => return Err(format!("unknown escape sequence \\{other}")),
        };
        let mut code = if radix == 8 {
            c.to_digit(8).unwrap_or(0)
        } else {
            0
        };
        for _ in 0..digits {
            let digit = self.bump().and_then(|d| d.to_digit(radix));
            code = code * radix + digit.ok_or(format!("invalid escape sequence \\{c}"))?;
        }
        match c {
            'x' => value.push(code as u8),
            '0'..='7' => value.push(u8::try_from(code).map_err(|_| "octal escape above \\377")?),
            _ => {
                let ch =
                    char::from_u32(code).ok_or(format!("invalid Unicode code point {code:#x}"))?;
                value.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
            }
        }
        Ok(())
    }
}
