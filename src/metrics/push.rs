//! The push sources' series (`loki_push_api`, `heroku_drain`): Promtail's names where it has
//! them (`promtail_heroku_drain_target_*`, and the `loki_distributor_*_bytes_received_total`
//! counters Promtail's push target brings along from Loki's push package), tailward's for
//! what Promtail does not count (requests by status, refusals by reason).

use prometheus::{IntCounter, IntCounterVec, Registry};

use super::{counter, counter_vec};

#[derive(Clone)]
pub struct PushMetrics {
    /// `loki_distributor_bytes_received_total{tenant,retention_hours,aggregated_metric}`:
    /// line bytes received, as Promtail's push target counts them (tenant empty).
    pub bytes_received: IntCounterVec,
    /// `loki_distributor_structured_metadata_bytes_received_total`, labelled alike.
    pub structured_metadata_bytes_received: IntCounterVec,
    /// `tailward_push_entries_total{source}`: entries handed to the job's pipeline.
    pub entries: IntCounterVec,
    /// `tailward_push_requests_total{source,status}`: requests answered, by status code.
    pub requests: IntCounterVec,
    /// `tailward_push_rejected_total{source,reason}`: requests (or streams) refused:
    /// `bad_body`, `invalid_labels`, `no_streams`, `unsupported_media_type`,
    /// `unsupported_encoding`, `too_large`, `back_pressure`, `shutting_down`.
    pub rejected: IntCounterVec,
    /// `promtail_heroku_drain_target_entries_total`.
    pub heroku_entries: IntCounter,
    /// `promtail_heroku_drain_target_parsing_errors_total`.
    pub heroku_parsing_errors: IntCounter,
    /// `tailward_source_dropped_total{source,reason}`, shared with the other network
    /// sources: entries received and not shipped (`no_labels`).
    pub dropped: IntCounterVec,
}

impl PushMetrics {
    pub(super) fn new(registry: &Registry, dropped: IntCounterVec) -> Self {
        PushMetrics {
            bytes_received: counter_vec(
                registry,
                "loki_distributor_bytes_received_total",
                "The total number of uncompressed bytes received per both tenant and retention hours.",
                &["tenant", "retention_hours", "aggregated_metric"],
            ),
            structured_metadata_bytes_received: counter_vec(
                registry,
                "loki_distributor_structured_metadata_bytes_received_total",
                "The total number of uncompressed bytes received for structured metadata per both tenant and retention hours.",
                &["tenant", "retention_hours", "aggregated_metric"],
            ),
            entries: counter_vec(
                registry,
                "tailward_push_entries_total",
                "Entries a push source (loki_push_api, heroku_drain) handed to its job's pipeline.",
                &["source"],
            ),
            requests: counter_vec(
                registry,
                "tailward_push_requests_total",
                "Requests a push source answered, by HTTP status code.",
                &["source", "status"],
            ),
            rejected: counter_vec(
                registry,
                "tailward_push_rejected_total",
                "Requests (or streams of a request) a push source refused, by reason.",
                &["source", "reason"],
            ),
            heroku_entries: counter(
                registry,
                "promtail_heroku_drain_target_entries_total",
                "Number of successful entries received by the Heroku target",
            ),
            heroku_parsing_errors: counter(
                registry,
                "promtail_heroku_drain_target_parsing_errors_total",
                "Number of parsing errors while receiving Heroku messages",
            ),
            dropped,
        }
    }
}
