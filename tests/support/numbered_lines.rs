//! Numbered log lines for loss and duplication tests: writing them (at a steady rate, as an
//! application that reopens its log when rotated away would), and tallying what a receiver got
//! against what was written, so a failure names the missing and repeated numbers.
//!
//! It must not know how files are rotated or read; the tests drive rotation themselves.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::receiver::Receiver;

/// Padding that makes lines realistic in size (~100 bytes) so rotations move real volume.
const PADDING: &str = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod";

/// The text of line `i`.
pub fn line(i: usize) -> String {
    format!("seq={i:07} {PADDING}")
}

/// The number a line written by [`line`] carries.
pub fn number_of(line: &str) -> Option<usize> {
    line.strip_prefix("seq=")?.get(..7)?.parse().ok()
}

/// Appends lines `from..to` to `path` (created if missing), one `write` per line.
pub fn append(path: &Path, from: usize, to: usize) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log for append");
    for i in from..to {
        f.write_all(format!("{}\n", line(i)).as_bytes())
            .expect("append line");
    }
}

/// A writing application: appends each line with its own `write(2)` (as a logger that flushes
/// every record does), and, when `reopen_when_replaced`, reopens its log as soon as another
/// file is at the path, the way an application reopens on logrotate's `postrotate` signal.
/// It never creates the file after the first open, so a rotator's `create` is not raced.
pub struct Writer {
    path: std::path::PathBuf,
    file: File,
    ino: u64,
    reopen_when_replaced: bool,
    /// How many lines are fully written (line numbers below it are on disk).
    pub written: Arc<AtomicUsize>,
    /// How many times the writer switched to a new file.
    pub reopens: usize,
}

impl Writer {
    pub fn create(path: &Path, reopen_when_replaced: bool) -> Writer {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("create log");
        let ino = file.metadata().expect("stat log").ino();
        Writer {
            path: path.to_path_buf(),
            file,
            ino,
            reopen_when_replaced,
            written: Arc::new(AtomicUsize::new(0)),
            reopens: 0,
        }
    }

    /// Writes lines `from..to`, spreading them evenly over `duration`.
    pub fn write_paced(&mut self, from: usize, to: usize, duration: Duration) {
        let start = Instant::now();
        let per_line = duration.as_secs_f64() / (to - from).max(1) as f64;
        let mut buf = String::new();
        for i in from..to {
            if self.reopen_when_replaced {
                self.reopen_if_replaced();
            }
            buf.clear();
            buf.push_str(&line(i));
            buf.push('\n');
            self.file.write_all(buf.as_bytes()).expect("write line");
            self.written.store(i + 1, Ordering::SeqCst);
            let due = start + Duration::from_secs_f64(per_line * (i + 1 - from) as f64);
            // Sleeping per line would oversleep; catch up in small bursts instead.
            if let Some(ahead) = due.checked_duration_since(Instant::now())
                && ahead > Duration::from_millis(2)
            {
                std::thread::sleep(ahead);
            }
        }
    }

    fn reopen_if_replaced(&mut self) {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            // Between the rotator's rename and its create: keep writing to the old file.
            return;
        };
        if meta.ino() == self.ino {
            return;
        }
        if let Ok(f) = OpenOptions::new().append(true).open(&self.path) {
            self.ino = f.metadata().map(|m| m.ino()).unwrap_or(meta.ino());
            self.file = f;
            self.reopens += 1;
        }
    }
}

/// What a receiver got, compared with the numbers written.
pub struct Tally {
    pub expected: std::ops::Range<usize>,
    /// Numbers in `expected` never received.
    pub missing: Vec<usize>,
    /// Numbers received more than once, with how often.
    pub repeated: BTreeMap<usize, usize>,
    /// Lines that carry no number, or one outside `expected`.
    pub unexpected: Vec<String>,
}

impl Tally {
    pub fn of<'a>(
        lines: impl IntoIterator<Item = &'a str>,
        expected: std::ops::Range<usize>,
        number: impl Fn(&str) -> Option<usize>,
    ) -> Tally {
        let mut counts = vec![0usize; expected.end];
        let mut unexpected = Vec::new();
        for l in lines {
            match number(l) {
                Some(n) if expected.contains(&n) => counts[n] += 1,
                _ => unexpected.push(l.to_string()),
            }
        }
        let missing = expected.clone().filter(|&n| counts[n] == 0).collect();
        let repeated = expected
            .clone()
            .filter(|&n| counts[n] > 1)
            .map(|n| (n, counts[n]))
            .collect();
        Tally {
            expected,
            missing,
            repeated,
            unexpected,
        }
    }

    pub fn exactly_once(&self) -> bool {
        self.missing.is_empty() && self.repeated.is_empty() && self.unexpected.is_empty()
    }

    /// Missing numbers as inclusive runs, e.g. `[(10, 19), (40, 40)]`.
    pub fn missing_runs(&self) -> Vec<(usize, usize)> {
        runs(&self.missing)
    }
}

/// Sorted numbers as inclusive runs of consecutive values.
pub fn runs(sorted: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &n in sorted {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => out.push((n, n)),
        }
    }
    out
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let runs = self.missing_runs();
        let repeated_runs = runs_of_keys(&self.repeated);
        write!(
            f,
            "expected {:?}: {} missing in {} runs {:?}{}; {} repeated in runs {:?}{}; {} unexpected {:?}",
            self.expected,
            self.missing.len(),
            runs.len(),
            &runs[..runs.len().min(20)],
            if runs.len() > 20 { " ..." } else { "" },
            self.repeated.len(),
            &repeated_runs[..repeated_runs.len().min(20)],
            if repeated_runs.len() > 20 { " ..." } else { "" },
            self.unexpected.len(),
            &self.unexpected[..self.unexpected.len().min(5)],
        )
    }
}

fn runs_of_keys(map: &BTreeMap<usize, usize>) -> Vec<(usize, usize)> {
    runs(&map.keys().copied().collect::<Vec<_>>())
}

/// Waits until the receiver holds at least `n` entries (or `timeout` passed), then until no
/// entry has arrived for `quiet`, so late duplicates are counted too. Returns the lines.
pub async fn settled_lines(
    receiver: &Receiver,
    n: usize,
    timeout: Duration,
    quiet: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    receiver.wait_for_entries(n, timeout).await;
    let mut count = receiver.received().len();
    let mut last_change = Instant::now();
    while last_change.elapsed() < quiet && Instant::now() < deadline + quiet {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = receiver.received().len();
        if now != count {
            count = now;
            last_change = Instant::now();
        }
    }
    receiver.received().into_iter().map(|e| e.line).collect()
}
