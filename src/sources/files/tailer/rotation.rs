//! Rotation and identity: which file is which (device, inode and head fingerprint, see
//! [`FileIdentity`]) and what became of the path while its file was at its end.
//!
//! - rename + create (RotatingFileHandler, logrotate `create`): the old file is marked
//!   draining (read until quiet for `rotate_wait`), its position follows it to its new name,
//!   and the file now at the path is opened;
//! - copytruncate: a size below the read offset, or a changed head, is a truncation: reading
//!   restarts at 0 under a new source, so late acks of the old content cannot move the new
//!   content's position, and nothing read before is sent again;
//! - delete: the file is drained, then closed;
//! - rotated files still to read: on the first open after a start, the file last read under
//!   this path (found under its new name) and those rotated after it; after a rotation seen
//!   while running, files rotated in between when rotations came faster than our polls.
//!   They are read, oldest first, before the file now at the path;
//! - a rotated file whose reader closed with lines still unacknowledged is read on through
//!   that reader's source, reopened: what it handed on is not read again, and its position
//!   still waits for those lines (a restart before they are delivered reads them again).
//!
//! Owns opening the current file and queueing rotated ones, and reports renames and grown
//! fingerprints to each file's [`FilePosition`](crate::delivery::positions::FilePosition).
//! Where each file starts is [`super::resume`]'s answer. It must not read or split lines.

use std::fs::{File, Metadata};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::follow::Tailer;
use super::open::{OpenError, open_regular};
use super::reader::Reader;
use super::resume;
use crate::delivery::file_identity::FileIdentity;
use crate::delivery::positions::{key_of, readable_key};

/// What became of the path while its file was at EOF.
enum PathState {
    Same,
    Truncated,
    /// Another file is at the path now; ours was renamed (to the name given, if found).
    Replaced(Option<PathBuf>),
    Gone,
}

impl Tailer {
    /// Follows what became of the path while `cur`, its current file, was at its end: reads
    /// a truncated file again from its start, marks a rotated or deleted one draining (a
    /// rotation also notes when, in `rotated_at`, so files rotated since are found). True
    /// when there is something to read at once.
    pub(super) fn follow_path(
        &self,
        cur: &mut Reader,
        rotated_at: &mut Option<SystemTime>,
    ) -> bool {
        match self.path_state(cur) {
            PathState::Same => false,
            PathState::Truncated => {
                self.restart_truncated(cur);
                true
            }
            PathState::Replaced(new_name) => {
                self.metrics
                    .files
                    .file_events
                    .with_label_values(&["rotated"])
                    .inc();
                tracing::info!(path = %self.path_label, renamed_to = ?new_name, "file rotated; draining the old file, reading the new one");
                if let Some(n) = new_name {
                    cur.name = key_of(&n);
                    cur.position.renamed(&cur.name);
                }
                *rotated_at = cur.file.metadata().and_then(|m| m.modified()).ok();
                cur.draining = true;
                true
            }
            PathState::Gone => {
                self.metrics
                    .files
                    .file_events
                    .with_label_values(&["deleted"])
                    .inc();
                tracing::info!(path = %self.path_label, "file deleted; draining it");
                cur.draining = true;
                false
            }
        }
    }

    /// Opens the file now at the path, resuming where delivery of that file stopped.
    /// Rotated files nobody has read yet are queued before it: on the first open after a
    /// start, the file last read under this path (found under its new name) and those
    /// rotated after it (for a path never read before: those written since the job started);
    /// after a rotation seen while running (`rotated_at`, the old file's
    /// last write), files rotated in between, when rotations came faster than our polls.
    pub(super) fn open_current(
        &self,
        first_open: bool,
        rotated_at: &mut Option<SystemTime>,
        readers: &mut Vec<Reader>,
    ) -> Result<(), &'static str> {
        let (file, meta) = match open_regular(&self.path, self.opts.follow_symlinks_outside) {
            Ok(fm) => fm,
            Err(OpenError::Missing) => return Ok(()),
            Err(OpenError::Other(reason)) => return Err(reason),
        };
        let identity = FileIdentity::of(&file, &meta).map_err(|_| "read")?;
        // Another tailer of this job still reads this file under an older name.
        if !self.claims.claim(&identity) {
            return Ok(());
        }
        // A source of this file that closed with lines still unacknowledged (its reader saw
        // it rotated to this name) goes on where it stopped: what it handed on is neither
        // read again nor taken as delivered before it is.
        let continued = match self
            .positions
            .reopen_file(&self.key, |id| id.matches(&file, &meta))
        {
            Some((position, handed_on)) if handed_on <= meta.len() => Some((position, handed_on)),
            // Truncated since: read as any file at the path.
            Some((position, handed_on)) => {
                position.close(handed_on);
                None
            }
            None => None,
        };
        let (offset, continued, resumes) = match continued {
            Some((position, handed_on)) => (handed_on, Some(position), false),
            None => {
                let start = resume::current_start(
                    &self.positions,
                    &self.key,
                    &file,
                    &meta,
                    self.opts.tail_from_end,
                );
                if first_open {
                    match start.predecessor {
                        Some(predecessor) => {
                            self.queue_unread_rotations(Some(predecessor), None, &identity, readers)
                        }
                        // Never read under this path, and rotated away since the job
                        // started, before this first look: those lines were written while
                        // we were running, so they are ours to read.
                        None if !self.opts.tail_from_end
                            && self.positions.saved(&self.key).is_none() =>
                        {
                            self.queue_unread_rotations(
                                None,
                                Some(self.job_started),
                                &identity,
                                readers,
                            )
                        }
                        None => {}
                    }
                }
                (start.offset, None, start.resumes)
            }
        };
        // Kept until a new file is really opened: the path may be missing for a moment
        // between a rename and the writer's reopen.
        if let Some(since) = rotated_at.take() {
            self.queue_unread_rotations(None, Some(since), &identity, readers);
        }
        let name = self.key.clone();
        let opened = match continued {
            Some(position) => self.reader_continuing(file, identity, name, position, offset),
            None => {
                let entry = resumes.then_some(self.key.as_str());
                self.reader(file, identity, name, offset, entry)
            }
        };
        match opened {
            Ok(r) => {
                readers.push(r);
                Ok(())
            }
            Err(e) => {
                self.claims.release(&identity);
                Err(e)
            }
        }
    }

    /// Queues, oldest first, rotated siblings of the path (`app.log.1`, `app.log-2026...`)
    /// that must still be read: `predecessor` (offset and identity of the file last read under
    /// this path) and every sibling written since it, or since `since`. Siblings already
    /// open here, or fully read according to positions, add nothing.
    fn queue_unread_rotations(
        &self,
        predecessor: Option<(u64, FileIdentity)>,
        since: Option<SystemTime>,
        current: &FileIdentity,
        readers: &mut Vec<Reader>,
    ) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        let Some(base) = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut found: Option<(u64, File, Metadata, PathBuf)> = None;
        let mut siblings: Vec<(SystemTime, File, Metadata, PathBuf)> = Vec::new();
        for entry in entries.flatten() {
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if p == self.path || !is_rotated_name(&base, &name) {
                continue;
            }
            let Ok((file, meta)) = open_regular(&p, self.opts.follow_symlinks_outside) else {
                continue;
            };
            let inode = (meta.dev(), meta.ino());
            if inode == (current.dev, current.ino) || self.claims.held(inode.0, inode.1) {
                continue;
            }
            match predecessor {
                Some((saved, id)) if id.matches(&file, &meta) => {
                    found = Some((saved, file, meta, p))
                }
                _ => {
                    if let Ok(mtime) = meta.modified() {
                        siblings.push((mtime, file, meta, p));
                    }
                }
            }
        }
        let mut since = since;
        if let Some((saved, file, meta, p)) = found {
            since = Some(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            // The file last read under this path: its entry there is its own.
            let entry = (saved <= meta.len()).then_some(self.key.as_str());
            self.queue_draining(file, &meta, p, saved, entry, readers);
        }
        let Some(since) = since else { return };
        siblings.retain(|(mtime, ..)| *mtime >= since);
        siblings.sort_by_key(|(mtime, ..)| *mtime);
        for (_, file, meta, p) in siblings {
            let name = key_of(&p);
            let (start, own_entry) = resume::rotated_start(&self.positions, &name, &file, &meta);
            if start < meta.len() {
                let entry = own_entry.then_some(name.as_str());
                self.queue_draining(file, &meta, p, start, entry, readers);
            }
        }
    }

    /// `entry`: the positions entry whose saved offset `start` is, when it is this file's.
    fn queue_draining(
        &self,
        file: File,
        meta: &Metadata,
        p: PathBuf,
        start: u64,
        entry: Option<&str>,
        readers: &mut Vec<Reader>,
    ) {
        let name = key_of(&p);
        let Ok(identity) = FileIdentity::of(&file, meta) else {
            return;
        };
        // The reader that last read it closed with lines still unacknowledged: it goes on
        // where it stopped (see `open_current`).
        let continued = self
            .positions
            .reopen_file(&name, |id| id.matches(&file, meta));
        let saved = start;
        let start = match &continued {
            Some((_, handed_on)) => *handed_on,
            None => resume::past_handed_on(&self.positions, start, &file, meta),
        };
        // Past the saved offset (a closed reader of this process read further): not a resume.
        let entry = entry.filter(|_| continued.is_none() && start == saved);
        if start >= meta.len() || !self.claims.claim(&identity) {
            if let Some((position, handed_on)) = continued {
                position.close(handed_on);
            }
            return;
        }
        tracing::info!(path = %self.path_label, rotated_to = %readable_key(&name), offset = start, "reading a rotated file not read to its end");
        let opened = match continued {
            Some((position, _)) => self.reader_continuing(file, identity, name, position, start),
            None => self.reader(file, identity, name, start, entry),
        };
        match opened {
            Ok(mut r) => {
                r.draining = true;
                readers.push(r);
            }
            Err(_) => self.claims.release(&identity),
        }
    }

    fn path_state(&self, cur: &mut Reader) -> PathState {
        let Ok(ours) = cur.file.metadata() else {
            return PathState::Same;
        };
        // Our file was unlinked: whatever is at the path now (even on a recycled inode) is
        // another file.
        if ours.nlink() == 0 {
            return if self.path.exists() {
                PathState::Replaced(None)
            } else {
                PathState::Gone
            };
        }
        // Truncation is about the file we hold, whatever its name is now: checked first, so
        // a file truncated, rewritten and then rotated away is read again from its start.
        if ours.len() < cur.cursor {
            return PathState::Truncated;
        }
        match cur.identity.refreshed(&cur.file, &ours) {
            None => return PathState::Truncated,
            Some(grown) if grown != cur.identity => {
                cur.identity = grown;
                cur.position.identity_grew(grown);
            }
            Some(_) => {}
        }
        match std::fs::metadata(&self.path) {
            Ok(at_path) if cur.identity.same_inode(&at_path) => PathState::Same,
            Ok(_) => PathState::Replaced(find_by_inode(&self.path, &cur.identity)),
            Err(_) => PathState::Replaced(find_by_inode(&self.path, &cur.identity)).or_gone(),
        }
    }

    /// copytruncate: start over at 0 under a new source, so acks still in flight for the old
    /// content cannot move the new content's position.
    fn restart_truncated(&self, cur: &mut Reader) {
        self.metrics
            .files
            .file_events
            .with_label_values(&["truncated"])
            .inc();
        tracing::info!(path = %self.path_label, "file truncated; reading from the start");
        if cur.file.seek(SeekFrom::Start(0)).is_err() {
            cur.draining = true;
            return;
        }
        let identity = cur
            .file
            .metadata()
            .and_then(|m| FileIdentity::of(&cur.file, &m))
            .unwrap_or(cur.identity);
        let handed_on = cur.handed_on();
        let fresh = self.positions.open_file(&cur.name, 0, identity);
        std::mem::replace(&mut cur.position, fresh).close(handed_on);
        cur.identity = identity;
        cur.cursor = 0;
        cur.pending.clear();
        cur.skipping = false;
        cur.at_eof = false;
    }
}

impl PathState {
    /// The path is gone; the file may live on under another name.
    fn or_gone(self) -> PathState {
        match self {
            PathState::Replaced(Some(p)) => PathState::Replaced(Some(p)),
            _ => PathState::Gone,
        }
    }
}

/// Where a rotated file went: a name in the same directory with the same inode.
pub(super) fn find_by_inode(path: &Path, identity: &FileIdentity) -> Option<PathBuf> {
    let dir = path.parent()?;
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| {
            e.metadata()
                .is_ok_and(|m| m.dev() == identity.dev && m.ino() == identity.ino)
                && e.path() != path
        })
        .map(|e| e.path())
}

/// Names rotation gives `base`: `base.1`, `base-20261127`, `base.1.log`; never compressed
/// ones, which are separate (decompression) targets, nor a compressor's temporary file: the
/// kubelet gzips a rotated log into `<name>.gz.tmp` (logrotate and others into `.tmp` names
/// too) before renaming it, and its bytes are already compressed.
fn is_rotated_name(base: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(base) else {
        return false;
    };
    let compressed = [".gz", ".bz2", ".xz", ".zst", ".z", ".zip"];
    rest.starts_with(['.', '-', '_'])
        && !compressed.iter().any(|c| rest.ends_with(c))
        && !name.ends_with(".tmp")
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::model::labels::LabelSet;
    use crate::sources::files::tailer::test_harness::{collect, harness, nothing_more, opts};

    #[tokio::test]
    async fn copytruncate_reads_new_content_from_the_start_without_resending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "aaaa\nbbbb\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        collect(&mut h, 2).await;
        std::fs::write(&path, "c\n").unwrap();
        assert_eq!(collect(&mut h, 1).await, vec![("c".into(), 2)]);
    }

    #[tokio::test]
    async fn truncate_and_regrow_past_the_offset_is_caught_by_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "aaaa\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        collect(&mut h, 1).await;
        // Within one poll: truncated and rewritten longer than before.
        std::fs::write(&path, "new1\nnew2\nnew3\n").unwrap();
        let got = collect(&mut h, 3).await;
        assert_eq!(
            got.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
            vec!["new1", "new2", "new3"]
        );
    }

    #[tokio::test]
    async fn rename_and_create_drains_the_old_file_then_reads_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "old 1\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        collect(&mut h, 1).await;
        // The writer appends once more to its open file after the rename, then reopens.
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&path, "new 1\n").unwrap();
        old.write_all(b"old 2\n").unwrap();
        let mut got: Vec<String> = collect(&mut h, 2)
            .await
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        got.sort();
        assert_eq!(got, vec!["new 1", "old 2"]);
        // The old file's position now lives under its new name; the path is the new file's.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let rotated = dir.path().join("app.log.1").display().to_string();
        assert_eq!(
            h.view.saved(&path.display().to_string()).map(|(o, _)| o),
            Some(6)
        );
        assert_eq!(h.view.saved(&rotated).map(|(o, _)| o), Some(12));
        // A glob that also matches the rotated name does not read it again.
        h.set
            .start(&dir.path().join("app.log.1"), Arc::new(LabelSet::new()));
        nothing_more(&mut h.rx, Duration::from_millis(300)).await;
    }

    #[tokio::test]
    async fn a_rotated_file_closed_before_its_lines_were_acknowledged_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "old 1\nold 2\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        // Read and handed on, but a slow client has not acknowledged them yet.
        let first = tokio::time::timeout(Duration::from_secs(5), h.rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.len(), 2);
        // Quiet for longer than rotate_wait, so the old file closes as soon as it is seen
        // rotated, before the new file is opened and its rotated siblings are looked for.
        tokio::time::sleep(Duration::from_millis(400)).await;
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&path, "new 1\n").unwrap();
        let mut got = Vec::new();
        while let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(800), h.rx.recv()).await
        {
            got.extend(b.iter().map(|(l, _)| l.to_string()));
        }
        assert_eq!(
            got,
            vec!["new 1"],
            "the rotated file's lines went out twice"
        );
    }

    #[tokio::test]
    async fn a_rotated_file_closed_unacknowledged_is_not_read_again_by_its_own_tailer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let rotated = dir.path().join("app.log.1");
        std::fs::write(&path, "old 1\nold 2\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        // Read and handed on, but a slow client has not acknowledged them yet.
        let first = tokio::time::timeout(Duration::from_secs(5), h.rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.len(), 2);
        // Quiet for longer than rotate_wait: the old file closes as soon as it is seen rotated.
        tokio::time::sleep(Duration::from_millis(400)).await;
        std::fs::rename(&path, &rotated).unwrap();
        std::fs::write(&path, "new 1\n").unwrap();
        assert_eq!(collect(&mut h, 1).await, vec![("new 1".into(), 6)]);
        // The glob also matches the rotated name: discovery starts a tailer for it, now that
        // nobody holds the file.
        h.set.start(&rotated, Arc::new(LabelSet::new()));
        assert!(h.set.is_running(&rotated));
        nothing_more(&mut h.rx, Duration::from_millis(500)).await;
        // Nor are its lines taken as delivered before they are: a restart now reads them.
        let key = rotated.display().to_string();
        assert_eq!(h.positions.get(&key), 0);
        h.acks
            .settle(first.iter().filter_map(|(_, ack)| ack).collect());
        for _ in 0..100 {
            if h.positions.get(&key) == 12 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            h.positions.get(&key),
            12,
            "settled through the reopened source"
        );
    }

    #[tokio::test]
    async fn the_rest_of_a_rotated_file_waits_for_the_lines_its_closed_reader_handed_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let rotated = dir.path().join("app.log.1");
        std::fs::write(&path, "old 1\nold 2\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        let first = tokio::time::timeout(Duration::from_secs(5), h.rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.len(), 2);
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Rotated with no new file yet: the old reader closes, its lines unacknowledged, and
        // the tailer of the vanished path ends.
        std::fs::rename(&path, &rotated).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!h.set.is_running(&path));
        // The writer's last line lands in the rotated file, then it reopens the path, and
        // discovery starts a tailer for it, which reads the rotated file's rest first.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&rotated)
            .unwrap()
            .write_all(b"old 3\n")
            .unwrap();
        std::fs::write(&path, "new 1\n").unwrap();
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(
            collect(&mut h, 2).await,
            vec![("old 3".into(), 18), ("new 1".into(), 6)]
        );
        // "old 1" and "old 2" are not delivered yet: a restart must read them again.
        let key = rotated.display().to_string();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(h.positions.get(&key), 0);
        h.acks
            .settle(first.iter().filter_map(|(_, ack)| ack).collect());
        for _ in 0..100 {
            if h.positions.get(&key) == 18 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(h.positions.get(&key), 18);
    }

    #[tokio::test]
    async fn deleted_file_is_drained_and_closed_after_rotate_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "x\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        collect(&mut h, 1).await;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.write_all(b"after delete\n").unwrap();
        drop(f);
        assert_eq!(collect(&mut h, 1).await[0].0, "after delete");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(h.set.paths().is_empty(), "tailer closed the deleted file");
        let fds = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|t| t.to_string_lossy().contains("(deleted)"))
            });
        assert_eq!(fds.count(), 0, "no deleted file held open");
    }

    #[test]
    fn rotated_names_exclude_compressed_ones() {
        assert!(is_rotated_name("app.log", "app.log.1"));
        assert!(is_rotated_name("app.log", "app.log-20261127"));
        assert!(!is_rotated_name("app.log", "app.log.2.gz"));
        assert!(!is_rotated_name("app.log", "app.logger"));
        // The kubelet's gzip in progress, and other compressors' temporary files.
        assert!(!is_rotated_name("0.log", "0.log.20261208-012233.gz.tmp"));
        assert!(!is_rotated_name("0.log", "0.log.20261208-012233.tmp"));
    }
}
