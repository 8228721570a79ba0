//! Promtail's YAML configuration schema, with Promtail's defaults, and how it is loaded.
//!
//! Owns: the typed config, defaults, `-config.expand-env`, strict parsing with key-path errors,
//! and semantic validation that needs no I/O beyond reading secret files. It must not start
//! anything: building tailers, pipelines or clients from a config is the runtime's job.
//! Stage configs live beside their stages (`pipeline::stages`), not here.

pub mod cli;
mod docker;
mod expand_env;
pub mod file_sd;
pub mod gelf;
pub mod kubernetes;
pub mod load;
mod push;
mod redact;
/// The YAML reader lives with the other Go semantics (stages read their configs with it too).
pub use crate::pipeline::go::yaml;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::model::units::{ByteSize, GoDuration};
pub use docker::{DockerEndpoint, DockerFilter, DockerSdConfig};
pub use expand_env::expand_env;
pub use file_sd::FileSdConfig;
pub use gelf::GelfTargetConfig;
pub use load::{ConfigError, Overrides, load, load_str};
pub use push::{
    DEFAULT_MAX_REQUEST_SIZE, HerokuDrainTargetConfig, LokiPushTargetConfig, PushServerConfig,
};
pub use redact::redacted_yaml;

use crate::pipeline::stages::StageConfig;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub global: GlobalConfig,
    pub server: ServerConfig,
    /// Deprecated singular form; appended to `clients` when it has a URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientConfig>,
    pub clients: Vec<ClientConfig>,
    pub positions: PositionsConfig,
    pub scrape_configs: Vec<ScrapeConfig>,
    pub target_config: TargetConfig,
    pub limits_config: LimitsConfig,
    /// Promtail's `options` block is an empty struct; accepted for compatibility.
    pub options: EmptyBlock,
    pub tracing: TracingConfig,
    /// Promtail's (experimental) `wal:` block; with `enabled: true` every client without a
    /// `wal` block of its own gets a disk buffer under `dir/client-<index>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalConfig>,
}

/// A disk buffer (write-ahead log): Promtail's top-level `wal:` keys, and tailward's
/// `clients[].wal` with the same keys. Entries are written (with a CRC) before they count as
/// accepted, replayed after a restart, and deleted once Loki acknowledged them.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    pub enabled: bool,
    pub dir: String,
    /// Promtail: delete segments older than this. Accepted; tailward deletes a segment once
    /// every entry in it is acknowledged instead, so nothing unsent is ever cleaned up.
    #[serde(rename = "cleanSegmentsOlderThan")]
    pub clean_segments_older_than: GoDuration,
    /// Promtail: how often watchers poll the WAL. Accepted; tailward's reader is woken by
    /// each write instead.
    #[serde(rename = "watchConfig")]
    pub watch_config: WalWatchConfig,
    /// tailward: the most the buffer holds on disk (segment files).
    pub max_size: ByteSize,
    /// tailward: the size at which a segment file is closed and the next one started.
    pub segment_size: ByteSize,
    /// tailward: what happens when `max_size` is reached.
    pub when_full: WalWhenFull,
    /// tailward: when written records are flushed to stable storage.
    pub fsync: WalFsync,
    /// tailward: the flush interval of `fsync: periodic`.
    pub fsync_period: GoDuration,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            dir: String::new(),
            clean_segments_older_than: GoDuration::from_secs(3600),
            watch_config: WalWatchConfig::default(),
            max_size: ByteSize(256 * 1024 * 1024),
            segment_size: ByteSize(8 * 1024 * 1024),
            when_full: WalWhenFull::Block,
            fsync: WalFsync::Periodic,
            fsync_period: GoDuration::from_millis(500),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalWatchConfig {
    #[serde(rename = "minReadFrequency")]
    pub min_read_frequency: GoDuration,
    #[serde(rename = "maxReadFrequency")]
    pub max_read_frequency: GoDuration,
}

impl Default for WalWatchConfig {
    fn default() -> Self {
        Self {
            min_read_frequency: GoDuration::from_millis(250),
            max_read_frequency: GoDuration::from_secs(1),
        }
    }
}

/// `when_full`: `block` (the default) pauses reading until acknowledged entries free room;
/// `drop_oldest` deletes the oldest segment, counting its entries as dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WalWhenFull {
    #[default]
    Block,
    DropOldest,
}

/// `fsync`: `always` (before entries count as accepted: survives power loss), `periodic`
/// (every `fsync_period`; survives a crash of the agent, not of the machine), or `never`
/// (left to the kernel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WalFsync {
    Always,
    #[default]
    Periodic,
    Never,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBlock {}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    pub enabled: bool,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    pub file_watch_config: FileWatchConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileWatchConfig {
    /// Without inotify (see `target_config.inotify`): the poll interval after a change,
    /// doubling while the file is quiet up to `max_poll_frequency`, as in Promtail.
    pub min_poll_frequency: GoDuration,
    /// With inotify: how often a file is checked anyway, in case an event was missed.
    pub max_poll_frequency: GoDuration,
}

impl Default for FileWatchConfig {
    fn default() -> Self {
        Self {
            min_poll_frequency: GoDuration::from_millis(250),
            max_poll_frequency: GoDuration::from_millis(250),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub disable: bool,
    pub profiling_enabled: bool,
    pub http_listen_network: String,
    pub http_listen_address: String,
    pub http_listen_port: u16,
    /// 0 is no limit; dskit's `<= 0 disables` is read as 0.
    #[serde(deserialize_with = "limit_or_zero")]
    pub http_listen_conn_limit: u32,
    pub grpc_listen_network: String,
    pub grpc_listen_address: String,
    pub grpc_listen_port: u16,
    #[serde(deserialize_with = "limit_or_zero")]
    pub grpc_listen_conn_limit: u32,
    pub register_instrumentation: bool,
    pub graceful_shutdown_timeout: GoDuration,
    pub http_server_read_timeout: GoDuration,
    /// 0 means `http_server_read_timeout`, as in dskit.
    pub http_server_read_header_timeout: GoDuration,
    pub http_server_write_timeout: GoDuration,
    pub http_server_idle_timeout: GoDuration,
    pub grpc_server_max_recv_msg_size: u64,
    pub grpc_server_max_send_msg_size: u64,
    pub grpc_server_max_concurrent_streams: u32,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub http_path_prefix: String,
    pub external_url: String,
    pub health_check_target: bool,
    pub enable_runtime_reload: bool,
    #[serde(skip_serializing_if = "ServerTlsConfig::is_empty")]
    pub http_tls_config: ServerTlsConfig,
    /// Accepted for compatibility: tailward runs no gRPC server.
    #[serde(skip_serializing_if = "ServerTlsConfig::is_empty")]
    pub grpc_tls_config: ServerTlsConfig,
    pub tls_cipher_suites: String,
    pub tls_min_version: String,
    pub log_source_ips_enabled: bool,
    pub log_request_headers: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            disable: false,
            profiling_enabled: false,
            http_listen_network: "tcp".into(),
            http_listen_address: String::new(),
            http_listen_port: 80,
            http_listen_conn_limit: 0,
            grpc_listen_network: "tcp".into(),
            grpc_listen_address: String::new(),
            grpc_listen_port: 9095,
            grpc_listen_conn_limit: 0,
            register_instrumentation: true,
            graceful_shutdown_timeout: GoDuration::from_secs(30),
            http_server_read_timeout: GoDuration::from_secs(30),
            http_server_read_header_timeout: GoDuration::from_secs(0),
            http_server_write_timeout: GoDuration::from_secs(30),
            http_server_idle_timeout: GoDuration::from_secs(120),
            grpc_server_max_recv_msg_size: 4 * 1024 * 1024,
            grpc_server_max_send_msg_size: 4 * 1024 * 1024,
            grpc_server_max_concurrent_streams: 100,
            log_level: LogLevel::Info,
            log_format: LogFormat::Logfmt,
            http_path_prefix: String::new(),
            external_url: String::new(),
            health_check_target: true,
            enable_runtime_reload: false,
            http_tls_config: ServerTlsConfig::default(),
            grpc_tls_config: ServerTlsConfig::default(),
            tls_cipher_suites: String::new(),
            tls_min_version: String::new(),
            log_source_ips_enabled: false,
            log_request_headers: false,
        }
    }
}

/// dskit's connection limits are Go ints where anything `<= 0` means no limit.
fn limit_or_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = i64::deserialize(d)?;
    u32::try_from(v.max(0)).map_err(|_| {
        serde::de::Error::custom(format!(
            "expected a connection limit up to {} (0 or less for none), found {v}",
            u32::MAX
        ))
    })
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Logfmt,
    Json,
}

/// One Loki endpoint (`clients[]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    pub url: String,
    pub name: String,
    pub tenant_id: String,
    pub batchwait: GoDuration,
    pub batchsize: ByteSize,
    pub timeout: GoDuration,
    pub backoff_config: BackoffConfig,
    pub drop_rate_limited_batches: bool,
    pub external_labels: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    pub bearer_token: String,
    pub bearer_token_file: String,
    pub tls_config: TlsConfig,
    pub proxy_url: String,
    pub no_proxy: String,
    pub proxy_from_environment: bool,
    pub follow_redirects: bool,
    pub enable_http2: bool,
    /// tailward: wire format, `protobuf` (snappy, as Promtail sends) or `json`.
    pub format: PushFormat,
    /// tailward: body compression for `format: json` (`none` or `gzip`).
    pub compression: PushCompression,
    /// tailward: send structured metadata. Turn off for Loki 2.x, which answers 400 to JSON
    /// pushes that carry it.
    pub structured_metadata: bool,
    /// tailward: the client's input queue.
    pub queue: ClientQueueConfig,
    /// tailward: this client's disk buffer (overrides the top-level `wal:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalConfig>,
}

/// tailward: `clients[].queue`. Until the queue is full a client that cannot deliver does
/// not delay the others; what happens then is `when_full`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientQueueConfig {
    /// Memory the queued entries may hold (their lines, structured metadata and slots).
    pub max_bytes: ByteSize,
    /// `block`: reading pauses for every client until this one has room (nothing is lost,
    /// Promtail's behaviour). `drop`: once the queue has stayed full for `drop_after`, this
    /// client drops what it cannot take (counted in `promtail_dropped_entries_total` with
    /// reason `queue_full`) and the other clients go on. With a disk buffer (`wal`) the
    /// queue drains into it, so neither happens until the buffer itself is full.
    pub when_full: QueueWhenFull,
    /// With `when_full: drop`: how long the queue may stay full before it drops.
    pub drop_after: GoDuration,
}

impl Default for ClientQueueConfig {
    fn default() -> Self {
        Self {
            max_bytes: ByteSize(1024 * 1024),
            when_full: QueueWhenFull::Block,
            drop_after: GoDuration::from_secs(5),
        }
    }
}

/// `clients[].queue.when_full`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueWhenFull {
    #[default]
    Block,
    Drop,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            name: String::new(),
            tenant_id: String::new(),
            batchwait: GoDuration::from_secs(1),
            batchsize: ByteSize(1024 * 1024),
            timeout: GoDuration::from_secs(10),
            backoff_config: BackoffConfig::default(),
            drop_rate_limited_batches: false,
            external_labels: BTreeMap::new(),
            headers: BTreeMap::new(),
            basic_auth: None,
            authorization: None,
            bearer_token: String::new(),
            bearer_token_file: String::new(),
            tls_config: TlsConfig::default(),
            proxy_url: String::new(),
            no_proxy: String::new(),
            proxy_from_environment: false,
            follow_redirects: true,
            enable_http2: true,
            format: PushFormat::Protobuf,
            compression: PushCompression::None,
            structured_metadata: true,
            queue: ClientQueueConfig::default(),
            wal: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PushFormat {
    #[default]
    Protobuf,
    Json,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PushCompression {
    #[default]
    None,
    Gzip,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    pub min_period: GoDuration,
    pub max_period: GoDuration,
    /// 0 retries forever.
    pub max_retries: u32,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            min_period: GoDuration::from_millis(500),
            max_period: GoDuration::from_secs(300),
            max_retries: 10,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    pub username_file: String,
    pub password: String,
    pub password_file: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    #[serde(rename = "type")]
    pub kind: String,
    pub credentials: String,
    pub credentials_file: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub ca: String,
    pub ca_file: String,
    pub cert: String,
    pub cert_file: String,
    pub key: String,
    pub key_file: String,
    pub server_name: String,
    pub insecure_skip_verify: bool,
    pub min_version: String,
    pub max_version: String,
}

/// dskit's server `TLSConfig`: the certificate the HTTP server presents, and how it checks
/// client certificates. Inline PEM (`cert`, `key`, `client_ca`) or files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    pub cert: String,
    pub key: String,
    pub client_ca: String,
    pub cert_file: String,
    pub key_file: String,
    /// Go's `tls.ClientAuthType` names: `NoClientCert`, `RequestClientCert`,
    /// `RequireAnyClientCert`, `VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`.
    pub client_auth_type: String,
    pub client_ca_file: String,
}

impl ServerTlsConfig {
    /// No certificate configured: the server speaks plain HTTP.
    pub fn is_empty(&self) -> bool {
        *self == ServerTlsConfig::default()
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PositionsConfig {
    pub filename: String,
    pub sync_period: GoDuration,
    pub ignore_invalid_yaml: bool,
}

impl Default for PositionsConfig {
    fn default() -> Self {
        Self {
            filename: "/var/log/positions.yaml".into(),
            sync_period: GoDuration::from_secs(10),
            ignore_invalid_yaml: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    pub sync_period: GoDuration,
    pub stdin: bool,
    /// tailward: how long a rotated or deleted file is kept open and read after its last
    /// growth (writers may still append to the old file until they reopen), like Fluent
    /// Bit's `rotate_wait`.
    pub rotate_wait: GoDuration,
    /// tailward: a last line without a newline is shipped after this long without growth.
    pub partial_line_wait: GoDuration,
    /// tailward: the longest line held in memory while reading; longer lines are cut here
    /// (truncated, or dropped when `limits_config.max_line_size_truncate` is false).
    pub max_line_bytes: ByteSize,
    /// tailward (Alloy's `tail_from_end`): a file with no saved position starts at its end.
    pub tail_from_end: bool,
    /// tailward: files not modified for this long are not tailed (0 = off).
    pub ignore_older_than: GoDuration,
    /// tailward: export the per-path series (`promtail_read_bytes_total`,
    /// `promtail_file_bytes_total`, `promtail_read_lines_total`,
    /// `tailward_invalid_utf8_lines_total`, `tailward_file_lag_bytes`). Off keeps the series
    /// count bounded on hosts with many or short-lived files (Promtail #5553).
    pub per_file_metrics: bool,
    /// tailward: at most this many log files are held open at once (0 = no bound). Over it,
    /// the least recently active idle files are closed and reopened, checked by identity
    /// (device, inode, head fingerprint), when they change again, so 10,000 tailed files do
    /// not need 10,000 descriptors. Kept below the process's descriptor limit at start.
    pub max_open_files: usize,
    /// tailward: wake tailers on inotify events for their files (writes, creates, renames,
    /// deletes), polling only at `file_watch_config.max_poll_frequency` as a safety net.
    /// `false` polls as Promtail does (from `min_poll_frequency`, backing off to
    /// `max_poll_frequency`), e.g. on network filesystems where inotify misses writes.
    pub inotify: bool,
    /// tailward: follow a symlink that `__path__` matches (or a rotated sibling of the path)
    /// to a file outside the directory holding the link, as Promtail does. `false` reads a
    /// linked file only when it lies in that directory or below it.
    pub follow_symlinks_outside: bool,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            sync_period: GoDuration::from_secs(10),
            stdin: false,
            rotate_wait: GoDuration::from_secs(5),
            partial_line_wait: GoDuration::from_secs(1),
            max_line_bytes: ByteSize(1024 * 1024),
            tail_from_end: false,
            ignore_older_than: GoDuration::from_secs(0),
            per_file_metrics: true,
            max_open_files: 1024,
            inotify: true,
            follow_symlinks_outside: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub readline_rate_enabled: bool,
    pub readline_rate: f64,
    pub readline_burst: u32,
    pub readline_rate_drop: bool,
    pub max_streams: u32,
    pub max_line_size: ByteSize,
    pub max_line_size_truncate: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            readline_rate_enabled: false,
            readline_rate: 10000.0,
            readline_burst: 10000,
            readline_rate_drop: true,
            max_streams: 0,
            max_line_size: ByteSize(0),
            max_line_size_truncate: false,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub pipeline_stages: Vec<StageConfig>,
    /// IANA encoding name of the files (converted to UTF-8); empty means UTF-8.
    /// Resolved by [`ScrapeConfig::file_encoding`].
    pub encoding: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decompression: Option<DecompressionConfig>,
    pub static_configs: Vec<StaticConfig>,
    /// Reads the systemd journal instead of files (Promtail's `journal:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalTargetConfig>,
    /// Listens for syslog messages (Promtail's `syslog:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syslog: Option<SyslogTargetConfig>,
    /// Listens for GELF messages over UDP (Promtail's `gelf:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gelf: Option<GelfTargetConfig>,
    /// Targets read from files (Prometheus' `file_sd_configs`), tailed as static ones are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Receives Loki pushes over HTTP (Promtail's `loki_push_api:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loki_push_api: Option<LokiPushTargetConfig>,
    /// Receives Heroku log drains over HTTP (Promtail's `heroku_drain:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heroku_drain: Option<HerokuDrainTargetConfig>,
    /// Reads running containers' logs through the Docker Engine API (Promtail's
    /// `docker_sd_configs`; see [`crate::sources::docker`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub docker_sd_configs: Vec<DockerSdConfig>,
    /// Kubernetes service discovery (Prometheus' `kubernetes_sd_configs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_sd_configs: Vec<kubernetes::KubernetesSdConfig>,
    pub relabel_configs: Vec<RelabelConfig>,
}

/// Promtail's `syslog:` scrape config. Relabeling sees each message's fields as
/// `__syslog_message_*` and the sender as `__syslog_connection_*`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogTargetConfig {
    /// `host:port`; empty listens on a random port of every interface, as Promtail does.
    pub listen_address: String,
    pub listen_protocol: SyslogProtocol,
    /// A TCP connection on which nothing arrives for this long is closed; 0 means 120s.
    pub idle_timeout: GoDuration,
    /// Structured data as `__syslog_message_sd_<SD-ID>_<PARAM>` labels.
    pub label_structured_data: bool,
    pub labels: BTreeMap<String, String>,
    /// The message's own timestamp instead of the time it arrived.
    pub use_incoming_timestamp: bool,
    /// RFC 5424: ship the whole message (header included) instead of its MSG.
    pub use_rfc5424_message: bool,
    /// The longest message (an octet-counted frame, a datagram, a newline-ended message);
    /// 0 means 8192.
    pub max_message_length: usize,
    /// `rfc3164` reads BSD syslog headers; anything else (the default) RFC 5424, as Promtail.
    pub syslog_format: String,
    /// TLS on the TCP listener: `cert_file` and `key_file`; `ca_file` requires client
    /// certificates signed by it. The other keys are refused (Promtail ignores them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    /// tailward: the most TCP connections open at once; more are refused and counted.
    pub max_connections: usize,
}

impl Default for SyslogTargetConfig {
    fn default() -> Self {
        Self {
            listen_address: String::new(),
            listen_protocol: SyslogProtocol::Tcp,
            idle_timeout: GoDuration::from_secs(120),
            label_structured_data: false,
            labels: BTreeMap::new(),
            use_incoming_timestamp: false,
            use_rfc5424_message: false,
            max_message_length: 8192,
            syslog_format: "rfc5424".into(),
            tls_config: None,
            max_connections: 1024,
        }
    }
}

/// `listen_protocol`: exactly `tcp` or `udp`, as Promtail accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    #[default]
    Tcp,
    Udp,
}

/// Promtail's `journal:` scrape config. Relabeling sees every journal field as
/// `__journal_<field in lower case>` (e.g. `__journal__systemd_unit`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalTargetConfig {
    /// Without a saved cursor, start this far back.
    pub max_age: GoDuration,
    /// Ship each entry as a JSON object of its fields instead of its MESSAGE.
    pub json: bool,
    /// Journal directory; empty reads the system journal.
    pub path: String,
    /// Space-separated `FIELD=value` matches (journalctl's; `+` between groups means OR).
    pub matches: String,
    pub labels: BTreeMap<String, String>,
}

impl Default for JournalTargetConfig {
    fn default() -> Self {
        Self {
            max_age: GoDuration::from_secs(7 * 3600),
            json: false,
            path: String::new(),
            matches: String::new(),
            labels: BTreeMap::new(),
        }
    }
}

impl ScrapeConfig {
    /// The decoder for `encoding`: `None` when the files are UTF-8 (read as they are).
    /// Names are IANA/WHATWG labels, case-insensitive (`UTF-16LE`, `windows-1252`,
    /// `ISO-8859-1`, `Shift_JIS`, ...). Labels WHATWG maps to its "replacement" encoding
    /// (ISO-2022-KR, HZ-GB-2312, ...) are refused: they would turn every line into U+FFFD.
    pub fn file_encoding(&self) -> Result<Option<&'static encoding_rs::Encoding>, String> {
        let name = self.encoding.trim();
        if name.is_empty() {
            return Ok(None);
        }
        match encoding_rs::Encoding::for_label(name.as_bytes()) {
            Some(e) if e == encoding_rs::UTF_8 => Ok(None),
            Some(e) if e != encoding_rs::REPLACEMENT => Ok(Some(e)),
            _ => Err(format!(
                "expected an IANA encoding name such as UTF-8, UTF-16LE, UTF-16BE, \
                 windows-1252, ISO-8859-1 or Shift_JIS (or empty for UTF-8), found {name:?}"
            )),
        }
    }
}

/// Promtail's `decompression` block: every file of the job is a compressed archive, read
/// once to its end (see [`crate::sources::files::tailer`]'s `decompress` module).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecompressionConfig {
    pub enabled: bool,
    /// Wait before reading a newly found archive (it may still be being written).
    pub initial_delay: GoDuration,
    /// `gz`, `z` (zlib) or `bz2`, as Promtail names them; empty (a tailward extension)
    /// detects each file's format from its magic bytes. Resolved by
    /// [`DecompressionConfig::archive_format`].
    pub format: String,
}

/// A compression format of `decompression.format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    Gzip,
    Zlib,
    Bzip2,
}

impl DecompressionConfig {
    /// The configured format; `None` means detect it per file.
    pub fn archive_format(&self) -> Result<Option<ArchiveFormat>, String> {
        // Exactly the names Promtail's decompressor switches on (case-sensitive there too).
        match self.format.as_str() {
            "" => Ok(None),
            "gz" => Ok(Some(ArchiveFormat::Gzip)),
            "z" => Ok(Some(ArchiveFormat::Zlib)),
            "bz2" => Ok(Some(ArchiveFormat::Bzip2)),
            other => Err(format!(
                "expected gz, z (zlib) or bz2, or empty to detect the format from each \
                 file's first bytes, found {other:?}"
            )),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub target_label: String,
    pub regex: String,
    pub modulus: u64,
    pub replacement: String,
    pub action: RelabelAction,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: ";".into(),
            target_label: String::new(),
            regex: "(.*)".into(),
            modulus: 0,
            replacement: "$1".into(),
            action: RelabelAction::Replace,
        }
    }
}

/// Prometheus reads `action` in any case (`LabelMap`, `Replace`), and so does tailward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum RelabelAction {
    #[default]
    Replace,
    Keep,
    Drop,
    #[serde(rename = "keepequal")]
    KeepEqual,
    #[serde(rename = "dropequal")]
    DropEqual,
    Hashmod,
    Labelmap,
    Labeldrop,
    Labelkeep,
    Lowercase,
    Uppercase,
}

impl TryFrom<String> for RelabelAction {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        use RelabelAction::*;
        Ok(match s.to_ascii_lowercase().as_str() {
            "replace" => Replace,
            "keep" => Keep,
            "drop" => Drop,
            "keepequal" => KeepEqual,
            "dropequal" => DropEqual,
            "hashmod" => Hashmod,
            "labelmap" => Labelmap,
            "labeldrop" => Labeldrop,
            "labelkeep" => Labelkeep,
            "lowercase" => Lowercase,
            "uppercase" => Uppercase,
            _ => {
                return Err(format!(
                    "unknown relabel action {s:?}; expected one of: replace, keep, drop, \
                     keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, \
                     uppercase"
                ));
            }
        })
    }
}
