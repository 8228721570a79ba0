//! Series of the gelf source and of file service discovery, named as Promtail (gelf) and
//! Prometheus (`prometheus_sd_file_*`) name them.

use prometheus::{IntCounter, IntCounterVec, Registry};

/// Promtail's gelf target series, and what tailward's gelf listeners drop.
#[derive(Clone)]
pub struct GelfMetrics {
    /// Messages decoded, before relabeling (Promtail counts there too).
    pub entries: IntCounter,
    /// Datagrams or chunk sets that did not decode: bad chunk headers, expired chunk sets,
    /// bad compression, bad JSON.
    pub parsing_errors: IntCounter,
    /// `tailward_source_dropped_total{source="gelf",reason}`, shared with the syslog source:
    /// `queue_full`, `chunks_expired`, `chunks_overflow`, `too_long`, `malformed`, `no_labels`.
    pub dropped: IntCounterVec,
}

impl GelfMetrics {
    pub(super) fn new(registry: &Registry, dropped: IntCounterVec) -> Self {
        GelfMetrics {
            entries: super::counter(
                registry,
                "promtail_gelf_target_entries_total",
                "Total number of successful entries sent to the gelf target",
            ),
            parsing_errors: super::counter(
                registry,
                "promtail_gelf_target_parsing_errors_total",
                "Total number of parsing errors while receiving gelf messages",
            ),
            dropped,
        }
    }
}

/// Prometheus' file discovery series (Promtail does not expose them; Prometheus users'
/// alerts do).
#[derive(Clone)]
pub struct FileSdMetrics {
    /// A target file that could not be read or parsed (its last good targets are kept).
    pub read_errors: IntCounter,
}

impl FileSdMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        FileSdMetrics {
            read_errors: super::counter(
                registry,
                "prometheus_sd_file_read_errors_total",
                "The number of File-SD read errors.",
            ),
        }
    }
}
