//! tailward's series for `kubernetes_sd_configs`. Promtail exposes none (its discovery
//! registers on a no-op registry); these say whether each watch is working and why not.

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use super::{counter_vec, int_gauge_vec};

#[derive(Clone)]
pub struct KubernetesMetrics {
    /// `tailward_kubernetes_sd_events_total{job,resource,event}`: watch events received
    /// (`update` for ADDED/MODIFIED, `delete`, `bookmark`).
    pub events: IntCounterVec,
    /// `tailward_kubernetes_sd_failures_total{job,resource,reason}`: failed lists and
    /// watches (`unreachable`, `unauthorized`, `forbidden`, `server_error`, `gone` for a
    /// relist after 410, `decode`, ...).
    pub failures: IntCounterVec,
    /// `tailward_kubernetes_sd_watch_up{job,resource}`: 1 while the last call succeeded.
    pub up: IntGaugeVec,
}

impl KubernetesMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        KubernetesMetrics {
            events: counter_vec(
                registry,
                "tailward_kubernetes_sd_events_total",
                "Watch events received by Kubernetes service discovery",
                &["job", "resource", "event"],
            ),
            failures: counter_vec(
                registry,
                "tailward_kubernetes_sd_failures_total",
                "Failed list and watch calls of Kubernetes service discovery, by reason",
                &["job", "resource", "reason"],
            ),
            up: int_gauge_vec(
                registry,
                "tailward_kubernetes_sd_watch_up",
                "Whether the last list or watch call of Kubernetes service discovery succeeded",
                &["job", "resource"],
            ),
        }
    }

    pub fn event(&self, job: &str, resource: &str, event: &str) {
        self.events.with_label_values(&[job, resource, event]).inc();
    }

    pub fn failure(&self, job: &str, resource: &str, reason: &str) {
        self.failures
            .with_label_values(&[job, resource, reason])
            .inc();
    }

    pub fn set_up(&self, job: &str, resource: &str, up: bool) {
        self.up
            .with_label_values(&[job, resource])
            .set(i64::from(up));
    }
}
