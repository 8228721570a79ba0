//! Lines: where a line ends in the file's encoding, and what text a line's bytes become.
//!
//! A job's `encoding` (anything but UTF-8) converts each line to UTF-8: UTF-16 lines end at
//! the two-byte unit of U+000A at an even file offset (reads are kept even, so a unit is
//! never split between two reads), other encodings at the byte `\n`; a byte order mark at
//! offset 0 is dropped; undecodable bytes are replaced (counted as invalid lines). UTF-8
//! files skip all of this: a trailing `\r` is kept, as Promtail does, and invalid UTF-8 is
//! replaced (counted). A line longer than `max_line_bytes` is cut at a character boundary or
//! dropped (counted either way).
//!
//! Shared by the plain reader and the archive reader. It must not read files, hold state
//! across lines or know delivery: a line comes in as bytes with its token and goes out into
//! the batch.

use crate::model::ack::AckToken;
use crate::model::entry::LineBatch;

use super::follow::Tailer;

/// How a line ends in the file's encoding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Newline {
    /// The byte `\n`: UTF-8, single-byte and ASCII-compatible multi-byte encodings.
    Byte,
    /// The unit `0A 00` at an even offset.
    Utf16Le,
    /// The unit `00 0A` at an even offset.
    Utf16Be,
}

impl Newline {
    pub(super) fn of(encoding: Option<&'static encoding_rs::Encoding>) -> Self {
        match encoding {
            Some(e) if e == encoding_rs::UTF_16LE => Newline::Utf16Le,
            Some(e) if e == encoding_rs::UTF_16BE => Newline::Utf16Be,
            _ => Newline::Byte,
        }
    }

    /// Bytes of one newline; also the alignment of line starts.
    pub(super) fn width(self) -> usize {
        match self {
            Newline::Byte => 1,
            Newline::Utf16Le | Newline::Utf16Be => 2,
        }
    }
}

/// Ends (one past the newline) of the UTF-16 lines in `chunk`, which starts at an even
/// file offset: a `0x0A` byte is a newline only as half of the unit U+000A.
pub(super) fn utf16_line_ends(chunk: &[u8], big_endian: bool) -> impl Iterator<Item = usize> + '_ {
    memchr::memchr_iter(b'\n', chunk).filter_map(move |i| {
        if big_endian {
            (i % 2 == 1 && chunk[i - 1] == 0).then_some(i + 1)
        } else {
            (i % 2 == 0 && chunk.get(i + 1) == Some(&0)).then_some(i + 2)
        }
    })
}

impl Tailer {
    /// Adds one line, cut to `max` bytes (at a character boundary) or dropped when longer,
    /// with invalid UTF-8 replaced. `at_file_start`: the line starts at offset 0 (only an
    /// encoded file's BOM is dropped there; UTF-8 lines are taken as they are).
    pub(super) fn push_line(
        &self,
        batch: &mut LineBatch,
        bytes: &[u8],
        token: Option<AckToken>,
        max: usize,
        at_file_start: bool,
    ) {
        if let Some(encoding) = self.opts.encoding {
            self.push_decoded(batch, encoding, bytes, token, max, at_file_start);
            return;
        }
        let bytes = if bytes.len() > max {
            if !self.opts.truncate_long_lines {
                self.metrics
                    .files
                    .long_lines
                    .with_label_values(&["dropped"])
                    .inc();
                return;
            }
            self.metrics
                .files
                .long_lines
                .with_label_values(&["truncated"])
                .inc();
            let cut = match std::str::from_utf8(&bytes[..max]) {
                Ok(_) => max,
                // Stop before a character split by the cut; keep real invalid bytes.
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => max,
            };
            &bytes[..cut]
        } else {
            bytes
        };
        match std::str::from_utf8(bytes) {
            Ok(s) => batch.push(s, token),
            Err(_) => {
                self.count_invalid_line();
                batch.push(&String::from_utf8_lossy(bytes), token);
            }
        }
    }

    /// [`Self::push_line`] for a file in `encoding`: decoded to UTF-8 first, so `max`
    /// applies to the UTF-8 text, as the client's `max_line_size` does.
    fn push_decoded(
        &self,
        batch: &mut LineBatch,
        encoding: &'static encoding_rs::Encoding,
        bytes: &[u8],
        token: Option<AckToken>,
        max: usize,
        at_file_start: bool,
    ) {
        let bytes = match encoding_rs::Encoding::for_bom(bytes) {
            Some((bom_of, bom_len)) if at_file_start && bom_of == encoding => &bytes[bom_len..],
            _ => bytes,
        };
        let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
        if had_errors {
            self.count_invalid_line();
        }
        let text: &str = &text;
        if text.len() <= max {
            batch.push(text, token);
            return;
        }
        if !self.opts.truncate_long_lines {
            self.metrics
                .files
                .long_lines
                .with_label_values(&["dropped"])
                .inc();
            return;
        }
        self.metrics
            .files
            .long_lines
            .with_label_values(&["truncated"])
            .inc();
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        batch.push(&text[..cut], token);
    }

    /// Counts a line shipped with undecodable bytes replaced.
    fn count_invalid_line(&self) {
        if self.opts.per_file_metrics {
            self.metrics
                .files
                .invalid_utf8_lines
                .with_label_values(&[&self.path_label])
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::model::labels::LabelSet;
    use crate::sources::files::tailer::TailOptions;
    use crate::sources::files::tailer::test_harness::{
        append_bytes, collect, harness, nothing_more, opts,
    };

    fn encoded(encoding: &'static encoding_rs::Encoding) -> TailOptions {
        TailOptions {
            encoding: Some(encoding),
            ..opts()
        }
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        text.encode_utf16()
            .flat_map(|u| {
                if big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn utf16le_with_bom_is_split_at_newline_units_even_across_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        // U+010A (0A 01) and U+0A05 (05 0A) hold a 0x0A byte that is no newline.
        let mut content = vec![0xFF, 0xFE];
        content.extend(utf16("one\r\ntwo \u{10a}\u{a05}é\n😀 three\n", false));
        // Offsets: BOM 2, "one\r\n" 10 -> 12, "two Ċਅé\n" 16 -> 28, "😀 three\n" 18 -> 46.
        assert_eq!(content.len(), 46);
        // The first write ends inside the newline unit after "two Ċਅé": 0A written, 00 not.
        append_bytes(&path, &content[..27]);
        let mut h = harness(dir.path(), encoded(encoding_rs::UTF_16LE));
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut h, 1).await, vec![("one\r".into(), 12)]);
        nothing_more(&mut h.rx, Duration::from_millis(100)).await;
        append_bytes(&path, &content[27..]);
        assert_eq!(
            collect(&mut h, 2).await,
            vec![("two \u{10a}\u{a05}é".into(), 28), ("😀 three".into(), 46)]
        );
        let invalid = &h.metrics.files.invalid_utf8_lines;
        let path_label = path.display().to_string();
        assert_eq!(invalid.with_label_values(&[&path_label]).get(), 0);
    }

    #[tokio::test]
    async fn utf16be_with_bom_is_split_at_newline_units() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        // U+0A05 is 0A 05 in big endian: a 0x0A byte at an even offset, not a newline.
        let mut content = vec![0xFE, 0xFF];
        content.extend(utf16("a\u{a05}\nb\r\n", true));
        std::fs::write(&path, &content).unwrap();
        let mut h = harness(dir.path(), encoded(encoding_rs::UTF_16BE));
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(
            collect(&mut h, 2).await,
            vec![("a\u{a05}".into(), 8), ("b\r".into(), 14)]
        );
    }

    #[tokio::test]
    async fn bom_is_kept_when_not_at_the_start_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut content = utf16("x\n", false);
        content.extend([0xFF, 0xFE]);
        content.extend(utf16("y\n", false));
        std::fs::write(&path, &content).unwrap();
        let mut h = harness(dir.path(), encoded(encoding_rs::UTF_16LE));
        h.set.start(&path, Arc::new(LabelSet::new()));
        let got = collect(&mut h, 2).await;
        assert_eq!(got[0].0, "x");
        assert_eq!(got[1].0, "\u{feff}y");
    }

    #[tokio::test]
    async fn windows_1252_bytes_are_converted_to_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"caf\xe9\r\n\x80 5\n").unwrap();
        let mut h = harness(dir.path(), encoded(encoding_rs::WINDOWS_1252));
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(
            collect(&mut h, 2).await,
            vec![("café\r".into(), 6), ("€ 5".into(), 10)]
        );
    }

    #[tokio::test]
    async fn undecodable_bytes_are_replaced_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        // Shift_JIS: 82 A0 is あ; a lone lead byte 82 before the newline is an error.
        std::fs::write(&path, b"\x82\xa0\nok \x82\n").unwrap();
        let mut h = harness(dir.path(), encoded(encoding_rs::SHIFT_JIS));
        h.set.start(&path, Arc::new(LabelSet::new()));
        let got = collect(&mut h, 2).await;
        assert_eq!(got[0].0, "あ");
        assert_eq!(got[1].0, "ok \u{fffd}");
        let path_label = path.display().to_string();
        let invalid = &h.metrics.files.invalid_utf8_lines;
        assert_eq!(invalid.with_label_values(&[&path_label]).get(), 1);
    }
}
