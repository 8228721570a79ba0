//! The client against a real HTTP endpoint: a small axum server on 127.0.0.1 that records
//! every push and answers from a script, plain, over TLS, or dropping connections.

use std::collections::VecDeque;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::Listener;
use chrono::DateTime;
use prost::Message as _;
use tokio::net::{TcpListener, TcpStream};

use super::logproto::PushRequest;
use super::*;
use crate::config::{BackoffConfig, BasicAuth, GoDuration, PushCompression, PushFormat};
use crate::model::ack::{self, AckReceiver, AckToken, SourceId};
use crate::model::entry::Entry;
use crate::model::labels::TENANT_LABEL;

const PUSH_PATH: &str = "/loki/api/v1/push";

#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    retry_after: Option<&'static str>,
    body: &'static str,
}

impl Reply {
    fn status(status: u16) -> Self {
        Reply {
            status,
            retry_after: None,
            body: "",
        }
    }

    fn with_body(status: u16, body: &'static str) -> Self {
        Reply {
            status,
            retry_after: None,
            body,
        }
    }
}

#[derive(Clone, Debug)]
struct Recorded {
    at: Instant,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Streams as `(labels, lines)`, decoded from snappy protobuf.
    fn streams(&self) -> Vec<(String, Vec<String>)> {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&self.body)
            .unwrap();
        PushRequest::decode(raw.as_slice())
            .unwrap()
            .streams
            .into_iter()
            .map(|s| (s.labels, s.entries.into_iter().map(|e| e.line).collect()))
            .collect()
    }

    fn lines(&self) -> Vec<String> {
        self.streams()
            .into_iter()
            .flat_map(|(_, lines)| lines)
            .collect()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Judge = Box<dyn Fn(&Recorded) -> Reply + Send + Sync>;

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
    /// Answers once the script is used up; 204 without one.
    judge: Mutex<Option<Judge>>,
}

struct TestLoki {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
}

async fn record(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let recorded = Recorded {
        at: Instant::now(),
        headers,
        body: body.to_vec(),
    };
    let scripted = shared.script.lock().unwrap().pop_front();
    let reply = scripted.unwrap_or_else(|| match &*shared.judge.lock().unwrap() {
        Some(judge) => judge(&recorded),
        None => Reply::status(204),
    });
    shared.requests.lock().unwrap().push(recorded);
    let mut headers = HeaderMap::new();
    if let Some(v) = reply.retry_after {
        headers.insert("retry-after", v.parse().unwrap());
    }
    let status = StatusCode::from_u16(reply.status).unwrap();
    (status, headers, reply.body).into_response()
}

impl TestLoki {
    async fn start() -> Self {
        Self::serve(TcpListener::bind("127.0.0.1:0").await.unwrap(), "http")
    }

    fn serve<L: Listener<Addr = SocketAddr>>(listener: L, scheme: &'static str) -> Self {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route(PUSH_PATH, post(record))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestLoki {
            addr,
            scheme,
            shared,
        }
    }

    fn url(&self) -> String {
        format!("{}://{}{PUSH_PATH}", self.scheme, self.addr)
    }

    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    fn judge(&self, judge: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        *self.shared.judge.lock().unwrap() = Some(Box::new(judge));
    }

    fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

/// Closes the first `remaining` connections without answering, then serves normally.
struct DropFirstConnections {
    tcp: TcpListener,
    remaining: usize,
}

impl Listener for DropFirstConnections {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if self.remaining > 0 {
                self.remaining -= 1;
                drop(stream);
                continue;
            }
            return (stream, addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Serves TLS with a certificate signed by a test CA; failed handshakes are skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

async fn tls_loki(pki: &tls::TestPki) -> TestLoki {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let listener = TlsListener {
        tcp: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    };
    TestLoki::serve(listener, "https")
}

fn config(url: &str) -> ClientConfig {
    ClientConfig {
        url: url.to_string(),
        batchwait: GoDuration::from_millis(20),
        timeout: GoDuration::from_secs(5),
        backoff_config: BackoffConfig {
            min_period: GoDuration::from_millis(10),
            max_period: GoDuration::from_millis(40),
            max_retries: 10,
        },
        ..ClientConfig::default()
    }
}

fn token(offset: u64) -> AckToken {
    AckToken::line(SourceId(7), offset)
}

fn entry_with(labels: &[(&str, &str)], line: &str, sm: &[(&str, &str)]) -> Entry {
    Entry {
        labels: LabelSet::from_pairs(labels.iter().copied()),
        timestamp: DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap(),
        line: line.to_string(),
        structured_metadata: sm
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// An entry of `{job="app"}` acknowledged by offset `offset`.
fn out(line: &str, offset: u64) -> Outgoing {
    Outgoing::Entry {
        entry: entry_with(&[("job", "app")], line, &[]),
        ack: Some(token(offset)),
    }
}

struct Client {
    handle: Option<ClientHandle>,
    metrics: Arc<Metrics>,
    acks: AckReceiver,
    host: String,
}

impl Client {
    fn start(cfg: &ClientConfig) -> Self {
        Self::start_with_limits(cfg, &LimitsConfig::default())
    }

    fn start_with_limits(cfg: &ClientConfig, limits: &LimitsConfig) -> Self {
        Self::start_with(cfg, limits, None)
    }

    /// With a disk buffer in `dir`.
    fn start_with_wal(cfg: &ClientConfig, dir: &std::path::Path) -> Self {
        let wal = WalConfig {
            enabled: true,
            dir: dir.display().to_string(),
            ..WalConfig::default()
        };
        Self::start_with(
            cfg,
            &LimitsConfig::default(),
            Some((wal, dir.to_path_buf())),
        )
    }

    fn start_with(
        cfg: &ClientConfig,
        limits: &LimitsConfig,
        wal: Option<(WalConfig, std::path::PathBuf)>,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let (factory, acks) = ack::channel();
        let handle = spawn(0, cfg, limits, metrics.clone(), factory.for_client(0), wal).unwrap();
        Client {
            handle: Some(handle),
            metrics,
            acks,
            host: push::url_host(&cfg.url),
        }
    }

    async fn send(&self, chunk: Vec<Outgoing>) {
        let sender = self.handle.as_ref().unwrap().sender();
        sender.send(chunk).await.unwrap();
    }

    async fn finish(&mut self, deadline: Duration) {
        self.handle.take().unwrap().finish(deadline).await;
    }

    /// Offsets settled so far, in order. The tests number their lines (line `n` at offset
    /// `n`), so a token the client merged over consecutive lines stands for each of them.
    fn settled(&mut self) -> Vec<u64> {
        let mut offsets = Vec::new();
        while let Ok(a) = self.acks.try_recv() {
            assert_eq!(a.client, 0);
            offsets.extend(a.tokens.iter().flat_map(|t| t.from..=t.offset));
        }
        offsets
    }

    fn dropped(&self, tenant: &str, reason: &str) -> u64 {
        let m = &self.metrics.client;
        m.dropped_entries
            .with_label_values(&[&self.host, tenant, reason])
            .get()
    }

    fn dropped_bytes(&self, tenant: &str, reason: &str) -> u64 {
        let m = &self.metrics.client;
        m.dropped_bytes
            .with_label_values(&[&self.host, tenant, reason])
            .get()
    }

    fn sent_entries(&self) -> u64 {
        self.metrics
            .client
            .sent_entries
            .with_label_values(&[&self.host])
            .get()
    }

    fn retries(&self, tenant: &str) -> u64 {
        self.metrics
            .client
            .batch_retries
            .with_label_values(&[&self.host, tenant])
            .get()
    }

    fn requests_with_status(&self, status: &str) -> u64 {
        self.metrics
            .client
            .request_duration
            .with_label_values(&[status, &self.host])
            .get_sample_count()
    }
}

async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    condition()
}

const FINISH: Duration = Duration::from_secs(10);

#[tokio::test]
async fn server_errors_are_retried_and_entries_arrive_once_then_settle() {
    let loki = TestLoki::start().await;
    loki.script([Reply::status(500), Reply::status(500)]);
    let mut client = Client::start(&config(&loki.url()));
    client
        .send(vec![out("a", 1), out("b", 2), out("c", 3)])
        .await;
    client.finish(FINISH).await;

    let requests = loki.requests();
    assert_eq!(requests.len(), 3, "two failures, then success");
    for r in &requests {
        assert_eq!(
            r.lines(),
            ["a", "b", "c"],
            "the same batch each time, entries once"
        );
    }
    assert_eq!(client.settled(), [1, 2, 3]);
    assert_eq!(client.sent_entries(), 3);
    assert_eq!(client.retries(""), 2);
    assert_eq!(client.requests_with_status("500"), 2);
    assert_eq!(client.requests_with_status("204"), 1);
    assert_eq!(client.dropped("", "ingester_error"), 0);
}

#[tokio::test]
async fn bad_request_drops_the_batch_at_once_counts_it_and_settles() {
    let loki = TestLoki::start().await;
    loki.script([Reply::with_body(400, "entry too far behind")]);
    let mut client = Client::start(&config(&loki.url()));
    client.send(vec![out("a", 1), out("b", 2)]).await;
    client.finish(FINISH).await;

    assert_eq!(loki.requests().len(), 1, "not retried");
    assert_eq!(client.dropped("", "ingester_error"), 2);
    let encoded = client
        .metrics
        .client
        .encoded_bytes
        .with_label_values(&[&client.host])
        .get();
    assert!(encoded > 0);
    assert_eq!(
        client.dropped_bytes("", "ingester_error"),
        encoded,
        "Promtail counts encoded bytes"
    );
    assert_eq!(client.sent_entries(), 0);
    assert_eq!(
        client.settled(),
        [1, 2],
        "a batch dropped on purpose is settled"
    );
}

#[tokio::test]
async fn rate_limited_batch_waits_for_retry_after() {
    let loki = TestLoki::start().await;
    loki.script([Reply {
        status: 429,
        retry_after: Some("1"),
        body: "rate limited",
    }]);
    let mut cfg = config(&loki.url());
    cfg.backoff_config.max_period = GoDuration::from_secs(5);
    let mut client = Client::start(&cfg);
    client.send(vec![out("a", 1)]).await;
    client.finish(FINISH).await;

    let requests = loki.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}, not after Retry-After: 1"
    );
    assert_eq!(client.settled(), [1]);
    assert_eq!(client.sent_entries(), 1);
}

#[tokio::test]
async fn a_retry_after_shorter_than_the_backoff_does_not_shorten_the_wait() {
    let loki = TestLoki::start().await;
    let soon = || Reply {
        status: 429,
        retry_after: Some("0"),
        body: "rate limited",
    };
    loki.script([soon(), soon()]);
    let mut cfg = config(&loki.url());
    cfg.backoff_config.min_period = GoDuration::from_millis(400);
    cfg.backoff_config.max_period = GoDuration::from_millis(400);
    cfg.backoff_config.max_retries = 5;
    let mut client = Client::start(&cfg);
    client.send(vec![out("a", 1)]).await;
    client.finish(FINISH).await;

    let requests = loki.requests();
    assert_eq!(requests.len(), 3);
    for pair in requests.windows(2) {
        let waited = pair[1].at - pair[0].at;
        assert!(
            waited >= Duration::from_millis(390),
            "retried after {waited:?}: Retry-After: 0 cut the 400ms backoff"
        );
    }
    assert_eq!(client.settled(), [1]);
}

#[tokio::test]
async fn with_a_disk_buffer_rate_limits_longer_than_the_whole_backoff_lose_nothing() {
    let loki = TestLoki::start().await;
    // Six 429s where max_retries allows two attempts: without a buffer the batch is dropped.
    loki.script((0..6).map(|_| Reply::status(429)).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&loki.url());
    cfg.backoff_config.min_period = GoDuration::from_millis(20);
    cfg.backoff_config.max_period = GoDuration::from_millis(40);
    cfg.backoff_config.max_retries = 2;
    let mut client = Client::start_with_wal(&cfg, dir.path());
    client.send(vec![out("a", 1), out("b", 2)]).await;
    assert!(eventually(FINISH, || client.sent_entries() == 2).await);
    client.finish(FINISH).await;

    assert_eq!(loki.requests().len(), 7);
    assert_eq!(client.dropped("", "rate_limited"), 0);
    assert_eq!(client.sent_entries(), 2);
}

#[tokio::test]
async fn transport_errors_are_retried() {
    let listener = DropFirstConnections {
        tcp: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        remaining: 2,
    };
    let loki = TestLoki::serve(listener, "http");
    let mut client = Client::start(&config(&loki.url()));
    client.send(vec![out("a", 1)]).await;
    client.finish(FINISH).await;

    assert_eq!(loki.requests().len(), 1);
    assert_eq!(client.requests_with_status("-1"), 2);
    assert_eq!(client.retries(""), 2);
    assert_eq!(client.settled(), [1]);
}

#[tokio::test]
async fn exhausted_retries_drop_with_the_reason_of_the_last_failure() {
    let loki = TestLoki::start().await;
    loki.script([Reply::status(500), Reply::status(429)]);
    let mut cfg = config(&loki.url());
    cfg.backoff_config.max_retries = 2;
    let mut client = Client::start(&cfg);
    client.send(vec![out("a", 1)]).await;
    assert!(eventually(FINISH, || client.dropped("", "rate_limited") == 1).await);

    loki.script([Reply::status(429), Reply::status(503)]);
    client.send(vec![out("b", 2)]).await;
    client.finish(FINISH).await;

    assert_eq!(
        loki.requests().len(),
        4,
        "max_retries: 2 means two attempts per batch"
    );
    assert_eq!(client.dropped("", "ingester_error"), 1);
    assert_eq!(client.dropped("", "rate_limited"), 1);
    assert_eq!(client.settled(), [1, 2]);
}

#[tokio::test]
async fn drop_rate_limited_batches_drops_on_the_first_429() {
    let loki = TestLoki::start().await;
    loki.script([Reply::status(429)]);
    let mut cfg = config(&loki.url());
    cfg.drop_rate_limited_batches = true;
    let mut client = Client::start(&cfg);
    client.send(vec![out("a", 1), out("b", 2)]).await;
    client.finish(FINISH).await;

    assert_eq!(loki.requests().len(), 1);
    assert_eq!(client.dropped("", "rate_limited"), 2);
    assert_eq!(client.retries(""), 0);
    assert_eq!(client.settled(), [1, 2]);
}

#[tokio::test]
async fn structured_metadata_refused_by_loki_2_is_resent_without_it_and_stays_off() {
    let loki = TestLoki::start().await;
    // Loki 2.8's JSON reader refuses any third value in an entry.
    loki.judge(|r| {
        let v = r.json();
        let has_third_value = v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap())
            .any(|value| value.as_array().unwrap().len() == 3);
        if has_third_value {
            Reply::with_body(
                400,
                "loghttp.PushRequest.Streams: []*loghttp.Stream: unmarshalerDecoder: error reading entry: array must contains 2 values, error found in #10 byte of ...",
            )
        } else {
            Reply::status(204)
        }
    });
    let mut cfg = config(&loki.url());
    cfg.format = PushFormat::Json;
    let mut client = Client::start(&cfg);
    let with_sm = |line: &str, offset| Outgoing::Entry {
        entry: entry_with(&[("job", "app")], line, &[("trace_id", "t1")]),
        ack: Some(token(offset)),
    };
    client.send(vec![with_sm("a", 1), out("b", 2)]).await;
    assert!(eventually(FINISH, || loki.requests().len() == 2).await);
    client.send(vec![with_sm("c", 3)]).await;
    client.finish(FINISH).await;

    let requests = loki.requests();
    assert_eq!(
        requests.len(),
        3,
        "one refusal, its resend, then the next batch directly"
    );
    assert_eq!(
        requests[0].json()["streams"][0]["values"][0][2]["trace_id"],
        "t1"
    );
    for r in &requests[1..] {
        let values = r.json()["streams"][0]["values"].clone();
        assert!(
            values
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v.as_array().unwrap().len() == 2)
        );
    }
    assert_eq!(requests[1].json()["streams"][0]["values"][1][1], "b");
    assert_eq!(requests[2].json()["streams"][0]["values"][0][1], "c");
    let fallbacks = client
        .metrics
        .client
        .structured_metadata_fallbacks
        .with_label_values(&[&client.host])
        .get();
    assert_eq!(fallbacks, 1);
    assert_eq!(client.dropped("", "ingester_error"), 0);
    assert_eq!(client.sent_entries(), 3);
    assert_eq!(client.settled(), [1, 2, 3]);
}

#[tokio::test]
async fn basic_auth_tenant_and_custom_headers_are_sent() {
    let loki = TestLoki::start().await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("pw");
    std::fs::write(&password_file, "pw\n").unwrap();
    let mut cfg = config(&loki.url());
    cfg.tenant_id = "team-a".into();
    cfg.basic_auth = Some(BasicAuth {
        username: "user".into(),
        password_file: password_file.to_string_lossy().into_owned(),
        ..BasicAuth::default()
    });
    cfg.headers.insert("X-Extra".into(), "yes".into());
    let mut client = Client::start(&cfg);
    client.send(vec![out("a", 1)]).await;
    client.finish(FINISH).await;

    let r = &loki.requests()[0];
    assert_eq!(
        r.header("authorization"),
        Some("Basic dXNlcjpwdw=="),
        "base64 of user:pw"
    );
    assert_eq!(r.header("x-scope-orgid"), Some("team-a"));
    assert_eq!(r.header("x-extra"), Some("yes"));
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(r.header("content-encoding"), None);
    let user_agent = concat!("tailward/", env!("CARGO_PKG_VERSION"));
    assert_eq!(r.header("user-agent"), Some(user_agent));
}

#[tokio::test]
async fn bearer_token_file_and_authorization_block_are_sent() {
    let loki = TestLoki::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok\n").unwrap();
    let mut bearer = config(&loki.url());
    bearer.bearer_token_file = token_file.to_string_lossy().into_owned();
    let mut custom = config(&loki.url());
    custom.authorization = Some(crate::config::Authorization {
        kind: "Custom".into(),
        credentials: "creds".into(),
        credentials_file: String::new(),
    });
    for cfg in [bearer, custom] {
        let mut client = Client::start(&cfg);
        client.send(vec![out("a", 1)]).await;
        client.finish(FINISH).await;
    }

    let requests = loki.requests();
    assert_eq!(requests[0].header("authorization"), Some("Bearer tok"));
    assert_eq!(requests[1].header("authorization"), Some("Custom creds"));
    assert_eq!(
        requests[0].header("x-scope-orgid"),
        None,
        "no tenant, no header"
    );
}

#[tokio::test]
async fn tenant_label_splits_requests_and_a_custom_org_header_serves_the_rest() {
    let loki = TestLoki::start().await;
    let mut cfg = config(&loki.url());
    cfg.headers
        .insert("X-Scope-OrgID".into(), "fallback".into());
    cfg.external_labels.insert("env".into(), "prod".into());
    let mut client = Client::start(&cfg);
    let tenant_entry = |tenant: &str, line: &str, offset| Outgoing::Entry {
        entry: entry_with(&[("job", "app"), (TENANT_LABEL, tenant)], line, &[]),
        ack: Some(token(offset)),
    };
    client
        .send(vec![
            out("plain", 1),
            tenant_entry("a", "for a", 2),
            tenant_entry("b", "for b", 3),
        ])
        .await;
    client.finish(FINISH).await;

    let requests = loki.requests();
    assert_eq!(requests.len(), 3);
    let by_tenant: Vec<_> = requests
        .iter()
        .map(|r| (r.header("x-scope-orgid").unwrap().to_string(), r.streams()))
        .collect();
    let stream = |line: &str| {
        vec![(
            r#"{env="prod", job="app"}"#.to_string(),
            vec![line.to_string()],
        )]
    };
    assert_eq!(
        by_tenant,
        vec![
            ("fallback".to_string(), stream("plain")),
            ("a".to_string(), stream("for a")),
            ("b".to_string(), stream("for b")),
        ]
    );
    assert_eq!(
        client.settled(),
        [1, 2, 3],
        "settled together, in arrival order"
    );
}

#[tokio::test]
async fn batchwait_sends_without_further_input() {
    let loki = TestLoki::start().await;
    let mut cfg = config(&loki.url());
    cfg.batchwait = GoDuration::from_millis(50);
    let mut client = Client::start(&cfg);
    let sent = Instant::now();
    client.send(vec![out("a", 1)]).await;
    assert!(eventually(Duration::from_secs(5), || loki.requests().len() == 1).await);
    let waited = loki.requests()[0].at - sent;
    assert!(
        waited >= Duration::from_millis(45),
        "sent after {waited:?}, before batchwait"
    );
    let mut settled = Vec::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            settled.extend(client.settled());
            settled == [1]
        })
        .await
    );
    client.finish(FINISH).await;
}

#[tokio::test]
async fn batchsize_sends_the_batch_before_an_entry_that_would_overflow_it() {
    let loki = TestLoki::start().await;
    let mut cfg = config(&loki.url());
    cfg.batchwait = GoDuration::from_secs(60);
    cfg.batchsize = crate::config::ByteSize(10);
    let mut client = Client::start(&cfg);
    let chunk = (1..=5).map(|i| out(&format!("l{i:03}"), i)).collect();
    client.send(chunk).await;
    client.finish(FINISH).await;

    let batches: Vec<_> = loki.requests().iter().map(Recorded::lines).collect();
    assert_eq!(
        batches,
        [vec!["l001", "l002"], vec!["l003", "l004"], vec!["l005"]]
    );
    assert_eq!(client.settled(), [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn consumed_tokens_settle_in_order_with_entries_and_alone() {
    let loki = TestLoki::start().await;
    let mut client = Client::start(&config(&loki.url()));
    client
        .send(vec![
            out("a", 1),
            Outgoing::Consumed { ack: token(2) },
            out("c", 3),
        ])
        .await;
    assert!(eventually(FINISH, || loki.requests().len() == 1).await);
    client
        .send(vec![Outgoing::Consumed { ack: token(4) }])
        .await;
    let mut settled = Vec::new();
    assert!(
        eventually(FINISH, || {
            settled.extend(client.settled());
            settled == [1, 2, 3, 4]
        })
        .await,
        "settled {settled:?}"
    );
    client.finish(FINISH).await;
    assert_eq!(
        loki.requests().len(),
        1,
        "a set of tokens alone needs no request"
    );
}

#[tokio::test]
async fn line_limits_drop_or_truncate_and_settle() {
    let loki = TestLoki::start().await;
    let limits = LimitsConfig {
        max_line_size: crate::config::ByteSize(5),
        ..LimitsConfig::default()
    };
    let mut client = Client::start_with_limits(&config(&loki.url()), &limits);
    client.send(vec![out("short", 1), out("toolong!", 2)]).await;
    client.finish(FINISH).await;
    assert_eq!(loki.requests()[0].lines(), ["short"]);
    assert_eq!(client.dropped("", "line_too_long"), 1);
    assert_eq!(client.dropped_bytes("", "line_too_long"), 8);
    assert_eq!(client.settled(), [1, 2]);

    let loki = TestLoki::start().await;
    let limits = LimitsConfig {
        max_line_size_truncate: true,
        ..limits
    };
    let mut client = Client::start_with_limits(&config(&loki.url()), &limits);
    client.send(vec![out("toolong!", 1)]).await;
    client.finish(FINISH).await;
    assert_eq!(loki.requests()[0].lines(), ["toolo"]);
    let labels = [client.host.as_str(), "", "line_too_long"];
    assert_eq!(
        client
            .metrics
            .client
            .mutated_entries
            .with_label_values(&labels)
            .get(),
        1
    );
    assert_eq!(
        client
            .metrics
            .client
            .mutated_bytes
            .with_label_values(&labels)
            .get(),
        3
    );
}

#[tokio::test]
async fn max_streams_drops_new_streams_and_the_client_keeps_running() {
    let loki = TestLoki::start().await;
    let limits = LimitsConfig {
        max_streams: 1,
        ..LimitsConfig::default()
    };
    let mut client = Client::start_with_limits(&config(&loki.url()), &limits);
    let other = Outgoing::Entry {
        entry: entry_with(&[("job", "other")], "x", &[]),
        ack: Some(token(2)),
    };
    client.send(vec![out("a", 1), other]).await;
    assert!(eventually(FINISH, || loki.requests().len() == 1).await);
    client.send(vec![out("b", 3)]).await;
    client.finish(FINISH).await;

    let batches: Vec<_> = loki.requests().iter().map(Recorded::lines).collect();
    assert_eq!(batches, [vec!["a"], vec!["b"]]);
    assert_eq!(client.dropped("", "stream_limited"), 1);
    assert_eq!(client.settled(), [1, 2, 3]);
}

#[tokio::test]
async fn finish_abandons_retries_at_the_deadline_without_settling() {
    let loki = TestLoki::start().await;
    loki.judge(|_| Reply::status(503));
    let mut cfg = config(&loki.url());
    cfg.backoff_config.max_retries = 0;
    let mut client = Client::start(&cfg);
    client.send(vec![out("a", 1)]).await;
    let started = Instant::now();
    client.finish(Duration::from_millis(300)).await;
    let took = started.elapsed();

    assert!(took < Duration::from_secs(3), "finish took {took:?}");
    assert!(!loki.requests().is_empty());
    assert_eq!(
        client.settled(),
        Vec::<u64>::new(),
        "undelivered entries stay unacknowledged"
    );
    assert_eq!(client.sent_entries(), 0);
    assert_eq!(
        client.dropped("", "ingester_error"),
        0,
        "abandoned, not dropped"
    );
}

#[tokio::test]
async fn json_with_gzip_is_sent_with_content_encoding() {
    let loki = TestLoki::start().await;
    let mut cfg = config(&loki.url());
    cfg.format = PushFormat::Json;
    cfg.compression = PushCompression::Gzip;
    let mut client = Client::start(&cfg);
    client.send(vec![out("a", 1)]).await;
    client.finish(FINISH).await;

    let r = &loki.requests()[0];
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut json = String::new();
    flate2::read::GzDecoder::new(r.body.as_slice())
        .read_to_string(&mut json)
        .unwrap();
    assert_eq!(
        json,
        r#"{"streams":[{"stream":{"job":"app"},"values":[["1714557600000000000","a"]]}]}"#
    );
}

#[tokio::test]
async fn tls_with_a_ca_file_and_server_name_override_delivers() {
    let pki = tls::test_pki("loki.test");
    let loki = tls_loki(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let mut cfg = config(&loki.url());
    cfg.tls_config.ca_file = ca_file.to_string_lossy().into_owned();
    cfg.tls_config.server_name = "loki.test".into();
    let mut client = Client::start(&cfg);
    client.send(vec![out("secure", 1)]).await;
    client.finish(FINISH).await;

    assert_eq!(loki.requests()[0].lines(), ["secure"]);
    assert_eq!(client.settled(), [1]);
}

#[tokio::test]
async fn tls_certificate_for_another_name_is_refused() {
    let pki = tls::test_pki("loki.test");
    let loki = tls_loki(&pki).await;
    let mut cfg = config(&loki.url());
    cfg.tls_config.ca = pki.ca_pem.clone();
    cfg.backoff_config.max_retries = 1;
    let mut client = Client::start(&cfg);
    client.send(vec![out("secure", 1)]).await;
    client.finish(FINISH).await;

    assert!(loki.requests().is_empty(), "127.0.0.1 is not loki.test");
    assert_eq!(client.requests_with_status("-1"), 1);
    assert_eq!(client.dropped("", "ingester_error"), 1);
}

#[tokio::test]
async fn tls_insecure_skip_verify_trusts_any_certificate() {
    let pki = tls::test_pki("elsewhere.test");
    let loki = tls_loki(&pki).await;
    let mut cfg = config(&loki.url());
    cfg.tls_config.insecure_skip_verify = true;
    let mut client = Client::start(&cfg);
    client.send(vec![out("a", 1)]).await;
    client.finish(FINISH).await;
    assert_eq!(loki.requests().len(), 1);
}

#[tokio::test]
async fn spawn_refuses_unusable_configuration_naming_the_key() {
    let metrics = Arc::new(Metrics::new());
    let (factory, _acks) = ack::channel();
    let mut cfg = config("http://127.0.0.1:1/loki/api/v1/push");
    cfg.tls_config.ca_file = "/nonexistent/ca.pem".into();
    let e = spawn(
        0,
        &cfg,
        &LimitsConfig::default(),
        metrics.clone(),
        factory.for_client(0),
        None,
    )
    .err()
    .unwrap();
    assert_eq!(e.key, "tls_config.ca_file");
    assert!(e.to_string().starts_with("tls_config.ca_file: "));

    let cfg = config("ftp://loki/push");
    let e = spawn(
        0,
        &cfg,
        &LimitsConfig::default(),
        metrics,
        factory.for_client(0),
        None,
    )
    .err()
    .unwrap();
    assert_eq!(e.key, "url");
}

#[test]
fn spawn_outside_a_runtime_is_an_error_not_a_panic() {
    let metrics = Arc::new(Metrics::new());
    let (factory, _acks) = ack::channel();
    let cfg = config("http://127.0.0.1:1/loki/api/v1/push");
    let e = spawn(
        0,
        &cfg,
        &LimitsConfig::default(),
        metrics,
        factory.for_client(0),
        None,
    )
    .err()
    .unwrap();
    assert!(e.message.contains("tokio runtime"), "{e}");
}
