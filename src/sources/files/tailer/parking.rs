//! Parking: closing idle files to stay within `target_config.max_open_files`
//! ([`crate::sources::files::open_files`]) and reopening them.
//!
//! Asked to make room, a tailer whose file is idle (at its end, no unfinished line, not
//! mid-rotation) closes it and remembers its identity, offset, size and mtime; its source in
//! delivery stays open meanwhile. When a stat of the path shows a change, it reopens the
//! file by identity (the file at the path if it has the same device and inode, else the file
//! of that inode in the directory, i.e. rotated while closed) and the usual checks of
//! [`super::rotation`] follow: a changed head or a size below the offset is a truncation,
//! another file at the path a rotation (the old file is drained first). Limit: lines
//! appended to a closed file that is then deleted (or moved out of its directory) before the
//! tailer reopens it are lost, as the file can no longer be found.
//!
//! Owns [`Parked`] and the close/reopen pair. It must not read lines, and never parks a file
//! with anything held (an unfinished line, a rotated file still draining).

use std::fs::Metadata;
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::time::{Instant, SystemTime};

use super::follow::Tailer;
use super::open::open_regular;
use super::reader::Reader;
use super::rotation::find_by_inode;
use crate::delivery::file_identity::FileIdentity;
use crate::delivery::positions::FilePosition;
use crate::delivery::positions::readable_key;

/// A current file closed while idle to stay within `max_open_files`, with what is needed to
/// find it again and to tell whether it changed.
pub(super) struct Parked {
    identity: FileIdentity,
    name: String,
    cursor: u64,
    position: FilePosition,
    len: u64,
    mtime: Option<SystemTime>,
    last_growth: Instant,
}

impl Parked {
    /// Did the path change since the file was closed (grew, shrank, rewritten, replaced,
    /// gone)? One stat; the file itself is checked when reopened.
    pub(super) fn changed(&self, path: &Path) -> bool {
        match std::fs::metadata(path) {
            Ok(m) => {
                !self.identity.same_inode(&m)
                    || m.len() != self.len
                    || m.modified().ok() != self.mtime
            }
            Err(_) => true,
        }
    }
}

impl Tailer {
    /// Closes the current file if it is idle: at its end, no unfinished or over-long line
    /// held, no rotated file being drained.
    pub(super) fn park(&self, readers: &mut Vec<Reader>, stopping: bool) -> Option<Parked> {
        let [r] = readers.as_slice() else {
            return None;
        };
        if stopping || r.draining || !r.at_eof || !r.pending.is_empty() || r.skipping {
            return None;
        }
        let meta = r.file.metadata().ok()?;
        if meta.len() != r.cursor {
            return None;
        }
        let r = readers.pop()?;
        tracing::debug!(path = %readable_key(&r.name), offset = r.cursor, "closing idle file (max_open_files)");
        Some(Parked {
            identity: r.identity,
            name: r.name,
            cursor: r.cursor,
            position: r.position,
            len: meta.len(),
            mtime: meta.modified().ok(),
            last_growth: r.last_growth,
        })
    }

    /// Reopens a closed file by identity: at the path if the same inode is still there,
    /// else under the name it was rotated to. Gives it back when it is gone.
    pub(super) fn reopen(&self, p: Parked) -> Result<Reader, Parked> {
        let same = |m: &Metadata| p.identity.same_inode(m);
        let opened = match open_regular(&self.path, self.opts.follow_symlinks_outside) {
            Ok((file, meta)) if same(&meta) => Some(file),
            _ => find_by_inode(&self.path, &p.identity)
                .and_then(|q| open_regular(&q, self.opts.follow_symlinks_outside).ok())
                .filter(|(_, meta)| same(meta))
                .map(|(file, _)| file),
        };
        let Some(mut file) = opened else {
            return Err(p);
        };
        if file.seek(SeekFrom::Start(p.cursor)).is_err() {
            return Err(p);
        }
        tracing::debug!(path = %readable_key(&p.name), offset = p.cursor, "reopened idle file");
        Ok(Reader {
            file,
            identity: p.identity,
            name: p.name,
            cursor: p.cursor,
            pending: Vec::new(),
            pending_since: Instant::now(),
            skipping: false,
            position: p.position,
            last_growth: p.last_growth,
            draining: false,
            // As when it was closed: the next read checks it is still the same file.
            at_eof: true,
            reported_at: Instant::now(),
        })
    }

    /// Gives up a parked file for good: delivery learns it was handed on to where it stopped.
    pub(super) fn close_parked(&self, p: Parked) {
        p.position.close(p.cursor);
        self.claims.release(&p.identity);
        self.metrics.files.files_active.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::model::labels::LabelSet;
    use crate::sources::files::tailer::test_harness::{
        append, collect, harness_with, nothing_more, opts,
    };

    fn open_descriptors_of(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(dir)))
            .count()
    }

    #[tokio::test]
    async fn idle_files_are_closed_over_the_bound_and_reopened_by_identity() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let names = ["a.log", "b.log", "c.log"];
        for n in names {
            std::fs::write(logs.join(n), format!("{n} 1\n")).unwrap();
        }
        let mut h = harness_with(dir.path(), opts(), true, 1);
        for n in names {
            h.set.start(&logs.join(n), Arc::new(LabelSet::new()));
        }
        let mut got: Vec<String> = collect(&mut h, 3).await.into_iter().map(|l| l.0).collect();
        got.sort();
        assert_eq!(got, vec!["a.log 1", "b.log 1", "c.log 1"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(open_descriptors_of(&logs) <= 1, "at most one log file open");
        assert!(h.metrics.files.idle_file_closes.get() >= 2);

        // Appends to closed files: each is reopened where it stopped.
        for n in names {
            append(&logs.join(n), &format!("{n} 2\n"));
        }
        let got = collect(&mut h, 3).await;
        let mut lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        lines.sort();
        assert_eq!(lines, vec!["a.log 2", "b.log 2", "c.log 2"]);
        assert!(
            got.iter().all(|(_, end)| *end == 16),
            "offsets continue: {got:?}"
        );

        // Rotated while closed: the rest of the old file, then the new one, once each.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let a = logs.join("a.log");
        append(&a, "a.log 3\n");
        std::fs::rename(&a, logs.join("a.log.1")).unwrap();
        std::fs::write(&a, "new a 1\n").unwrap();
        let got = collect(&mut h, 2).await;
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(lines, vec!["a.log 3", "new a 1"]);
        nothing_more(&mut h.rx, Duration::from_millis(500)).await;
        assert!(
            open_descriptors_of(&logs) <= 2,
            "the bound holds (plus a drain)"
        );
    }

    #[tokio::test]
    async fn a_file_truncated_while_closed_is_read_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let b = dir.path().join("b.log");
        std::fs::write(&a, "aaaa 1\naaaa 2\n").unwrap();
        std::fs::write(&b, "b 1\n").unwrap();
        let mut h = harness_with(dir.path(), opts(), true, 1);
        h.set.start(&a, Arc::new(LabelSet::new()));
        h.set.start(&b, Arc::new(LabelSet::new()));
        collect(&mut h, 3).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // copytruncate while closed, regrown to the same size.
        std::fs::write(&a, "zzzz 1\nzzzz 2\n").unwrap();
        let got = collect(&mut h, 2).await;
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(lines, vec!["zzzz 1", "zzzz 2"]);
        nothing_more(&mut h.rx, Duration::from_millis(300)).await;
    }

    #[tokio::test]
    async fn a_file_deleted_while_closed_ends_its_tailer_and_a_new_one_is_read_from_0() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let (a, b) = (logs.join("a.log"), logs.join("b.log"));
        std::fs::write(&a, "a 1\n").unwrap();
        std::fs::write(&b, "b 1\n").unwrap();
        let mut h = harness_with(dir.path(), opts(), true, 1);
        h.set.start(&a, Arc::new(LabelSet::new()));
        h.set.start(&b, Arc::new(LabelSet::new()));
        collect(&mut h, 2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let closed_before = h.metrics.files.idle_file_closes.get();
        assert!(closed_before >= 1);
        std::fs::remove_file(&a).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(h.set.paths(), vec![b.clone()], "a's tailer ended");
        assert!(open_descriptors_of(&logs) <= 1);
        // Recreated: a new file, read from its start.
        std::fs::write(&a, "new a 1\n").unwrap();
        h.set.start(&a, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut h, 1).await, vec![("new a 1".into(), 8)]);
    }
}
