//! The push sources' scrape configs: Promtail's `loki_push_api:` and `heroku_drain:`, and the
//! `server:` block each of them carries.
//!
//! That block is dskit's `server.Config`, not Promtail's own `server:` (so `disable` or
//! `health_check_target` are errors there), with Promtail's defaults for push targets: an
//! unset port is 0, a random port. Every dskit key is read; what tailward cannot honour and
//! would change security (`proxy_protocol_enabled`) is refused by the source when it binds.
//! The gRPC keys are read and have no effect: tailward runs no gRPC server for these sources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ByteSize, GoDuration, LogFormat, LogLevel, ServerConfig, ServerTlsConfig};

/// Promtail's `loki_push_api:` scrape config: an HTTP server receiving Loki pushes.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LokiPushTargetConfig {
    pub server: PushServerConfig,
    /// Added to every stream, replacing an incoming label of the same name.
    pub labels: BTreeMap<String, String>,
    /// The entries' own timestamps instead of the time they arrived.
    pub use_incoming_timestamp: bool,
    /// tailward: the largest request body, as sent and once decompressed; a larger one is
    /// answered 413. 0 means [`DEFAULT_MAX_REQUEST_SIZE`].
    pub max_request_size: ByteSize,
}

/// Promtail's `heroku_drain:` scrape config: an HTTP server receiving Heroku log drains.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HerokuDrainTargetConfig {
    pub server: PushServerConfig,
    pub labels: BTreeMap<String, String>,
    /// The frame's timestamp instead of the time it arrived.
    pub use_incoming_timestamp: bool,
    /// tailward: as [`LokiPushTargetConfig::max_request_size`].
    pub max_request_size: ByteSize,
}

/// What `max_request_size: 0` means: Loki's distributor takes up to 100 MB; a sender's batch
/// (Promtail's `batchsize` is 1 MiB) is far below this, and it bounds what one request holds.
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 16 * 1024 * 1024;

/// dskit's `server.Config` as a push target reads it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushServerConfig {
    pub http_listen_network: String,
    pub http_listen_address: String,
    /// 0 (the default for push targets) listens on a random port.
    pub http_listen_port: u16,
    pub http_listen_conn_limit: i64,
    pub grpc_listen_network: String,
    pub grpc_listen_address: String,
    pub grpc_listen_port: u16,
    pub grpc_listen_conn_limit: i64,
    /// Refused when true: tailward does not read the PROXY protocol, and taking the
    /// connection's address for the sender's would be wrong.
    pub proxy_protocol_enabled: bool,
    pub tls_cipher_suites: String,
    pub tls_min_version: String,
    #[serde(skip_serializing_if = "ServerTlsConfig::is_empty")]
    pub http_tls_config: ServerTlsConfig,
    #[serde(skip_serializing_if = "ServerTlsConfig::is_empty")]
    pub grpc_tls_config: ServerTlsConfig,
    pub register_instrumentation: bool,
    pub report_grpc_codes_in_instrumentation_label_enabled: bool,
    pub http_log_closed_connections_without_response_enabled: bool,
    pub graceful_shutdown_timeout: GoDuration,
    pub http_server_read_timeout: GoDuration,
    pub http_server_read_header_timeout: GoDuration,
    pub http_server_write_timeout: GoDuration,
    pub http_server_idle_timeout: GoDuration,
    pub grpc_server_max_recv_msg_size: i64,
    pub grpc_server_max_send_msg_size: i64,
    pub grpc_server_max_concurrent_streams: u32,
    pub grpc_server_max_connection_idle: GoDuration,
    pub grpc_server_max_connection_age: GoDuration,
    pub grpc_server_max_connection_age_grace: GoDuration,
    pub grpc_server_keepalive_time: GoDuration,
    pub grpc_server_keepalive_timeout: GoDuration,
    pub grpc_server_min_time_between_pings: GoDuration,
    pub grpc_server_ping_without_stream_allowed: bool,
    pub grpc_server_num_workers: i64,
    pub grpc_server_stats_tracking_enabled: bool,
    pub grpc_server_recv_buffer_pools_enabled: bool,
    pub log_format: LogFormat,
    pub log_level: LogLevel,
    pub log_source_ips_enabled: bool,
    pub log_source_ips_full: bool,
    pub log_source_ips_header: String,
    pub log_source_ips_regex: String,
    pub log_request_headers: bool,
    pub log_request_at_info_level_enabled: bool,
    pub log_request_exclude_headers_list: String,
    /// Prefixes every route, as dskit does.
    pub http_path_prefix: String,
}

impl Default for PushServerConfig {
    fn default() -> Self {
        Self {
            http_listen_network: "tcp".into(),
            http_listen_address: String::new(),
            http_listen_port: 0,
            http_listen_conn_limit: 0,
            grpc_listen_network: "tcp".into(),
            grpc_listen_address: String::new(),
            grpc_listen_port: 0,
            grpc_listen_conn_limit: 0,
            proxy_protocol_enabled: false,
            tls_cipher_suites: String::new(),
            tls_min_version: String::new(),
            http_tls_config: ServerTlsConfig::default(),
            grpc_tls_config: ServerTlsConfig::default(),
            register_instrumentation: false,
            report_grpc_codes_in_instrumentation_label_enabled: false,
            http_log_closed_connections_without_response_enabled: false,
            graceful_shutdown_timeout: GoDuration::from_secs(30),
            http_server_read_timeout: GoDuration::from_secs(30),
            http_server_read_header_timeout: GoDuration::from_secs(0),
            http_server_write_timeout: GoDuration::from_secs(30),
            http_server_idle_timeout: GoDuration::from_secs(120),
            grpc_server_max_recv_msg_size: 4 * 1024 * 1024,
            grpc_server_max_send_msg_size: 4 * 1024 * 1024,
            grpc_server_max_concurrent_streams: 100,
            grpc_server_max_connection_idle: GoDuration::from_secs(0),
            grpc_server_max_connection_age: GoDuration::from_secs(0),
            grpc_server_max_connection_age_grace: GoDuration::from_secs(0),
            grpc_server_keepalive_time: GoDuration::from_secs(7200),
            grpc_server_keepalive_timeout: GoDuration::from_secs(20),
            grpc_server_min_time_between_pings: GoDuration::from_secs(10),
            grpc_server_ping_without_stream_allowed: true,
            grpc_server_num_workers: 0,
            grpc_server_stats_tracking_enabled: true,
            grpc_server_recv_buffer_pools_enabled: false,
            log_format: LogFormat::Logfmt,
            log_level: LogLevel::Info,
            log_source_ips_enabled: false,
            log_source_ips_full: false,
            log_source_ips_header: String::new(),
            log_source_ips_regex: String::new(),
            log_request_headers: false,
            log_request_at_info_level_enabled: false,
            log_request_exclude_headers_list: String::new(),
            http_path_prefix: String::new(),
        }
    }
}

impl PushServerConfig {
    /// The HTTP part of this block in the shape the agent's listener takes, so a push source
    /// gets the same timeouts, connection limit and TLS as the agent's own server.
    pub fn as_listener_config(&self) -> ServerConfig {
        ServerConfig {
            http_listen_network: self.http_listen_network.clone(),
            http_listen_address: self.http_listen_address.clone(),
            http_listen_port: self.http_listen_port,
            http_listen_conn_limit: u32::try_from(self.http_listen_conn_limit.max(0))
                .unwrap_or(u32::MAX),
            graceful_shutdown_timeout: self.graceful_shutdown_timeout,
            http_server_read_timeout: self.http_server_read_timeout,
            http_server_read_header_timeout: self.http_server_read_header_timeout,
            http_server_write_timeout: self.http_server_write_timeout,
            http_server_idle_timeout: self.http_server_idle_timeout,
            http_tls_config: self.http_tls_config.clone(),
            tls_cipher_suites: self.tls_cipher_suites.clone(),
            tls_min_version: self.tls_min_version.clone(),
            http_path_prefix: self.http_path_prefix.clone(),
            ..ServerConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Overrides, load_str};

    #[test]
    fn push_server_block_takes_dskit_keys_with_promtails_push_defaults_and_refuses_promtails_own() {
        let yaml = "scrape_configs:\n  - job_name: push\n    loki_push_api:\n      server:\n        http_listen_address: 127.0.0.1\n        grpc_listen_port: 0\n        grpc_server_max_recv_msg_size: 1048576\n        http_server_idle_timeout: 5s\n      labels: {pushserver: a}\n      use_incoming_timestamp: true\n";
        let config = load_str(yaml, "c.yaml", &Overrides::default()).unwrap();
        let push = config.scrape_configs[0].loki_push_api.as_ref().unwrap();
        assert_eq!(push.server.http_listen_port, 0, "random port when unset");
        assert_eq!(push.server.http_server_idle_timeout.0.as_secs(), 5);
        assert_eq!(push.server.graceful_shutdown_timeout.0.as_secs(), 30);
        assert!(push.use_incoming_timestamp);
        // Promtail's documented heroku_drain example.
        let heroku = "scrape_configs:\n- job_name: heroku_drain\n  heroku_drain:\n    server:\n      http_listen_address: 0.0.0.0\n      http_listen_port: 8080\n    labels:\n      job: heroku_drain_docs\n    use_incoming_timestamp: true\n  relabel_configs:\n    - source_labels: ['__heroku_drain_host']\n      target_label: 'host'\n";
        let config = load_str(heroku, "c.yaml", &Overrides::default()).unwrap();
        let drain = config.scrape_configs[0].heroku_drain.as_ref().unwrap();
        assert_eq!(drain.server.http_listen_port, 8080);
        assert_eq!(drain.labels["job"], "heroku_drain_docs");
        let bad = yaml.replace("grpc_listen_port: 0", "health_check_target: false");
        let e = load_str(&bad, "c.yaml", &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("health_check_target"), "{e}");
    }
}
