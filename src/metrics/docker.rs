//! The docker source's series: Promtail's two docker target counters, and tailward's count of
//! daemon failures and lines it could not ship.
//!
//! Owns their names and help texts. It must not update them (the source does).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::{counter, counter_vec};

#[derive(Clone)]
pub struct DockerMetrics {
    /// `promtail_docker_target_entries_total`: lines handed on.
    pub entries: IntCounter,
    /// `promtail_docker_target_parsing_errors_total`: messages skipped for a bad or missing
    /// timestamp.
    pub parsing_errors: IntCounter,
    /// `tailward_docker_daemon_errors_total{reason}`: calls to the daemon that failed:
    /// `unreachable` (socket missing, refused, not permitted, daemon restarting), `status`
    /// (an error answer), `protocol` (an answer not understood).
    pub daemon_errors: IntCounterVec,
    /// `tailward_docker_lines_truncated_total`: lines cut at the line size limit.
    pub truncated: IntCounter,
    /// `tailward_source_dropped_total{source="docker",reason="no_labels"}`, shared with the
    /// other network sources.
    pub dropped: IntCounterVec,
    /// `tailward_docker_containers_followed`: containers whose log is being read now.
    pub followed: IntGauge,
}

impl DockerMetrics {
    pub(super) fn new(registry: &Registry, dropped: IntCounterVec) -> Self {
        let followed = IntGauge::new(
            "tailward_docker_containers_followed",
            "Containers whose log stream the docker source is reading now.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(followed.clone()))
            .expect("metric registered once");
        DockerMetrics {
            entries: counter(
                registry,
                "promtail_docker_target_entries_total",
                "Total number of successful entries sent to the Docker target",
            ),
            parsing_errors: counter(
                registry,
                "promtail_docker_target_parsing_errors_total",
                "Total number of parsing errors while receiving Docker messages",
            ),
            daemon_errors: counter_vec(
                registry,
                "tailward_docker_daemon_errors_total",
                "Calls to the Docker daemon that failed, by reason (unreachable, status, protocol).",
                &["reason"],
            ),
            truncated: counter(
                registry,
                "tailward_docker_lines_truncated_total",
                "Container log lines cut at the line size limit (the rest of the line is discarded).",
            ),
            dropped,
            followed,
        }
    }
}
