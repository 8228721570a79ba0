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
    stop: watch::Receiver<bool>,
) {
    if !notifier.enabled {
        return;
    }
    let every = notifier
        .watchdog_interval
        .unwrap_or(Duration::from_secs(10));
    each_check(every, &liveness, stop, |stalled| {
        let status = status_line(&metrics);
        if notifier.watchdog_interval.is_none() {
            notifier.status(&status);
        } else if stalled.is_empty() {
            notifier.watchdog(&status);
        } else {
            tracing::warn!(
                tasks = %stalled.join(","),
                "watchdog not fed: pipeline tasks made no progress since the last check"
            );
        }
    })
    .await;
}

/// Calls `check` every `every` with the tasks that did not beat since the previous check,
/// until `stop`.
async fn each_check(
    every: Duration,
    liveness: &Liveness,
    mut stop: watch::Receiver<bool>,
    mut check: impl FnMut(Vec<String>),
) {
    // The first check a whole interval after the first look: an idle task beats only every
    // half interval, so a check straight away (an interval's first tick is immediate) found
    // every idle task unchanged and warned, without cause, at each start.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut progress = Progress {
        last: liveness.snapshot(),
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        check(progress.stalled(liveness.snapshot()));
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

    /// An idle pipeline task: it beats once on its first turn, then only on its interval.
    fn idle_task(liveness: &Liveness, name: &str) -> tokio::task::JoinHandle<()> {
        let heartbeat = liveness.register(name);
        tokio::spawn(async move {
            let Some(mut beat) = heartbeat.interval() else {
                return;
            };
            loop {
                heartbeat.beat();
                beat.tick().await;
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn idle_tasks_that_beat_are_never_reported_from_the_first_check_on() {
        let every = Duration::from_secs(2);
        let liveness = Liveness::new(Some(every));
        let task = idle_task(&liveness, "journal");
        // The task's first beat lands before the watchdog's first look, as it does at start.
        tokio::task::yield_now().await;
        let (stop_tx, stop_rx) = watch::channel(false);
        let checks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = checks.clone();
        let watchdog = tokio::spawn({
            let liveness = liveness.clone();
            async move {
                each_check(every, &liveness, stop_rx, |stalled| {
                    seen.lock().unwrap().push(stalled)
                })
                .await
            }
        });
        tokio::time::sleep(every * 5 + every / 2).await;
        stop_tx.send(true).unwrap();
        watchdog.await.unwrap();
        task.abort();
        let checks = checks.lock().unwrap();
        assert!(checks.iter().all(Vec::is_empty), "{checks:?}");
        assert_eq!(checks.len(), 5, "one check per interval, none at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_never_beats_again_is_reported_at_the_first_check() {
        let every = Duration::from_secs(2);
        let liveness = Liveness::new(Some(every));
        let stuck = liveness.register("stuck");
        stuck.beat();
        let (stop_tx, stop_rx) = watch::channel(false);
        let checks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = checks.clone();
        let watchdog = tokio::spawn({
            let liveness = liveness.clone();
            async move {
                each_check(every, &liveness, stop_rx, |stalled| {
                    seen.lock().unwrap().push(stalled)
                })
                .await
            }
        });
        tokio::time::sleep(every + every / 2).await;
        stop_tx.send(true).unwrap();
        watchdog.await.unwrap();
        assert_eq!(*checks.lock().unwrap(), vec![vec!["stuck".to_string()]]);
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
