//! Unit tests of the disk buffer, beside it to keep wal.rs readable.

use super::*;
use crate::client::queue;
use crate::model::ack;

fn entry(line: &str) -> Entry {
    Entry {
        labels: LabelSet::from_pairs([("job", "x".to_string())]),
        timestamp: DateTime::parse_from_rfc3339("2024-05-06T07:08:09.123456789+02:00").unwrap(),
        line: line.to_string(),
        structured_metadata: vec![("trace".into(), "t1".into())],
    }
}

fn cfg(dir: &Path) -> WalConfig {
    WalConfig {
        enabled: true,
        dir: dir.display().to_string(),
        segment_size: crate::config::ByteSize(200),
        fsync: WalFsync::Always,
        ..WalConfig::default()
    }
}

fn lines(items: &[Outgoing]) -> Vec<String> {
    items
        .iter()
        .filter_map(|o| match o {
            Outgoing::Entry { entry, .. } => Some(entry.line.clone()),
            Outgoing::Consumed { .. } => None,
        })
        .collect()
}

async fn write(wal: &Arc<Wal>, lines: &[&str]) {
    let (tx, rx) = queue::bounded(1 << 20, None);
    let (factory, _acks) = ack::channel();
    let items = lines
        .iter()
        .map(|l| Outgoing::Entry {
            entry: entry(l),
            ack: None,
        })
        .collect();
    tx.send(items).await.unwrap();
    drop(tx);
    run_writer(wal.clone(), rx, factory.for_client(0)).await;
}

/// Writes `lines` of file source `source`, line `i` ending at `10 * (i + 1)`, as a tailer
/// numbers them; returns the tokens the writer settled to positions.
async fn write_lines_of(
    wal: &Arc<Wal>,
    source: SourceId,
    lines: &[(usize, &str)],
) -> Vec<AckToken> {
    let (tx, rx) = queue::bounded(1 << 20, None);
    let (factory, mut acks) = ack::channel();
    let items = lines
        .iter()
        .map(|(i, l)| Outgoing::Entry {
            entry: entry(l),
            ack: Some(AckToken::line_after(
                source,
                10 * *i as u64,
                10 * (*i as u64 + 1),
            )),
        })
        .collect();
    tx.send(items).await.unwrap();
    drop(tx);
    run_writer(wal.clone(), rx, factory.for_client(0)).await;
    drop(factory);
    let mut settled = Vec::new();
    while let Some(a) = acks.recv().await {
        settled.extend(a.tokens);
    }
    settled
}

fn reopened(dir: &Path, metrics: &Arc<Metrics>) -> Arc<Wal> {
    Wal::new(&cfg(dir), dir.to_path_buf(), "h", metrics.clone())
}

/// Issue 16 item 4: after a kill -9 between the buffer's write and the positions save,
/// the tailer reads the same lines again; the buffer replayed them and took them a second
/// time, so they reached Loki twice.
#[tokio::test]
async fn lines_read_again_after_a_crash_are_settled_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let file = SourceId(77);
    let first: Vec<String> = (0..6).map(|i| format!("line {i}")).collect();
    let numbered: Vec<(usize, &str)> = first.iter().map(String::as_str).enumerate().collect();
    let wal = reopened(dir.path(), &metrics);
    write_lines_of(&wal, file, &numbered).await;
    // The crash: positions were saved before lines 2..6 reached the buffer. After the
    // restart the same source reads lines 2..8; 2..6 are already here.
    let wal = reopened(dir.path(), &metrics);
    let again: Vec<String> = (2..8).map(|i| format!("line {i}")).collect();
    let renumbered: Vec<(usize, &str)> = again
        .iter()
        .map(String::as_str)
        .enumerate()
        .map(|(i, l)| (i + 2, l))
        .collect();
    let settled = write_lines_of(&wal, file, &renumbered).await;
    assert_eq!(
        settled
            .iter()
            .map(|t| (t.source, t.from, t.offset))
            .collect::<Vec<_>>(),
        vec![(file, 21, 80)],
        "every line read again is settled for positions"
    );
    wal.state().closed = true;
    let (got, _) = read_all(&wal).await;
    let want: Vec<String> = (0..8).map(|i| format!("line {i}")).collect();
    assert_eq!(got, want, "each line once, in order");
    assert_eq!(
        metrics
            .client
            .wal_records
            .with_label_values(&["h", "already_held"])
            .get(),
        4
    );
    // Another source (a new file, or the same path truncated) is never taken as held.
    let wal = reopened(dir.path(), &metrics);
    write_lines_of(&wal, SourceId(78), &[(2, "other 2")]).await;
    wal.state().closed = true;
    let (got, _) = read_all(&wal).await;
    assert_eq!(got.last().map(String::as_str), Some("other 2"));
}

#[test]
fn held_runs_merge_and_answer_for_whole_tokens() {
    let s = SourceId(1);
    let mut held = Held::default();
    held.insert(AckToken::line_after(s, 20, 30));
    held.insert(AckToken::line_after(s, 0, 10));
    held.insert(AckToken::line_after(s, 50, 60));
    assert!(!held.covers(&AckToken::line_after(s, 10, 20)), "a gap");
    held.insert(AckToken::line_after(s, 10, 20));
    assert_eq!(held.0[&s], vec![(1, 30), (51, 60)]);
    assert!(
        held.covers(&AckToken::line_after(s, 0, 30)),
        "a joined block"
    );
    assert!(
        !held.covers(&AckToken::line_after(s, 25, 55)),
        "across the gap"
    );
    assert!(!held.covers(&AckToken::line_after(SourceId(2), 0, 10)));
    held.passed(&AckToken::line_after(s, 40, 45));
    assert!(!held.is_empty(), "not past the last run yet");
    held.passed(&AckToken::line_after(s, 60, 70));
    assert!(held.is_empty());
}

/// Issue 16 item 7: lines in the buffer are settled for positions, so the age of the
/// oldest unacknowledged line read 0 during an outage with megabytes waiting.
#[tokio::test]
async fn the_oldest_unacknowledged_record_is_known_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let wal = reopened(dir.path(), &metrics);
    assert_eq!(wal.oldest_unacknowledged(), None);
    let before = std::time::Instant::now();
    write(&wal, &["one", "two"]).await;
    let oldest = wal.oldest_unacknowledged().expect("two records wait");
    assert!(oldest >= before);
    // Replayed after a restart: still waiting, and as old as their segment at least.
    let wal = reopened(dir.path(), &metrics);
    {
        let mut st = wal.state();
        wal.open(&mut st).unwrap();
        st.closed = true;
    }
    assert!(wal.oldest_unacknowledged().is_some());
    let (_, last) = read_all(&wal).await;
    wal.acknowledge(last.unwrap());
    assert_eq!(wal.oldest_unacknowledged(), None);
}

async fn read_all(wal: &Arc<Wal>) -> (Vec<String>, Option<u64>) {
    let mut r = WalReader::new(wal.clone());
    let mut got = Vec::new();
    let mut last = None;
    while let Some(items) = r.recv().await {
        let tokens: Vec<AckToken> = items.iter().filter_map(Outgoing::ack).collect();
        last = acknowledged_position(&tokens).or(last);
        got.extend(lines(&items));
    }
    (got, last)
}

#[test]
fn records_round_trip() {
    let mut buf = Vec::new();
    encode(&entry("hello"), &mut buf);
    assert_eq!(decode(&buf), Some(entry("hello")));
    assert_eq!(decode(&buf[..buf.len() - 1]), None);
}

/// Descriptors of this process open on a segment file under `dir`.
fn open_segments(dir: &Path) -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.starts_with(&dir.display().to_string()) && p.contains(".wal"))
        .collect()
}

#[tokio::test]
async fn the_reader_lets_go_of_a_segment_once_it_is_acknowledged_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let wal = Wal::new(&cfg(dir.path()), dir.path().to_path_buf(), "h", metrics);
    write(&wal, &["one", "two", "three"]).await;
    let mut reader = WalReader::new(wal.clone());
    let items = reader.recv().await.unwrap();
    assert_eq!(lines(&items), ["one", "two", "three"]);
    assert!(
        !open_segments(dir.path()).is_empty(),
        "the reader holds its segment"
    );
    let tokens: Vec<AckToken> = items.iter().filter_map(Outgoing::ack).collect();
    wal.acknowledge(acknowledged_position(&tokens).unwrap());
    assert!(
        wal.state().segments.is_empty(),
        "acknowledged segments are deleted"
    );
    let _ = tokio::time::timeout(Duration::from_millis(300), reader.recv()).await;
    // A deleted file's space comes back only when its last descriptor closes.
    assert_eq!(open_segments(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn buffer_directory_and_files_are_private_whatever_the_umask() {
    // SAFETY: umask only swaps the process's mask; 022 is the usual value anyway.
    let before = unsafe { libc::umask(0o022) };
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("wal");
    let metrics = Arc::new(Metrics::new());
    let wal = Wal::new(&cfg(&dir), dir.clone(), "h", metrics.clone());
    let many: Vec<String> = (0..20).map(|i| format!("secret line {i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    write(&wal, &many).await;
    write_acked(&dir, 1).unwrap();
    unsafe { libc::umask(before) };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let mut files = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        files += 1;
    }
    assert!(
        files >= 2,
        "segments and the acknowledged position were looked at"
    );
}

#[tokio::test]
async fn entries_are_replayed_after_a_restart_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let wal = Wal::new(
        &cfg(dir.path()),
        dir.path().to_path_buf(),
        "h",
        metrics.clone(),
    );
    let many: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    write(&wal, &many).await;
    let (got, last) = read_all(&wal).await;
    assert_eq!(got, many);
    assert!(wal.state().segments.len() > 1, "small segments roll");
    {
        // Written as one run, yet each segment rolled as if the records came one by one:
        // a sealed segment holds at least segment_size, and less than one record more.
        let st = wal.state();
        let record = HEADER + {
            let mut b = Vec::new();
            encode(&entry("line 10"), &mut b);
            b.len() as u64
        };
        for seg in st.segments.iter().take(st.segments.len() - 1) {
            assert!(
                seg.len >= 200 && seg.len < 200 + record,
                "segment of {} bytes",
                seg.len
            );
        }
    }
    // Not acknowledged: a restart replays everything.
    let wal = Wal::new(
        &cfg(dir.path()),
        dir.path().to_path_buf(),
        "h",
        metrics.clone(),
    );
    wal.state().closed = true;
    {
        let mut st = wal.state();
        wal.open(&mut st).unwrap();
    }
    let (again, _) = read_all(&wal).await;
    assert_eq!(again, many);
    // Acknowledged: segments are deleted and nothing is replayed.
    wal.acknowledge(last.unwrap());
    assert!(wal.state().segments.is_empty());
    let wal = Wal::new(&cfg(dir.path()), dir.path().to_path_buf(), "h", metrics);
    wal.state().closed = true;
    {
        let mut st = wal.state();
        wal.open(&mut st).unwrap();
    }
    assert!(read_all(&wal).await.0.is_empty());
}

#[tokio::test]
async fn a_bit_flip_skips_one_record_and_a_truncated_tail_ends_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let config = WalConfig {
        segment_size: crate::config::ByteSize(1 << 20),
        ..cfg(dir.path())
    };
    let wal = Wal::new(&config, dir.path().to_path_buf(), "h", metrics.clone());
    write(&wal, &["aaaa", "bbbb", "cccc", "dddd"]).await;
    let seg = wal.state().segments[0].path.clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    let record = bytes.len() / 4;
    // Flip a bit in the second record's line, cut the last record short.
    bytes[2 * record - 3] ^= 0x10;
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&seg, &bytes).unwrap();
    let wal = Wal::new(&config, dir.path().to_path_buf(), "h", metrics.clone());
    wal.state().closed = true;
    {
        let mut st = wal.state();
        wal.open(&mut st).unwrap();
    }
    let (got, _) = read_all(&wal).await;
    assert_eq!(got, ["aaaa", "cccc"]);
    assert_eq!(
        metrics
            .client
            .wal_records
            .with_label_values(&["h", "corrupt"])
            .get(),
        2
    );
}

#[tokio::test]
async fn when_full_block_waits_and_drop_oldest_counts() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let config = WalConfig {
        max_size: crate::config::ByteSize(400),
        when_full: WalWhenFull::DropOldest,
        ..cfg(dir.path())
    };
    let wal = Wal::new(&config, dir.path().to_path_buf(), "h", metrics.clone());
    let many: Vec<String> = (0..40).map(|i| format!("line {i:02}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    write(&wal, &many).await;
    assert!(wal.state().total_bytes <= 400);
    let dropped = metrics
        .client
        .wal_records
        .with_label_values(&["h", "dropped_oldest"])
        .get();
    let (got, _) = read_all(&wal).await;
    assert!(dropped > 0);
    assert_eq!(got.len() as u64 + dropped, 40, "{got:?}");
    assert_eq!(got.last().map(String::as_str), Some("line 39"));

    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        when_full: WalWhenFull::Block,
        ..config
    };
    let wal = Wal::new(&config, dir.path().to_path_buf(), "h", metrics);
    let writing = tokio::spawn({
        let wal = wal.clone();
        let many: Vec<String> = many.iter().map(|s| s.to_string()).collect();
        async move {
            let many: Vec<&str> = many.iter().map(String::as_str).collect();
            write(&wal, &many).await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writing.is_finished(), "blocked while full");
    assert!(wal.state().total_bytes <= 400);
    // Reading and acknowledging frees room; everything arrives.
    let mut r = WalReader::new(wal.clone());
    let mut got = Vec::new();
    while let Some(items) = r.recv().await {
        let tokens: Vec<AckToken> = items.iter().filter_map(Outgoing::ack).collect();
        if let Some(p) = acknowledged_position(&tokens) {
            wal.acknowledge(p);
        }
        got.extend(lines(&items));
    }
    writing.await.unwrap();
    assert_eq!(got, many);
}

#[tokio::test]
async fn an_unwritable_directory_is_retried_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("not-a-dir");
    std::fs::write(&blocked, "a file where the directory should be").unwrap();
    let metrics = Arc::new(Metrics::new());
    let wal = Wal::new(&cfg(&blocked), blocked.clone(), "h", metrics.clone());
    let writing = tokio::spawn({
        let wal = wal.clone();
        async move { write(&wal, &["x"]).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writing.is_finished());
    assert!(
        metrics
            .client
            .wal_errors
            .with_label_values(&["h", "open"])
            .get()
            >= 1
    );
    std::fs::remove_file(&blocked).unwrap();
    tokio::time::timeout(Duration::from_secs(5), writing)
        .await
        .expect("the write goes through once the directory can be made")
        .unwrap();
    assert_eq!(read_all(&wal).await.0, ["x"]);
}

#[tokio::test]
async fn the_reader_takes_the_last_records_from_memory_and_older_ones_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        segment_size: crate::config::ByteSize(1 << 20),
        fsync: WalFsync::Periodic,
        ..cfg(dir.path())
    };
    let wal = Wal::new(
        &cfg,
        dir.path().to_path_buf(),
        "h",
        Arc::new(Metrics::new()),
    );
    let sent: Vec<String> = (0..6000).map(|i| format!("{i:0>400}")).collect();
    let refs: Vec<&str> = sent.iter().map(String::as_str).collect();
    write(&wal, &refs).await;
    {
        let st = wal.state();
        // More was written than the tail keeps: the first records are on disk only.
        assert!(st.tail_bytes <= TAIL_BYTES && st.tail_bytes > TAIL_BYTES / 2);
        assert!(st.tail.front().is_some_and(|r| r.at > 0));
        assert_eq!(st.tail.back().map(|r| r.end), Some(st.end));
    }
    let (got, last) = read_all(&wal).await;
    assert_eq!(got, sent);
    assert_eq!(last, Some(wal.state().end));
    assert!(wal.state().tail.is_empty());
}
