//! Shared helpers for the end-to-end tests.

use std::time::{Duration, Instant};

pub mod agent_process;
pub mod container;
pub mod deb;
pub mod dockerd;
pub mod kube_apiserver;
pub mod kubelet_logs;
pub mod mmdb_writer;
pub mod nginx_fields;
pub mod numbered_lines;
pub mod push_client;
pub mod receiver;
pub mod stage_runner;
pub mod stdin_dry_run;
pub mod unprivileged_agent;

/// How often the waits below look again: short against any deadline a test sets, long
/// enough not to keep a core busy.
const POLL: Duration = Duration::from_millis(50);

/// Polls `cond` until it holds or `timeout` passed; whether it held. Blocks the thread, so in
/// an async test hold no lock the runtime needs while it runs (the receiver's tasks run on
/// the other workers).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// As [`wait_until`], yielding to the runtime between looks.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Gives something that must not happen (a duplicate, a line of a file that is to be
/// skipped) `window` to happen, once everything the test waits for has happened. It is not
/// synchronisation: no assertion may need it to pass, only the absence is judged after it,
/// and a longer window can only find more. Absence has no event to wait for, so this is the
/// one fixed wait a test keeps.
pub async fn watch_for_stragglers(window: Duration) {
    tokio::time::sleep(window).await;
}
