use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::model::labels::LabelSet;
use crate::sources::files::tailer::TailOptions;
use crate::sources::files::tailer::test_harness::{self, Harness, collect, harness};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn formats_are_detected_from_magic_bytes() {
    assert_eq!(detect_format(&gzip(b"a\n")), Some(ArchiveFormat::Gzip));
    for level in [0, 1, 6, 9] {
        let z = zlib(b"a\n", level);
        assert_eq!(
            detect_format(&z),
            Some(ArchiveFormat::Zlib),
            "level {level}"
        );
    }
    assert_eq!(detect_format(&bzip2(b"a\n")), Some(ArchiveFormat::Bzip2));
}

#[test]
fn text_is_not_taken_for_an_archive() {
    for text in [
        &b"hello world\n"[..],
        b"x marks the spot\n",
        b"BZh is not bzip2\n",
        b"BZh",
        b"\x1f",
        b"",
        b"{\"level\":\"info\"}\n",
    ] {
        assert_eq!(detect_format(text), None, "{text:?}");
    }
}

/// The tailer tests' options, for a job with `decompression`.
fn opts(decompression: Option<Decompression>) -> TailOptions {
    TailOptions {
        decompression,
        ..test_harness::opts()
    }
}

fn detecting() -> Option<Decompression> {
    Some(Decompression {
        format: None,
        initial_delay: Duration::ZERO,
    })
}

fn configured(format: ArchiveFormat) -> Option<Decompression> {
    Some(Decompression {
        format: Some(format),
        initial_delay: Duration::ZERO,
    })
}

async fn nothing_more(h: &mut Harness, wait: Duration) {
    test_harness::nothing_more(&mut h.rx, wait).await;
}

/// Does this process hold a descriptor of `path`?
fn held_open(path: &Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
}

fn lines(got: &[(String, u64)]) -> Vec<&str> {
    got.iter().map(|(l, _)| l.as_str()).collect()
}

async fn saved_lines(h: &Harness, path: &Path) -> Option<u64> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.view.saved(&path.display().to_string()).map(|(n, _)| n)
}

#[tokio::test]
async fn each_format_is_read_once_and_its_position_is_a_line_count() {
    let text = b"one\ntwo\r\n\nlast without newline";
    for (name, bytes, format) in [
        ("a.log.gz", gzip(text), ArchiveFormat::Gzip),
        ("a.log.z", zlib(text, 6), ArchiveFormat::Zlib),
        ("a.log.bz2", bzip2(text), ArchiveFormat::Bzip2),
    ] {
        for decompression in [configured(format), detecting()] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let mut h = harness(dir.path(), opts(decompression));
            h.set.start(&path, Arc::new(LabelSet::new()));
            let got = collect(&mut h, 4).await;
            // The trailing CR goes, as Go's ScanLines drops it; the empty line is a line.
            assert_eq!(
                got,
                vec![
                    ("one".into(), 1),
                    ("two".into(), 2),
                    ("".into(), 3),
                    ("last without newline".into(), 4)
                ],
                "{name}"
            );
            assert_eq!(saved_lines(&h, &path).await, Some(4), "{name}");
            // Read once: discovery starting it again, even after it changed, reads nothing.
            std::fs::write(&path, gzip(b"other\ncontent\nlonger\nthan\nbefore\n")).unwrap();
            h.set.start(&path, Arc::new(LabelSet::new()));
            nothing_more(&mut h, Duration::from_millis(300)).await;
            assert!(!h.set.paths().is_empty(), "the tailer stays, idle");
        }
    }
}

#[tokio::test]
async fn a_saved_line_count_skips_that_many_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log.1.gz");
    std::fs::write(&path, gzip(b"l1\nl2\nl3\nl4\n")).unwrap();
    // As Promtail writes it: a quoted line count, no identity.
    std::fs::write(
        dir.path().join("pos.yaml"),
        format!("positions:\n  {}: \"2\"\n", path.display()),
    )
    .unwrap();
    {
        let _open = std::fs::File::open(&path).unwrap();
        assert!(held_open(&path), "the check sees a descriptor");
    }
    let mut h = harness(dir.path(), opts(detecting()));
    h.set.start(&path, Arc::new(LabelSet::new()));
    let got = collect(&mut h, 2).await;
    assert_eq!(got, vec![("l3".into(), 3), ("l4".into(), 4)]);
    nothing_more(&mut h, Duration::from_millis(200)).await;
    assert_eq!(saved_lines(&h, &path).await, Some(4));
    assert!(!held_open(&path), "a read archive is closed");
}

#[tokio::test]
async fn concatenated_gzip_and_bzip2_members_are_all_read() {
    for (bytes, name) in [
        ([gzip(b"a\nb\n"), gzip(b"c\n")].concat(), "m.gz"),
        ([bzip2(b"a\nb\n"), bzip2(b"c\n")].concat(), "m.bz2"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut h = harness(dir.path(), opts(detecting()));
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(
            lines(&collect(&mut h, 3).await),
            vec!["a", "b", "c"],
            "{name}"
        );
    }
}

#[tokio::test]
async fn truncated_archive_ships_lines_before_the_damage_and_resumes_when_completed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.log.gz");
    let text: String = (0..2000)
        .map(|i| format!("line {i:05} {}\n", "x".repeat(40)))
        .collect();
    let whole = gzip(text.as_bytes());
    // As an archive still being written looks: cut mid-stream.
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    let mut h = harness(dir.path(), opts(configured(ArchiveFormat::Gzip)));
    h.set.start(&path, Arc::new(LabelSet::new()));
    let first = collect(&mut h, 1).await;
    // Drain what came before the damage.
    let mut got = first;
    while let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(300), h.rx.recv()).await {
        let mut tokens = Vec::new();
        for (line, ack) in b.iter() {
            got.push((line.to_string(), ack.map(|a| a.offset).unwrap_or(0)));
            tokens.extend(ack);
        }
        h.acks.settle(tokens);
    }
    assert!(got.len() < 2000, "stopped at the damage");
    assert!(
        h.metrics
            .render()
            .contains("tailward_file_errors_total{reason=\"corrupt_archive\"} 1"),
        "counted"
    );
    // Completed: the rest arrives, nothing twice.
    std::fs::write(&path, &whole).unwrap();
    let rest = collect(&mut h, 2000 - got.len()).await;
    got.extend(rest);
    let expected: Vec<String> = text.lines().map(String::from).collect();
    assert_eq!(
        lines(&got),
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let numbers: Vec<u64> = got.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, (1..=2000).collect::<Vec<_>>());
    nothing_more(&mut h, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn garbage_in_a_configured_format_is_counted_not_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.log");
    std::fs::write(&path, "not compressed\n").unwrap();
    let mut h = harness(dir.path(), opts(configured(ArchiveFormat::Bzip2)));
    h.set.start(&path, Arc::new(LabelSet::new()));
    nothing_more(&mut h, Duration::from_millis(300)).await;
    assert!(
        h.metrics
            .render()
            .contains("tailward_file_errors_total{reason=\"corrupt_archive\"} 1")
    );
    assert!(
        !held_open(&path),
        "no descriptor held while waiting for a change"
    );
}

#[tokio::test]
async fn without_magic_bytes_a_file_is_tailed_as_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    std::fs::write(&path, "a\r\n").unwrap();
    let mut h = harness(dir.path(), opts(detecting()));
    h.set.start(&path, Arc::new(LabelSet::new()));
    // The plain tailer: byte offsets, the CR kept, and it follows appends.
    assert_eq!(collect(&mut h, 1).await, vec![("a\r".into(), 3)]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"b\n")
        .unwrap();
    assert_eq!(collect(&mut h, 1).await, vec![("b".into(), 5)]);
}

#[tokio::test]
async fn over_long_lines_are_cut_and_still_count_as_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.gz");
    let long = "é".repeat(5000);
    std::fs::write(&path, gzip(format!("{long}\nshort\n").as_bytes())).unwrap();
    let mut h = harness(dir.path(), opts(detecting()));
    h.set.start(&path, Arc::new(LabelSet::new()));
    let got = collect(&mut h, 2).await;
    assert_eq!(got[0], ("é".repeat(32), 1));
    assert_eq!(got[1], ("short".into(), 2));
    let rendered = h.metrics.render();
    assert!(
        rendered.contains("tailward_long_lines_total{action=\"truncated\"} 1"),
        "{rendered}"
    );
}

#[tokio::test]
async fn utf16_archive_is_decoded_like_a_plain_utf16_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.log.gz");
    let mut raw = vec![0xFF, 0xFE];
    raw.extend("ab\r\n\u{a05}c\n".encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(&path, gzip(&raw)).unwrap();
    let mut h = harness(
        dir.path(),
        TailOptions {
            encoding: Some(encoding_rs::UTF_16LE),
            ..opts(detecting())
        },
    );
    h.set.start(&path, Arc::new(LabelSet::new()));
    assert_eq!(
        collect(&mut h, 2).await,
        vec![("ab".into(), 1), ("\u{a05}c".into(), 2)]
    );
}

#[tokio::test]
async fn initial_delay_is_waited_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.gz");
    std::fs::write(&path, gzip(b"x\n")).unwrap();
    let mut h = harness(
        dir.path(),
        opts(Some(Decompression {
            format: None,
            initial_delay: Duration::from_millis(400),
        })),
    );
    h.set.start(&path, Arc::new(LabelSet::new()));
    nothing_more(&mut h, Duration::from_millis(250)).await;
    assert_eq!(lines(&collect(&mut h, 1).await), vec!["x"]);
}

#[tokio::test]
async fn archive_written_while_read_arrives_whole_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log.1.gz");
    let text: String = (0..3000)
        .map(|i| format!("line {i:05} {}\n", "y".repeat(30)))
        .collect();
    let whole = gzip(text.as_bytes());
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&whole[..64]).unwrap();
    let mut h = harness(dir.path(), opts(configured(ArchiveFormat::Gzip)));
    h.set.start(&path, Arc::new(LabelSet::new()));
    // As gzip writes: a piece at a time while the agent may be reading.
    let writer = std::thread::spawn(move || {
        for piece in whole[64..].chunks(512) {
            f.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(3));
        }
    });
    let got = collect(&mut h, 3000).await;
    writer.join().unwrap();
    let expected: Vec<&str> = text.lines().collect();
    assert_eq!(lines(&got), expected);
    let numbers: Vec<u64> = got.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, (1..=3000).collect::<Vec<_>>());
    nothing_more(&mut h, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn rotation_shifting_names_reads_the_new_archive_and_not_the_renamed_one_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("app.log.1.gz");
    let second = dir.path().join("app.log.2.gz");
    std::fs::write(&first, gzip(b"a\nb\n")).unwrap();
    let mut h = harness(dir.path(), opts(detecting()));
    h.set.start(&first, Arc::new(LabelSet::new()));
    assert_eq!(lines(&collect(&mut h, 2).await), vec!["a", "b"]);
    // logrotate's shift: .1.gz becomes .2.gz and a new .1.gz appears.
    std::fs::rename(&first, &second).unwrap();
    std::fs::write(&first, gzip(b"c\nd\ne\n")).unwrap();
    h.set.start(&second, Arc::new(LabelSet::new()));
    let got = collect(&mut h, 3).await;
    assert_eq!(got, vec![("c".into(), 1), ("d".into(), 2), ("e".into(), 3)]);
    nothing_more(&mut h, Duration::from_millis(400)).await;
    // Each name's count is its own file's.
    assert_eq!(saved_lines(&h, &first).await, Some(3));
    assert_eq!(saved_lines(&h, &second).await, Some(2));
}

#[tokio::test]
async fn an_archive_renamed_before_its_lines_were_acknowledged_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("app.log.1.gz");
    let second = dir.path().join("app.log.2.gz");
    std::fs::write(&first, gzip(b"a\nb\n")).unwrap();
    let mut h = harness(dir.path(), opts(detecting()));
    h.set.start(&first, Arc::new(LabelSet::new()));
    // Handed on, but a slow client has not acknowledged them yet.
    let unacknowledged = tokio::time::timeout(Duration::from_secs(5), h.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unacknowledged.len(), 2);
    std::fs::rename(&first, &second).unwrap();
    std::fs::write(&first, gzip(b"c\nd\ne\n")).unwrap();
    assert_eq!(lines(&collect(&mut h, 3).await), vec!["c", "d", "e"]);
    // The glob matches the new name too: discovery starts it, now that nobody holds it.
    h.set.start(&second, Arc::new(LabelSet::new()));
    assert!(h.set.is_running(&second));
    nothing_more(&mut h, Duration::from_millis(400)).await;
    // Nor are its lines taken as delivered before they are.
    assert_eq!(saved_lines(&h, &second).await, Some(0));
    h.acks
        .settle(unacknowledged.iter().filter_map(|(_, ack)| ack).collect());
    assert_eq!(saved_lines(&h, &second).await, Some(2));
}

#[test]
fn only_an_enabled_block_makes_a_job_read_archives() {
    let job = |yaml: &str| -> ScrapeConfig { crate::config::yaml::from_str(yaml).unwrap() };
    let off = job("job_name: a\ndecompression: {enabled: false, format: gz}\n");
    assert_eq!(Decompression::of_job(&off), Ok(None));
    assert_eq!(Decompression::of_job(&job("job_name: a\n")), Ok(None));
    let on = job("job_name: a\ndecompression: {enabled: true, format: bz2, initial_delay: 2s}\n");
    assert_eq!(
        Decompression::of_job(&on),
        Ok(Some(Decompression {
            format: Some(ArchiveFormat::Bzip2),
            initial_delay: Duration::from_secs(2),
        }))
    );
}
