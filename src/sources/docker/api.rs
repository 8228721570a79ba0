//! The few Docker Engine API calls the docker source makes, over the daemon's unix socket or
//! TCP (with TLS when configured): list containers and networks, inspect a container, follow
//! its logs, follow container events.
//!
//! Owns connecting (one HTTP/1.1 connection per call, as the Docker CLI does over the socket)
//! and decoding the JSON answers into the fields used. It must not decide what to read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

use crate::config::{DockerEndpoint, DockerSdConfig};

/// How long connecting and a non-streaming answer may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest non-streaming answer read (a list of thousands of containers fits).
const MAX_ANSWER: usize = 64 << 20;

/// Why a call failed: the daemon could not be reached (socket missing, refused, not
/// permitted, timed out), it answered with an error status, or the answer was not understood.
#[derive(Debug)]
pub enum ApiError {
    Unreachable(String),
    Status(u16, String),
    Protocol(String),
}

impl ApiError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status(404, _))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable(e) => write!(f, "docker daemon unreachable: {e}"),
            ApiError::Status(code, body) => {
                write!(f, "docker daemon answered {code}: {}", body.trim())
            }
            ApiError::Protocol(e) => write!(f, "docker daemon answer not understood: {e}"),
        }
    }
}

/// `/containers/json` items: the fields Prometheus' moby discovery reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub state: String,
    pub ports: Vec<PortSummary>,
    pub host_config: HostConfigSummary,
    pub network_settings: Option<NetworkSettingsSummary>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfigSummary {
    pub network_mode: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettingsSummary {
    pub networks: Option<BTreeMap<String, Option<EndpointSummary>>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSummary {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PortSummary {
    #[serde(rename = "IP")]
    pub ip: String,
    #[serde(rename = "PrivatePort")]
    pub private_port: u16,
    #[serde(rename = "PublicPort")]
    pub public_port: u16,
    #[serde(rename = "Type")]
    pub kind: String,
}

/// `/networks` items.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSummary {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub internal: bool,
    pub ingress: bool,
    pub labels: Option<BTreeMap<String, String>>,
}

/// `/containers/{id}/json`: whether its output is a TTY and whether it runs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerInspect {
    pub config: InspectConfig,
    pub state: InspectState,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectConfig {
    pub tty: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectState {
    pub running: bool,
    pub restarting: bool,
    /// When it last started: tells a restart that ended before it was seen.
    pub started_at: String,
}

/// A `/events` item: only container actions are asked for.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: EventActor,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct EventActor {
    #[serde(rename = "ID")]
    pub id: String,
}

/// One daemon, as `host` (and `tls_config`) name it. Cheap to clone.
#[derive(Clone)]
pub struct DockerApi {
    endpoint: DockerEndpoint,
    tls: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
    /// `Host:` header value.
    host_header: String,
}

impl DockerApi {
    pub fn new(config: &DockerSdConfig) -> Result<Self, String> {
        let endpoint = config
            .endpoint()
            .map_err(|(key, e)| format!("{key}: {e}"))?;
        let (tls, host_header) = match &endpoint {
            DockerEndpoint::Unix(_) => (None, "docker".to_string()),
            DockerEndpoint::Tcp { authority, tls } => {
                let tls = if *tls {
                    let tls_config = config.tls_config.clone().unwrap_or_default();
                    let rustls_config = crate::client::tls::client_config(&tls_config, true)
                        .map_err(|e| format!("tls_config: {e}"))?;
                    let host = if tls_config.server_name.is_empty() {
                        authority_host(authority).to_string()
                    } else {
                        tls_config.server_name.clone()
                    };
                    let name = rustls::pki_types::ServerName::try_from(host)
                        .map_err(|e| format!("tls_config.server_name: {e}"))?;
                    Some((TlsConnector::from(Arc::new(rustls_config)), name))
                } else {
                    None
                };
                (tls, authority.clone())
            }
        };
        Ok(DockerApi {
            endpoint,
            tls,
            host_header,
        })
    }

    /// Where the daemon is, for messages.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            DockerEndpoint::Unix(p) => format!("unix://{}", p.display()),
            DockerEndpoint::Tcp { authority, tls } => {
                format!("{}://{authority}", if *tls { "https" } else { "tcp" })
            }
        }
    }

    /// Running containers (or all, with `all`) matching the `filters` JSON map.
    pub async fn containers(
        &self,
        filters: &str,
        all: bool,
    ) -> Result<Vec<ContainerSummary>, ApiError> {
        let path = format!(
            "/containers/json?all={}&filters={}",
            if all { 1 } else { 0 },
            query_escape(filters)
        );
        self.get_json(&path).await
    }

    pub async fn networks(&self) -> Result<Vec<NetworkSummary>, ApiError> {
        self.get_json("/networks").await
    }

    pub async fn inspect(&self, id: &str) -> Result<ContainerInspect, ApiError> {
        self.get_json(&format!("/containers/{}/json", query_escape(id)))
            .await
    }

    /// The container's log, both streams with Docker's timestamps, from `since` (Unix
    /// seconds, with nanoseconds after a dot), followed while it runs.
    pub async fn logs(&self, id: &str, since: &str) -> Result<Incoming, ApiError> {
        let path = format!(
            "/containers/{}/logs?follow=1&stdout=1&stderr=1&timestamps=1&since={}",
            query_escape(id),
            query_escape(since)
        );
        self.stream(&path).await
    }

    /// Container start and destroy events from `since` (Unix seconds; the daemon replays
    /// the recent ones it keeps) on.
    pub async fn events(&self, since: i64) -> Result<Incoming, ApiError> {
        let filters = r#"{"type":["container"],"event":["start","destroy"]}"#;
        self.stream(&format!(
            "/events?since={since}&filters={}",
            query_escape(filters)
        ))
        .await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let read = async {
            let body = self.stream(path).await?;
            let bytes = http_body_util::Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| ApiError::Protocol(format!("reading {path}: {e}")))?
                .to_bytes();
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Protocol(format!("{path}: {e}")))
        };
        match tokio::time::timeout(CALL_TIMEOUT, read).await {
            Ok(r) => r,
            Err(_) => Err(ApiError::Unreachable(format!(
                "no answer to {path} within {CALL_TIMEOUT:?}"
            ))),
        }
    }

    /// Sends `GET path` on a new connection; the answer's body when the status is 2xx.
    async fn stream(&self, path: &str) -> Result<Incoming, ApiError> {
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, &self.host_header)
            .body(Empty::<Bytes>::new())
            .map_err(|e| ApiError::Protocol(format!("request {path}: {e}")))?;
        let connect = async {
            match &self.endpoint {
                DockerEndpoint::Unix(socket) => {
                    let stream = UnixStream::connect(socket)
                        .await
                        .map_err(|e| unreachable(socket, e))?;
                    send(TokioIo::new(stream), request).await
                }
                DockerEndpoint::Tcp { authority, .. } => {
                    let stream = TcpStream::connect(authority.as_str())
                        .await
                        .map_err(|e| ApiError::Unreachable(format!("{authority}: {e}")))?;
                    let _ = stream.set_nodelay(true);
                    match &self.tls {
                        Some((connector, name)) => {
                            let stream =
                                connector.connect(name.clone(), stream).await.map_err(|e| {
                                    ApiError::Unreachable(format!("{authority}: TLS: {e}"))
                                })?;
                            send(TokioIo::new(stream), request).await
                        }
                        None => send(TokioIo::new(stream), request).await,
                    }
                }
            }
        };
        let response = match tokio::time::timeout(CALL_TIMEOUT, connect).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ApiError::Unreachable(format!(
                    "no answer to {path} within {CALL_TIMEOUT:?}"
                )));
            }
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = http_body_util::Limited::new(response.into_body(), 64 << 10)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            // The daemon's errors are `{"message": "..."}`.
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .unwrap_or(body);
            return Err(ApiError::Status(status, message));
        }
        Ok(response.into_body())
    }
}

fn unreachable(socket: &std::path::Path, e: std::io::Error) -> ApiError {
    ApiError::Unreachable(format!("{}: {e}", socket.display()))
}

async fn send<S>(
    io: TokioIo<S>,
    request: hyper::Request<Empty<Bytes>>,
) -> Result<hyper::Response<Incoming>, ApiError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| ApiError::Unreachable(format!("HTTP handshake: {e}")))?;
    // The connection is driven until its answer's body is read or dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| ApiError::Unreachable(format!("request: {e}")))
}

/// `host` of `host:port` (`[::1]:2376` gives `::1`).
fn authority_host(authority: &str) -> &str {
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Percent-encodes everything but unreserved characters, for a query value or path segment.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads the next chunk of a streamed body; `None` at its end.
pub async fn next_chunk(body: &mut Incoming) -> Option<Result<Bytes, String>> {
    loop {
        match body.frame().await? {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(e) => return Some(Err(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            query_escape(r#"{"a":["b c"]}"#),
            "%7B%22a%22%3A%5B%22b%20c%22%5D%7D"
        );
        assert_eq!(query_escape("1700000000.000000001"), "1700000000.000000001");
    }

    #[test]
    fn list_answers_decode_with_missing_and_null_fields() {
        let list: Vec<ContainerSummary> = serde_json::from_str(
            r#"[{"Id":"abc","Names":["/web"],"Labels":null,"State":"running",
                "Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}],
                "HostConfig":{"NetworkMode":"bridge"},
                "NetworkSettings":{"Networks":{"bridge":{"NetworkID":"n1","IPAddress":"172.17.0.2"},"x":null}}}]"#,
        )
        .unwrap();
        assert_eq!(list[0].names, ["/web"]);
        assert_eq!(list[0].ports[0].public_port, 8080);
        let nets = list[0]
            .network_settings
            .as_ref()
            .unwrap()
            .networks
            .as_ref()
            .unwrap();
        assert_eq!(nets["bridge"].as_ref().unwrap().ip_address, "172.17.0.2");
        assert!(nets["x"].is_none());
    }
}
