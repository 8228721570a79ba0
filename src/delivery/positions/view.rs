//! The one way a source touches delivery (after Vector's `CheckpointsView`): a job's sources
//! share a [`PositionsView`] to look up where a file or cursor was delivered to, and each
//! source they open gets its own handle, [`FilePosition`] or [`CursorPosition`], through
//! which it issues each batch before handing it on, reports a rename or a grown fingerprint,
//! and closes, saying how far it handed on.
//!
//! Owns only that narrowing: every call is one lock of the store, taken per batch or per
//! file event, never per line. A handle dropped without being closed closes as far as it
//! issued, so a source that ends unexpectedly does not keep its path unsettled for good. It
//! must not decide where a source starts (the source knows its files and checks what it
//! looks up against them) nor expose the store's state.

use super::Positions;
use crate::delivery::file_identity::FileIdentity;
use crate::model::ack::SourceId;
use crate::model::entry::LineBatch;

/// What a job's sources may ask of the positions store. Cheap to clone: one per tailer.
#[derive(Clone)]
pub struct PositionsView {
    store: Positions,
}

impl PositionsView {
    pub(super) fn of(store: Positions) -> Self {
        Self { store }
    }

    /// The offset saved under `path`, and the identity of the file it belongs to when known
    /// (a Promtail entry has none).
    pub fn saved(&self, path: &str) -> Option<(u64, Option<FileIdentity>)> {
        self.store.saved(path)
    }

    /// The offset saved for the file `is_it` recognises, under whatever name it was saved
    /// (renamed by rotation, now or while the agent was down).
    pub fn find(&self, is_it: impl FnMut(&FileIdentity) -> bool) -> Option<u64> {
        self.store.find(is_it).map(|(_, offset, _)| offset)
    }

    /// [`Self::find`] over the entries as they were read at start: a file renamed while the
    /// agent was down is still found after another file has taken its old name (and entry).
    pub fn find_as_loaded(&self, is_it: impl FnMut(&FileIdentity) -> bool) -> Option<u64> {
        self.store
            .find_as_loaded(is_it)
            .map(|(_, offset, _)| offset)
    }

    /// How far a source of this process still waiting for acknowledgements handed on the
    /// file `is_it` recognises: the saved offset lags behind that until the acks arrive.
    pub fn handed_on(&self, is_it: impl FnMut(&FileIdentity) -> bool) -> Option<u64> {
        self.store.handed_on(is_it)
    }

    /// Opens a source reading the file `identity` under `path` from `offset`: from now on its
    /// acknowledgements move the position saved under `path`, which starts at `offset`
    /// (everything before it is done), and a source that read `path` before no longer does.
    #[must_use = "a source is closed through its handle"]
    pub fn open_file(&self, path: &str, offset: u64, identity: FileIdentity) -> FilePosition {
        let id = self.store.register(path, offset, Some(identity));
        FilePosition {
            source: Registration::new(self.store.clone(), id),
        }
    }

    /// [`Self::open_file`] for the file whose entry is saved under `entry` (`path` itself, or
    /// the name it was read under before a rotation), resumed at that entry's offset: the
    /// caller checked that `identity` is that entry's file, and the offset is inside it. The
    /// source goes on under the number saved with the entry, so the lines it reads again
    /// after a crash carry the tokens they had before it, and a client's disk buffer that
    /// already holds them recognises them.
    #[must_use = "a source is closed through its handle"]
    pub fn resume_file(
        &self,
        entry: &str,
        path: &str,
        offset: u64,
        identity: FileIdentity,
    ) -> FilePosition {
        let id = self.store.register_resumed(entry, path, offset, identity);
        FilePosition {
            source: Registration::new(self.store.clone(), id),
        }
    }

    /// Opens again the source that last read the file `is_it` recognises under `path`, when
    /// it was closed with lines still unacknowledged (a rotated file whose reader closed
    /// before its lines were delivered, now started under its new name): reading goes on
    /// from where it stopped handing on, which is returned, and the position moves only once
    /// those lines are settled too. So they are neither read again nor taken as delivered
    /// before they are. `None` when there is no such source.
    #[must_use = "a source is closed through its handle"]
    pub fn reopen_file(
        &self,
        path: &str,
        is_it: impl FnMut(&FileIdentity) -> bool,
    ) -> Option<(FilePosition, u64)> {
        let (id, handed_on) = self.store.reopen(path, is_it)?;
        let position = FilePosition {
            source: Registration::new(self.store.clone(), id),
        };
        Some((position, handed_on))
    }

    /// The cursor saved under `key`, without opening a reader: whether a source that
    /// stopped while the agent was down has a position to resume from.
    pub fn saved_cursor(&self, key: &str) -> Option<String> {
        self.store.saved_value(key)
    }

    /// Opens a journal reader saving its cursor under `key` (`cursor-<job>`), with the
    /// cursor saved there: the reader resumes after it.
    #[must_use = "a source is closed through its handle"]
    pub fn open_cursor(&self, key: &str) -> (CursorPosition, Option<String>) {
        let saved = self.store.saved_value(key);
        let id = self.store.register_cursor(key);
        let position = CursorPosition {
            source: Registration::new(self.store.clone(), id),
        };
        (position, saved)
    }
}

impl PositionsView {
    /// Opens a push source (`loki_push_api`, `heroku_drain`) known as `name` (nothing is
    /// saved for it): its entries are numbered from 1, that number is their acknowledgement
    /// offset, and [`ReceiptPosition::settled`] follows how far every client has settled
    /// them, so a request is answered once its entries are safe.
    #[must_use = "a source is closed through its handle"]
    pub fn open_receipts(&self, name: &str) -> ReceiptPosition {
        let (id, settled) = self.store.register_receipts(name);
        ReceiptPosition {
            source: Registration::new(self.store.clone(), id),
            settled,
        }
    }
}

/// One push source, as delivery knows it.
pub struct ReceiptPosition {
    source: Registration,
    settled: tokio::sync::watch::Receiver<u64>,
}

impl ReceiptPosition {
    pub fn id(&self) -> SourceId {
        self.source.id
    }

    /// As [`FilePosition::issue`]: every line of `batch` is waited for from now on.
    pub fn issue(&self, batch: &LineBatch) {
        self.source.issue(batch);
    }

    /// Follows the highest entry number below which every entry is settled by every
    /// client. Closed when delivery forgets the source (the clients were replaced by a
    /// reload): what was waiting can no longer be told.
    pub fn settled(&self) -> tokio::sync::watch::Receiver<u64> {
        self.settled.clone()
    }

    /// The source stopped after handing on entries up to `last_seq`.
    pub fn close(self, last_seq: u64) {
        self.source.close(last_seq);
    }
}

/// One file being read, as delivery knows it. Its [`id`](Self::id) goes into every line's
/// acknowledgement token.
pub struct FilePosition {
    source: Registration,
}

impl FilePosition {
    pub fn id(&self) -> SourceId {
        self.source.id
    }

    /// The lines of `batch` (all of this source) are about to be handed on: the position
    /// waits for each of them to be settled from now on. Called once per batch, before it
    /// is sent.
    pub fn issue(&self, batch: &LineBatch) {
        self.source.issue(batch);
    }

    /// The file was renamed to `new_path` (rotation): its position is kept under the new
    /// name from now on, so a restart finds it there.
    pub fn renamed(&self, new_path: &str) {
        self.store().rename(self.source.id, new_path);
    }

    /// The file's fingerprint grew (or was taken again): saved with the position from now on.
    pub fn identity_grew(&self, identity: FileIdentity) {
        self.store().set_identity(self.source.id, identity);
    }

    /// The reader stopped after handing on lines up to `handed_on`. Acknowledgements still
    /// in flight keep moving the position; then delivery forgets the source.
    pub fn close(self, handed_on: u64) {
        self.source.close(handed_on);
    }

    fn store(&self) -> &Positions {
        &self.source.store
    }
}

/// One journal reader, as delivery knows it: its entries are numbered from 1, and that
/// number is their acknowledgement offset.
pub struct CursorPosition {
    source: Registration,
}

impl CursorPosition {
    pub fn id(&self) -> SourceId {
        self.source.id
    }

    /// Entry `seq` has this cursor: saved once that entry and all before it are settled.
    pub fn note_cursor(&self, seq: u64, cursor: &str) {
        self.source.store.note_cursor(self.source.id, seq, cursor);
    }

    /// As [`FilePosition::issue`].
    pub fn issue(&self, batch: &LineBatch) {
        self.source.issue(batch);
    }

    /// The reader stopped after handing on entries up to `last_seq`.
    pub fn close(self, last_seq: u64) {
        self.source.close(last_seq);
    }
}

/// A source registered in the store until it is closed (or dropped).
struct Registration {
    store: Positions,
    id: SourceId,
    open: bool,
}

impl Registration {
    fn new(store: Positions, id: SourceId) -> Self {
        Self {
            store,
            id,
            open: true,
        }
    }

    fn issue(&self, batch: &LineBatch) {
        debug_assert!(
            batch
                .lines
                .iter()
                .all(|l| l.ack.is_none_or(|t| t.source == self.id)),
            "a batch carries the lines of one source"
        );
        self.store.issue(batch);
    }

    fn close(mut self, handed_on: u64) {
        self.open = false;
        self.store.unregister(self.id, handed_on);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.open {
            self.store.abandon(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::ack::{self, AckToken};
    use crate::model::labels::LabelSet;

    const ID: FileIdentity = FileIdentity {
        dev: 1,
        ino: 2,
        fp_len: 3,
        fp_crc: 4,
    };

    fn batch(source: SourceId, ends: &[u64]) -> LineBatch {
        let mut batch = LineBatch::new(Arc::new(LabelSet::new()), crate::model::clock::now());
        for &end in ends {
            batch.push("x", Some(AckToken::line(source, end)));
        }
        batch
    }

    async fn settle(store: &Positions, tokens: Vec<AckToken>) {
        let (factory, rx) = ack::channel();
        factory.for_client(0).settle(tokens);
        drop(factory);
        store.clone().run_acks(rx).await;
    }

    #[tokio::test]
    async fn a_closed_source_shows_what_it_handed_on_until_its_lines_are_settled() {
        let store = Positions::in_memory("");
        let view = store.view();
        let position = view.open_file("/l/app.log", 0, ID);
        let id = position.id();
        position.issue(&batch(id, &[6, 12]));
        position.close(12);
        assert_eq!(view.saved("/l/app.log"), Some((0, Some(ID))));
        assert_eq!(view.handed_on(|i| *i == ID), Some(12));
        assert!(!store.settled("/l/app.log"));
        settle(&store, vec![AckToken::line(id, 6), AckToken::line(id, 12)]).await;
        assert_eq!(view.saved("/l/app.log"), Some((12, Some(ID))));
        assert_eq!(view.handed_on(|i| *i == ID), None, "forgotten once settled");
        assert!(store.settled("/l/app.log"));
    }

    #[tokio::test]
    async fn a_push_source_learns_its_entries_are_settled_only_once_every_client_settled_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Positions::open(&dir.path().join("p.yaml"), false, 2, true).unwrap();
        let receipts = store.view().open_receipts("push");
        let id = receipts.id();
        let settled = receipts.settled();
        receipts.issue(&batch(id, &[1, 2, 3]));
        let (factory, rx) = ack::channel();
        factory.for_client(0).settle(vec![AckToken {
            source: id,
            from: 1,
            offset: 3,
        }]);
        factory.for_client(1).settle(vec![AckToken::line(id, 1)]);
        drop(factory);
        store.clone().run_acks(rx).await;
        assert_eq!(*settled.borrow(), 1, "client 1 has settled only entry 1");
        let (factory, rx) = ack::channel();
        factory.for_client(1).settle(vec![AckToken {
            source: id,
            from: 2,
            offset: 3,
        }]);
        drop(factory);
        store.clone().run_acks(rx).await;
        assert_eq!(*settled.borrow(), 3);
        assert!(
            store.snapshot().is_empty(),
            "nothing is saved for a push source"
        );
        receipts.close(3);
    }

    #[tokio::test]
    async fn a_handle_dropped_unclosed_closes_as_far_as_it_issued() {
        let store = Positions::in_memory("");
        let view = store.view();
        let position = view.open_file("/l/app.log", 0, ID);
        let id = position.id();
        position.issue(&batch(id, &[5]));
        drop(position);
        assert_eq!(view.handed_on(|i| *i == ID), Some(5));
        settle(&store, vec![AckToken::line(id, 5)]).await;
        assert!(store.settled("/l/app.log"), "the path is not held for good");
        assert_eq!(store.get("/l/app.log"), 5);
    }

    #[tokio::test]
    async fn a_renamed_file_keeps_its_position_under_the_new_name() {
        let store = Positions::in_memory("");
        let view = store.view();
        let position = view.open_file("/l/app.log", 4, ID);
        position.renamed("/l/app.log.1");
        assert_eq!(view.saved("/l/app.log.1"), Some((4, Some(ID))));
        assert_eq!(view.find(|i| *i == ID), Some(4));
        let grown = FileIdentity { fp_len: 9, ..ID };
        position.identity_grew(grown);
        assert_eq!(view.saved("/l/app.log.1"), Some((4, Some(grown))));
        position.close(4);
    }

    #[tokio::test]
    async fn a_source_closed_unsettled_is_reopened_and_its_position_waits_for_all_its_lines() {
        let store = Positions::in_memory("");
        let view = store.view();
        let position = view.open_file("/l/app.log.1", 0, ID);
        let id = position.id();
        position.issue(&batch(id, &[6, 12]));
        position.close(12);
        assert!(
            view.reopen_file("/l/app.log.1", |i| *i != ID).is_none(),
            "another file"
        );
        assert!(
            view.reopen_file("/l/app.log", |i| *i == ID).is_none(),
            "another path"
        );
        let (position, handed_on) = view.reopen_file("/l/app.log.1", |i| *i == ID).unwrap();
        assert_eq!((position.id(), handed_on), (id, 12));
        assert!(
            view.reopen_file("/l/app.log.1", |i| *i == ID).is_none(),
            "open again"
        );
        position.issue(&batch(id, &[20]));
        settle(&store, vec![AckToken::line(id, 20)]).await;
        assert_eq!(
            store.get("/l/app.log.1"),
            0,
            "lines before it are not settled yet"
        );
        settle(&store, vec![AckToken::line(id, 6), AckToken::line(id, 12)]).await;
        assert_eq!(store.get("/l/app.log.1"), 20);
        position.close(20);
        assert!(store.settled("/l/app.log.1"));
        assert!(
            view.reopen_file("/l/app.log.1", |i| *i == ID).is_none(),
            "forgotten"
        );
    }

    #[tokio::test]
    async fn a_cursor_is_saved_once_its_entry_is_settled() {
        let store = Positions::in_memory("positions:\n  cursor-j: \"s=1\"\n");
        let (position, saved) = store.view().open_cursor("cursor-j");
        assert_eq!(saved.as_deref(), Some("s=1"));
        let id = position.id();
        position.note_cursor(1, "s=2");
        position.note_cursor(2, "s=3");
        position.issue(&batch(id, &[1, 2]));
        settle(&store, vec![AckToken::line(id, 1)]).await;
        assert_eq!(store.snapshot()["cursor-j"], "s=2");
        position.close(2);
        settle(&store, vec![AckToken::line(id, 2)]).await;
        assert_eq!(store.snapshot()["cursor-j"], "s=3");
        assert!(store.settled("cursor-j"));
    }
}
