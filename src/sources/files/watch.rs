//! Wake-ups for tailers on file changes, through inotify (the `notify` crate).
//!
//! Owns one watcher for the whole agent, with one watch per directory that holds a tailed
//! path (never one per file, never a thread per file), and the routing of its events: a
//! write, create, rename or delete of a path wakes the tailer registered for it through that
//! tailer's [`Notify`]. It must not read files or decide anything about them; a tailer woken
//! for nothing just finds nothing new.
//!
//! Tailers still poll, every 10 s, as a safety net. Where inotify cannot be trusted they
//! poll as Promtail does, from `min_poll_frequency` to `max_poll_frequency`: when it
//! is off (`target_config.inotify: false`), when the watcher cannot be created or a
//! directory cannot be watched (e.g. `fs.inotify.max_user_instances` or `max_user_watches`
//! reached), and from the first event-queue overflow on (events were lost; every tailer is
//! woken once to look). Each case is logged once and counted in
//! `tailward_file_watch_fallbacks_total{reason}`. A path that is a symlink into another
//! directory is watched in its own directory, where the target's writes raise no event: its
//! tailer polls as Promtail does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;

use crate::metrics::Metrics;

pub struct FileWatch {
    /// Only taken to add or remove directory watches; the event thread never takes it, so
    /// holding it while the watcher talks to its thread cannot deadlock.
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    routes: Arc<Routes>,
}

struct Routes {
    table: Mutex<Table>,
    /// Events were lost once: tailers poll from now on.
    overflowed: AtomicBool,
    watch_failure_logged: AtomicBool,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    by_path: HashMap<PathBuf, Vec<(u64, Arc<Notify>)>>,
    dirs: HashMap<PathBuf, Dir>,
}

struct Dir {
    paths: usize,
    watched: bool,
}

/// A tailer's interest in one path; dropping it ends the interest.
pub struct Registration {
    watch: Arc<FileWatch>,
    id: u64,
    path: PathBuf,
    dir: PathBuf,
    /// The path's directory is watched.
    watched: bool,
}

impl Registration {
    /// Do events arrive for this path? When not, the tailer polls as Promtail does.
    pub fn events_reliable(&self) -> bool {
        self.watched && !self.watch.routes.overflowed.load(Ordering::Relaxed)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.watch.unregister(self);
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // Updates leave the table consistent before anything can panic.
    table.lock().unwrap_or_else(|p| p.into_inner())
}

impl FileWatch {
    /// `enabled` false (`target_config.inotify: false`) never creates a watcher.
    pub fn new(enabled: bool, metrics: Arc<Metrics>) -> Arc<Self> {
        let routes = Arc::new(Routes {
            table: Mutex::new(Table::default()),
            overflowed: AtomicBool::new(false),
            watch_failure_logged: AtomicBool::new(false),
            metrics,
        });
        let watcher = if enabled {
            let r = routes.clone();
            match notify::recommended_watcher(move |res| r.route(res)) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "inotify unavailable; tailers poll every file_watch_config.min_poll_frequency");
                    routes
                        .metrics
                        .files
                        .watch_fallbacks
                        .with_label_values(&["init"])
                        .inc();
                    None
                }
            }
        } else {
            tracing::info!(
                "target_config.inotify is off; tailers poll every file_watch_config.min_poll_frequency"
            );
            None
        };
        Arc::new(Self {
            watcher: Mutex::new(watcher),
            routes,
        })
    }

    /// Wakes `wake` on changes of `path` while the registration lives.
    pub fn register(self: &Arc<Self>, path: &Path, wake: Arc<Notify>) -> Registration {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        let (id, first_in_dir) = {
            let mut t = lock(&self.routes.table);
            t.next_id += 1;
            let id = t.next_id;
            t.by_path
                .entry(path.to_path_buf())
                .or_default()
                .push((id, wake));
            let d = t.dirs.entry(dir.clone()).or_insert(Dir {
                paths: 0,
                watched: false,
            });
            d.paths += 1;
            (id, d.paths == 1)
        };
        if first_in_dir && let Some(w) = watcher.as_mut() {
            match w.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    if let Some(d) = lock(&self.routes.table).dirs.get_mut(&dir) {
                        d.watched = true;
                    }
                }
                Err(e) => self.routes.watch_failed(&dir, &e),
            }
        }
        let watched = lock(&self.routes.table)
            .dirs
            .get(&dir)
            .is_some_and(|d| d.watched);
        Registration {
            watch: self.clone(),
            id,
            path: path.to_path_buf(),
            dir,
            watched,
        }
    }

    fn unregister(&self, reg: &Registration) {
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        let unwatch = {
            let mut t = lock(&self.routes.table);
            if let Some(v) = t.by_path.get_mut(&reg.path) {
                v.retain(|(id, _)| *id != reg.id);
                if v.is_empty() {
                    t.by_path.remove(&reg.path);
                }
            }
            match t.dirs.get_mut(&reg.dir) {
                Some(d) if d.paths <= 1 => t.dirs.remove(&reg.dir).is_some_and(|d| d.watched),
                Some(d) => {
                    d.paths -= 1;
                    false
                }
                None => false,
            }
        };
        if unwatch && let Some(w) = watcher.as_mut() {
            // Fails when the directory is gone, which removed the watch already.
            let _ = w.unwatch(&reg.dir);
        }
    }
}

impl Routes {
    /// Runs on the watcher's thread for every event.
    fn route(&self, res: notify::Result<notify::Event>) {
        let event = match res {
            Ok(ev) if !ev.need_rescan() => ev,
            Ok(_) => return self.lost_events("inotify event queue overflowed"),
            Err(e) => return self.lost_events(&e.to_string()),
        };
        // Opens and closes without writing are our own reads; attribute changes carry no
        // data. Everything else may mean new data or another file at the path.
        let relevant = !matches!(
            event.kind,
            EventKind::Access(_)
                | EventKind::Other
                | EventKind::Modify(notify::event::ModifyKind::Metadata(_))
        );
        if !relevant {
            return;
        }
        let t = lock(&self.table);
        for p in &event.paths {
            if let Some(wakes) = t.by_path.get(p) {
                for (_, w) in wakes {
                    w.notify_one();
                }
            }
        }
    }

    /// Events may have been lost: every tailer looks once, and polling takes over.
    fn lost_events(&self, why: &str) {
        if !self.overflowed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                reason = why,
                "file events were lost; tailers poll every file_watch_config.min_poll_frequency from now on"
            );
        }
        self.metrics
            .files
            .watch_fallbacks
            .with_label_values(&["overflow"])
            .inc();
        let t = lock(&self.table);
        for wakes in t.by_path.values() {
            for (_, w) in wakes {
                w.notify_one();
            }
        }
    }

    fn watch_failed(&self, dir: &Path, e: &notify::Error) {
        if !self.watch_failure_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory (fs.inotify.max_user_watches?); its files are polled every file_watch_config.min_poll_frequency");
        } else {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot watch directory");
        }
        self.metrics
            .files
            .watch_fallbacks
            .with_label_values(&["watch"])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    async fn woken(n: &Notify, within: Duration) -> bool {
        tokio::time::timeout(within, n.notified()).await.is_ok()
    }

    #[tokio::test]
    async fn a_write_wakes_the_tailer_of_that_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let b = dir.path().join("b.log");
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        let watch = FileWatch::new(true, Arc::new(Metrics::new()));
        let (wa, wb) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let ra = watch.register(&a, wa.clone());
        let _rb = watch.register(&b, wb.clone());
        assert!(ra.events_reliable());
        // One watch for the directory, however many files are in it.
        assert_eq!(lock(&watch.routes.table).dirs.len(), 1);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&a)
            .unwrap()
            .write_all(b"x\n")
            .unwrap();
        assert!(woken(&wa, Duration::from_secs(5)).await);
        assert!(!woken(&wb, Duration::from_millis(200)).await);
        // A rename onto the path (rotation's create) wakes it too.
        std::fs::write(dir.path().join("new"), "y\n").unwrap();
        std::fs::rename(dir.path().join("new"), &b).unwrap();
        assert!(woken(&wb, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn reading_a_file_wakes_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        std::fs::write(&a, "x\n").unwrap();
        let watch = FileWatch::new(true, Arc::new(Metrics::new()));
        let wa = Arc::new(Notify::new());
        let _ra = watch.register(&a, wa.clone());
        let _ = std::fs::read(&a).unwrap();
        assert!(!woken(&wa, Duration::from_millis(200)).await);
    }

    #[tokio::test]
    async fn an_overflow_wakes_every_tailer_and_switches_to_polling() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let watch = FileWatch::new(true, metrics.clone());
        let wa = Arc::new(Notify::new());
        let wb = Arc::new(Notify::new());
        let ra = watch.register(&dir.path().join("a.log"), wa.clone());
        let rb = watch.register(&dir.path().join("b.log"), wb.clone());
        assert!(ra.events_reliable() && rb.events_reliable());
        let overflow = notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        watch.routes.route(Ok(overflow.clone()));
        watch.routes.route(Ok(overflow));
        assert!(woken(&wa, Duration::from_millis(50)).await);
        assert!(woken(&wb, Duration::from_millis(50)).await);
        assert!(!ra.events_reliable() && !rb.events_reliable());
        let overflows = metrics
            .files
            .watch_fallbacks
            .with_label_values(&["overflow"])
            .get();
        assert_eq!(overflows, 2);
    }

    #[tokio::test]
    async fn off_or_unwatchable_means_polling() {
        let dir = tempfile::tempdir().unwrap();
        let off = FileWatch::new(false, Arc::new(Metrics::new()));
        let r = off.register(&dir.path().join("a.log"), Arc::new(Notify::new()));
        assert!(!r.events_reliable());
        let metrics = Arc::new(Metrics::new());
        let on = FileWatch::new(true, metrics.clone());
        let r = on.register(
            Path::new("/nonexistent-tailward-dir/a.log"),
            Arc::new(Notify::new()),
        );
        assert!(!r.events_reliable());
        let failed = metrics
            .files
            .watch_fallbacks
            .with_label_values(&["watch"])
            .get();
        assert_eq!(failed, 1);
    }

    #[tokio::test]
    async fn the_last_registration_of_a_directory_removes_its_watch() {
        let dir = tempfile::tempdir().unwrap();
        let watch = FileWatch::new(true, Arc::new(Metrics::new()));
        let ra = watch.register(&dir.path().join("a.log"), Arc::new(Notify::new()));
        let rb = watch.register(&dir.path().join("b.log"), Arc::new(Notify::new()));
        drop(ra);
        assert_eq!(lock(&watch.routes.table).dirs.len(), 1);
        drop(rb);
        let t = lock(&watch.routes.table);
        assert!(t.dirs.is_empty() && t.by_path.is_empty());
    }
}
