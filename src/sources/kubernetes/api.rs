//! The two calls discovery makes of the API server, as client-go's reflector makes them:
//! a paginated list (`limit`, `continue`) that returns the collection's resource version,
//! and a watch from that version (`watch=1`, `allowWatchBookmarks`, `timeoutSeconds`) read as
//! a stream of JSON watch events, one per line.
//!
//! Owns the HTTP client (TLS from [`crate::client::tls`], the credential on each request)
//! and classifying failures so the caller can log a state change and back off. It must not
//! keep objects: [`super::watcher`] does.

use std::marker::PhantomData;
use std::time::Duration;

use k8s_openapi::ListableResource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, WatchEvent};
use serde::de::DeserializeOwned;

use super::connection::{Connection, Credential};

/// A failed call, by what a user can do about it.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// No HTTP answer: connection refused, DNS, TLS, timeout.
    Unreachable(String),
    /// 410 Gone (or an ERROR event with code 410): the resource version is too old; relist.
    Gone(String),
    /// Any other non-2xx answer.
    Status { code: u16, message: String },
    /// A body that is not what the API server sends.
    Decode(String),
    /// The credential could not be read (a token file gone).
    Credential(String),
}

impl ApiError {
    /// The `reason` label of `tailward_kubernetes_sd_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Unreachable(_) => "unreachable",
            ApiError::Gone(_) => "gone",
            ApiError::Status { code: 401, .. } => "unauthorized",
            ApiError::Status { code: 403, .. } => "forbidden",
            ApiError::Status { code: 404, .. } => "not_found",
            ApiError::Status { code, .. } if *code >= 500 => "server_error",
            ApiError::Status { .. } => "client_error",
            ApiError::Decode(_) => "decode",
            ApiError::Credential(_) => "credential",
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable(m) => write!(f, "API server unreachable: {m}"),
            ApiError::Gone(m) => write!(f, "resource version expired (410 Gone): {m}"),
            ApiError::Status { code, message } => {
                write!(f, "API server answered {code}: {message}")
            }
            ApiError::Decode(m) => write!(f, "unexpected answer from the API server: {m}"),
            ApiError::Credential(m) => write!(f, "{m}"),
        }
    }
}

/// Selectors and scope of one list/watch.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// `None` lists across all namespaces (or a cluster-scoped resource).
    pub namespace: Option<String>,
    pub label_selector: String,
    pub field_selector: String,
}

/// The collection URL of `T` in `scope`: `/api/v1/namespaces/ns/pods`,
/// `/apis/discovery.k8s.io/v1/endpointslices`, ...
pub fn collection_path<T: k8s_openapi::Resource>(scope: &Scope) -> String {
    let root = if T::GROUP.is_empty() {
        format!("/api/{}", T::VERSION)
    } else {
        format!("/apis/{}/{}", T::GROUP, T::VERSION)
    };
    match &scope.namespace {
        Some(ns) => format!("{root}/namespaces/{ns}/{}", T::URL_PATH_SEGMENT),
        None => format!("{root}/{}", T::URL_PATH_SEGMENT),
    }
}

/// One API server, shared by a job's watchers.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    credential: Credential,
}

/// Items per list page, as client-go's reflector asks.
const PAGE: usize = 500;

impl ApiClient {
    pub fn new(conn: &Connection) -> Result<ApiClient, String> {
        let https = conn.base.starts_with("https://");
        let tls = crate::client::tls::client_config(&conn.tls, https)
            .map_err(|e| format!("{}: {}", e.key, e.message))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .http1_only()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("tailward/", env!("CARGO_PKG_VERSION")))
            .redirect(if conn.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            })
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(ApiClient {
            http,
            base: conn.base.clone(),
            credential: conn.credential.clone(),
        })
    }

    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ApiError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ApiError::Unreachable(format!("bad API server URL: {e}")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let mut req = self.http.get(url).header("Accept", "application/json");
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(h) = self.credential.header().map_err(ApiError::Credential)? {
            req = req.header("Authorization", h);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(error_chain(&e)))?;
        let code = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Status>(&body)
            .ok()
            .and_then(|s| s.message)
            .unwrap_or_else(|| body.chars().take(200).collect());
        if code == 410 {
            return Err(ApiError::Gone(message));
        }
        Err(ApiError::Status { code, message })
    }

    /// Lists every object of `T` in `scope`, page by page; returns them with the
    /// collection's resource version.
    pub async fn list<T>(&self, scope: &Scope) -> Result<(Vec<T>, String), ApiError>
    where
        T: ListableResource + DeserializeOwned,
    {
        let path = collection_path::<T>(scope);
        let mut items = Vec::new();
        let mut cont = String::new();
        loop {
            let mut q = selector_query(scope);
            q.push(("limit", PAGE.to_string()));
            if !cont.is_empty() {
                q.push(("continue", cont.clone()));
            }
            let resp = self.get(&path, &q, Some(Duration::from_secs(60))).await?;
            let body = resp
                .bytes()
                .await
                .map_err(|e| ApiError::Unreachable(error_chain(&e)))?;
            let page: k8s_openapi::List<T> = serde_json::from_slice(&body)
                .map_err(|e| ApiError::Decode(format!("{} list: {e}", T::KIND)))?;
            items.extend(page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => cont = c,
                None => {
                    let rv = page.metadata.resource_version.unwrap_or_default();
                    return Ok((items, rv));
                }
            }
        }
    }

    /// Starts a watch from `resource_version`; the server ends it after `timeout`.
    pub async fn watch<T>(
        &self,
        scope: &Scope,
        resource_version: &str,
        timeout: Duration,
    ) -> Result<WatchStream<T>, ApiError>
    where
        T: ListableResource + DeserializeOwned,
    {
        let path = collection_path::<T>(scope);
        let mut q = selector_query(scope);
        q.push(("watch", "1".into()));
        q.push(("resourceVersion", resource_version.to_string()));
        q.push(("allowWatchBookmarks", "true".into()));
        q.push(("timeoutSeconds", timeout.as_secs().to_string()));
        // The server closes the watch at timeoutSeconds; allow it a margin before giving up.
        let resp = self
            .get(&path, &q, Some(timeout + Duration::from_secs(30)))
            .await?;
        Ok(WatchStream {
            resp,
            buf: Vec::new(),
            _t: PhantomData,
        })
    }
}

fn selector_query(scope: &Scope) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if !scope.label_selector.is_empty() {
        q.push(("labelSelector", scope.label_selector.clone()));
    }
    if !scope.field_selector.is_empty() {
        q.push(("fieldSelector", scope.field_selector.clone()));
    }
    q
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The events of one watch, one JSON object per line of the chunked body.
pub struct WatchStream<T> {
    resp: reqwest::Response,
    buf: Vec<u8>,
    _t: PhantomData<T>,
}

impl<T: DeserializeOwned> WatchStream<T> {
    /// The next event; `None` when the server ended the watch. An ERROR event becomes an
    /// error (410 as [`ApiError::Gone`]).
    pub async fn next(&mut self) -> Option<Result<WatchEvent<T>, ApiError>> {
        loop {
            if let Some(nl) = memchr::memchr(b'\n', &self.buf) {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                return Some(match serde_json::from_slice::<WatchEvent<T>>(line) {
                    Ok(WatchEvent::ErrorStatus(s)) => {
                        let message = s.message.unwrap_or_default();
                        Err(if s.code == Some(410) {
                            ApiError::Gone(message)
                        } else {
                            ApiError::Status {
                                code: s.code.unwrap_or(500).clamp(0, 999) as u16,
                                message,
                            }
                        })
                    }
                    Ok(WatchEvent::ErrorOther(_)) => {
                        Err(ApiError::Decode("an ERROR event without a Status".into()))
                    }
                    Ok(ev) => Ok(ev),
                    Err(e) => Err(ApiError::Decode(format!("watch event: {e}"))),
                });
            }
            match self.resp.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => {
                    if self.buf.trim_ascii().is_empty() {
                        return None;
                    }
                    // A last event without its newline.
                    self.buf.push(b'\n');
                }
                Err(e) => {
                    // A watch cut mid-stream is the server (or the network) going away.
                    return Some(Err(ApiError::Unreachable(error_chain(&e))));
                }
            }
        }
    }
}
