use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use super::file_format::{parse, render};
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
