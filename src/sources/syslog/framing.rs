//! RFC 6587 framing of a syslog byte stream: octet counting (`MSGLEN SP MSG`) and
//! non-transparent framing (messages ended by LF), told apart by the stream's first byte as
//! Promtail's go-syslog does (a digit is octet counting, `<` is non-transparent).
//!
//! Owns cutting bytes into frames with bounded memory: no frame, and nothing held while one
//! is read, exceeds `max_message_length` (an octet-counted frame over it is skipped as it
//! arrives, a longer non-transparent message is cut there). It must not parse messages nor
//! touch sockets.

/// How the stream is framed, found from its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Unknown,
    OctetCounted,
    NonTransparent,
}

/// What the framer found besides whole frames.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// An octet-counted frame longer than `max_message_length`: skipped.
    TooLong(usize),
    /// A non-transparent message longer than `max_message_length`: cut there.
    Truncated,
    /// The stream ended inside an octet-counted frame.
    Incomplete,
}

/// The stream cannot be framed any further (its first byte names no framing, or an octet
/// count is not a number): the connection is closed, as go-syslog closes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Unframeable(pub String);

/// One connection's (or datagram's) framing state.
pub struct Framer {
    mode: Mode,
    max: usize,
    /// Bytes received but not yet framed.
    buf: Vec<u8>,
    /// Octet counting: the length of the frame being read, once its count was read.
    want: Option<usize>,
    /// Octet counting: bytes of an over-long frame still to discard.
    skip: usize,
    /// Non-transparent: the message being built (a line starting with `<`, plus the lines
    /// after it that do not, which belong to it as go-syslog joins them).
    pending: Option<Vec<u8>>,
    /// Non-transparent: the rest of an over-long line is being discarded.
    discarding: bool,
}

impl Framer {
    pub fn new(max_message_length: usize) -> Self {
        Framer {
            mode: Mode::Unknown,
            max: max_message_length.max(1),
            buf: Vec::new(),
            want: None,
            skip: 0,
            pending: None,
            discarding: false,
        }
    }

    /// A non-transparent message is waiting for what follows (a continuation line or the
    /// next message) before it is complete.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Frames what `data` completes, appending whole frames to `frames` and what went wrong
    /// to `problems`.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        frames: &mut Vec<Vec<u8>>,
        problems: &mut Vec<Problem>,
    ) -> Result<(), Unframeable> {
        if self.mode == Mode::Unknown {
            let Some(&first) = data.first() else {
                return Ok(());
            };
            self.mode = match first {
                b'<' => Mode::NonTransparent,
                b'0'..=b'9' => Mode::OctetCounted,
                other => {
                    return Err(Unframeable(format!(
                        "invalid or unsupported framing. first byte: {:?}",
                        other as char
                    )));
                }
            };
        }
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        match self.mode {
            Mode::OctetCounted => self.octets(data, frames, problems),
            _ => {
                self.lines(data, frames, problems);
                Ok(())
            }
        }
    }

    /// The end of the stream (or of a datagram, or a quiet spell): a pending message and an
    /// unterminated last line are complete now.
    pub fn finish(&mut self, frames: &mut Vec<Vec<u8>>, problems: &mut Vec<Problem>) {
        if self.mode == Mode::OctetCounted
            && (self.want.is_some()
                || self.skip > 0
                || self.buf.iter().any(|b| !b.is_ascii_whitespace()))
        {
            problems.push(Problem::Incomplete);
        }
        self.want = None;
        self.skip = 0;
        if self.mode == Mode::NonTransparent && !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.line(&line, frames, problems);
        }
        self.buf.clear();
        self.discarding = false;
        self.flush(frames);
    }

    /// Releases the pending non-transparent message.
    pub fn flush(&mut self, frames: &mut Vec<Vec<u8>>) {
        if let Some(m) = self.pending.take() {
            frames.push(m);
        }
    }

    fn octets(
        &mut self,
        data: &[u8],
        frames: &mut Vec<Vec<u8>>,
        problems: &mut Vec<Problem>,
    ) -> Result<(), Unframeable> {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        let result = loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len() - at);
                self.skip -= n;
                at += n;
                if self.skip > 0 {
                    break Ok(());
                }
            }
            match self.want {
                Some(len) => {
                    if self.buf.len() - at < len {
                        break Ok(());
                    }
                    frames.push(self.buf[at..at + len].to_vec());
                    at += len;
                    self.want = None;
                }
                None => {
                    // An LF (or CRLF) between frames is tolerated, as go-syslog does.
                    while matches!(self.buf.get(at), Some(b'\n' | b'\r')) {
                        at += 1;
                    }
                    let rest = &self.buf[at..];
                    let Some(sp) = rest.iter().take(11).position(|&b| b == b' ') else {
                        if rest.len() > 10 || rest.iter().any(|b| !b.is_ascii_digit()) {
                            break Err(Unframeable("expecting a MSGLEN".into()));
                        }
                        break Ok(());
                    };
                    let digits = &rest[..sp];
                    let len = match std::str::from_utf8(digits).ok().and_then(|d| {
                        (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                            .then(|| d.parse::<usize>().ok())
                            .flatten()
                    }) {
                        Some(l) => l,
                        None => break Err(Unframeable("expecting a MSGLEN".into())),
                    };
                    at += sp + 1;
                    if len > self.max {
                        problems.push(Problem::TooLong(len));
                        self.skip = len;
                    } else {
                        self.want = Some(len);
                    }
                }
            }
        };
        self.buf.drain(..at.min(self.buf.len()));
        result
    }

    fn lines(&mut self, data: &[u8], frames: &mut Vec<Vec<u8>>, problems: &mut Vec<Problem>) {
        let mut data = data;
        while !data.is_empty() {
            let (chunk, complete) = match memchr::memchr(b'\n', data) {
                Some(i) => (&data[..i], true),
                None => (data, false),
            };
            data = &data[(chunk.len() + usize::from(complete)).min(data.len())..];
            if self.discarding {
                if complete {
                    self.discarding = false;
                }
                continue;
            }
            let room = self.max.saturating_sub(self.buf.len());
            if chunk.len() > room {
                self.buf.extend_from_slice(&chunk[..room]);
                problems.push(Problem::Truncated);
                self.discarding = !complete;
                let line = std::mem::take(&mut self.buf);
                self.line(&line, frames, problems);
                continue;
            }
            self.buf.extend_from_slice(chunk);
            if complete {
                let line = std::mem::take(&mut self.buf);
                self.line(&line, frames, problems);
            }
        }
    }

    /// One complete line: a new message, or a continuation of the pending one.
    fn line(&mut self, line: &[u8], frames: &mut Vec<Vec<u8>>, problems: &mut Vec<Problem>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'<') || self.pending.is_none() {
            self.flush(frames);
            if !line.is_empty() {
                self.pending = Some(line.to_vec());
            }
            return;
        }
        if let Some(p) = self.pending.as_mut() {
            let room = self.max.saturating_sub(p.len() + 1);
            if line.len() > room {
                problems.push(Problem::Truncated);
            }
            if room > 0 {
                p.push(b'\n');
                p.extend_from_slice(&line[..line.len().min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(
        chunks: &[&[u8]],
        max: usize,
    ) -> (Vec<String>, Vec<Problem>, Result<(), Unframeable>) {
        let mut f = Framer::new(max);
        let (mut frames, mut problems) = (Vec::new(), Vec::new());
        for c in chunks {
            if let Err(e) = f.feed(c, &mut frames, &mut problems) {
                return (strings(frames), problems, Err(e));
            }
        }
        f.finish(&mut frames, &mut problems);
        (strings(frames), problems, Ok(()))
    }

    fn strings(frames: Vec<Vec<u8>>) -> Vec<String> {
        frames
            .into_iter()
            .map(|f| String::from_utf8(f).unwrap())
            .collect()
    }

    #[test]
    fn octet_counting_across_reads_with_optional_newlines() {
        let (frames, problems, r) = frame_all(&[b"5 <1>a", b"b\n3 <2>", b"\r\n6 <3>1 -"], 100);
        assert_eq!(frames, ["<1>ab", "<2>", "<3>1 -"]);
        assert_eq!(r, Ok(()));
        assert!(problems.is_empty());
        let (frames, _, r) = frame_all(&[b"4 <1>a", b"4 <2>b\n4 <3>c"], 100);
        assert_eq!(frames, ["<1>a", "<2>b", "<3>c"]);
        assert_eq!(r, Ok(()));
        let (frames, problems, _) = frame_all(&[b"4 <1>a10 <2>"], 100);
        assert_eq!(frames, ["<1>a"]);
        assert_eq!(
            problems,
            [Problem::Incomplete],
            "the stream ended inside a frame"
        );
    }

    #[test]
    fn an_over_long_octet_frame_is_skipped_as_it_arrives_and_the_next_read() {
        let mut big = b"20 <1>".to_vec();
        big.extend([b'x'; 17]);
        let (frames, problems, r) = frame_all(&[&big[..10], &big[10..], b"4 <2>b"], 10);
        assert_eq!(frames, ["<2>b"]);
        assert_eq!(problems, [Problem::TooLong(20)]);
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn non_transparent_joins_continuation_lines_and_cuts_long_ones() {
        let (frames, problems, _) = frame_all(
            &[
                b"<1>a\n  trace\n<2>",
                b"b\r\n<3>0123456789abcdefghij\n<4>last",
            ],
            20,
        );
        assert_eq!(
            frames,
            ["<1>a\n  trace", "<2>b", "<3>0123456789abcdefg", "<4>last"]
        );
        assert_eq!(problems, [Problem::Truncated]);
    }

    #[test]
    fn an_unknown_first_byte_is_unframeable() {
        let (_, _, r) = frame_all(&[b"hello\n"], 100);
        assert!(r.is_err());
        let (_, _, r) = frame_all(&[b"12x <1>"], 100);
        assert!(r.is_err());
    }

    proptest::proptest! {
        #[test]
        fn framing_never_panics_and_never_exceeds_the_bound(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..8),
            max in 1usize..20,
        ) {
            let mut f = Framer::new(max);
            let (mut frames, mut problems) = (Vec::new(), Vec::new());
            for c in &chunks {
                if f.feed(c, &mut frames, &mut problems).is_err() {
                    break;
                }
                proptest::prop_assert!(f.buf.len() <= max + 12);
            }
            f.finish(&mut frames, &mut problems);
            proptest::prop_assert!(frames.iter().all(|fr| fr.len() <= max));
        }
    }
}
