//! Delivery of one tenant batch to Loki, with Promtail's retry policy: 429, 5xx and transport
//! errors are retried with dskit's jittered exponential backoff (a 429's `Retry-After`
//! lengthens a wait, never shortens it; `max_retries: 0` retries forever, and so does a
//! client with a disk buffer, which holds the batch meanwhile); a 413 (body too large) splits the batch and
//! delivers the halves; a 400 that names the entries Loki refused (Loki stores the rest)
//! counts just those as dropped, by Loki's reason; any other non-2xx drops the batch at once,
//! counted and logged with Loki's message. Also owns the structured-metadata
//! fallback for endpoints that refuse it (Loki 2.x, or Loki 3 with it disallowed), the HTTP
//! client and its fixed headers, and the client's send metrics.
//!
//! It must not batch, and never settles acks: it tells the client task whether a batch was
//! delivered, dropped on purpose (and counted), or abandoned at the shutdown deadline.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use rand::Rng as _;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::watch;
use tokio::time::Instant;

use super::ClientError;
use super::batch::TenantBatch;
use super::encode::BodyEncoder;
use super::rejections;
use crate::config::{BackoffConfig, ClientConfig};
use crate::metrics::Metrics;

/// Promtail reads at most this much of an error response.
const MAX_ERROR_BODY: usize = 1024;
/// Go's http.Client default.
const MAX_REDIRECTS: usize = 10;

pub(crate) const REASON_INGESTER_ERROR: &str = "ingester_error";
pub(crate) const REASON_RATE_LIMITED: &str = "rate_limited";
/// `clients[].queue.when_full: drop` dropped entries the client could not take.
pub(crate) const REASON_QUEUE_FULL: &str = "queue_full";

/// Fires once `finish` stops waiting; the client then gives up retries and in-flight requests.
#[derive(Clone, Debug)]
pub(crate) struct Abandon(watch::Receiver<bool>);

impl Abandon {
    pub fn new(rx: watch::Receiver<bool>) -> Self {
        Self(rx)
    }

    /// Resolves when abandoned; never if the handle was dropped without `finish`, in which case
    /// the client runs until its input closes.
    pub async fn signalled(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|abandoned| *abandoned).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What became of one batch as it was sent.
enum Sent {
    Settled(Delivery),
    /// Refused with 413: deliver these halves instead.
    TooLarge(Box<(TenantBatch, TenantBatch)>),
}

/// `tailward_client_retries_total` reason of a batch sent again as two halves after a 413.
const REASON_RETRY_SPLIT: &str = "split_413";

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Loki answered 2xx.
    Delivered,
    /// Given up on purpose and counted: the batch's tokens may be settled.
    Dropped,
    /// Shutdown deadline passed before the batch was settled.
    Abandoned,
}

/// The result of one POST.
#[derive(Debug)]
enum Attempt {
    Accepted(u16),
    Refused {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    Transport(String),
}

pub(crate) struct Pusher {
    http: reqwest::Client,
    url: reqwest::Url,
    /// Promtail's `host` metric label: the URL's host[:port] as written.
    host: String,
    basic_auth: Option<(String, String)>,
    encoder: BodyEncoder,
    backoff: BackoffConfig,
    /// A disk buffer holds what this client has not delivered: retryable failures (429, 5xx,
    /// transport) are retried for as long as they last instead of dropping the batch.
    retry_until_delivered: bool,
    drop_rate_limited: bool,
    send_structured_metadata: bool,
    metrics: Arc<Metrics>,
}

impl Pusher {
    pub fn new(
        cfg: &ClientConfig,
        url: reqwest::Url,
        host: String,
        tls: rustls::ClientConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ClientError> {
        let encoder = BodyEncoder::new(cfg.format, cfg.compression);
        let auth = Auth::load(cfg)?;
        let headers = fixed_headers(cfg, &encoder, &auth)?;
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .default_headers(headers)
            .redirect(if cfg.follow_redirects {
                reqwest::redirect::Policy::limited(MAX_REDIRECTS)
            } else {
                reqwest::redirect::Policy::none()
            });
        if !cfg.timeout.is_zero() {
            builder = builder.timeout(cfg.timeout.0);
        }
        if !cfg.proxy_from_environment {
            builder = builder.no_proxy();
        }
        if !cfg.proxy_url.is_empty() {
            if cfg.proxy_from_environment {
                return Err(ClientError::new(
                    "proxy_from_environment",
                    "proxy_url and proxy_from_environment are mutually exclusive",
                ));
            }
            let proxy = reqwest::Proxy::all(&cfg.proxy_url)
                .map_err(|e| ClientError::new("proxy_url", format!("invalid proxy URL: {e}")))?
                .no_proxy(reqwest::NoProxy::from_string(&cfg.no_proxy));
            builder = builder.proxy(proxy);
        }
        let http = builder.build().map_err(|e| {
            ClientError::new(
                "url",
                format!("building the HTTP client: {}", error_chain(&e)),
            )
        })?;
        Ok(Self {
            http,
            url,
            host,
            basic_auth: auth.basic,
            encoder,
            backoff: cfg.backoff_config.clone(),
            retry_until_delivered: false,
            drop_rate_limited: cfg.drop_rate_limited_batches,
            send_structured_metadata: cfg.structured_metadata,
            metrics,
        })
    }

    /// With a disk buffer behind this client, a batch that Loki keeps refusing with a
    /// retryable status is never dropped: the buffer holds it, bounded by its own size.
    pub fn retry_until_delivered(mut self) -> Self {
        self.retry_until_delivered = true;
        self
    }

    /// False once the endpoint refused structured metadata (or it is configured off).
    pub fn sends_structured_metadata(&self) -> bool {
        self.send_structured_metadata
    }

    /// Sends `batch` until it is accepted, dropped by the retry policy, or abandoned.
    pub async fn deliver(&mut self, batch: &TenantBatch, abandon: &Abandon) -> Delivery {
        match self.deliver_whole(batch, abandon).await {
            Sent::Settled(d) => d,
            Sent::TooLarge(halves) => {
                let (first, second) = *halves;
                // Halves may be too large again: each is delivered (and split) on its own.
                let a = Box::pin(self.deliver(&first, abandon)).await;
                if a == Delivery::Abandoned {
                    return a;
                }
                let b = Box::pin(self.deliver(&second, abandon)).await;
                match (a, b) {
                    (_, Delivery::Abandoned) => Delivery::Abandoned,
                    (Delivery::Delivered, Delivery::Delivered) => Delivery::Delivered,
                    // A dropped half was counted where it was dropped.
                    _ => Delivery::Dropped,
                }
            }
        }
    }

    /// One batch as it is: settled, or refused as too large and cut in halves.
    async fn deliver_whole(&mut self, batch: &TenantBatch, abandon: &Abandon) -> Sent {
        let tenant = batch.tenant.as_str();
        let entries = batch.entries() as u64;
        let tenant_header = match HeaderValue::from_str(tenant) {
            Ok(v) => v,
            Err(_) => {
                tracing::error!(
                    tenant,
                    entries,
                    "dropping batch: tenant ID is not a valid X-Scope-OrgID header value"
                );
                self.count_drop(tenant, REASON_INGESTER_ERROR, entries, 0);
                return Sent::Settled(Delivery::Dropped);
            }
        };
        let mut include_sm = self.send_structured_metadata;
        let Some(mut body_len) = self.encode(batch, include_sm) else {
            return Sent::Settled(Delivery::Dropped);
        };
        let mut backoff = Backoff::new(&self.backoff);
        if self.retry_until_delivered {
            backoff.max_retries = 0;
        }
        loop {
            let started = Instant::now();
            let attempt = tokio::select! {
                biased;
                _ = abandon.signalled() => return Sent::Settled(Delivery::Abandoned),
                // A shared handle: retries resend the same bytes without encoding again.
                attempt = self.post(&tenant_header, self.encoder.body()) => attempt,
            };
            let (status, error, retry_after) = match attempt {
                Attempt::Accepted(status) => {
                    self.observe(started, &status.to_string());
                    let m = &self.metrics.client;
                    m.sent_bytes
                        .with_label_values(&[&self.host])
                        .inc_by(body_len);
                    m.sent_entries
                        .with_label_values(&[&self.host])
                        .inc_by(entries);
                    return Sent::Settled(Delivery::Delivered);
                }
                Attempt::Transport(error) => {
                    self.observe(started, "-1");
                    (None, error, None)
                }
                Attempt::Refused {
                    status,
                    body: response,
                    retry_after,
                } => {
                    self.observe(started, &status.to_string());
                    if status == 429 && self.drop_rate_limited {
                        tracing::warn!(
                            tenant,
                            entries,
                            "dropping batch due to rate limiting applied at ingester"
                        );
                        self.count_drop(tenant, REASON_RATE_LIMITED, entries, body_len);
                        return Sent::Settled(Delivery::Dropped);
                    }
                    if status == 400
                        && include_sm
                        && batch.has_structured_metadata()
                        && refuses_structured_metadata(&response)
                    {
                        include_sm = false;
                        self.send_structured_metadata = false;
                        self.metrics
                            .client
                            .structured_metadata_fallbacks
                            .with_label_values(&[&self.host])
                            .inc();
                        tracing::warn!(
                            tenant,
                            response = %response,
                            "Loki refused structured metadata: resending the batch without it, and sending none from now on"
                        );
                        let Some(len) = self.encode(batch, false) else {
                            return Sent::Settled(Delivery::Dropped);
                        };
                        body_len = len;
                        continue;
                    }
                    if status == 413
                        && let Some((first, second)) = batch.halves()
                    {
                        tracing::warn!(
                            tenant,
                            entries,
                            error = %response,
                            "batch too large for the endpoint (413): sending it in halves"
                        );
                        self.count_retry(REASON_RETRY_SPLIT);
                        return Sent::TooLarge(Box::new((first, second)));
                    }
                    if status == 400
                        && let Some(refused) = rejections::refused(&response, batch)
                    {
                        // Loki stored the rest of the batch: only what it names is dropped.
                        let dropped: u64 = refused.iter().map(|(_, n)| n).sum();
                        tracing::error!(status, tenant, entries, refused = dropped, error = %response, "Loki refused part of the batch");
                        for (reason, n) in &refused {
                            // Bytes are not itemised in Loki's answer: shared out by entries.
                            self.count_drop(tenant, reason, *n, body_len * n / entries.max(1));
                        }
                        let m = &self.metrics.client;
                        let accepted = entries - dropped;
                        m.sent_entries
                            .with_label_values(&[&self.host])
                            .inc_by(accepted);
                        m.sent_bytes
                            .with_label_values(&[&self.host])
                            .inc_by(body_len * accepted / entries.max(1));
                        return Sent::Settled(if accepted > 0 {
                            Delivery::Delivered
                        } else {
                            Delivery::Dropped
                        });
                    }
                    if status != 429 && !(500..600).contains(&status) {
                        tracing::error!(status, tenant, entries, error = %response, "final error sending batch");
                        self.count_drop(tenant, REASON_INGESTER_ERROR, entries, body_len);
                        return Sent::Settled(Delivery::Dropped);
                    }
                    (Some(status), response, retry_after)
                }
            };
            let Some(backoff_delay) = backoff.next_delay() else {
                tracing::error!(status, tenant, entries, error = %error, "final error sending batch: retries exhausted");
                let reason = if status == Some(429) {
                    REASON_RATE_LIMITED
                } else {
                    REASON_INGESTER_ERROR
                };
                self.count_drop(tenant, reason, entries, body_len);
                return Sent::Settled(Delivery::Dropped);
            };
            // Loki's `Retry-After` says when it will accept again: retrying sooner only earns
            // another 429, so it lengthens our wait, even above max_period. It never shortens
            // it: each try still waits at least the backoff's delay, so giving up never comes
            // sooner than the configured backoff (and Promtail, which ignores the header)
            // would. The ceiling keeps a bogus header from stalling delivery for hours.
            let delay = retry_after.map_or(backoff_delay, |d| {
                d.min(RETRY_AFTER_CEILING).max(backoff_delay)
            });
            tracing::warn!(status, tenant, error = %error, retry_in = ?delay, "error sending batch, will retry");
            self.count_retry(match status {
                Some(429) => "status_429",
                Some(_) => "status_5xx",
                None => "transport",
            });
            self.metrics
                .client
                .batch_retries
                .with_label_values(&[&self.host, tenant])
                .inc();
            tokio::select! {
                biased;
                _ = abandon.signalled() => return Sent::Settled(Delivery::Abandoned),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Encodes into the encoder's buffer; the body's length, or `None` if dropped.
    fn encode(&mut self, batch: &TenantBatch, include_sm: bool) -> Option<u64> {
        match self.encoder.encode(batch, include_sm) {
            Ok(body) => {
                let len = body.len() as u64;
                self.metrics
                    .client
                    .encoded_bytes
                    .with_label_values(&[&self.host])
                    .inc_by(len);
                Some(len)
            }
            Err(e) => {
                tracing::error!(tenant = %batch.tenant, error = %e, "dropping batch: encoding failed");
                self.count_drop(
                    &batch.tenant,
                    REASON_INGESTER_ERROR,
                    batch.entries() as u64,
                    0,
                );
                None
            }
        }
    }

    fn count_retry(&self, reason: &str) {
        self.metrics
            .client
            .retries
            .with_label_values(&[&self.host, reason])
            .inc();
    }

    fn observe(&self, started: Instant, status: &str) {
        self.metrics
            .client
            .request_duration
            .with_label_values(&[status, &self.host])
            .observe(started.elapsed().as_secs_f64());
    }

    fn count_drop(&self, tenant: &str, reason: &str, entries: u64, bytes: u64) {
        let m = &self.metrics.client;
        m.dropped_entries
            .with_label_values(&[&self.host, tenant, reason])
            .inc_by(entries);
        m.dropped_bytes
            .with_label_values(&[&self.host, tenant, reason])
            .inc_by(bytes);
    }

    async fn post(&self, tenant: &HeaderValue, body: bytes::Bytes) -> Attempt {
        let mut request = self.http.post(self.url.clone()).body(body);
        if !tenant.is_empty() {
            request = request.header("X-Scope-OrgID", tenant.clone());
        }
        if let Some((user, password)) = &self.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Transport(error_chain(&e)),
        };
        let status = response.status();
        if status.is_success() {
            // Reading the (empty) body lets the connection be reused.
            let _ = response.bytes().await;
            return Attempt::Accepted(status.as_u16());
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let mut text = Vec::new();
        while text.len() < MAX_ERROR_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ERROR_BODY - text.len();
                    text.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        Attempt::Refused {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&text).trim().to_string(),
            retry_after,
        }
    }
}

/// Whether a 400 says the endpoint cannot take structured metadata: Loki 3 with it disallowed
/// ("... includes structured metadata, but this feature is disallowed ..."), or Loki before 2.9,
/// whose JSON reader refuses a third value ("... array must contains 2 values ...").
pub(crate) fn refuses_structured_metadata(response: &str) -> bool {
    let response = response.to_ascii_lowercase();
    [
        "structured metadata",
        "structured_metadata",
        "array must contains 2 values",
        "non-indexed labels",
    ]
    .iter()
    .any(|phrase| response.contains(phrase))
}

/// dskit's backoff, as Promtail retries: the n-th delay is drawn from
/// `[min·2ⁿ, 2·min·2ⁿ)`, both ends capped at `max_period`; `max_retries` failed attempts end it
/// (0: never).
#[derive(Debug)]
pub(crate) struct Backoff {
    max: Duration,
    max_retries: u32,
    retries: u32,
    next_min: Duration,
    next_max: Duration,
}

impl Backoff {
    pub fn new(cfg: &BackoffConfig) -> Self {
        let min = cfg.min_period.0;
        let max = cfg.max_period.0;
        Self {
            max,
            max_retries: cfg.max_retries,
            retries: 0,
            next_min: min,
            next_max: doubled(min, max),
        }
    }

    /// Counts a failed attempt; the delay before the next, or `None` when none is left.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.retries += 1;
        if self.max_retries != 0 && self.retries >= self.max_retries {
            return None;
        }
        let delay = if self.next_min >= self.next_max {
            self.next_min
        } else {
            let span = (self.next_max - self.next_min).as_nanos() as u64;
            self.next_min + Duration::from_nanos(rand::rng().random_range(0..span))
        };
        if self.next_max < self.max {
            self.next_min = doubled(self.next_min, self.max);
            self.next_max = doubled(self.next_max, self.max);
        }
        Some(delay)
    }
}

fn doubled(value: Duration, max: Duration) -> Duration {
    value.saturating_mul(2).min(max)
}

/// The longest `Retry-After` we obey (Promtail's default `max_period`).
const RETRY_AFTER_CEILING: Duration = Duration::from_secs(300);

/// `Retry-After`: delay-seconds or an HTTP date (IMF-fixdate, RFC 850 or asctime). A date in
/// the past means no wait.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = DateTime::parse_from_rfc2822(value)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(value, "%A, %d-%b-%y %H:%M:%S GMT").map(|d| d.and_utc())
        })
        .or_else(|_| {
            NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y").map(|d| d.and_utc())
        })
        .ok()?;
    Some((when - now).to_std().unwrap_or(Duration::ZERO))
}

/// An error and its causes, `a: b: c` (reqwest's own message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Credentials, read once at spawn. Files are trimmed as Prometheus' HTTP client trims them.
struct Auth {
    basic: Option<(String, String)>,
    /// A ready `Authorization` value (bearer token or `authorization` block).
    header: Option<HeaderValue>,
}

impl Auth {
    fn load(cfg: &ClientConfig) -> Result<Self, ClientError> {
        let bearer = !cfg.bearer_token.is_empty() || !cfg.bearer_token_file.is_empty();
        if !cfg.bearer_token.is_empty() && !cfg.bearer_token_file.is_empty() {
            return Err(ClientError::new(
                "bearer_token_file",
                "at most one of bearer_token and bearer_token_file may be configured",
            ));
        }
        if cfg.basic_auth.is_some() && bearer {
            return Err(ClientError::new(
                "basic_auth",
                "at most one of basic_auth and bearer_token may be configured",
            ));
        }
        if cfg.authorization.is_some() && (bearer || cfg.basic_auth.is_some()) {
            return Err(ClientError::new(
                "authorization",
                "authorization cannot be combined with basic_auth or bearer_token",
            ));
        }
        let basic = match &cfg.basic_auth {
            None => None,
            Some(b) => {
                let username = secret(
                    "basic_auth.username",
                    &b.username,
                    "basic_auth.username_file",
                    &b.username_file,
                )?;
                let password = secret(
                    "basic_auth.password",
                    &b.password,
                    "basic_auth.password_file",
                    &b.password_file,
                )?;
                Some((username, password))
            }
        };
        let header = if bearer {
            let token = secret(
                "bearer_token",
                &cfg.bearer_token,
                "bearer_token_file",
                &cfg.bearer_token_file,
            )?;
            Some(sensitive_header(
                "bearer_token",
                &format!("Bearer {token}"),
            )?)
        } else if let Some(a) = &cfg.authorization {
            let kind = if a.kind.is_empty() {
                "Bearer"
            } else {
                a.kind.as_str()
            };
            if kind.eq_ignore_ascii_case("basic") {
                return Err(ClientError::new(
                    "authorization.type",
                    "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
                ));
            }
            let credentials = secret(
                "authorization.credentials",
                &a.credentials,
                "authorization.credentials_file",
                &a.credentials_file,
            )?;
            Some(sensitive_header(
                "authorization.credentials",
                &format!("{kind} {credentials}"),
            )?)
        } else {
            None
        };
        Ok(Self { basic, header })
    }

    fn configured(&self) -> bool {
        self.basic.is_some() || self.header.is_some()
    }
}

/// The inline value, or the trimmed content of the file; both set is a configuration error.
fn secret(key: &str, inline: &str, file_key: &str, file: &str) -> Result<String, ClientError> {
    if file.is_empty() {
        return Ok(inline.to_string());
    }
    if !inline.is_empty() {
        return Err(ClientError::new(
            file_key,
            format!("at most one of {key} and {file_key} may be configured"),
        ));
    }
    std::fs::read_to_string(file)
        .map(|s| s.trim().to_string())
        .map_err(|e| ClientError::new(file_key, format!("reading {file}: {e}")))
}

fn sensitive_header(key: &str, value: &str) -> Result<HeaderValue, ClientError> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| ClientError::new(key, "contains characters not allowed in an HTTP header"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Headers every request carries. Custom `headers` cannot replace what the client sets itself;
/// a custom `X-Scope-OrgID` applies only to batches without a tenant, as in Promtail.
fn fixed_headers(
    cfg: &ClientConfig,
    encoder: &BodyEncoder,
    auth: &Auth,
) -> Result<HeaderMap, ClientError> {
    let mut headers = HeaderMap::new();
    let user_agent = concat!("tailward/", env!("CARGO_PKG_VERSION"));
    headers.insert(header::USER_AGENT, HeaderValue::from_static(user_agent));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoder.content_type()),
    );
    if let Some(encoding) = encoder.content_encoding() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    if let Some(value) = &auth.header {
        headers.insert(header::AUTHORIZATION, value.clone());
    }
    for (name, value) in &cfg.headers {
        let key = format!("headers.{name}");
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ClientError::new(&key, "invalid HTTP header name"))?;
        let header_value = HeaderValue::from_str(value).map_err(|_| {
            ClientError::new(&key, "contains characters not allowed in an HTTP header")
        })?;
        let reserved = [
            header::USER_AGENT,
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::HOST,
        ];
        if reserved.contains(&header_name)
            || (header_name == header::AUTHORIZATION && auth.configured())
        {
            tracing::warn!(header = %name, "custom header would override one the client sets; ignoring it");
            continue;
        }
        headers.insert(header_name, header_value);
    }
    Ok(headers)
}

/// Promtail's `host` label: the authority of the URL as written, without user info.
pub(crate) fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GoDuration;

    fn backoff(min_ms: u64, max_ms: u64, retries: u32) -> Backoff {
        Backoff::new(&BackoffConfig {
            min_period: GoDuration::from_millis(min_ms),
            max_period: GoDuration::from_millis(max_ms),
            max_retries: retries,
        })
    }

    #[test]
    fn backoff_delays_double_within_jitter_ranges_up_to_the_cap() {
        for _ in 0..50 {
            let mut b = backoff(100, 1000, 0);
            let ranges = [(100, 200), (200, 400), (400, 800), (800, 1000)];
            for (lo, hi) in ranges {
                let d = b.next_delay().unwrap();
                assert!(
                    d >= Duration::from_millis(lo) && d < Duration::from_millis(hi),
                    "{d:?} outside [{lo}ms, {hi}ms)"
                );
            }
            // Once the upper end reaches max_period, dskit stops doubling: the range stays.
            for _ in 0..5 {
                let d = b.next_delay().unwrap();
                assert!(
                    d >= Duration::from_millis(800) && d < Duration::from_millis(1000),
                    "{d:?}"
                );
            }
        }
    }

    #[test]
    fn backoff_jitters() {
        let first: std::collections::HashSet<_> = (0..20)
            .map(|_| backoff(100, 1000, 0).next_delay().unwrap())
            .collect();
        assert!(first.len() > 1, "20 draws gave one value: no jitter");
    }

    #[test]
    fn backoff_stops_after_max_retries_failed_attempts() {
        let mut b = backoff(1, 2, 3);
        assert!(b.next_delay().is_some(), "after attempt 1");
        assert!(b.next_delay().is_some(), "after attempt 2");
        assert_eq!(b.next_delay(), None, "attempt 3 was the last");
    }

    #[test]
    fn zero_max_retries_retries_forever() {
        let mut b = backoff(1, 2, 0);
        assert!((0..10_000).all(|_| b.next_delay().is_some()));
    }

    #[test]
    fn equal_min_and_max_give_a_fixed_delay() {
        let mut b = backoff(50, 50, 0);
        assert_eq!(b.next_delay(), Some(Duration::from_millis(50)));
        assert_eq!(b.next_delay(), Some(Duration::from_millis(50)));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:05 2015", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a past date means retry now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn structured_metadata_refusals_are_recognised() {
        assert!(refuses_structured_metadata(
            "stream '{job=\"a\"}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
        ));
        assert!(refuses_structured_metadata(
            "loghttp.PushRequest.Streams: []*loghttp.Stream: unmarshalerDecoder: error reading entry: array must contains 2 values, error found in #10 byte of ...|"
        ));
        assert!(!refuses_structured_metadata(
            "entry for stream '{job=\"a\"}' has timestamp too old"
        ));
        assert!(!refuses_structured_metadata(""));
    }

    #[test]
    fn host_label_is_the_written_authority() {
        assert_eq!(url_host("http://loki:3100/loki/api/v1/push"), "loki:3100");
        assert_eq!(
            url_host("https://user:pw@logs.example.com/push"),
            "logs.example.com"
        );
        assert_eq!(url_host("http://[::1]:3100"), "[::1]:3100");
        assert_eq!(url_host("http://loki:80?x=1"), "loki:80");
    }

    #[test]
    fn error_chain_includes_causes_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(error_chain(&e), "error sending request: connection refused");
    }

    fn cfg() -> ClientConfig {
        ClientConfig {
            url: "http://localhost:3100/loki/api/v1/push".into(),
            ..ClientConfig::default()
        }
    }

    #[test]
    fn fixed_headers_carry_user_agent_content_type_and_custom_headers() {
        let mut c = cfg();
        c.headers.insert("X-Custom".into(), "yes".into());
        c.headers.insert("Content-Type".into(), "text/plain".into());
        let encoder = BodyEncoder::new(c.format, c.compression);
        let h = fixed_headers(&c, &encoder, &Auth::load(&c).unwrap()).unwrap();
        assert_eq!(
            h["user-agent"],
            concat!("tailward/", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            h["content-type"], "application/x-protobuf",
            "custom header cannot override"
        );
        assert_eq!(h["x-custom"], "yes");
        assert!(h.get("content-encoding").is_none());
    }

    #[test]
    fn invalid_custom_header_names_its_key() {
        let mut c = cfg();
        c.headers.insert("Bad Header".into(), "x".into());
        let encoder = BodyEncoder::new(c.format, c.compression);
        let e = fixed_headers(&c, &encoder, &Auth::load(&c).unwrap()).unwrap_err();
        assert_eq!(e.key, "headers.Bad Header");
    }

    #[test]
    fn secret_files_are_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret\n").unwrap();
        let mut c = cfg();
        c.bearer_token_file = path.to_string_lossy().into_owned();
        let auth = Auth::load(&c).unwrap();
        assert_eq!(auth.header.unwrap(), "Bearer s3cret");
    }

    #[test]
    fn missing_password_file_names_its_key() {
        let mut c = cfg();
        c.basic_auth = Some(crate::config::BasicAuth {
            username: "u".into(),
            password_file: "/nonexistent/pw".into(),
            ..Default::default()
        });
        let e = Auth::load(&c).err().unwrap();
        assert_eq!(e.key, "basic_auth.password_file");
    }

    #[test]
    fn authorization_block_builds_the_header_and_refuses_basic() {
        let mut c = cfg();
        c.authorization = Some(crate::config::Authorization {
            kind: String::new(),
            credentials: "tok".into(),
            credentials_file: String::new(),
        });
        assert_eq!(Auth::load(&c).unwrap().header.unwrap(), "Bearer tok");
        c.authorization.as_mut().unwrap().kind = "Basic".into();
        assert_eq!(Auth::load(&c).err().unwrap().key, "authorization.type");
    }

    #[test]
    fn conflicting_auth_methods_are_refused() {
        let mut c = cfg();
        c.bearer_token = "t".into();
        c.basic_auth = Some(Default::default());
        assert_eq!(Auth::load(&c).err().unwrap().key, "basic_auth");
    }
}
