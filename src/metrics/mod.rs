//! The agent's own Prometheus metrics, named, typed and labelled as Promtail's so existing
//! dashboards and alerts keep working.
//!
//! Owns the registry and every self-metric. Each part of the agent receives the group it
//! updates; none reads another's. There is no global registry, so several agents can run in
//! one test process. Besides the agent's own series the registry carries the standard
//! `process_*` series and `promtail_build_info`, as Promtail's does; [`exposition`] writes it
//! out in the format the scraper asks for.

mod docker;
pub mod exposition;
mod push;

pub use push::PushMetrics;

pub use docker::DockerMetrics;

pub mod kubernetes;
pub mod network_sources;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub client: ClientMetrics,
    pub files: FileMetrics,
    pub pipeline: PipelineMetrics,
    pub journal: JournalMetrics,
    pub syslog: SyslogMetrics,
    pub push: PushMetrics,
    pub docker: DockerMetrics,
    pub gelf: network_sources::GelfMetrics,
    pub file_sd: network_sources::FileSdMetrics,
    pub kubernetes: kubernetes::KubernetesMetrics,
}

/// Promtail's syslog target series, and what tailward's syslog listeners refuse or drop.
#[derive(Clone)]
pub struct SyslogMetrics {
    pub entries: IntCounter,
    pub parsing_errors: IntCounter,
    pub empty_messages: IntCounter,
    /// `tailward_source_dropped_total{source,reason}`: messages a network source read and
    /// did not ship whole: `queue_full` (a UDP message while the pipeline was full),
    /// `too_long` (a frame over `max_message_length`, skipped), `truncated` (cut to it),
    /// `no_labels` (relabeling left none).
    pub dropped: IntCounterVec,
    /// TCP connections closed at once because `max_connections` were open.
    pub refused_connections: IntCounter,
}

impl SyslogMetrics {
    fn new(registry: &Registry) -> Self {
        SyslogMetrics {
            entries: counter(
                registry,
                "promtail_syslog_target_entries_total",
                "Total number of successful entries sent to the syslog target",
            ),
            parsing_errors: counter(
                registry,
                "promtail_syslog_target_parsing_errors_total",
                "Total number of parsing errors while receiving syslog messages",
            ),
            empty_messages: counter(
                registry,
                "promtail_syslog_empty_messages_total",
                "Total number of empty messages receiving from syslog",
            ),
            dropped: counter_vec(
                registry,
                "tailward_source_dropped_total",
                "Messages a network source received and did not ship, by reason.",
                &["source", "reason"],
            ),
            refused_connections: counter(
                registry,
                "tailward_syslog_refused_connections_total",
                "TCP connections to a syslog listener closed at once because max_connections were open.",
            ),
        }
    }
}

/// Promtail's journal target series.
#[derive(Clone)]
pub struct JournalMetrics {
    /// Entries handed on.
    pub lines: IntCounter,
    /// Entries skipped, by Promtail's reasons: `no_message` (no MESSAGE field), and
    /// `empty_labels` (no label left after relabeling).
    pub parsing_errors: IntCounterVec,
}

/// `host` is the URL host of the client, as in Promtail.
pub struct ClientMetrics {
    pub encoded_bytes: IntCounterVec,
    pub sent_bytes: IntCounterVec,
    pub sent_entries: IntCounterVec,
    pub dropped_bytes: IntCounterVec,
    pub dropped_entries: IntCounterVec,
    pub mutated_entries: IntCounterVec,
    pub mutated_bytes: IntCounterVec,
    pub request_duration: HistogramVec,
    pub batch_retries: IntCounterVec,
    /// tailward: batches resent without structured metadata after a Loki 2.x refusal.
    pub structured_metadata_fallbacks: IntCounterVec,
    /// Retries by reason (`status_429`, `status_5xx`, `transport`, `split_413`).
    pub retries: IntCounterVec,
    pub queued_entries: IntGaugeVec,
    pub queued_bytes: IntGaugeVec,
    pub wal_bytes: IntGaugeVec,
    pub wal_segments: IntGaugeVec,
    /// WAL records written, read back on replay, skipped as corrupt, dropped when full.
    pub wal_records: IntCounterVec,
    pub wal_errors: IntCounterVec,
    /// Age of the oldest line read but not yet acknowledged by every client.
    pub oldest_unacknowledged_seconds: Gauge,
    /// Saves that found the positions file deleted while running (it is written again).
    pub positions_file_deleted: prometheus::IntCounter,
    /// Saves that could not write the positions file (retried at the next sync).
    pub positions_write_errors: prometheus::IntCounter,
}

pub struct FileMetrics {
    /// A gauge despite the name: the current read offset, as in Promtail.
    pub read_bytes: GaugeVec,
    pub file_bytes: GaugeVec,
    pub read_lines: IntCounterVec,
    pub files_active: Gauge,
    pub targets_active: Gauge,
    pub targets_failed: IntCounterVec,
    /// tailward: lines with bytes invalid in the file's encoding (UTF-8 or the job's
    /// `encoding`), shipped with those bytes replaced by U+FFFD.
    pub invalid_utf8_lines: IntCounterVec,
    /// tailward: file size minus read offset, as of the last time the file was at its end.
    pub file_lag_bytes: GaugeVec,
    /// tailward: lines longer than `target_config.max_line_bytes`, by what was done.
    pub long_lines: IntCounterVec,
    /// tailward: rotations, truncations and deletions noticed, by kind.
    pub file_events: IntCounterVec,
    /// tailward: files that could not be opened or read, by reason.
    pub file_errors: IntCounterVec,
    /// tailward: tailers holding their log file open now (bounded by
    /// `target_config.max_open_files`).
    pub open_files: Gauge,
    /// tailward: idle files closed to stay within `target_config.max_open_files`.
    pub idle_file_closes: IntCounter,
    /// tailward: times tailers fell back to polling because inotify could not be used
    /// (`init`, `watch`) or lost events (`overflow`).
    pub watch_fallbacks: IntCounterVec,
}

pub struct PipelineMetrics {
    pub dropped_lines: IntCounterVec,
    /// Drops of `limit` stages with `by_label_name`; shared by every such stage.
    pub dropped_lines_by_label: IntCounterVec,
    /// Lines a parsing stage (`nginx_access`, ...) could not parse and passed on unchanged.
    pub unparsed_lines: IntCounterVec,
    /// Lines a parsing stage could read more than one way (text a remote user controls
    /// imitating the format); only what every reading agrees on was extracted.
    pub ambiguous_lines: IntCounterVec,
    /// Ids the `correlation_id` stage found but refused, by reason.
    pub invalid_correlation_ids: IntCounterVec,
    /// Updates of a `metrics` stage metric refused because the metric had reached its
    /// `max_series`.
    pub metric_series_overflow: IntCounterVec,
    /// Entries a stage panicked on (caught per entry by the pipeline).
    pub stage_panics: IntCounterVec,
    /// Template executions that failed (an error in Go's sense, or the output cap or step
    /// budget reached); the value is left as it was, as in Promtail.
    pub template_errors: IntCounterVec,
    /// Lines `auth_event` recognised but could not read one way only, by reason.
    pub auth_ambiguous_lines: IntCounterVec,
}

/// Reasons Promtail pre-initialises for its drop counters.
pub const CLIENT_DROP_REASONS: [&str; 4] = [
    "ingester_error",
    "rate_limited",
    "stream_limited",
    "line_too_long",
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let client = ClientMetrics {
            encoded_bytes: counter_vec(
                &registry,
                "promtail_encoded_bytes_total",
                "Number of bytes encoded and ready to send.",
                &["host"],
            ),
            sent_bytes: counter_vec(
                &registry,
                "promtail_sent_bytes_total",
                "Number of bytes sent.",
                &["host"],
            ),
            sent_entries: counter_vec(
                &registry,
                "promtail_sent_entries_total",
                "Number of log entries sent to the ingester.",
                &["host"],
            ),
            dropped_bytes: counter_vec(
                &registry,
                "promtail_dropped_bytes_total",
                "Number of bytes dropped because failed to be sent to the ingester after all retries.",
                &["host", "tenant", "reason"],
            ),
            dropped_entries: counter_vec(
                &registry,
                "promtail_dropped_entries_total",
                "Number of log entries dropped because failed to be sent to the ingester after all retries.",
                &["host", "tenant", "reason"],
            ),
            mutated_entries: counter_vec(
                &registry,
                "promtail_mutated_entries_total",
                "The total number of log entries that have been mutated.",
                &["host", "tenant", "reason"],
            ),
            mutated_bytes: counter_vec(
                &registry,
                "promtail_mutated_bytes_total",
                "The total number of bytes that have been mutated.",
                &["host", "tenant", "reason"],
            ),
            request_duration: histogram_vec(
                &registry,
                "promtail_request_duration_seconds",
                "Duration of send requests.",
                &["status_code", "host"],
            ),
            batch_retries: counter_vec(
                &registry,
                "promtail_batch_retries_total",
                "Number of times batches has had to be retried.",
                &["host", "tenant"],
            ),
            structured_metadata_fallbacks: counter_vec(
                &registry,
                "tailward_structured_metadata_fallback_batches_total",
                "Batches resent without structured metadata after the endpoint refused it.",
                &["host"],
            ),
            retries: counter_vec(
                &registry,
                "tailward_client_retries_total",
                "Push attempts retried, by reason: status_429, status_5xx, transport, split_413.",
                &["host", "reason"],
            ),
            queued_entries: int_gauge_vec(
                &registry,
                "tailward_client_queued_entries",
                "Entries waiting in the client's input queue.",
                &["host"],
            ),
            queued_bytes: int_gauge_vec(
                &registry,
                "tailward_client_queued_bytes",
                "Bytes (lines plus a fixed per-entry overhead) waiting in the client's input queue.",
                &["host"],
            ),
            wal_bytes: int_gauge_vec(
                &registry,
                "tailward_wal_bytes",
                "Bytes of the client's disk buffer (WAL) segments not yet deleted.",
                &["host"],
            ),
            wal_segments: int_gauge_vec(
                &registry,
                "tailward_wal_segments",
                "Segment files of the client's disk buffer (WAL).",
                &["host"],
            ),
            wal_records: counter_vec(
                &registry,
                "tailward_wal_records_total",
                "WAL records by event: written, replayed (read back after a restart), corrupt (skipped), dropped_oldest (discarded when full).",
                &["host", "event"],
            ),
            wal_errors: counter_vec(
                &registry,
                "tailward_wal_errors_total",
                "WAL I/O failures by operation (open, write, sync, delete); the client falls back to its memory queue.",
                &["host", "operation"],
            ),
            positions_file_deleted: int_counter(
                &registry,
                "tailward_positions_file_deleted_total",
                "Times the positions file was found deleted while running and written again.",
            ),
            positions_write_errors: int_counter(
                &registry,
                "tailward_positions_write_errors_total",
                "Saves of the positions file that failed to write it (retried at the next sync; positions stay in memory).",
            ),
            oldest_unacknowledged_seconds: gauge(
                &registry,
                "tailward_oldest_unacknowledged_seconds",
                "Age of the oldest line read from a file but not yet acknowledged by every client (0 when none).",
            ),
        };
        let files = FileMetrics {
            read_bytes: gauge_vec(
                &registry,
                "promtail_read_bytes_total",
                "Number of bytes read.",
                &["path"],
            ),
            file_bytes: gauge_vec(
                &registry,
                "promtail_file_bytes_total",
                "Number of bytes total.",
                &["path"],
            ),
            read_lines: counter_vec(
                &registry,
                "promtail_read_lines_total",
                "Number of lines read.",
                &["path"],
            ),
            files_active: gauge(
                &registry,
                "promtail_files_active_total",
                "Number of active files.",
            ),
            targets_active: gauge(
                &registry,
                "promtail_targets_active_total",
                "Number of active total.",
            ),
            targets_failed: counter_vec(
                &registry,
                "promtail_targets_failed_total",
                "Number of failed targets.",
                &["reason"],
            ),
            invalid_utf8_lines: counter_vec(
                &registry,
                "tailward_invalid_utf8_lines_total",
                "Lines read with bytes invalid in the file's encoding (UTF-8 or the job's encoding), shipped with those bytes replaced.",
                &["path"],
            ),
            file_lag_bytes: gauge_vec(
                &registry,
                "tailward_file_lag_bytes",
                "Bytes of the file not read yet: its size minus the read offset.",
                &["path"],
            ),
            long_lines: counter_vec(
                &registry,
                "tailward_long_lines_total",
                "Lines longer than target_config.max_line_bytes, truncated or dropped.",
                &["action"],
            ),
            file_events: counter_vec(
                &registry,
                "tailward_file_events_total",
                "Rotations, truncations and deletions of tailed files.",
                &["event"],
            ),
            file_errors: counter_vec(
                &registry,
                "tailward_file_errors_total",
                "Files that could not be opened or read.",
                &["reason"],
            ),
            open_files: gauge(
                &registry,
                "tailward_open_files",
                "Tailers holding their log file open now (at most target_config.max_open_files).",
            ),
            idle_file_closes: counter(
                &registry,
                "tailward_idle_file_closes_total",
                "Idle files closed to stay within target_config.max_open_files; reopened when they change.",
            ),
            watch_fallbacks: counter_vec(
                &registry,
                "tailward_file_watch_fallbacks_total",
                "Times tailers fell back to polling: inotify unavailable (init, watch) or events lost (overflow).",
                &["reason"],
            ),
        };
        let pipeline = PipelineMetrics {
            dropped_lines: counter_vec(
                &registry,
                "logentry_dropped_lines_total",
                "A count of all log lines dropped as a result of a pipeline stage",
                &["reason"],
            ),
            dropped_lines_by_label: counter_vec(
                &registry,
                "logentry_dropped_lines_by_label_total",
                "A count of all log lines dropped as a result of a pipeline stage",
                &["label_name", "label_value"],
            ),
            unparsed_lines: counter_vec(
                &registry,
                "tailward_unparsed_lines_total",
                "Lines a parsing stage could not parse; they were passed on unchanged.",
                &["job", "stage"],
            ),
            ambiguous_lines: counter_vec(
                &registry,
                "tailward_ambiguous_lines_total",
                "Lines a parsing stage could read more than one way; only what every reading agrees on was extracted, and the entry is marked ambiguous.",
                &["job", "stage"],
            ),
            invalid_correlation_ids: counter_vec(
                &registry,
                "tailward_correlation_id_invalid_total",
                "Correlation ids found but not attached (too long or with characters outside the allowed set).",
                &["job", "reason"],
            ),
            metric_series_overflow: counter_vec(
                &registry,
                "tailward_metric_series_overflow_total",
                "Updates of a metrics-stage metric that would have created a series past its max_series; not recorded in the metric.",
                &["metric"],
            ),
            stage_panics: counter_vec(
                &registry,
                "tailward_stage_panics_total",
                "Entries a pipeline stage panicked on; each went on as that stage left it, and the job kept running.",
                &["job", "stage"],
            ),
            template_errors: counter_vec(
                &registry,
                "tailward_template_errors_total",
                "Template executions that failed (a Go template error, or the 16 MiB output cap or step budget reached); the value was left unchanged.",
                &["job", "stage"],
            ),
            auth_ambiguous_lines: counter_vec(
                &registry,
                "tailward_auth_ambiguous_lines_total",
                "Auth lines that admit more than one reading (several_readings) or may have been cut at sshd's 500-byte limit (possibly_cut); marked ambiguous, without source_ip.",
                &["job", "reason"],
            ),
        };
        let journal = JournalMetrics {
            lines: counter(
                &registry,
                "promtail_journal_target_lines_total",
                "Total number of successful journal lines read",
            ),
            parsing_errors: counter_vec(
                &registry,
                "promtail_journal_target_parsing_errors_total",
                "Total number of parsing errors while reading journal messages",
                &["error"],
            ),
        };
        register_build_info(&registry);
        #[cfg(target_os = "linux")]
        {
            // A collector reading /proc/self at each scrape; it has no state to share, so
            // every registry (one per agent) gets its own.
            let process = prometheus::process_collector::ProcessCollector::for_self();
            if let Err(e) = registry.register(Box::new(process)) {
                tracing::warn!(error = %e, "process metrics unavailable");
            }
        }
        let syslog = SyslogMetrics::new(&registry);
        Metrics {
            push: PushMetrics::new(&registry, syslog.dropped.clone()),
            docker: DockerMetrics::new(&registry, syslog.dropped.clone()),
            gelf: network_sources::GelfMetrics::new(&registry, syslog.dropped.clone()),
            file_sd: network_sources::FileSdMetrics::new(&registry),
            syslog,
            kubernetes: kubernetes::KubernetesMetrics::new(&registry),
            registry,
            client,
            files,
            pipeline,
            journal,
        }
    }

    /// Pre-creates the per-host client series Promtail initialises to zero.
    pub fn init_client(&self, host: &str, tenant: &str) {
        for reason in CLIENT_DROP_REASONS {
            self.client
                .dropped_entries
                .with_label_values(&[host, tenant, reason]);
            self.client
                .dropped_bytes
                .with_label_values(&[host, tenant, reason]);
        }
        self.client.sent_entries.with_label_values(&[host]);
        self.client.sent_bytes.with_label_values(&[host]);
        self.client.encoded_bytes.with_label_values(&[host]);
    }

    /// Every metric in `format` (see [`exposition::Format::negotiate`]).
    pub fn render_as(&self, format: exposition::Format) -> String {
        match format {
            exposition::Format::Text => self.render(),
            exposition::Format::OpenMetrics => exposition::openmetrics(&self.registry.gather()),
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Go's names for the platforms tailward is built for (`GOOS`, `GOARCH`), as Promtail's
/// build info carries them.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// `promtail_build_info`, labelled as Promtail's (client_golang's version collector):
/// `goversion` is the Rust compiler's version; revision and branch come from
/// `TAILWARD_REVISION` and `TAILWARD_BRANCH` at build time (as Go's ldflags stamp them), else
/// "unknown" and "", as an unstamped Go build reports.
fn register_build_info(r: &Registry) {
    let opts = Opts::new(
        "promtail_build_info",
        "A metric with a constant '1' value labeled by version, revision, branch, goversion from which promtail was built, and the goos and goarch for the build.",
    )
    .const_label("version", env!("CARGO_PKG_VERSION"))
    .const_label("revision", option_env!("TAILWARD_REVISION").unwrap_or("unknown"))
    .const_label("branch", option_env!("TAILWARD_BRANCH").unwrap_or(""))
    .const_label("goversion", env!("TAILWARD_RUSTC_VERSION"))
    .const_label("goos", std::env::consts::OS)
    .const_label("goarch", go_arch())
    .const_label("tags", "unknown");
    let g = Gauge::with_opts(opts).expect("valid metric definition");
    g.set(1.0);
    r.register(Box::new(g)).expect("metric registered once");
}

// Registration only fails for duplicate or malformed names, which are constants above and
// covered by the unit test below; a failure there is a programming error, not input.
fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn int_counter(r: &Registry, name: &str, help: &str) -> prometheus::IntCounter {
    let c = prometheus::IntCounter::new(name, help).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h =
        HistogramVec::new(HistogramOpts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_metrics_register_and_render_with_promtail_names() {
        let m = Metrics::new();
        m.init_client("localhost:3100", "");
        m.files
            .read_bytes
            .with_label_values(&["/var/log/a.log"])
            .set(10.0);
        let text = m.render();
        assert!(text.contains("# TYPE promtail_read_bytes_total gauge"));
        assert!(text.contains("promtail_dropped_entries_total{host=\"localhost:3100\",reason=\"ingester_error\",tenant=\"\"} 0"));
        assert!(text.contains("promtail_build_info{branch="), "{text}");
        assert!(text.contains(&format!("version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))));
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(
            text.contains("promtail_journal_target_lines_total 0"),
            "{text}"
        );
    }
}
