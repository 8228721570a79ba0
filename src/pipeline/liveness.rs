//! Liveness of the pipeline tasks: each task holds a [`Heartbeat`] and beats on every turn
//! (and while idle or waiting on a full client), so the systemd watchdog can be fed only
//! while every task is really being run.
//!
//! Owns the beat counters and the set of watched tasks. It must not decide what a stalled
//! task means; the agent's systemd module reads [`Liveness`] and decides.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// A task's name and its heartbeat count, gone once the task drops its [`Heartbeat`].
type WatchedTask = (String, Weak<AtomicU64>);

/// The set of tasks the watchdog vouches for.
#[derive(Clone, Default)]
pub struct Liveness {
    beats: Arc<Mutex<Vec<WatchedTask>>>,
    /// How often a registered task must beat when idle; `None` without a watchdog.
    beat_every: Option<Duration>,
}

/// One task's heartbeat; the task stops being watched when this is dropped.
#[derive(Clone)]
pub struct Heartbeat {
    count: Arc<AtomicU64>,
    every: Option<Duration>,
}

impl Heartbeat {
    pub fn beat(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// An interval for the task's idle `select!`: it must beat at least this often.
    pub fn interval(&self) -> Option<tokio::time::Interval> {
        self.every.map(|every| {
            let mut i = tokio::time::interval(every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        })
    }
}

impl Liveness {
    /// `watchdog_interval` is how often the watchdog checks; tasks beat twice as often.
    pub fn new(watchdog_interval: Option<Duration>) -> Self {
        Liveness {
            beats: Arc::default(),
            beat_every: watchdog_interval.map(|d| (d / 2).max(Duration::from_millis(10))),
        }
    }

    pub fn register(&self, name: &str) -> Heartbeat {
        let count = Arc::new(AtomicU64::new(0));
        if let Ok(mut beats) = self.beats.lock() {
            beats.push((name.to_string(), Arc::downgrade(&count)));
        }
        Heartbeat {
            count,
            every: self.beat_every,
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<(String, Option<u64>)> {
        let Ok(mut beats) = self.beats.lock() else {
            return Vec::new();
        };
        // Finished tasks no longer need vouching for.
        beats.retain(|(_, w)| w.strong_count() > 0);
        beats
            .iter()
            .map(|(n, w)| (n.clone(), w.upgrade().map(|c| c.load(Ordering::Relaxed))))
            .collect()
    }
}
