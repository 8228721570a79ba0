//! Talking to systemd through the sd_notify protocol (datagrams to `$NOTIFY_SOCKET`, no
//! libsystemd): `READY=1`, `STATUS=`, `RELOADING=1`, `STOPPING=1`, and the watchdog
//! keep-alive `WATCHDOG=1`.
//!
//! Owns what is sent and whether the watchdog may be fed: only while every registered
//! [`Heartbeat`](crate::pipeline::liveness::Heartbeat) (one per pipeline task) keeps beating, so a wedged task gets the agent
//! restarted instead of being vouched for by a bare timer. It must not decide when the agent
//! is ready or reloading; [`crate::agent`] says so.

use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Collector;
use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::pipeline::liveness::Liveness;

/// Sends sd_notify messages when the agent runs under a service manager that asked for them.
/// The default sends nothing.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    enabled: bool,
    /// Half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) recommends.
    watchdog_interval: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let watchdog_interval = sd_notify::watchdog_enabled()
            .filter(|d| !d.is_zero())
            .map(|d| d / 2);
        Notifier {
            enabled,
            watchdog_interval: watchdog_interval.filter(|_| enabled),
        }
    }

    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog_interval
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            // systemd gone or socket unwritable: the agent's work goes on regardless.
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn reloading(&self) {
        // Type=notify-reload (systemd 253+) requires MONOTONIC_USEC with RELOADING=1.
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    fn watchdog(&self, status: &str) {
        self.send(&[NotifyState::Watchdog, NotifyState::Status(status)]);
    }
}

/// The `STATUS=` text: what an operator wants from `systemctl status`.
pub fn status_line(metrics: &Metrics) -> String {
    let files = metrics.files.files_active.get().max(0.0) as u64;
    let sent: u64 = metrics
        .client
        .sent_entries
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum();
    format!("tailing {files} files, {sent} entries sent")
}

/// Tracks beats between two watchdog checks.
struct Progress {
    last: Vec<(String, Option<u64>)>,
}

impl Progress {
    /// The tasks that did not beat since the last check (new tasks get one check's grace).
    fn stalled(&mut self, now: Vec<(String, Option<u64>)>) -> Vec<String> {
        let mut stalled = Vec::new();
        for (i, (name, count)) in now.iter().enumerate() {
            let before = self.last.get(i).filter(|(n, _)| n == name).map(|(_, c)| *c);
            if let (Some(Some(before)), Some(count)) = (before, count)
                && *count == before
            {
                stalled.push(name.clone());
            }
        }
        self.last = now;
        stalled
    }
}

/// Feeds the watchdog every half `WATCHDOG_USEC` while every watched task beats, and keeps
/// `STATUS=` current; without a watchdog only the status is sent. Runs until `stop`.
pub async fn run(
    notifier: Notifier,
    liveness: Liveness,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    if !notifier.enabled {
        return;
    }
    let every = notifier
        .watchdog_interval
        .unwrap_or(Duration::from_secs(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut progress = Progress {
        last: liveness.snapshot(),
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let status = status_line(&metrics);
        if notifier.watchdog_interval.is_none() {
            notifier.status(&status);
            continue;
        }
        let stalled = progress.stalled(liveness.snapshot());
        if stalled.is_empty() {
            notifier.watchdog(&status);
        } else {
            tracing::warn!(
                tasks = %stalled.join(","),
                "watchdog not fed: pipeline tasks made no progress since the last check"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_that_stops_beating_is_reported_and_a_finished_one_forgotten() {
        let liveness = Liveness::new(Some(Duration::from_millis(100)));
        let a = liveness.register("a");
        let b = liveness.register("b");
        let mut progress = Progress {
            last: liveness.snapshot(),
        };
        a.beat();
        b.beat();
        assert!(progress.stalled(liveness.snapshot()).is_empty());
        a.beat();
        assert_eq!(progress.stalled(liveness.snapshot()), vec!["b".to_string()]);
        drop(b);
        a.beat();
        assert!(progress.stalled(liveness.snapshot()).is_empty());
        assert_eq!(liveness.snapshot().len(), 1);
    }

    #[test]
    fn a_newly_registered_task_gets_one_check_of_grace() {
        let liveness = Liveness::new(Some(Duration::from_millis(100)));
        let mut progress = Progress {
            last: liveness.snapshot(),
        };
        let _a = liveness.register("a");
        assert!(progress.stalled(liveness.snapshot()).is_empty());
        assert_eq!(progress.stalled(liveness.snapshot()), vec!["a".to_string()]);
    }

    #[test]
    fn status_line_counts_files_and_sent_entries() {
        let m = Metrics::new();
        m.files.files_active.set(3.0);
        m.client.sent_entries.with_label_values(&["h1"]).inc_by(5);
        m.client.sent_entries.with_label_values(&["h2"]).inc_by(2);
        assert_eq!(status_line(&m), "tailing 3 files, 7 entries sent");
    }
}
