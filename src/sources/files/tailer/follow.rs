//! One tailer's loop over its path: opens the file at the path once every older one is read
//! to its end, reads every open file in turn, ships held unfinished lines when they are due,
//! closes drained files once quiet for `rotate_wait`, and sleeps until something changes.
//!
//! A tailer wakes when [`crate::sources::files::watch`] reports a change of its path
//! (inotify), and polls every 10 s (or `max_poll_frequency`, if longer) as a safety net;
//! where events cannot be trusted (inotify off or unavailable, events lost, a rotated file
//! being drained under another name, a path that is a symlink) it polls as Promtail does,
//! from `min_poll_frequency` backing off to `max_poll_frequency`.
//!
//! Owns the order of those steps and the waiting. What each step does lives beside it:
//! reading and splitting in [`super::reader`], what became of the path in
//! [`super::rotation`], closing idle files in [`super::parking`]. It must not split lines or
//! decide where a file starts, and reaches delivery only through each reader's
//! [`FilePosition`](crate::delivery::positions::FilePosition).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, mpsc, watch};

use super::parking::Parked;
use super::reader::{ReadOutcome, Reader};
use super::{Claims, TailOptions};
use crate::delivery::positions::{PositionsView, readable_key};
use crate::metrics::Metrics;
use crate::model::entry::LineBatch;
use crate::model::labels::LabelSet;
use crate::sources::files::open_files::Slot;
use crate::sources::files::watch::Registration;

/// How often a tailer looks at its file when inotify reports its changes: only to catch an
/// event that never came (Filebeat scans every 10 s by default). Idle files cost next to nothing.
const EVENT_SAFETY_NET_POLL: Duration = Duration::from_secs(10);

/// Whether the path is a symlink, looked at once per current file rather than once per
/// wake-up: putting a symlink at the path puts another file there, which the tailer takes for
/// a rotation and opens as its new current file.
#[derive(Default)]
struct PathKind {
    /// (device, inode) of the current file when it was looked at.
    looked_for: Option<(u64, u64)>,
    symlink: bool,
}

/// One path being followed.
pub(super) struct Tailer {
    pub(super) path: PathBuf,
    /// The path as per-path series and logs show it ([`readable`]).
    ///
    /// [`readable`]: crate::delivery::positions::readable
    pub(super) path_label: String,
    /// The path's positions key, from its exact bytes ([`key_of`]).
    ///
    /// [`key_of`]: crate::delivery::positions::key_of
    pub(super) key: String,
    pub(super) labels: Arc<LabelSet>,
    pub(super) positions: PositionsView,
    pub(super) out: mpsc::Sender<LineBatch>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) opts: TailOptions,
    pub(super) claims: Claims,
    /// Woken on changes of the path, and when asked to close the file to make room.
    pub(super) wake: Arc<Notify>,
    pub(super) watch: Registration,
    /// When the job's tailing began ([`TailerSet`](super::TailerSet)'s start).
    pub(super) job_started: SystemTime,
}

impl Tailer {
    /// Follows the path until stopped (what is open is drained first) or shut down; every
    /// file still open is closed, and its source with it, on the way out.
    pub(super) async fn run(
        self,
        mut slot: Slot,
        mut stop: watch::Receiver<bool>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // How much one read asks for (see `read_some`); the buffer itself is borrowed per read.
        let mut read_size = 0usize;
        let mut readers: Vec<Reader> = Vec::new();
        let mut kind = PathKind::default();
        let mut parked: Option<Parked> = None;
        let mut first_open = true;
        let mut rotated_at: Option<SystemTime> = None;
        let mut idle = self.opts.poll.min;
        let mut open_failures = 0u32;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let stopping = *stop.borrow();
            if let Some(p) = &parked {
                if stopping {
                    break;
                }
                if !p.changed(&self.path) {
                    self.wait(
                        idle,
                        &mut idle,
                        &readers,
                        &mut kind,
                        &mut stop,
                        &mut shutdown,
                    )
                    .await;
                    continue;
                }
                if !self.acquire(&mut slot, &mut stop, &mut shutdown).await {
                    continue;
                }
                let Some(p) = parked.take() else { continue };
                match self.reopen(p) {
                    Ok(r) => readers.push(r),
                    Err(p) => {
                        self.metrics
                            .files
                            .file_events
                            .with_label_values(&["deleted"])
                            .inc();
                        tracing::info!(path = %self.path_label, "file deleted while closed for max_open_files");
                        self.close_parked(p);
                        slot.release(false);
                        if !self.path.exists() {
                            break;
                        }
                    }
                }
            }
            // A new current file is opened once every older one has been read to its end,
            // so a rotated file's remainder goes out before the new file.
            let has_current = readers.iter().any(|r| !r.draining);
            if !stopping && !has_current && readers.iter().all(|r| r.at_eof) {
                // A slot is only worth waiting for when there is a file to open.
                if !slot.held()
                    && self.path.exists()
                    && !self.acquire(&mut slot, &mut stop, &mut shutdown).await
                {
                    continue;
                }
                if slot.held() {
                    match self.open_current(first_open, &mut rotated_at, &mut readers) {
                        Ok(()) => open_failures = 0,
                        Err(reason) => {
                            open_failures += 1;
                            // Logged once, then every 100th retry: the file may come back.
                            if open_failures == 1 || open_failures.is_multiple_of(100) {
                                tracing::warn!(path = %self.path_label, reason, "cannot open file; will retry");
                                self.metrics
                                    .files
                                    .file_errors
                                    .with_label_values(&[reason])
                                    .inc();
                            }
                        }
                    }
                }
                first_open = false;
            }

            let mut progressed = false;
            for r in readers.iter_mut() {
                match self.read_some(r, &mut read_size).await {
                    Ok(ReadOutcome::Lines) => progressed = true,
                    Ok(ReadOutcome::Eof) => {}
                    Ok(ReadOutcome::Closed) => {
                        self.close_all(&mut readers);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(path = %readable_key(&r.name), error = %e, "read failed; closing the file");
                        self.metrics
                            .files
                            .file_errors
                            .with_label_values(&["read"])
                            .inc();
                        r.draining = true;
                        r.at_eof = true;
                        r.last_growth = Instant::now() - self.opts.rotate_wait;
                    }
                }
            }

            if let Some(cur) = readers.iter_mut().find(|r| !r.draining && r.at_eof)
                && self.follow_path(cur, &mut rotated_at)
            {
                progressed = true;
            }

            let now = Instant::now();
            for r in readers.iter_mut() {
                // Only a file at its end has an unfinished last line: a line held at the edge
                // of the read buffer goes out whole with the next read, however long the
                // tailer waited for room downstream before that read.
                if r.at_eof
                    && !r.pending.is_empty()
                    && !r.skipping
                    && now.duration_since(r.pending_since) >= self.opts.partial_line_wait
                    && self.ship_pending(r).await.is_err()
                {
                    self.close_all(&mut readers);
                    return;
                }
            }
            let mut closed_any = false;
            let mut i = 0;
            while i < readers.len() {
                let r = &readers[i];
                let quiet = now.duration_since(r.last_growth) >= self.opts.rotate_wait;
                if r.at_eof && (r.draining || stopping) && (quiet || stopping) {
                    let mut r = readers.remove(i);
                    if !r.pending.is_empty()
                        && !r.skipping
                        && self.ship_pending(&mut r).await.is_err()
                    {
                        readers.push(r);
                        self.close_all(&mut readers);
                        return;
                    }
                    self.close(r);
                    closed_any = true;
                } else {
                    i += 1;
                }
            }
            if readers.is_empty() && (stopping || (closed_any && !self.path.exists())) {
                break;
            }

            if readers.is_empty() {
                slot.release(false);
            }

            if progressed {
                slot.touch();
                idle = self.opts.poll.min;
                continue;
            }
            if slot.close_requested() {
                match self.park(&mut readers, stopping) {
                    Some(p) => {
                        parked = Some(p);
                        slot.release(true);
                    }
                    None => slot.decline(),
                }
            }
            self.wait(
                idle,
                &mut idle,
                &readers,
                &mut kind,
                &mut stop,
                &mut shutdown,
            )
            .await;
        }
        if let Some(p) = parked.take() {
            self.close_parked(p);
        }
        self.close_all(&mut readers);
    }

    /// Sleeps until the path changes (or the tailer is asked to close its file), a deadline
    /// of a held line, or the next poll: `max_poll_frequency` when events are reliable, else
    /// `backoff` (Promtail's polling), which then doubles up to `max_poll_frequency`.
    async fn wait(
        &self,
        backoff: Duration,
        next_backoff: &mut Duration,
        readers: &[Reader],
        kind: &mut PathKind,
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        // A symlinked path raises no event when its target is written (the watch is on the
        // link's directory), so such a path is polled as if inotify were off.
        let current = readers
            .iter()
            .find(|r| !r.draining)
            .map(|r| (r.identity.dev, r.identity.ino));
        if current.is_none() || kind.looked_for != current {
            kind.symlink =
                std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_symlink());
            kind.looked_for = current;
        }
        let events =
            self.watch.events_reliable() && readers.iter().all(|r| !r.draining) && !kind.symlink;
        let mut sleep = if events {
            self.opts.poll.max.max(EVENT_SAFETY_NET_POLL)
        } else {
            backoff
        };
        let now = Instant::now();
        for r in readers {
            if r.at_eof && !r.pending.is_empty() && !r.skipping {
                let due = r.pending_since + self.opts.partial_line_wait;
                sleep = sleep.min(due.saturating_duration_since(now));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = self.wake.notified() => {}
            _ = stop.changed() => {}
            _ = shutdown.changed() => {}
        }
        if !events {
            *next_backoff = (backoff * 2)
                .min(self.opts.poll.max)
                .max(self.opts.poll.min);
        }
    }

    /// Waits for an open-file slot; false when stopping or shutdown interrupted the wait.
    async fn acquire(
        &self,
        slot: &mut Slot,
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        tokio::select! {
            _ = slot.acquire() => true,
            _ = stop.changed() => false,
            _ = shutdown.changed() => false,
        }
    }

    pub(super) fn close_all(&self, readers: &mut Vec<Reader>) {
        for r in readers.drain(..) {
            self.close(r);
        }
        // Per-path series go when the tailer stops, as in Promtail.
        let fm = &self.metrics.files;
        let _ = fm.read_bytes.remove_label_values(&[&self.path_label]);
        let _ = fm.file_bytes.remove_label_values(&[&self.path_label]);
        let _ = fm.read_lines.remove_label_values(&[&self.path_label]);
        let _ = fm.file_lag_bytes.remove_label_values(&[&self.path_label]);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::model::ack::AckToken;
    use crate::model::labels::LabelSet;
    use crate::sources::files::tailer::test_harness::{
        Harness, append, collect, harness, harness_with, nothing_more, opts,
    };
    use crate::sources::files::tailer::{PollConfig, TailOptions};

    /// Polls every 10s at most: a line arriving within that came from an inotify wake-up.
    fn slow_poll() -> TailOptions {
        TailOptions {
            poll: PollConfig {
                min: Duration::from_secs(10),
                max: Duration::from_secs(10),
            },
            ..opts()
        }
    }

    async fn arrives_within(h: &mut Harness, within: Duration) -> Option<String> {
        let b = tokio::time::timeout(within, h.rx.recv()).await.ok()??;
        let line = b.iter().next().map(|(l, _)| l.to_string());
        let tokens: Vec<AckToken> = b.iter().filter_map(|(_, a)| a).collect();
        h.acks.settle(tokens);
        line
    }

    #[tokio::test]
    async fn appended_line_arrives_without_waiting_for_the_poll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "first\n").unwrap();
        let mut h = harness(dir.path(), slow_poll());
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut h, 1).await[0].0, "first");
        // The tailer is asleep until its next poll, 10s away.
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&path, "second\n");
        let got = arrives_within(&mut h, Duration::from_secs(5)).await;
        assert_eq!(got.as_deref(), Some("second"));
    }

    #[tokio::test]
    async fn without_inotify_appended_lines_are_found_by_polling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "first\n").unwrap();
        let polling = TailOptions {
            poll: PollConfig {
                min: Duration::from_millis(10),
                max: Duration::from_secs(10),
            },
            ..opts()
        };
        let mut h = harness_with(dir.path(), polling, false, 0);
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut h, 1).await[0].0, "first");
        append(&path, "second\n");
        // Polls back off from min_poll_frequency: the next one is well within 5s.
        let got = arrives_within(&mut h, Duration::from_secs(5)).await;
        assert_eq!(got.as_deref(), Some("second"));
        // And with a slow poll and no inotify, nothing wakes the tailer early.
        let path_b = dir.path().join("b.log");
        std::fs::write(&path_b, "b1\n").unwrap();
        let mut slow = harness_with(dir.path(), slow_poll(), false, 0);
        slow.set.start(&path_b, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut slow, 1).await[0].0, "b1");
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&path_b, "b2\n");
        nothing_more(&mut slow.rx, Duration::from_secs(1)).await;
    }
}
