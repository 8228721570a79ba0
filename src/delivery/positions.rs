//! The positions store: how far each file has been delivered, kept in Promtail's
//! `positions.yaml` format so an existing file is picked up as it is.
//!
//! Beside Promtail's `positions:` map (path to quoted byte offset) the file holds an
//! `identities:` map (path to device, inode and head fingerprint), so a file renamed by
//! rotation, even while the agent was down, is recognised under its new name. An entry
//! without an identity (a migrated Promtail file) is trusted as Promtail would trust it.
//!
//! Owns the in-memory map, the acknowledgement receiver (the one channel that flows back from
//! the clients) and atomic saves (temp file, fsync, rename; mode 0600). A file's position
//! moves only past lines every client has settled, in order: each source has a
//! [`Finalizer`] that tailers issue lines to (before handing them on) and acknowledgements
//! settle. It must not read log files or know about HTTP.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Deserialize;

use crate::delivery::file_identity::FileIdentity;
use crate::delivery::finalizer::{Finalizer, MAX_CLIENTS};
use crate::model::ack::{AckReceiver, SourceId};
use crate::model::entry::LineBatch;

/// Shared handle: tailers ask where to start and register their source; the ack task and
/// the saver update and persist.
#[derive(Clone)]
pub struct Positions {
    inner: Arc<Mutex<State>>,
    file: PathBuf,
    read_only: bool,
    /// Counts saves that found the file deleted by someone else.
    deleted: Option<prometheus::IntCounter>,
    /// Counts saves that could not write the file.
    write_errors: Option<prometheus::IntCounter>,
}

struct State {
    /// Saved positions by path (what goes into the file), including cursor-* keys we keep.
    saved: BTreeMap<String, String>,
    /// The entries with an identity as read at start: (path, offset, identity).
    loaded: Vec<(String, u64, FileIdentity)>,
    /// Identity of the file each saved path refers to, where known.
    identities: BTreeMap<String, FileIdentity>,
    sources: HashMap<SourceId, Source>,
    /// The source whose acknowledgements move a path's saved position: a file replaced or
    /// truncated under the same path gets a new source, and late acks of the old one must not
    /// move the new file's position.
    current: HashMap<String, SourceId>,
    next_id: u64,
    clients: usize,
    dirty: bool,
    /// The file has been written successfully by this process (so its absence means someone
    /// deleted it; a file that could never be written was not deleted).
    written: bool,
}

struct Source {
    path: String,
    finalizer: Finalizer,
    /// Set when the tailer stopped: the end of the last line it handed on. The source is
    /// forgotten once every line it issued is settled.
    last_offset: Option<u64>,
    identity: Option<FileIdentity>,
    /// For a journal: the cursor of each entry handed on, by its sequence number (the
    /// "offset" of its ack). The saved value is the cursor of the last settled entry.
    cursors: Option<BTreeMap<u64, String>>,
}

impl Source {
    fn settled(&self) -> u64 {
        self.finalizer.committed()
    }

    fn finished(&self) -> bool {
        self.last_offset.is_some() && self.finalizer.outstanding() == 0
    }
}

#[derive(Debug)]
pub struct PositionsError(pub String);

impl std::fmt::Display for PositionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PositionsError {}

#[derive(Deserialize)]
struct PositionsFile {
    #[serde(default)]
    positions: Option<BTreeMap<String, String>>,
    #[serde(default)]
    identities: Option<BTreeMap<String, String>>,
}

impl Positions {
    /// Reads `file` if it exists. A corrupt file is an error unless `ignore_invalid`, in
    /// which case it is replaced on the next save, as Promtail does.
    pub fn open(
        file: &Path,
        ignore_invalid: bool,
        clients: usize,
        read_only: bool,
    ) -> Result<Self, PositionsError> {
        if clients > MAX_CLIENTS {
            return Err(PositionsError(format!(
                "{clients} clients configured; at most {MAX_CLIENTS} are supported"
            )));
        }
        let (saved, identities) = match std::fs::read_to_string(file) {
            Ok(text) => match parse(&text) {
                Ok(maps) => maps,
                Err(e) if ignore_invalid => {
                    tracing::warn!(file = %file.display(), error = %e, "ignoring invalid positions file");
                    Default::default()
                }
                Err(e) => {
                    return Err(PositionsError(format!(
                        "invalid positions file {}: {e} (set positions.ignore_invalid_yaml: true to start over)",
                        file.display()
                    )));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(e) => {
                return Err(PositionsError(format!(
                    "cannot read positions file {}: {e}",
                    file.display()
                )));
            }
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(State {
                loaded: identities
                    .iter()
                    .filter_map(|(path, id)| {
                        Some((path.clone(), saved.get(path)?.parse().ok()?, *id))
                    })
                    .collect(),
                saved,
                identities,
                sources: HashMap::new(),
                current: HashMap::new(),
                next_id: 0,
                clients: clients.max(1),
                dirty: false,
                written: false,
            })),
            file: file.to_path_buf(),
            read_only,
            deleted: None,
            write_errors: None,
        })
    }

    /// Counts, in `counter`, each time the file turns out deleted while running.
    pub fn with_deletion_counter(mut self, counter: prometheus::IntCounter) -> Self {
        self.deleted = Some(counter);
        self
    }

    /// Counts, in `counter`, each save that cannot write the file.
    pub fn with_write_error_counter(mut self, counter: prometheus::IntCounter) -> Self {
        self.write_errors = Some(counter);
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere already; the map itself is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The saved offset of `path` (0 if none).
    pub fn get(&self, path: &str) -> u64 {
        self.state()
            .saved
            .get(path)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The saved offset and identity of `path`.
    pub fn saved(&self, path: &str) -> Option<(u64, Option<FileIdentity>)> {
        let st = self.state();
        let offset = st.saved.get(path)?.parse().ok()?;
        Some((offset, st.identities.get(path).copied()))
    }

    /// How far this process has handed on the file `is_it` recognises, through a source whose
    /// acknowledgements are still outstanding: until they arrive, the saved offset lags
    /// behind what was already read and sent. `None` when no such source is alive.
    pub fn handed_on(&self, mut is_it: impl FnMut(&FileIdentity) -> bool) -> Option<u64> {
        let st = self.state();
        st.sources
            .values()
            .filter(|s| s.identity.as_ref().is_some_and(&mut is_it))
            .map(|s| s.finalizer.last_issued().max(s.last_offset.unwrap_or(0)))
            .max()
    }

    /// The first saved entry whose identity satisfies `is_it` (checked by the caller against
    /// a real file): (path, offset, identity).
    pub fn find(
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
    pub fn find_as_loaded(
        &self,
        mut is_it: impl FnMut(&FileIdentity) -> bool,
    ) -> Option<(String, u64, FileIdentity)> {
        self.state()
            .loaded
            .iter()
            .find(|(_, _, id)| is_it(id))
            .cloned()
    }

    /// Is a source reading a file with this device and inode right now?
    pub fn is_reading(&self, dev: u64, ino: u64) -> bool {
        let st = self.state();
        st.sources
            .values()
            .any(|s| s.identity.is_some_and(|i| i.dev == dev && i.ino == ino))
    }

    /// Records that `id`'s file has a longer fingerprint now.
    pub fn set_identity(&self, id: SourceId, identity: FileIdentity) {
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
    pub fn rename(&self, id: SourceId, new_path: &str) {
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
        match identity {
            Some(i) => st.identities.insert(new_path.to_string(), i),
            None => st.identities.remove(new_path),
        };
        st.dirty = true;
    }

    /// Registers a tailer reading `path` from `offset`; from now on acks for the returned id
    /// move the saved position, which starts at `offset` (everything before it is done).
    pub fn register(&self, path: &str, offset: u64, identity: Option<FileIdentity>) -> SourceId {
        let mut st = self.state();
        let id = add_source(&mut st, path, offset, identity, None);
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
    pub fn register_cursor(&self, key: &str) -> SourceId {
        add_source(&mut self.state(), key, 0, None, Some(BTreeMap::new()))
    }

    /// Entry `seq` of journal source `id` has this cursor.
    pub fn note_cursor(&self, id: SourceId, seq: u64, cursor: &str) {
        let mut st = self.state();
        if let Some(cursors) = st.sources.get_mut(&id).and_then(|s| s.cursors.as_mut()) {
            cursors.insert(seq, cursor.to_string());
        }
    }

    /// The saved value of `key` (a journal cursor).
    pub fn saved_value(&self, key: &str) -> Option<String> {
        self.state().saved.get(key).cloned()
    }

    /// The lines of `batch` are about to be handed on: from now on the position of their
    /// source waits for each of them to be settled. Every source that hands on acknowledged
    /// lines (tailer, archive reader, journal reader) calls it, once, before it sends.
    pub fn issue(&self, batch: &LineBatch) {
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

    /// When the oldest line not yet settled by every client was issued, over all sources.
    pub fn oldest_outstanding(&self) -> Option<std::time::Instant> {
        self.state()
            .sources
            .values()
            .filter_map(|s| s.finalizer.oldest_outstanding())
            .min()
    }

    /// Keeps `gauge` at the age of the oldest unacknowledged line (0 when none) until `stop`.
    pub async fn run_age_gauge(
        self,
        gauge: prometheus::Gauge,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let age = self
                .oldest_outstanding()
                .map_or(0.0, |t| t.elapsed().as_secs_f64());
            gauge.set(age);
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// The tailer of `id` stopped after handing on lines up to `last_offset`. Acks still in
    /// flight for those lines keep moving the position; then the source is forgotten.
    pub fn unregister(&self, id: SourceId, last_offset: u64) {
        let mut st = self.state();
        let finished = match st.sources.get_mut(&id) {
            Some(src) => {
                src.last_offset = Some(last_offset);
                src.finished()
            }
            None => false,
        };
        if finished {
            forget(&mut st, id);
        }
    }

    /// Whether every tailer that read `path` has had all it handed on acknowledged (a job
    /// stopped by a reload is settled before its successor reads the same file).
    pub fn settled(&self, path: &str) -> bool {
        !self.state().sources.values().any(|s| s.path == path)
    }

    /// Switches to `clients` clients (a reload changed them), once no tailer runs. Sources
    /// still waiting for acknowledgements are forgotten: their files resume from the saved,
    /// acknowledged offset, so those lines are read again rather than lost. Returns how many.
    pub fn reset_clients(&self, clients: usize) -> usize {
        let mut st = self.state();
        let unsettled = st.sources.len();
        st.sources.clear();
        st.current.clear();
        st.clients = clients.min(MAX_CLIENTS);
        unsettled
    }

    /// Forgets `path` (its file left the glob), as Promtail does.
    pub fn remove(&self, path: &str) {
        let mut st = self.state();
        st.current.remove(path);
        st.identities.remove(path);
        if st.saved.remove(path).is_some() {
            st.dirty = true;
        }
    }

    /// Applies settled acknowledgements until the channel closes.
    pub async fn run_acks(self, mut rx: AckReceiver) {
        while let Some(ack) = rx.recv().await {
            let mut st = self.state();
            let st = &mut *st;
            for t in ack.tokens {
                let Some(src) = st.sources.get_mut(&t.source) else {
                    continue;
                };
                src.finalizer.settle(ack.client, t.from, t.offset);
                let settled = src.settled();
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
                if st.current.get(&src.path) == Some(&t.source)
                    && let Some(value) = value
                {
                    let entry = st.saved.entry(src.path.clone()).or_default();
                    if *entry != value {
                        *entry = value;
                        st.dirty = true;
                    }
                }
                if finished {
                    forget(st, t.source);
                }
            }
        }
    }

    /// Writes the file if anything changed (never in read-only mode).
    pub fn save(&self) -> Result<(), PositionsError> {
        if self.read_only {
            return Ok(());
        }
        let text = {
            let mut st = self.state();
            prune_vanished(&mut st);
            let exists = self.file.exists();
            if !st.dirty && exists {
                return Ok(());
            }
            if !exists && st.written {
                if let Some(c) = &self.deleted {
                    c.inc();
                }
                tracing::warn!(
                    file = %self.file.display(),
                    "positions file was deleted while running; writing it again from memory"
                );
            }
            st.dirty = false;
            render(&st.saved, &st.identities)
        };
        match write_atomically(&self.file, text.as_bytes()) {
            Ok(()) => {
                self.state().written = true;
                Ok(())
            }
            Err(e) => {
                self.state().dirty = true;
                if let Some(c) = &self.write_errors {
                    c.inc();
                }
                Err(PositionsError(format!(
                    "cannot write the positions file {}: {e}",
                    self.file.display()
                )))
            }
        }
    }

    /// Saves every `period` until `stop` fires; logs failures and keeps going.
    pub async fn run_saver(
        self,
        period: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        // A file that cannot be written fails at every sync; said once until it recovers.
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.changed() => return,
            }
            match self.save() {
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "cannot write the positions file; positions are kept in memory and saved once it can be written (retrying every sync)");
                }
                Err(e) => tracing::debug!(error = %e, "positions file still cannot be written"),
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(file = %self.file.display(), "positions file written again");
                }
                Ok(()) => {}
            }
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.state().saved.clone()
    }
}

/// Drops entries of files that no longer exist and are not being read, as Promtail does at
/// every sync. Journal and other cursors are not files and stay.
fn prune_vanished(st: &mut State) {
    let before = st.saved.len();
    let current = &st.current;
    st.saved.retain(|key, _| {
        key.starts_with("cursor-")
            || key.starts_with("journal-")
            || current.contains_key(key)
            || Path::new(key).exists()
    });
    if st.saved.len() != before {
        let saved = &st.saved;
        st.identities.retain(|k, _| saved.contains_key(k));
        st.dirty = true;
    }
}

/// Adds a source reading `path` (a file, or a journal's cursor key) from `offset`, and makes
/// it the current one of that path.
fn add_source(
    st: &mut State,
    path: &str,
    offset: u64,
    identity: Option<FileIdentity>,
    cursors: Option<BTreeMap<u64, String>>,
) -> SourceId {
    st.next_id += 1;
    let id = SourceId(st.next_id);
    st.sources.insert(
        id,
        Source {
            path: path.to_string(),
            finalizer: Finalizer::new(offset, st.clients),
            last_offset: None,
            identity,
            cursors,
        },
    );
    st.current.insert(path.to_string(), id);
    id
}

fn forget(st: &mut State, id: SourceId) {
    if let Some(src) = st.sources.remove(&id)
        && st.current.get(&src.path) == Some(&id)
    {
        st.current.remove(&src.path);
    }
}

type Maps = (BTreeMap<String, String>, BTreeMap<String, FileIdentity>);

fn parse(text: &str) -> Result<Maps, String> {
    if text.trim().is_empty() {
        return Ok(Default::default());
    }
    let file: PositionsFile = crate::config::yaml::from_str(text).map_err(|e| e.to_string())?;
    let positions = file.positions.unwrap_or_default();
    // An identity we cannot read only costs the rename detection for that path.
    let identities = file
        .identities
        .unwrap_or_default()
        .into_iter()
        .filter(|(path, _)| positions.contains_key(path))
        .filter_map(|(path, id)| FileIdentity::parse(&id).map(|id| (path, id)))
        .collect();
    Ok((positions, identities))
}

/// Renders Promtail's layout: `positions:` then `  <path>: "<offset>"`, keys quoted only when
/// plain YAML would misread them; then the identities in the same layout.
fn render(map: &BTreeMap<String, String>, identities: &BTreeMap<String, FileIdentity>) -> String {
    let mut out = String::from("positions:\n");
    for (k, v) in map {
        push_entry(&mut out, k, v);
    }
    let known: Vec<_> = identities
        .iter()
        .filter(|(k, _)| map.contains_key(*k))
        .collect();
    if !known.is_empty() {
        out.push_str("identities:\n");
        for (k, id) in known {
            push_entry(&mut out, k, &id.to_string());
        }
    }
    out
}

fn push_entry(out: &mut String, key: &str, value: &str) {
    out.push_str("  ");
    if needs_quotes(key) {
        crate::model::labels::quote_go_into(key, out);
    } else {
        out.push_str(key);
    }
    out.push_str(": ");
    crate::model::labels::quote_go_into(value, out);
    out.push('\n');
}

fn needs_quotes(key: &str) -> bool {
    key.is_empty()
        || key.contains(": ")
        || key.contains(" #")
        || key.ends_with(':')
        || key.starts_with(|c: char| "!&*-?{}[],#|>@`\"'%: ".contains(c))
        || key.chars().any(|c| c.is_control())
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "positions".into())
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ack::{self, AckToken};

    /// Issues lines of `id` ending at `ends`, as its tailer would before handing them on.
    fn issue(pos: &Positions, id: SourceId, ends: &[u64]) {
        let labels = std::sync::Arc::new(crate::model::labels::LabelSet::new());
        let mut batch = LineBatch::new(labels, crate::model::clock::now());
        for &end in ends {
            batch.push("x", Some(AckToken::line(id, end)));
        }
        pos.issue(&batch);
    }

    #[test]
    fn a_file_that_cannot_be_written_is_not_reported_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("state");
        let file = blocker.join("positions.yaml");
        let deleted = prometheus::IntCounter::new("d", "d").unwrap();
        let write_errors = prometheus::IntCounter::new("w", "w").unwrap();
        let pos = Positions::open(&file, false, 1, false)
            .unwrap()
            .with_deletion_counter(deleted.clone())
            .with_write_error_counter(write_errors.clone());
        // A regular file where the positions directory should be: every write fails, even
        // for root.
        std::fs::write(&blocker, "").unwrap();
        let e = pos.save().unwrap_err();
        assert!(
            e.to_string().starts_with("cannot write the positions file"),
            "{e}"
        );
        assert!(pos.save().is_err());
        assert_eq!(write_errors.get(), 2);
        assert_eq!(deleted.get(), 0, "never written, so never deleted");
        // Writable again: saved; then deleted behind our back: that is counted as deleted.
        std::fs::remove_file(&blocker).unwrap();
        pos.save().unwrap();
        assert!(file.exists());
        std::fs::remove_file(&file).unwrap();
        pos.save().unwrap();
        assert_eq!(deleted.get(), 1);
        assert_eq!(write_errors.get(), 2);
    }

    #[test]
    fn reads_promtail_positions_file() {
        let (map, identities) =
            parse("positions:\n  /var/log/syslog: \"123456\"\n  cursor-journal: \"s=abc;i=1\"\n")
                .unwrap();
        assert!(identities.is_empty());
        assert_eq!(map["/var/log/syslog"], "123456");
        assert_eq!(map["cursor-journal"], "s=abc;i=1");
    }

    #[test]
    fn render_round_trips_through_parse() {
        let mut map = BTreeMap::new();
        map.insert("/var/log/a.log".to_string(), "10".to_string());
        map.insert("/tmp/odd: name #1".to_string(), "20".to_string());
        let mut ids = BTreeMap::new();
        ids.insert(
            "/var/log/a.log".to_string(),
            FileIdentity {
                dev: 1,
                ino: 2,
                fp_len: 3,
                fp_crc: 4,
            },
        );
        let text = render(&map, &ids);
        assert!(text.contains("  /var/log/a.log: \"10\"\n"));
        assert!(text.contains("identities:\n  /var/log/a.log: \"1:2:3:00000004\"\n"));
        assert_eq!(parse(&text).unwrap(), (map, ids));
    }

    #[test]
    fn entries_as_loaded_are_found_after_their_path_was_taken_by_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("positions.yaml");
        std::fs::write(
            &f,
            "positions:\n  /l/a.1.gz: \"7\"\nidentities:\n  /l/a.1.gz: \"1:2:3:00000004\"\n",
        )
        .unwrap();
        let p = Positions::open(&f, false, 1, false).unwrap();
        let old = FileIdentity::parse("1:2:3:00000004").unwrap();
        let new = FileIdentity::parse("1:9:3:00000005").unwrap();
        p.register("/l/a.1.gz", 0, Some(new));
        assert_eq!(p.find(|id| *id == old), None);
        assert_eq!(
            p.find_as_loaded(|id| *id == old),
            Some(("/l/a.1.gz".to_string(), 7, old))
        );
    }

    #[test]
    fn invalid_file_is_an_error_unless_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("positions.yaml");
        std::fs::write(&f, "positions: [unclosed\n").unwrap();
        assert!(Positions::open(&f, false, 1, false).is_err());
        assert!(Positions::open(&f, true, 1, false).is_ok());
    }

    #[tokio::test]
    async fn late_acks_of_a_replaced_file_do_not_move_the_new_files_position() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, "x\n").unwrap();
        let path = log.display().to_string();
        let pos = Positions::open(&dir.path().join("p.yaml"), false, 1, false).unwrap();
        let old = pos.register(&path, 0, None);
        // The file is replaced: the old tailer stops after handing on 500 bytes, the new one
        // starts at 0 under the same path.
        pos.unregister(old, 500);
        let new = pos.register(&path, 0, None);
        issue(&pos, new, &[7]);
        let (factory, rx) = ack::channel();
        let task = tokio::spawn(pos.clone().run_acks(rx));
        factory.for_client(0).settle(vec![AckToken::line(old, 500)]);
        factory.for_client(0).settle(vec![AckToken::line(new, 7)]);
        drop(factory);
        task.await.unwrap();
        assert_eq!(pos.get(&path), 7);
        assert!(
            !pos.state().sources.contains_key(&old),
            "finished source forgotten"
        );
    }

    #[test]
    fn vanished_files_are_pruned_but_cursors_kept() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.yaml");
        let kept = dir.path().join("kept.log");
        std::fs::write(&kept, "x\n").unwrap();
        std::fs::write(
            &f,
            format!(
                "positions:\n  {}: \"2\"\n  /no/such/file.log: \"9\"\n  cursor-journal: \"s=1\"\n",
                kept.display()
            ),
        )
        .unwrap();
        let pos = Positions::open(&f, false, 1, false).unwrap();
        pos.save().unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("/no/such/file.log"), "{text}");
        assert!(
            text.contains("cursor-journal") && text.contains("kept.log"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn position_moves_only_when_every_client_acked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("positions.yaml");
        let pos = Positions::open(&f, false, 2, false).unwrap();
        let id = pos.register("/var/log/a.log", 0, None);
        issue(&pos, id, &[40, 100]);
        let (factory, rx) = ack::channel();
        let task = tokio::spawn(pos.clone().run_acks(rx));
        factory
            .for_client(0)
            .settle(vec![AckToken::line(id, 40), AckToken::line(id, 100)]);
        factory.for_client(1).settle(vec![AckToken::line(id, 40)]);
        drop(factory);
        task.await.unwrap();
        assert_eq!(pos.get("/var/log/a.log"), 40);
        pos.save().unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "positions:\n  /var/log/a.log: \"40\"\n"
        );
    }
}

#[cfg(test)]
mod ordered_tests {
    use super::*;
    use crate::model::ack::{self, AckToken};

    #[tokio::test]
    async fn position_never_passes_a_line_acknowledged_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let pos = Positions::open(&dir.path().join("p.yaml"), false, 1, false).unwrap();
        let id = pos.register("/var/log/a.log", 0, None);
        let labels = std::sync::Arc::new(crate::model::labels::LabelSet::new());
        let mut batch = LineBatch::new(labels, crate::model::clock::now());
        for end in [10, 20, 30] {
            batch.push("x", Some(AckToken::line(id, end)));
        }
        pos.issue(&batch);
        // Line 30 overtook the held line 10 (and line 20 was dropped on purpose).
        let (factory, rx) = ack::channel();
        factory
            .for_client(0)
            .settle(vec![AckToken::line(id, 30), AckToken::line(id, 20)]);
        drop(factory);
        pos.clone().run_acks(rx).await;
        assert_eq!(
            pos.get("/var/log/a.log"),
            0,
            "line 10 is not acknowledged yet"
        );
        assert!(pos.oldest_outstanding().is_some());
        let (factory, rx) = ack::channel();
        factory.for_client(0).settle(vec![AckToken::line(id, 10)]);
        drop(factory);
        pos.clone().run_acks(rx).await;
        assert_eq!(pos.get("/var/log/a.log"), 30);
        assert!(pos.oldest_outstanding().is_none());
    }

    #[test]
    fn more_clients_than_the_finalizer_tracks_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Positions::open(&dir.path().join("p.yaml"), false, 65, false)
            .err()
            .expect("65 clients refused");
        assert!(err.0.contains("at most 64"), "{err}");
    }
}
