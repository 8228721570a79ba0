//! The positions store's state behind its one lock: the saved map, the identities beside it,
//! and every live source with its finalizer.
//!
//! Owns what each operation does to that state: registering a source and making it the
//! current one of its path, following a rename, issuing a batch, settling acknowledgements,
//! forgetting a source once it is closed and settled, pruning vanished files. Reached only
//! through [`Positions`]' agent-facing methods and the per-source handles of
//! [`super::view`]; nothing here is visible outside `delivery::positions`. It must not read
//! log files, know the file format or run tasks.

use std::collections::{BTreeMap, HashMap};

use super::Positions;
use super::file_format::Loaded;
use super::key::path_of;
use crate::delivery::file_identity::FileIdentity;
use crate::delivery::finalizer::Finalizer;
use crate::model::ack::{Ack, SourceId};
use crate::model::entry::LineBatch;

pub(super) struct State {
    /// Saved positions by path (what goes into the file), including cursor-* keys we keep.
    pub(super) saved: BTreeMap<String, String>,
    /// The entries with an identity as read at start: (path, offset, identity).
    pub(super) loaded: Vec<(String, u64, FileIdentity)>,
    /// Identity of the file each saved path refers to, where known.
    pub(super) identities: BTreeMap<String, FileIdentity>,
    /// The source whose acknowledgements moved each saved path's position, kept across
    /// restarts: a file resumed at its own entry goes on as that source, so a client's disk
    /// buffer recognises the lines it already holds from before a crash (their tokens name
    /// the same source) and does not take them twice.
    pub(super) source_ids: BTreeMap<String, SourceId>,
    pub(super) sources: HashMap<SourceId, Source>,
    /// The source whose acknowledgements move a path's saved position: a file replaced or
    /// truncated under the same path gets a new source, and late acks of the old one must not
    /// move the new file's position.
    pub(super) current: HashMap<String, SourceId>,
    pub(super) next_id: u64,
    pub(super) clients: usize,
    pub(super) dirty: bool,
    /// The file has been written successfully by this process (so its absence means someone
    /// deleted it; a file that could never be written was not deleted).
    pub(super) written: bool,
}

pub(super) struct Source {
    pub(super) path: String,
    pub(super) finalizer: Finalizer,
    /// Set when the tailer stopped: the end of the last line it handed on. The source is
    /// forgotten once every line it issued is settled.
    pub(super) last_offset: Option<u64>,
    pub(super) identity: Option<FileIdentity>,
    /// For a journal: the cursor of each entry handed on, by its sequence number (the
    /// "offset" of its ack). The saved value is the cursor of the last settled entry.
    pub(super) cursors: Option<BTreeMap<u64, String>>,
    /// For a push source: how far its entries are settled by every client, told to the
    /// requests waiting to answer. Such a source has no path in the saved map.
    pub(super) receipts: Option<tokio::sync::watch::Sender<u64>>,
}

impl Source {
    fn settled(&self) -> u64 {
        self.finalizer.committed()
    }

    fn finished(&self) -> bool {
        self.last_offset.is_some() && self.finalizer.outstanding() == 0
    }
}

impl State {
    /// The state of a store read from a positions file.
    pub(super) fn new(loaded: Loaded, clients: usize) -> Self {
        let Loaded {
            saved,
            identities,
            sources,
        } = loaded;
        State {
            loaded: identities
                .iter()
                .filter_map(|(path, id)| Some((path.clone(), saved.get(path)?.parse().ok()?, *id)))
                .collect(),
            saved,
            identities,
            source_ids: sources,
            sources: HashMap::new(),
            current: HashMap::new(),
            // Numbers of this run start at random, far from those saved by earlier runs: only
            // a resumed file takes a saved one, and a disk buffer must never take another
            // file's lines for its own.
            next_id: rand::random::<u64>() >> 2,
            clients: clients.max(1),
            dirty: false,
            written: false,
        }
    }

    /// Applies one client's settled acknowledgements.
    pub(super) fn settle(&mut self, ack: Ack) {
        for t in ack.tokens {
            let Some(src) = self.sources.get_mut(&t.source) else {
                continue;
            };
            src.finalizer.settle(ack.client, t.from, t.offset);
            let settled = src.settled();
            if let Some(receipts) = &src.receipts {
                receipts.send_if_modified(|seen| std::mem::replace(seen, settled) != settled);
            }
            let finished = src.finished();
            let value = match src.cursors.as_mut() {
                None => Some(settled.to_string()),
                Some(cursors) => {
                    let last = cursors
                        .range(..=settled)
                        .next_back()
                        .map(|(_, c)| c.clone());
                    // Everything up to the settled entry is done with.
                    *cursors = cursors.split_off(&(settled + 1));
                    last
                }
            };
            if self.current.get(&src.path) == Some(&t.source)
                && let Some(value) = value
            {
                let entry = self.saved.entry(src.path.clone()).or_default();
                if *entry != value {
                    *entry = value;
                    self.dirty = true;
                }
            }
            if finished {
                self.forget(t.source);
            }
        }
    }

    /// Drops entries of files that no longer exist and are not being read, as Promtail does at
    /// every sync. Journal and other cursors are not files and stay.
    pub(super) fn prune_vanished(&mut self) {
        let before = self.saved.len();
        let current = &self.current;
        self.saved.retain(|key, _| {
            key.starts_with("cursor-")
                || key.starts_with("journal-")
                || current.contains_key(key)
                || path_of(key).exists()
        });
        if self.saved.len() != before {
            let saved = &self.saved;
            self.identities.retain(|k, _| saved.contains_key(k));
            self.source_ids.retain(|k, _| saved.contains_key(k));
            self.dirty = true;
        }
    }

    /// Adds a source reading `path` (a file, or a journal's cursor key) from `offset`, and
    /// makes it the current one of that path. `id`: the number it goes on under (a resumed
    /// file), else a new one.
    fn add_source(
        &mut self,
        path: &str,
        offset: u64,
        identity: Option<FileIdentity>,
        cursors: Option<BTreeMap<u64, String>>,
        id: Option<SourceId>,
    ) -> SourceId {
        let id = id.unwrap_or_else(|| {
            self.next_id += 1;
            SourceId(self.next_id)
        });
        if cursors.is_none() && self.source_ids.get(path) != Some(&id) {
            self.source_ids.insert(path.to_string(), id);
            self.dirty = true;
        }
        self.sources.insert(
            id,
            Source {
                path: path.to_string(),
                finalizer: Finalizer::new(offset, self.clients),
                last_offset: None,
                identity,
                cursors,
                receipts: None,
            },
        );
        self.current.insert(path.to_string(), id);
        id
    }

    fn forget(&mut self, id: SourceId) {
        if let Some(src) = self.sources.remove(&id)
            && self.current.get(&src.path) == Some(&id)
        {
            self.current.remove(&src.path);
        }
    }
}

/// What the per-source handles do, one lock each. Private to `delivery::positions`: sources
/// reach these only through [`super::view`].
impl Positions {
    /// The saved offset and identity of `path`.
    pub(super) fn saved(&self, path: &str) -> Option<(u64, Option<FileIdentity>)> {
        let st = self.state();
        let offset = st.saved.get(path)?.parse().ok()?;
        Some((offset, st.identities.get(path).copied()))
    }

    /// How far this process has handed on the file `is_it` recognises, through a source whose
    /// acknowledgements are still outstanding: until they arrive, the saved offset lags
    /// behind what was already read and sent. `None` when no such source is alive.
    pub(super) fn handed_on(&self, mut is_it: impl FnMut(&FileIdentity) -> bool) -> Option<u64> {
        let st = self.state();
        st.sources
            .values()
            .filter(|s| s.identity.as_ref().is_some_and(&mut is_it))
            .map(|s| s.finalizer.last_issued().max(s.last_offset.unwrap_or(0)))
            .max()
    }

    /// The first saved entry whose identity satisfies `is_it` (checked by the caller against
    /// a real file): (path, offset, identity).
    pub(super) fn find(
        &self,
        mut is_it: impl FnMut(&FileIdentity) -> bool,
    ) -> Option<(String, u64, FileIdentity)> {
        let st = self.state();
        // Identity first: this runs for every new file over every saved entry, and looking
        // up and parsing each entry's offset made 10,000 files cost seconds.
        st.identities.iter().find_map(|(path, id)| {
            if !is_it(id) {
                return None;
            }
            let offset = st.saved.get(path)?.parse().ok()?;
            Some((path.clone(), offset, *id))
        })
    }

    /// [`Self::find`] over the entries as they were read at start: a file renamed while the
    /// agent was down is still found after another file has taken its old name (and entry).
    pub(super) fn find_as_loaded(
        &self,
        mut is_it: impl FnMut(&FileIdentity) -> bool,
    ) -> Option<(String, u64, FileIdentity)> {
        self.state()
            .loaded
            .iter()
            .find(|(_, _, id)| is_it(id))
            .cloned()
    }

    /// Opens again the source now responsible for `path` if it read the file `is_it`
    /// recognises and was closed with lines still outstanding: its finalizer goes on, so the
    /// position waits for those lines as well as for what is read next. Returns it with how
    /// far it handed on.
    pub(super) fn reopen(
        &self,
        path: &str,
        mut is_it: impl FnMut(&FileIdentity) -> bool,
    ) -> Option<(SourceId, u64)> {
        let mut st = self.state();
        let id = *st.current.get(path)?;
        let src = st.sources.get_mut(&id)?;
        let handed_on = src.last_offset?;
        if !src.identity.as_ref().is_some_and(&mut is_it) {
            return None;
        }
        src.last_offset = None;
        Some((id, src.finalizer.last_issued().max(handed_on)))
    }

    /// Records that `id`'s file has a longer fingerprint now.
    pub(super) fn set_identity(&self, id: SourceId, identity: FileIdentity) {
        let mut st = self.state();
        let Some(src) = st.sources.get_mut(&id) else {
            return;
        };
        src.identity = Some(identity);
        let path = src.path.clone();
        if st.current.get(&path) == Some(&id) && st.identities.get(&path) != Some(&identity) {
            st.identities.insert(path, identity);
            st.dirty = true;
        }
    }

    /// The file of `id` was renamed to `new_path` (rotation): its position is kept under the
    /// new name from now on, so a restart finds it there.
    pub(super) fn rename(&self, id: SourceId, new_path: &str) {
        let mut st = self.state();
        let Some(src) = st.sources.get_mut(&id) else {
            return;
        };
        let old_path = std::mem::replace(&mut src.path, new_path.to_string());
        let settled = src.settled();
        let identity = src.identity;
        // The old path keeps this file's entry until another file registers there: if the
        // agent stops before that, a restart still knows which file the path last held and
        // finds it, and what was rotated after it, by identity.
        if st.current.get(&old_path) == Some(&id) {
            st.current.remove(&old_path);
        }
        st.current.insert(new_path.to_string(), id);
        st.saved.insert(new_path.to_string(), settled.to_string());
        st.source_ids.insert(new_path.to_string(), id);
        match identity {
            Some(i) => st.identities.insert(new_path.to_string(), i),
            None => st.identities.remove(new_path),
        };
        st.dirty = true;
    }

    /// Registers a tailer reading `path` from `offset`; from now on acks for the returned id
    /// move the saved position, which starts at `offset` (everything before it is done).
    pub(super) fn register(
        &self,
        path: &str,
        offset: u64,
        identity: Option<FileIdentity>,
    ) -> SourceId {
        self.register_as(None, path, offset, identity)
    }

    /// [`Self::register`] for the file whose entry is saved under `entry` (the caller checked
    /// its identity), resumed at that entry's offset: it goes on as the source saved with the
    /// entry, unless that source is still alive in this process.
    pub(super) fn register_resumed(
        &self,
        entry: &str,
        path: &str,
        offset: u64,
        identity: FileIdentity,
    ) -> SourceId {
        self.register_as(Some(entry), path, offset, Some(identity))
    }

    fn register_as(
        &self,
        resumes: Option<&str>,
        path: &str,
        offset: u64,
        identity: Option<FileIdentity>,
    ) -> SourceId {
        let mut st = self.state();
        let saved_id = resumes
            .and_then(|entry| st.source_ids.get(entry).copied())
            .filter(|id| !st.sources.contains_key(id));
        let id = st.add_source(path, offset, identity, None, saved_id);
        match identity {
            Some(i) => st.identities.insert(path.to_string(), i),
            None => st.identities.remove(path),
        };
        let value = offset.to_string();
        if st.saved.get(path) != Some(&value) {
            st.saved.insert(path.to_string(), value);
            st.dirty = true;
        }
        id
    }

    /// Registers a journal reader saving its cursor under `key` (`cursor-<job>`); its acks
    /// carry sequence numbers from 1, each announced with [`Positions::note_cursor`] first.
    pub(super) fn register_cursor(&self, key: &str) -> SourceId {
        self.state()
            .add_source(key, 0, None, Some(BTreeMap::new()), None)
    }

    /// Registers a push source under `name` (never saved): its acks carry sequence numbers
    /// from 1, and the receiver returned follows how far they are settled by every client.
    pub(super) fn register_receipts(
        &self,
        name: &str,
    ) -> (SourceId, tokio::sync::watch::Receiver<u64>) {
        let mut st = self.state();
        st.next_id += 1;
        let id = SourceId(st.next_id);
        let (tx, rx) = tokio::sync::watch::channel(0);
        let clients = st.clients;
        st.sources.insert(
            id,
            Source {
                path: name.to_string(),
                finalizer: Finalizer::new(0, clients),
                last_offset: None,
                identity: None,
                cursors: None,
                receipts: Some(tx),
            },
        );
        (id, rx)
    }

    /// Entry `seq` of journal source `id` has this cursor.
    pub(super) fn note_cursor(&self, id: SourceId, seq: u64, cursor: &str) {
        let mut st = self.state();
        if let Some(cursors) = st.sources.get_mut(&id).and_then(|s| s.cursors.as_mut()) {
            cursors.insert(seq, cursor.to_string());
        }
    }

    /// The saved value of `key` (a journal cursor).
    pub(super) fn saved_value(&self, key: &str) -> Option<String> {
        self.state().saved.get(key).cloned()
    }

    /// The lines of `batch` are about to be handed on: from now on the position of their
    /// source waits for each of them to be settled. Every source that hands on acknowledged
    /// lines (tailer, archive reader, journal reader) calls it, once, before it sends.
    pub(super) fn issue(&self, batch: &LineBatch) {
        let now = std::time::Instant::now();
        let mut st = self.state();
        let mut current: Option<(SourceId, &mut Source)> = None;
        for span in &batch.lines {
            let Some(token) = span.ack else { continue };
            if current.as_ref().is_none_or(|(id, _)| *id != token.source) {
                current = st.sources.get_mut(&token.source).map(|s| (token.source, s));
            }
            if let Some((_, src)) = current.as_mut() {
                src.finalizer.issue(token.offset, now);
            }
        }
    }

    /// The tailer of `id` stopped after handing on lines up to `last_offset`. Acks still in
    /// flight for those lines keep moving the position; then the source is forgotten.
    pub(super) fn unregister(&self, id: SourceId, last_offset: u64) {
        self.stop_source(id, Some(last_offset));
    }

    /// [`Self::unregister`] for a source whose reader went away without saying how far it
    /// handed on (a handle dropped unclosed): as far as it issued.
    pub(super) fn abandon(&self, id: SourceId) {
        self.stop_source(id, None);
    }

    fn stop_source(&self, id: SourceId, last_offset: Option<u64>) {
        let mut st = self.state();
        let finished = match st.sources.get_mut(&id) {
            Some(src) => {
                src.last_offset = Some(last_offset.unwrap_or_else(|| src.finalizer.last_issued()));
                src.finished()
            }
            None => false,
        };
        if finished {
            st.forget(id);
        }
    }
}
