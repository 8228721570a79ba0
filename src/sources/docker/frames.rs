//! Docker's log stream as lines: the 8-byte frame headers of a non-TTY container's stream
//! (`stdcopy`: stream byte, three zero bytes, big-endian payload length) or a TTY
//! container's raw bytes, then Promtail's frame handling (`target.go` `process`): each
//! message starts with Docker's RFC 3339 timestamp and a space, messages Docker split at
//! 16 KiB (same timestamp, no newline) are joined, a line ends at `\n` (a `\r\n` is trimmed),
//! and a line over the size limit is cut and the rest of it discarded.
//!
//! Owns the byte-level decoding, with one reused buffer per stream. It must not know
//! positions, labels or the daemon.

use chrono::{DateTime, FixedOffset};

/// Where a line was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A TTY container's stream has no headers; Promtail cuts it at `\n` or at this many bytes.
const TTY_FRAME: usize = 16384 + 31;

/// What went wrong in a stream: the caller counts it.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// A message without a parsable timestamp, skipped.
    BadTimestamp,
    /// A line over the limit, cut.
    Truncated,
}

/// A complete line: its stream, Docker's timestamp, its text (without the line end).
pub struct Line<'a> {
    pub stream: Stream,
    pub timestamp: DateTime<FixedOffset>,
    pub text: &'a str,
}

/// Turns the bytes of one logs answer into lines.
pub struct Demuxer {
    tty: bool,
    /// Bytes of an incomplete header or frame (non-TTY) or of an incomplete TTY frame.
    pending: Vec<u8>,
    stdout: Assembler,
    stderr: Assembler,
}

/// One stream's line being joined from messages.
struct Assembler {
    stream: Stream,
    line: Vec<u8>,
    timestamp: Option<DateTime<FixedOffset>>,
    /// The line reached the limit: its remaining messages are discarded.
    discarding: bool,
    max_line: usize,
}

impl Demuxer {
    pub fn new(tty: bool, max_line: usize) -> Self {
        Demuxer {
            tty,
            pending: Vec::new(),
            stdout: Assembler::new(Stream::Stdout, max_line),
            stderr: Assembler::new(Stream::Stderr, max_line),
        }
    }

    /// Feeds a chunk of the answer; calls `emit` for every completed line and `problem` for
    /// what was skipped or cut. Errors end the stream (an unknown stream byte).
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        emit: &mut impl FnMut(Line<'_>),
        problem: &mut impl FnMut(Problem),
    ) -> Result<(), String> {
        if self.tty {
            return self.feed_tty(chunk, emit, problem);
        }
        // Joins a frame split across chunks; whole frames inside a chunk are used in place.
        loop {
            if !self.pending.is_empty() {
                let need = frame_len(&self.pending).map_or(8, |n| 8 + n);
                let take = (need - self.pending.len()).min(chunk.len());
                self.pending.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if self.pending.len() < 8
                    || frame_len(&self.pending).is_some_and(|n| self.pending.len() < 8 + n)
                {
                    if chunk.is_empty() {
                        return Ok(());
                    }
                    // The header is complete now: take the payload too.
                    continue;
                }
                let frame = std::mem::take(&mut self.pending);
                self.frame(&frame, emit, problem)?;
                let mut frame = frame;
                frame.clear();
                self.pending = frame;
                continue;
            }
            if chunk.is_empty() {
                return Ok(());
            }
            match frame_len(chunk) {
                Some(n) if chunk.len() >= 8 + n => {
                    let (frame, rest) = chunk.split_at(8 + n);
                    self.frame(frame, emit, problem)?;
                    chunk = rest;
                }
                _ => {
                    self.pending.extend_from_slice(chunk);
                    return Ok(());
                }
            }
        }
    }

    fn frame(
        &mut self,
        frame: &[u8],
        emit: &mut impl FnMut(Line<'_>),
        problem: &mut impl FnMut(Problem),
    ) -> Result<(), String> {
        let assembler = match frame[0] {
            0 | 1 => &mut self.stdout,
            2 => &mut self.stderr,
            other => {
                return Err(format!(
                    "unknown stream {other} in the log stream's frame header"
                ));
            }
        };
        assembler.message(&frame[8..], emit, problem);
        Ok(())
    }

    fn feed_tty(
        &mut self,
        mut chunk: &[u8],
        emit: &mut impl FnMut(Line<'_>),
        problem: &mut impl FnMut(Problem),
    ) -> Result<(), String> {
        while !chunk.is_empty() {
            let room = TTY_FRAME - self.pending.len();
            let window = &chunk[..room.min(chunk.len())];
            match memchr::memchr(b'\n', window) {
                Some(i) if self.pending.is_empty() => {
                    self.stdout.message(&window[..=i], emit, problem);
                    chunk = &chunk[i + 1..];
                }
                Some(i) => {
                    self.pending.extend_from_slice(&window[..=i]);
                    let frame = std::mem::take(&mut self.pending);
                    self.stdout.message(&frame, emit, problem);
                    self.pending = frame;
                    self.pending.clear();
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.pending.extend_from_slice(window);
                    chunk = &chunk[window.len()..];
                    if self.pending.len() == TTY_FRAME {
                        let frame = std::mem::take(&mut self.pending);
                        self.stdout.message(&frame, emit, problem);
                        self.pending = frame;
                        self.pending.clear();
                    }
                }
            }
        }
        Ok(())
    }

    /// The stream ended: a line without its newline is emitted as it is.
    pub fn finish(&mut self, emit: &mut impl FnMut(Line<'_>)) {
        if self.tty && !self.pending.is_empty() {
            let frame = std::mem::take(&mut self.pending);
            self.stdout.message(&frame, emit, &mut |_| {});
        }
        self.stdout.flush(emit);
        self.stderr.flush(emit);
    }
}

/// The payload length of the frame whose header starts `bytes`, once 8 bytes are there.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let header: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
    Some(u32::from_be_bytes(header) as usize)
}

impl Assembler {
    fn new(stream: Stream, max_line: usize) -> Self {
        Assembler {
            stream,
            line: Vec::new(),
            timestamp: None,
            discarding: false,
            max_line,
        }
    }

    /// One message of Docker's: `<timestamp> <text>`, the text ending in `\n` unless Docker
    /// split a long line.
    fn message(
        &mut self,
        message: &[u8],
        emit: &mut impl FnMut(Line<'_>),
        problem: &mut impl FnMut(Problem),
    ) {
        let parsed = memchr::memchr(b' ', message).and_then(|space| {
            let ts = std::str::from_utf8(&message[..space]).ok()?;
            let ts = DateTime::parse_from_rfc3339(ts).ok()?;
            Some((ts, &message[space + 1..]))
        });
        let text = match parsed {
            Some((ts, text)) => {
                if self.timestamp.is_some_and(|t| t != ts)
                    && (!self.line.is_empty() || self.discarding)
                {
                    self.flush(emit);
                }
                self.timestamp = Some(ts);
                text
            }
            // Without a timestamp a message can only continue the line being joined.
            None if self.line.is_empty() && !self.discarding => {
                problem(Problem::BadTimestamp);
                return;
            }
            None => message,
        };
        let (body, complete) = match text.strip_suffix(b"\n") {
            Some(body) => (body.strip_suffix(b"\r").unwrap_or(body), true),
            None => (text, false),
        };
        if !self.discarding {
            let room = self.max_line.saturating_sub(self.line.len());
            if body.len() > room {
                self.line.extend_from_slice(&body[..room]);
                problem(Problem::Truncated);
                self.emit(emit);
                self.discarding = true;
            } else {
                self.line.extend_from_slice(body);
            }
        }
        if complete {
            self.flush(emit);
        }
    }

    /// Ends the line being joined (emitting it unless it was emitted when cut).
    fn flush(&mut self, emit: &mut impl FnMut(Line<'_>)) {
        if !self.discarding && (!self.line.is_empty() || self.timestamp.is_some()) {
            self.emit(emit);
        }
        self.discarding = false;
        self.line.clear();
        self.timestamp = None;
    }

    fn emit(&mut self, emit: &mut impl FnMut(Line<'_>)) {
        let Some(timestamp) = self.timestamp else {
            return;
        };
        let text = String::from_utf8_lossy(&self.line);
        emit(Line {
            stream: self.stream,
            timestamp,
            text: &text,
        });
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &str) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload.as_bytes());
        f
    }

    fn run(
        tty: bool,
        max: usize,
        chunks: &[&[u8]],
    ) -> (Vec<(Stream, String, String)>, Vec<Problem>) {
        let mut d = Demuxer::new(tty, max);
        let mut lines = Vec::new();
        let mut problems = Vec::new();
        let mut emit =
            |l: Line<'_>| lines.push((l.stream, l.timestamp.to_rfc3339(), l.text.to_string()));
        for c in chunks {
            d.feed(c, &mut emit, &mut |p| problems.push(p)).unwrap();
        }
        d.finish(&mut emit);
        (lines, problems)
    }

    const T1: &str = "2026-12-07T23:07:41.480305764Z";
    const T2: &str = "2026-12-07T23:07:41.480322430Z";

    #[test]
    fn headers_split_anywhere_give_whole_lines_per_stream() {
        let mut bytes = frame(1, &format!("{T1} out1\n"));
        bytes.extend(frame(2, &format!("{T2} err1\n")));
        bytes.extend(frame(1, &format!("{T2} out2\n")));
        for cut in 0..bytes.len() {
            for cut2 in cut..bytes.len() {
                let (lines, problems) = run(
                    false,
                    1000,
                    &[&bytes[..cut], &bytes[cut..cut2], &bytes[cut2..]],
                );
                let texts: Vec<(Stream, &str)> =
                    lines.iter().map(|(s, _, t)| (*s, t.as_str())).collect();
                assert_eq!(
                    texts,
                    [
                        (Stream::Stdout, "out1"),
                        (Stream::Stderr, "err1"),
                        (Stream::Stdout, "out2")
                    ],
                    "cut at {cut}/{cut2}"
                );
                assert!(problems.is_empty());
            }
        }
        let (lines, _) = run(false, 1000, &[&bytes]);
        assert_eq!(
            lines[0].1, "2026-12-07T23:07:41.480305764+00:00",
            "Docker's timestamp, to the nanosecond"
        );
    }

    #[test]
    fn a_line_docker_split_at_16k_is_joined_and_a_new_timestamp_ends_a_line() {
        let mut bytes = frame(1, &format!("{T1} part one "));
        bytes.extend(frame(1, &format!("{T1} part two\n")));
        bytes.extend(frame(1, &format!("{T1} unfinished")));
        bytes.extend(frame(1, &format!("{T2} next\r\n")));
        let (lines, _) = run(false, 1000, &[&bytes]);
        let texts: Vec<&str> = lines.iter().map(|l| l.2.as_str()).collect();
        assert_eq!(texts, ["part one part two", "unfinished", "next"]);
    }

    #[test]
    fn a_tty_stream_is_split_at_newlines_and_crlf_trimmed() {
        let bytes = format!("{T1} out1\r\n{T2} out2\r\n{T2} last");
        let (lines, _) = run(
            true,
            1000,
            &[&bytes.as_bytes()[..40], &bytes.as_bytes()[40..]],
        );
        let texts: Vec<(Stream, &str)> = lines.iter().map(|(s, _, t)| (*s, t.as_str())).collect();
        assert_eq!(
            texts,
            [
                (Stream::Stdout, "out1"),
                (Stream::Stdout, "out2"),
                (Stream::Stdout, "last")
            ]
        );
    }

    #[test]
    fn a_message_without_timestamp_is_counted_and_skipped() {
        let mut bytes = frame(1, "no timestamp here\n");
        bytes.extend(frame(1, &format!("{T1} fine\n")));
        let (lines, problems) = run(false, 1000, &[&bytes]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].2, "fine");
        assert_eq!(problems, [Problem::BadTimestamp]);
    }

    #[test]
    fn a_line_over_the_limit_is_cut_and_its_rest_discarded() {
        let mut bytes = frame(1, &format!("{T1} 0123456789"));
        bytes.extend(frame(1, &format!("{T1} abcdef\n")));
        bytes.extend(frame(1, &format!("{T2} short\n")));
        let (lines, problems) = run(false, 8, &[&bytes]);
        let texts: Vec<&str> = lines.iter().map(|l| l.2.as_str()).collect();
        assert_eq!(texts, ["01234567", "short"]);
        assert_eq!(problems, [Problem::Truncated]);
    }

    #[test]
    fn an_unknown_stream_byte_ends_the_stream() {
        let mut d = Demuxer::new(false, 100);
        let err = d
            .feed(&frame(3, "x"), &mut |_| {}, &mut |_| {})
            .unwrap_err();
        assert!(err.contains("unknown stream 3"), "{err}");
    }
}
