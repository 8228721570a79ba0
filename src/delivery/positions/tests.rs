use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use super::file_format::{Loaded, parse, render};
use super::*;
use crate::delivery::file_identity::FileIdentity;
use crate::model::ack::{self, AckToken, SourceId};
use crate::model::entry::LineBatch;

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
fn reads_promtail_positions_file() {
    let loaded =
        parse("positions:\n  /var/log/syslog: \"123456\"\n  cursor-journal: \"s=abc;i=1\"\n")
            .unwrap();
    assert!(loaded.identities.is_empty() && loaded.sources.is_empty());
    assert_eq!(loaded.saved["/var/log/syslog"], "123456");
    assert_eq!(loaded.saved["cursor-journal"], "s=abc;i=1");
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
    let mut sources = BTreeMap::new();
    sources.insert("/var/log/a.log".to_string(), SourceId(1234567890123));
    let text = render(&map, &ids, &sources);
    assert!(text.contains("  /var/log/a.log: \"10\"\n"));
    assert!(text.contains("identities:\n  /var/log/a.log: \"1:2:3:00000004\"\n"));
    assert!(text.contains("sources:\n  /var/log/a.log: \"1234567890123\"\n"));
    assert_eq!(
        parse(&text).unwrap(),
        Loaded {
            saved: map,
            identities: ids,
            sources
        }
    );
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
        format!(
            "positions:\n  /var/log/a.log: \"40\"\nsources:\n  /var/log/a.log: \"{}\"\n",
            id.0
        )
    );
}

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

/// Issue 16 item 3: positions were written only every `sync_period` (10 s by default), so a
/// kill -9 re-sent up to that much of what Loki had already acknowledged.
#[tokio::test(start_paused = true)]
async fn positions_are_saved_soon_after_acknowledgements_move_them_not_only_every_sync_period() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("positions.yaml");
    let pos = Positions::open(&f, false, 1, false).unwrap();
    let id = pos.register("/var/log/a.log", 0, None);
    issue(&pos, id, &[40, 100]);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let saver = tokio::spawn(
        pos.clone()
            .run_saver(std::time::Duration::from_secs(3600), stop_rx),
    );
    let (factory, rx) = ack::channel();
    let acks = tokio::spawn(pos.clone().run_acks(rx));
    let started = tokio::time::Instant::now();
    let saved = |want: &str| {
        std::fs::read_to_string(&f)
            .unwrap_or_default()
            .contains(&format!("/var/log/a.log: \"{want}\""))
    };
    factory.for_client(0).settle(vec![AckToken::line(id, 40)]);
    // Virtual time: far below the hour of sync_period, whatever the real write takes.
    while !saved("40") && started.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        saved("40"),
        "saved {:?} after the acknowledgement",
        started.elapsed()
    );
    factory.for_client(0).settle(vec![AckToken::line(id, 100)]);
    let again = tokio::time::Instant::now();
    while !saved("100") && again.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(saved("100"), "the next acknowledgement is saved too");
    drop(factory);
    acks.await.unwrap();
    stop_tx.send(true).unwrap();
    saver.await.unwrap();
}

#[test]
fn saves_after_acknowledgements_are_spaced_by_the_window_or_by_what_a_save_costs() {
    use std::time::Duration;
    assert_eq!(next_save_after_acks(None), None, "the first one at once");
    let t = tokio::time::Instant::now();
    assert_eq!(
        next_save_after_acks(Some((t, Duration::from_millis(1)))),
        Some(t + SAVE_AFTER_ACKS_WITHIN)
    );
    // A 40 ms save (a very large file, a slow disk) is followed by 800 ms without one.
    assert_eq!(
        next_save_after_acks(Some((t, Duration::from_millis(40)))),
        Some(t + Duration::from_millis(800))
    );
}

/// Issue 16 item 4: a file resumed at its own entry after a restart goes on as the source
/// saved with the entry, so a disk buffer holding its lines from before a crash knows them.
#[test]
fn a_file_resumed_at_its_own_entry_goes_on_as_the_saved_source() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("positions.yaml");
    let id = FileIdentity::parse("1:2:3:00000004").unwrap();
    let first = {
        let pos = Positions::open(&f, false, 1, false).unwrap();
        let view = pos.view();
        let s = view.open_file("/l/app.log", 0, id);
        let first = s.id();
        s.renamed("/l/app.log.1");
        let next = view.open_file("/l/app.log", 0, id);
        assert_ne!(next.id(), first, "a new file is a new source");
        pos.save().unwrap();
        first
    };
    let pos = Positions::open(&f, false, 1, false).unwrap();
    let view = pos.view();
    let resumed = view.resume_file("/l/app.log.1", "/l/app.log.1", 0, id);
    assert_eq!(resumed.id(), first, "the rotated file, by its own entry");
    let again = view.resume_file("/l/app.log.1", "/l/app.log.1", 0, id);
    assert_ne!(again.id(), first, "never two live sources under one number");
    let fresh = view.open_file("/l/other.log", 0, id);
    assert_ne!(fresh.id(), first);
}

/// Issue 17 item 7: positions were keyed by a lossy form of the name, so `caf\xe9.log`
/// resumed at 0 after a restart, and `\xff.log` and `\xfe.log` shared one entry.
#[test]
fn names_that_are_not_utf8_keep_their_own_entries_through_the_file() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let names = [&b"/l/caf\xe9.log"[..], b"/l/\xff.log", b"/l/\xfe.log"];
    let keys: Vec<String> = names
        .iter()
        .map(|n| key_of(std::path::Path::new(OsStr::from_bytes(n))))
        .collect();
    let mut map = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        map.insert(k.clone(), format!("{}", 10 * (i + 1)));
    }
    map.insert("/l/plain.log".to_string(), "5".to_string());
    let text = render(&map, &BTreeMap::new(), &BTreeMap::new());
    // Readable, and as Promtail's YAML library writes such a name.
    assert!(
        text.contains("  !!binary L2wvY2Fm6S5sb2c=: \"10\"  # /l/caf\\xe9.log\n"),
        "{text}"
    );
    assert!(text.contains("  /l/plain.log: \"5\"\n"), "{text}");
    let loaded = parse(&text).unwrap();
    assert_eq!(loaded.saved, map);
    assert_eq!(loaded.saved.len(), 4, "three names, three entries");
}

#[test]
fn a_promtail_file_with_a_binary_name_loads() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let key = key_of(std::path::Path::new(OsStr::from_bytes(b"/l/caf\xe9.log")));
    for text in [
        "positions:\n  !!binary L2wvY2Fm6S5sb2c=: \"123\"\n  /var/log/syslog: \"7\"\n",
        "positions:\n  ? !!binary |\n    L2wvY2Fm6S5sb2c=\n  : \"123\"\n",
    ] {
        let loaded = parse(text).unwrap();
        assert_eq!(
            loaded.saved.get(&key).map(String::as_str),
            Some("123"),
            "{text}"
        );
    }
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
