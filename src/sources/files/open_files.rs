//! The bound on log files held open at once (`target_config.max_open_files`).
//!
//! Owns the count of tailers holding a file open and the order in which they were last
//! active. A tailer takes a [`Slot`] before opening its file; when every slot is taken it
//! waits, and the least recently active holder is asked to close its file (it does so when
//! it is idle, or declines and another is asked). The closed file is reopened, and checked
//! to be the same file by identity, when it changes again: that is the tailer's business,
//! not this module's, which never touches files.
//!
//! The unit is a tailer, not a descriptor: a tailer that is draining a rotated file holds
//! the old and the new file on one slot for up to `rotate_wait`, so descriptors can exceed
//! the bound by the number of files rotating at that moment. Files written more often than
//! others are less likely to be closed; when more files are written at once than the bound
//! allows, they take turns (each is read when it gets a slot), so the bound should exceed
//! the number of files written at the same time.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::metrics::Metrics;

/// Descriptors kept for everything but log files: client and server sockets, the positions
/// file, inotify, the runtime's own.
const RESERVED_DESCRIPTORS: u64 = 64;

/// The bound to apply for `max_open_files`: when the process's descriptor limit is too low
/// for it, the soft limit is raised toward the hard one (as Go programs, Promtail among them,
/// do at start); if that is not enough the bound is lowered to fit, with a warning.
/// `others` is what the rest of the agent may hold at once (the HTTP server's connection
/// limit): kept out of the files' share, so a flood of connections cannot take descriptors
/// the tailers, positions and clients need.
pub fn fit_to_descriptor_limit(max: usize, others: usize) -> usize {
    if max == 0 {
        return 0;
    }
    let reserved = RESERVED_DESCRIPTORS + others as u64;
    let wanted = max as u64 + reserved;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return max;
    }
    if lim.rlim_cur >= wanted {
        return max;
    }
    let raised = libc::rlimit {
        rlim_cur: wanted.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct we pass, which lives for the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        lim.rlim_cur = raised.rlim_cur;
    }
    if lim.rlim_cur >= wanted {
        return max;
    }
    let fitted = lim.rlim_cur.saturating_sub(reserved).max(1) as usize;
    tracing::warn!(
        max_open_files = max,
        descriptor_limit = lim.rlim_cur,
        applied = fitted,
        "target_config.max_open_files is above the descriptor limit (ulimit -n); using a lower bound"
    );
    fitted
}

/// The budget shared by every tailer of the agent.
pub struct OpenFiles {
    max: usize,
    state: Mutex<State>,
    /// Signalled once per slot given back (or declined eviction), for one waiter.
    freed: Notify,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct State {
    open: usize,
    tick: u64,
    next_id: u64,
    holders: HashMap<u64, Holder>,
    /// Holders not yet asked to close, least recently active first: (tick, id).
    by_activity: BTreeSet<(u64, u64)>,
    /// Tailers waiting for a slot.
    waiting: usize,
    /// Holders asked to close that have not answered yet.
    asked: usize,
}

struct Holder {
    tick: u64,
    wake: Arc<Notify>,
    close_requested: Arc<AtomicBool>,
}

impl OpenFiles {
    /// `max` 0 means no bound.
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            max: if max == 0 { usize::MAX } else { max },
            state: Mutex::new(State::default()),
            freed: Notify::new(),
            metrics,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update keeps the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one tailer, woken through `wake` when asked to close its file.
    pub fn slot(self: &Arc<Self>, wake: Arc<Notify>) -> Slot {
        let id = {
            let mut st = self.state();
            st.next_id += 1;
            st.next_id
        };
        Slot {
            files: self.clone(),
            id,
            wake,
            close_requested: Arc::new(AtomicBool::new(false)),
            held: false,
        }
    }

    /// Files held open now.
    pub fn open(&self) -> usize {
        self.state().open
    }

    /// Asks least recently active holders to close until there is one request per waiter.
    fn ask_to_close(st: &mut State) {
        while st.asked < st.waiting {
            let Some(&(tick, id)) = st.by_activity.iter().next() else {
                return;
            };
            st.by_activity.remove(&(tick, id));
            if let Some(h) = st.holders.get(&id) {
                h.close_requested.store(true, Ordering::SeqCst);
                h.wake.notify_one();
                st.asked += 1;
            }
        }
    }
}

/// One tailer's right to hold its file open.
pub struct Slot {
    files: Arc<OpenFiles>,
    id: u64,
    wake: Arc<Notify>,
    close_requested: Arc<AtomicBool>,
    held: bool,
}

/// Takes a waiting tailer off the count if it stops waiting before getting a slot.
struct Waiting<'a> {
    files: &'a OpenFiles,
    counted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.files.state().waiting -= 1;
        }
    }
}

impl Slot {
    pub fn held(&self) -> bool {
        self.held
    }

    /// Waits for a slot (no-op when one is held). Cancel-safe.
    pub async fn acquire(&mut self) {
        if self.held {
            return;
        }
        let files = self.files.clone();
        let mut waiting = Waiting {
            files: &files,
            counted: false,
        };
        loop {
            let freed = files.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a slot given back in between is not missed.
            freed.as_mut().enable();
            {
                let mut st = files.state();
                if st.open < files.max {
                    if waiting.counted {
                        st.waiting -= 1;
                        waiting.counted = false;
                    }
                    st.open += 1;
                    st.tick += 1;
                    let tick = st.tick;
                    st.holders.insert(
                        self.id,
                        Holder {
                            tick,
                            wake: self.wake.clone(),
                            close_requested: self.close_requested.clone(),
                        },
                    );
                    st.by_activity.insert((tick, self.id));
                    self.close_requested.store(false, Ordering::SeqCst);
                    self.held = true;
                    files.metrics.files.open_files.set(st.open as f64);
                    // Tailers still waiting need a holder to make room: maybe this one.
                    OpenFiles::ask_to_close(&mut st);
                    return;
                }
                if !waiting.counted {
                    st.waiting += 1;
                    waiting.counted = true;
                }
                OpenFiles::ask_to_close(&mut st);
            }
            freed.await;
        }
    }

    /// The file was active (read something): it goes to the back of the closing order.
    pub fn touch(&self) {
        if !self.held {
            return;
        }
        let mut st = self.files.state();
        st.tick += 1;
        let tick = st.tick;
        let id = self.id;
        let Some(h) = st.holders.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut h.tick, tick);
        // An asked holder is off the order until it answers.
        if st.by_activity.remove(&(old, id)) {
            st.by_activity.insert((tick, id));
        }
    }

    /// Has the budget asked this tailer to close its file?
    pub fn close_requested(&self) -> bool {
        self.held && self.close_requested.load(Ordering::SeqCst)
    }

    /// Cannot close now (mid-rotation, holding an unfinished line): another holder is asked,
    /// and this one goes to the back of the order.
    pub fn decline(&self) {
        if !self.close_requested() {
            return;
        }
        self.close_requested.store(false, Ordering::SeqCst);
        let mut st = self.files.state();
        st.tick += 1;
        let tick = st.tick;
        let id = self.id;
        if let Some(h) = st.holders.get_mut(&id) {
            h.tick = tick;
            st.by_activity.insert((tick, id));
            st.asked -= 1;
        }
        OpenFiles::ask_to_close(&mut st);
    }

    /// The tailer closed its files; `evicted` when it did so because it was asked.
    pub fn release(&mut self, evicted: bool) {
        if !self.held {
            return;
        }
        self.held = false;
        let mut st = self.files.state();
        if let Some(h) = st.holders.remove(&self.id)
            && !st.by_activity.remove(&(h.tick, self.id))
        {
            // It was asked (off the order): the request is answered.
            st.asked -= 1;
        }
        self.close_requested.store(false, Ordering::SeqCst);
        st.open -= 1;
        self.files.metrics.files.open_files.set(st.open as f64);
        if evicted {
            self.files.metrics.files.idle_file_closes.inc();
        }
        drop(st);
        self.files.freed.notify_one();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn budget(max: usize) -> Arc<OpenFiles> {
        OpenFiles::new(max, Arc::new(Metrics::new()))
    }

    fn slot(files: &Arc<OpenFiles>) -> (Slot, Arc<Notify>) {
        let wake = Arc::new(Notify::new());
        (files.slot(wake.clone()), wake)
    }

    async fn acquired(s: &mut Slot) -> bool {
        tokio::time::timeout(Duration::from_millis(50), s.acquire())
            .await
            .is_ok()
    }

    /// A tailer waiting for a slot in the background; yields the slot once it has one.
    fn waiter(files: &Arc<OpenFiles>) -> tokio::task::JoinHandle<Slot> {
        let (mut s, _) = slot(files);
        tokio::spawn(async move {
            s.acquire().await;
            s
        })
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn over_the_bound_the_least_recently_active_holder_is_asked_to_close() {
        let files = budget(2);
        let (mut a, _) = slot(&files);
        let (mut b, _) = slot(&files);
        assert!(acquired(&mut a).await);
        assert!(acquired(&mut b).await);
        // `a` was opened first but read since: `b` is now the least recently active.
        a.touch();
        let c = waiter(&files);
        settle().await;
        assert!(!c.is_finished(), "no third slot while two are held");
        assert!(b.close_requested());
        assert!(!a.close_requested());
        b.release(true);
        let c = tokio::time::timeout(Duration::from_secs(1), c).await;
        let c = c.expect("slot given").expect("waiter ran");
        assert!(c.held());
        assert_eq!(files.open(), 2);
        assert_eq!(files.metrics.files.idle_file_closes.get(), 1);
    }

    #[tokio::test]
    async fn a_declined_request_goes_to_the_next_holder() {
        let files = budget(2);
        let (mut a, _) = slot(&files);
        let (mut b, _) = slot(&files);
        assert!(acquired(&mut a).await);
        assert!(acquired(&mut b).await);
        let c = waiter(&files);
        settle().await;
        assert!(a.close_requested());
        assert!(!b.close_requested());
        // `a` is mid-rotation: it declines, so `b` is asked.
        a.decline();
        assert!(!a.close_requested());
        assert!(b.close_requested());
        b.release(true);
        let c = tokio::time::timeout(Duration::from_secs(1), c).await;
        assert!(c.is_ok_and(|c| c.is_ok_and(|c| c.held())));
        assert!(!a.close_requested());
    }

    #[tokio::test]
    async fn one_holder_is_asked_per_waiter_and_woken() {
        let files = budget(3);
        let mut holders = Vec::new();
        for _ in 0..3 {
            let (mut s, wake) = slot(&files);
            assert!(acquired(&mut s).await);
            holders.push((s, wake));
        }
        let _w1 = waiter(&files);
        let _w2 = waiter(&files);
        settle().await;
        let asked: Vec<bool> = holders.iter().map(|(s, _)| s.close_requested()).collect();
        assert_eq!(asked, vec![true, true, false]);
        // The asked holders were woken: their next wait returns at once.
        for (_, wake) in &holders[..2] {
            tokio::time::timeout(Duration::from_millis(50), wake.notified())
                .await
                .expect("asked holder woken");
        }
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_no_request_behind() {
        let files = budget(1);
        let (mut a, _) = slot(&files);
        assert!(acquired(&mut a).await);
        let (mut b, _) = slot(&files);
        assert!(!acquired(&mut b).await);
        assert_eq!(
            files.state().waiting,
            0,
            "the cancelled wait is not counted"
        );
        // The request already made stays answered by `a` giving its slot back.
        a.release(true);
        let (mut c, _) = slot(&files);
        assert!(acquired(&mut c).await);
        assert_eq!(files.state().asked, 0);
    }

    #[tokio::test]
    async fn zero_means_no_bound() {
        let files = budget(0);
        let mut held = Vec::new();
        for _ in 0..100 {
            let (mut s, _) = slot(&files);
            assert!(acquired(&mut s).await);
            held.push(s);
        }
        assert_eq!(files.open(), 100);
    }
}
