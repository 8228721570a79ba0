//! Where a file starts: the answers the tailer gets from delivery's [`PositionsView`] about
//! an open file, checked against that file's identity (device, inode and head fingerprint).
//!
//! - the file at the path resumes at the offset saved under the path when that entry is this
//!   file's; a Promtail entry (no identity) is trusted as Promtail trusts it; an entry of
//!   another file means the path was rotated while the agent was down (that file's remainder
//!   is read first, see [`super::rotation`]); a file saved under another name (renamed while
//!   down) resumes there; a file delivery never saw starts at 0, or at its end with
//!   `tail_from_end`;
//! - a rotated file starts where its own entry, or the entry its identity is found under,
//!   says, and never before what a source of this process already handed on;
//! - an archive resumes past the lines counted under its path or, by identity, another name.
//!
//! Owns those decisions and nothing else: no reading, no registering, no side effects, so
//! they are tested against an in-memory store. It must not open files or touch a source's
//! handle.

use std::fs::{File, Metadata};

use crate::delivery::file_identity::FileIdentity;
use crate::delivery::positions::PositionsView;

/// Where the file now at a path starts.
pub(super) struct CurrentStart {
    pub(super) offset: u64,
    /// The start is this file's own entry under the path: reading goes on as the source
    /// saved with it ([`PositionsView::resume_file`]).
    pub(super) resumes: bool,
    /// The file last read under this path, when the path's entry belongs to another file
    /// (rotated while the agent was down): its saved offset and identity.
    pub(super) predecessor: Option<(u64, FileIdentity)>,
}

/// Where `file`, now at `path`, starts.
pub(super) fn current_start(
    positions: &PositionsView,
    path: &str,
    file: &File,
    meta: &Metadata,
    tail_from_end: bool,
) -> CurrentStart {
    let at = |offset| CurrentStart {
        offset,
        resumes: false,
        predecessor: None,
    };
    match positions.saved(path) {
        // Resumed only where the entry is still inside the file: a file cut shorter than its
        // entry holds other bytes at those offsets now.
        Some((saved, Some(saved_id))) if saved_id.matches(file, meta) && saved <= meta.len() => {
            CurrentStart {
                resumes: true,
                ..at(saved)
            }
        }
        Some((_, Some(saved_id))) if saved_id.matches(file, meta) => at(meta.len()),
        // A Promtail positions file: trusted as Promtail trusts it.
        Some((saved, None)) => at(if saved <= meta.len() { saved } else { 0 }),
        Some((saved, Some(saved_id))) => CurrentStart {
            offset: 0,
            resumes: false,
            predecessor: Some((saved, saved_id)),
        },
        None => match positions.find(|id| id.matches(file, meta)) {
            Some(saved) => at(saved.min(meta.len())),
            None if tail_from_end => at(meta.len()),
            None => at(0),
        },
    }
}

/// Where the rotated file `file`, now named `name`, starts: its own entry there, else the
/// entry its identity is found under, else 0; and whether the start is its own entry, inside
/// the file (see [`CurrentStart::resumes`]).
pub(super) fn rotated_start(
    positions: &PositionsView,
    name: &str,
    file: &File,
    meta: &Metadata,
) -> (u64, bool) {
    match positions.saved(name) {
        Some((off, Some(id))) if id.matches(file, meta) => (off, off <= meta.len()),
        _ => (
            positions.find(|id| id.matches(file, meta)).unwrap_or(0),
            false,
        ),
    }
}

/// `start`, or further: a reader of this file that closed with lines still unacknowledged
/// has read further than the saved offset says, and what it handed on is not read again.
pub(super) fn past_handed_on(
    positions: &PositionsView,
    start: u64,
    file: &File,
    meta: &Metadata,
) -> u64 {
    positions
        .handed_on(|id| id.matches(file, meta))
        .map_or(start, |handed_on| start.max(handed_on))
}

/// Lines of the archive `file` at `path` already handed on: the path's saved count when it
/// is this file's, or a Promtail entry (no identity, trusted as Promtail trusts it); else
/// the count saved for this file under another name (rotation renamed it, now or while the
/// agent was down); else 0.
pub(super) fn archive_lines_done(
    positions: &PositionsView,
    path: &str,
    file: &File,
    meta: &Metadata,
) -> u64 {
    match positions.saved(path) {
        Some((lines, None)) => return lines,
        Some((lines, Some(id))) if id.matches(file, meta) => return lines,
        _ => {}
    }
    positions
        .find(|id| id.matches(file, meta))
        // Renamed while the agent was down, its old name already taken by another file.
        .or_else(|| positions.find_as_loaded(|id| id.matches(file, meta)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::delivery::positions::Positions;
    use crate::model::ack::AckToken;
    use crate::model::entry::LineBatch;
    use crate::model::labels::LabelSet;

    /// A file holding `text`, opened, with its identity.
    fn file(path: &Path, text: &str) -> (File, Metadata, FileIdentity) {
        std::fs::write(path, text).unwrap();
        let f = File::open(path).unwrap();
        let m = f.metadata().unwrap();
        let id = FileIdentity::of(&f, &m).unwrap();
        (f, m, id)
    }

    /// A store as a previous run left it: `entries` of (path, offset, identity).
    fn store(entries: &[(&str, u64, Option<FileIdentity>)]) -> Positions {
        let mut text = String::from("positions:\n");
        for (path, offset, _) in entries {
            text.push_str(&format!("  {path}: \"{offset}\"\n"));
        }
        text.push_str("identities:\n");
        for (path, _, id) in entries {
            if let Some(id) = id {
                text.push_str(&format!("  {path}: \"{id}\"\n"));
            }
        }
        Positions::in_memory(&text)
    }

    #[test]
    fn the_file_at_the_path_resumes_at_its_own_entry_capped_at_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let (f, m, id) = file(&dir.path().join("app.log"), "0123456789\n");
        let view = store(&[("/l/app.log", 7, Some(id))]).view();
        let start = current_start(&view, "/l/app.log", &f, &m, false);
        assert_eq!(
            (start.offset, start.predecessor, start.resumes),
            (7, None, true)
        );
        let view = store(&[("/l/app.log", 70, Some(id))]).view();
        let start = current_start(&view, "/l/app.log", &f, &m, false);
        assert_eq!(
            (start.offset, start.resumes),
            (11, false),
            "not past its end"
        );
    }

    #[test]
    fn a_promtail_entry_is_trusted_unless_it_points_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (f, m, _) = file(&dir.path().join("app.log"), "0123456789\n");
        let view = store(&[("/l/app.log", 4, None)]).view();
        assert_eq!(current_start(&view, "/l/app.log", &f, &m, false).offset, 4);
        let view = store(&[("/l/app.log", 40, None)]).view();
        assert_eq!(current_start(&view, "/l/app.log", &f, &m, false).offset, 0);
    }

    #[test]
    fn another_files_entry_at_the_path_is_the_predecessor_and_the_new_file_starts_at_0() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, old) = file(&dir.path().join("app.log.1"), "old 1\nold 2\n");
        let (f, m, _) = file(&dir.path().join("app.log"), "new 1\n");
        let view = store(&[("/l/app.log", 6, Some(old))]).view();
        let start = current_start(&view, "/l/app.log", &f, &m, true);
        assert_eq!(
            start.offset, 0,
            "not the end: tail_from_end is for unknown files"
        );
        assert_eq!(start.predecessor, Some((6, old)));
    }

    #[test]
    fn a_file_renamed_while_down_resumes_under_its_old_entry_and_unknown_files_per_option() {
        let dir = tempfile::tempdir().unwrap();
        let (f, m, id) = file(&dir.path().join("app.log"), "a\nb\nc\n");
        let view = store(&[("/l/was-elsewhere.log", 2, Some(id))]).view();
        assert_eq!(current_start(&view, "/l/app.log", &f, &m, false).offset, 2);
        let view = store(&[]).view();
        assert_eq!(current_start(&view, "/l/app.log", &f, &m, false).offset, 0);
        assert_eq!(current_start(&view, "/l/app.log", &f, &m, true).offset, 6);
    }

    #[test]
    fn a_rotated_file_starts_at_its_own_entry_or_where_its_identity_was_saved() {
        let dir = tempfile::tempdir().unwrap();
        let (f, m, id) = file(&dir.path().join("app.log.1"), "x\ny\n");
        let view = store(&[("/l/app.log.1", 2, Some(id))]).view();
        assert_eq!(rotated_start(&view, "/l/app.log.1", &f, &m), (2, true));
        let view = store(&[("/l/app.log", 4, Some(id))]).view();
        assert_eq!(rotated_start(&view, "/l/app.log.1", &f, &m), (4, false));
        let other = FileIdentity {
            ino: id.ino + 1,
            ..id
        };
        let view = store(&[("/l/app.log.1", 2, Some(other))]).view();
        assert_eq!(rotated_start(&view, "/l/app.log.1", &f, &m).0, 0);
    }

    /// The duplicate once seen in idle_files_closed_for_the_open_file_limit: a reader that
    /// handed lines on and closed before they were acknowledged leaves the saved offset
    /// behind; the rotated file starts past what it read.
    #[test]
    fn a_rotated_file_starts_past_what_a_closed_unacknowledged_reader_handed_on() {
        let dir = tempfile::tempdir().unwrap();
        let (f, m, id) = file(&dir.path().join("app.log.1"), "old 1\nold 2\n");
        let positions = store(&[]);
        let view = positions.view();
        let reader = view.open_file("/l/app.log", 0, id);
        let mut batch = LineBatch::new(Arc::new(LabelSet::new()), crate::model::clock::now());
        batch.push("old 1", Some(AckToken::line_after(reader.id(), 0, 6)));
        batch.push("old 2", Some(AckToken::line_after(reader.id(), 6, 12)));
        reader.issue(&batch);
        reader.close(12);
        let (start, _) = rotated_start(&view, "/l/app.log.1", &f, &m);
        assert_eq!(start, 0, "nothing acknowledged yet");
        assert_eq!(past_handed_on(&view, start, &f, &m), 12);
        assert_eq!(past_handed_on(&view, 20, &f, &m), 20, "never moved back");
    }

    #[test]
    fn an_archive_renamed_while_down_is_found_by_its_entry_as_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let (f, m, id) = file(&dir.path().join("app.log.2.gz"), "archive head");
        let newer = FileIdentity {
            ino: id.ino + 1,
            ..id
        };
        let positions = store(&[("/l/app.log.1.gz", 3, Some(id))]);
        let view = positions.view();
        assert_eq!(archive_lines_done(&view, "/l/app.log.2.gz", &f, &m), 3);
        // Another archive now holds the old name, and its entry.
        view.open_file("/l/app.log.1.gz", 0, newer).close(0);
        assert_eq!(view.find(|i| *i == id), None);
        assert_eq!(archive_lines_done(&view, "/l/app.log.2.gz", &f, &m), 3);
        let view = store(&[("/l/app.log.2.gz", 5, None)]).view();
        assert_eq!(archive_lines_done(&view, "/l/app.log.2.gz", &f, &m), 5);
    }
}
