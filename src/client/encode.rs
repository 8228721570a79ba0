//! The body of one push request: a tenant batch as Loki's protobuf `PushRequest` in snappy
//! block format (what Promtail sends), or as Loki's JSON push body, optionally gzipped.
//!
//! Owns the byte layout and the buffers reused from batch to batch. The protobuf is written
//! straight from the batch (each line is copied once, into the buffer) and compressed every
//! 64 KiB as it is written, so the whole uncompressed message never exists at once; its schema
//! is declared in `logproto`. It must not decide what goes into a batch, nor talk HTTP.

use std::io::Write as _;

use bytes::Bytes;

use chrono::{DateTime, FixedOffset};
use flate2::Compression;
use flate2::write::GzEncoder;
use prost::encoding::{WireType, encoded_len_varint, key_len};

use super::batch::{StreamEntry, TenantBatch};
use super::logproto::{label_pair_len, string_field_len, tags};
use crate::config::{PushCompression, PushFormat};

#[derive(Debug)]
pub(crate) struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) struct BodyEncoder {
    format: PushFormat,
    compression: PushCompression,
    /// Uncompressed protobuf not yet compressed (about one [`SNAPPY_CHUNK`]), or JSON
    /// awaiting gzip.
    raw: Vec<u8>,
    /// The last encoded body, shared with the request and its retries without a copy; its
    /// buffer is taken back for the next body once the request has let go of it.
    out: Bytes,
    snappy: snap::raw::Encoder,
    /// Where snappy writes one chunk: sized (and zeroed) once, so a chunk costs no clearing
    /// of its worst-case output, only the copy of what it really compressed to.
    compressed: Vec<u8>,
    /// Each entry's timestamp and encoded length, measured once per body: the message length
    /// leads the body, so every length is known before the first byte is written.
    layout: Vec<EntryLayout>,
    /// Each stream's encoded length, in the same pass.
    stream_lens: Vec<usize>,
}

/// An entry's `google.protobuf.Timestamp` fields and its `EntryAdapter`'s encoded length.
#[derive(Clone, Copy)]
struct EntryLayout {
    seconds: i64,
    nanos: i32,
    len: usize,
}

impl BodyEncoder {
    pub fn new(format: PushFormat, compression: PushCompression) -> Self {
        Self {
            format,
            compression,
            raw: Vec::new(),
            out: Bytes::new(),
            snappy: snap::raw::Encoder::new(),
            compressed: Vec::new(),
            layout: Vec::new(),
            stream_lens: Vec::new(),
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self.format {
            PushFormat::Protobuf => "application/x-protobuf",
            PushFormat::Json => "application/json",
        }
    }

    /// Protobuf bodies are snappy by definition of the format and carry no Content-Encoding.
    pub fn content_encoding(&self) -> Option<&'static str> {
        match (self.format, self.compression) {
            (PushFormat::Json, PushCompression::Gzip) => Some("gzip"),
            _ => None,
        }
    }

    /// Encodes `batch` into [`BodyEncoder::body`], leaving structured metadata out unless
    /// `include_structured_metadata`.
    pub fn encode(
        &mut self,
        batch: &TenantBatch,
        include_structured_metadata: bool,
    ) -> Result<&[u8], EncodeError> {
        let mut out = match std::mem::take(&mut self.out).try_into_mut() {
            Ok(reclaimed) => Vec::from(reclaimed),
            Err(_still_shared) => Vec::new(),
        };
        out.clear();
        match (self.format, self.compression) {
            (PushFormat::Protobuf, _) => {
                // Snappy's block format: the uncompressed length, then elements that each
                // refer only to their own 64 KiB block, so blocks compressed one by one and
                // concatenated are the same body as the whole message compressed at once.
                let len = measure_push_request(
                    batch,
                    include_structured_metadata,
                    &mut self.layout,
                    &mut self.stream_lens,
                );
                put_varint(len as u64, &mut out);
                if self.compressed.is_empty() {
                    self.compressed
                        .resize(snap::raw::max_compress_len(SNAPPY_CHUNK), 0);
                }
                self.raw.clear();
                let snappy = &mut self.snappy;
                let compressed = &mut self.compressed;
                let mut failed = None;
                write_push_request_in_chunks(
                    &mut self.raw,
                    batch,
                    include_structured_metadata,
                    Layout {
                        entries: &self.layout,
                        streams: &self.stream_lens,
                    },
                    &mut |raw: &mut Vec<u8>, last: bool| {
                        let take = if last {
                            raw.len()
                        } else {
                            raw.len() - raw.len() % SNAPPY_CHUNK
                        };
                        if take == 0 || failed.is_some() {
                            return;
                        }
                        for block in raw[..take].chunks(SNAPPY_CHUNK) {
                            if let Err(e) = compress_appending(snappy, block, compressed, &mut out)
                            {
                                failed = Some(e);
                                return;
                            }
                        }
                        raw.copy_within(take.., 0);
                        raw.truncate(raw.len() - take);
                    },
                );
                if let Some(e) = failed {
                    return Err(EncodeError(format!("snappy compression failed: {e}")));
                }
            }
            (PushFormat::Json, PushCompression::None) => {
                write_json(&mut out, batch, include_structured_metadata);
            }
            (PushFormat::Json, PushCompression::Gzip) => {
                self.raw.clear();
                write_json(&mut self.raw, batch, include_structured_metadata);
                let mut gz = GzEncoder::new(out, Compression::default());
                gz.write_all(&self.raw)
                    .map_err(|e| EncodeError(format!("gzip compression failed: {e}")))?;
                out = gz
                    .finish()
                    .map_err(|e| EncodeError(format!("gzip compression failed: {e}")))?;
            }
        }
        self.out = Bytes::from(out);
        Ok(&self.out)
    }

    /// The body [`BodyEncoder::encode`] wrote last (a reference-counted handle, not a copy).
    pub fn body(&self) -> Bytes {
        self.out.clone()
    }
}

/// Uncompressed protobuf compressed at a time: snappy's own block size, so the body is
/// exactly what compressing the whole message would give.
const SNAPPY_CHUNK: usize = 64 * 1024;

/// Appends `input` (at most one [`SNAPPY_CHUNK`]) compressed as snappy elements, without the
/// block format's length header (the body carries it once for the whole message), to `out`;
/// `scratch` holds at least `max_compress_len(SNAPPY_CHUNK)` bytes.
fn compress_appending(
    snappy: &mut snap::raw::Encoder,
    input: &[u8],
    scratch: &mut [u8],
    out: &mut Vec<u8>,
) -> Result<(), snap::Error> {
    let n = snappy.compress(input, scratch)?;
    let header = encoded_len_varint(input.len() as u64);
    out.extend_from_slice(&scratch[header..n]);
    Ok(())
}

/// A protobuf varint. Most written here (keys, lengths of lines) take one or two bytes;
/// prost's generic writer checks the buffer's room for every byte.
#[inline]
fn put_varint(mut value: u64, buf: &mut Vec<u8>) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// The key of field `tag` with `wire_type`.
#[inline]
fn put_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    put_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

fn message_field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

#[inline]
fn write_string_field(tag: u32, value: &str, buf: &mut Vec<u8>) {
    if value.is_empty() {
        return;
    }
    put_key(tag, WireType::LengthDelimited, buf);
    put_varint(value.len() as u64, buf);
    buf.extend_from_slice(value.as_bytes());
}

#[inline]
fn write_message_header(tag: u32, len: usize, buf: &mut Vec<u8>) {
    put_key(tag, WireType::LengthDelimited, buf);
    put_varint(len as u64, buf);
}

/// Seconds and nanoseconds as `google.protobuf.Timestamp` holds them (a leap second's
/// nanosecond overflow is clamped into range).
fn timestamp_parts(ts: &DateTime<FixedOffset>) -> (i64, i32) {
    let nanos = ts.timestamp_subsec_nanos().min(999_999_999);
    (ts.timestamp(), nanos as i32)
}

fn timestamp_len(seconds: i64, nanos: i32) -> usize {
    let mut len = 0;
    if seconds != 0 {
        len += key_len(tags::TIMESTAMP_SECONDS) + encoded_len_varint(seconds as u64);
    }
    if nanos != 0 {
        len += key_len(tags::TIMESTAMP_NANOS) + encoded_len_varint(nanos as u64);
    }
    len
}

/// The encoded `EntryAdapter` length of `entry` stamped `seconds` and `nanos`.
fn entry_len(
    entry: &StreamEntry,
    seconds: i64,
    nanos: i32,
    include_structured_metadata: bool,
) -> usize {
    let mut len = message_field_len(tags::ENTRY_TIMESTAMP, timestamp_len(seconds, nanos))
        + string_field_len(tags::ENTRY_LINE, entry.line.len());
    if include_structured_metadata {
        for (name, value) in &entry.structured_metadata {
            len += message_field_len(tags::ENTRY_STRUCTURED_METADATA, label_pair_len(name, value));
        }
    }
    len
}

/// Measures the `logproto.PushRequest` holding every stream of `batch`: fills `entries` with
/// each entry's layout and `streams` with each stream's length, and returns the message's
/// length. Lines of one read share their timestamp, so it is converted once per run of equal
/// ones.
fn measure_push_request(
    batch: &TenantBatch,
    include_structured_metadata: bool,
    entries: &mut Vec<EntryLayout>,
    streams: &mut Vec<usize>,
) -> usize {
    entries.clear();
    streams.clear();
    let mut last: Option<(DateTime<FixedOffset>, i64, i32)> = None;
    let mut total = 0;
    for stream in &batch.streams {
        let mut len = string_field_len(tags::STREAM_LABELS, stream.rendered.len());
        for entry in &stream.entries {
            let (seconds, nanos) = match last {
                Some((ts, seconds, nanos)) if ts == entry.timestamp => (seconds, nanos),
                _ => {
                    let (seconds, nanos) = timestamp_parts(&entry.timestamp);
                    last = Some((entry.timestamp, seconds, nanos));
                    (seconds, nanos)
                }
            };
            let entry_len = entry_len(entry, seconds, nanos, include_structured_metadata);
            entries.push(EntryLayout {
                seconds,
                nanos,
                len: entry_len,
            });
            len += message_field_len(tags::STREAM_ENTRIES, entry_len);
        }
        streams.push(len);
        total += message_field_len(tags::PUSH_REQUEST_STREAMS, len);
    }
    total
}

/// What [`measure_push_request`] found, in the order the batch holds streams and entries.
#[derive(Clone, Copy)]
struct Layout<'a> {
    entries: &'a [EntryLayout],
    streams: &'a [usize],
}

/// Writes a `logproto.PushRequest` holding every stream of `batch`.
#[cfg(test)]
fn write_push_request(buf: &mut Vec<u8>, batch: &TenantBatch, include_structured_metadata: bool) {
    let (mut entries, mut streams) = (Vec::new(), Vec::new());
    let len = measure_push_request(
        batch,
        include_structured_metadata,
        &mut entries,
        &mut streams,
    );
    buf.reserve_exact(len);
    let layout = Layout {
        entries: &entries,
        streams: &streams,
    };
    write_push_request_in_chunks(
        buf,
        batch,
        include_structured_metadata,
        layout,
        &mut |_, _| {},
    );
}

/// Writes a `logproto.PushRequest` holding every stream of `batch`, as `layout` measured it,
/// into `buf`, calling `drain(buf, last)` after each entry that brings `buf` to a
/// [`SNAPPY_CHUNK`] (it may take bytes from the front of `buf`) and once with `last` at the end.
fn write_push_request_in_chunks(
    buf: &mut Vec<u8>,
    batch: &TenantBatch,
    include_structured_metadata: bool,
    layout: Layout<'_>,
    drain: &mut dyn FnMut(&mut Vec<u8>, bool),
) {
    let mut layouts = layout.entries.iter();
    for (stream, &stream_len) in batch.streams.iter().zip(layout.streams) {
        write_message_header(tags::PUSH_REQUEST_STREAMS, stream_len, buf);
        write_string_field(tags::STREAM_LABELS, &stream.rendered, buf);
        for (entry, at) in stream.entries.iter().zip(layouts.by_ref()) {
            // Room for the entry's framing (keys, lengths, timestamp) beside its line.
            buf.reserve(at.len + 16);
            write_message_header(tags::STREAM_ENTRIES, at.len, buf);
            // The timestamp is non-nullable in Loki's schema, so it is written even when zero.
            write_message_header(
                tags::ENTRY_TIMESTAMP,
                timestamp_len(at.seconds, at.nanos),
                buf,
            );
            if at.seconds != 0 {
                put_key(tags::TIMESTAMP_SECONDS, WireType::Varint, buf);
                put_varint(at.seconds as u64, buf);
            }
            if at.nanos != 0 {
                put_key(tags::TIMESTAMP_NANOS, WireType::Varint, buf);
                put_varint(at.nanos as u64, buf);
            }
            write_string_field(tags::ENTRY_LINE, &entry.line, buf);
            if include_structured_metadata {
                for (name, value) in &entry.structured_metadata {
                    write_message_header(
                        tags::ENTRY_STRUCTURED_METADATA,
                        label_pair_len(name, value),
                        buf,
                    );
                    write_string_field(tags::LABEL_PAIR_NAME, name, buf);
                    write_string_field(tags::LABEL_PAIR_VALUE, value, buf);
                }
            }
            if buf.len() >= SNAPPY_CHUNK {
                drain(buf, false);
            }
        }
    }
    drain(buf, true);
}

/// Writes Loki's JSON push body:
/// `{"streams":[{"stream":{labels},"values":[["<unix ns>","<line>",{metadata}]]}]}`, the third
/// value present only when the entry carries structured metadata.
fn write_json(out: &mut Vec<u8>, batch: &TenantBatch, include_structured_metadata: bool) {
    out.extend_from_slice(b"{\"streams\":[");
    for (i, stream) in batch.streams.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"stream\":{");
        for (j, (name, value)) in stream.labels.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write_json_string(out, name);
            out.push(b':');
            write_json_string(out, value);
        }
        out.extend_from_slice(b"},\"values\":[");
        for (j, entry) in stream.entries.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"[\"");
            let (seconds, nanos) = timestamp_parts(&entry.timestamp);
            write_decimal(out, i128::from(seconds) * 1_000_000_000 + i128::from(nanos));
            out.extend_from_slice(b"\",");
            write_json_string(out, &entry.line);
            if include_structured_metadata && !entry.structured_metadata.is_empty() {
                out.extend_from_slice(b",{");
                for (k, (name, value)) in entry.structured_metadata.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    write_json_string(out, name);
                    out.push(b':');
                    write_json_string(out, value);
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
}

fn write_decimal(out: &mut Vec<u8>, value: i128) {
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `s` as a JSON string, copying unescaped runs whole.
fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run_start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        run_start = i + 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use prost::Message as _;
    use tokio::time::Instant;

    use super::*;
    use crate::client::batch::{BatchLimits, Batcher, Shaped};
    use crate::client::logproto::{LabelPairAdapter, PushRequest, Timestamp};
    use crate::model::entry::Entry;
    use crate::model::labels::LabelSet;

    fn batcher_with(entries: Vec<Entry>) -> Batcher {
        let limits = BatchLimits {
            batch_size: 1 << 20,
            max_streams: 0,
            max_line_size: 0,
            truncate_long_lines: false,
        };
        let mut b = Batcher::new(limits, LabelSet::new(), "", true);
        for e in entries {
            match b.shape(e) {
                Shaped::Ready(p) => b.add(p, Instant::now()).unwrap(),
                Shaped::TooLong { .. } => panic!("no line limit set"),
            }
        }
        b
    }

    fn entry(labels: &[(&str, &str)], ts: &str, line: &str, sm: &[(&str, &str)]) -> Entry {
        Entry {
            labels: LabelSet::from_pairs(labels.iter().copied()),
            timestamp: DateTime::parse_from_rfc3339(ts).unwrap(),
            line: line.to_string(),
            structured_metadata: sm
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn sample() -> Batcher {
        batcher_with(vec![
            entry(
                &[("job", "app")],
                "2024-05-01T10:00:00.000000123Z",
                "first \"quoted\" line\twith tab",
                &[("trace_id", "abc")],
            ),
            entry(&[("job", "db")], "1970-01-01T00:00:00Z", "", &[]),
            entry(
                &[("job", "app")],
                "2024-05-01T12:00:00+02:00",
                "third é",
                &[],
            ),
        ])
    }

    fn decode_protobuf(body: &[u8]) -> PushRequest {
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        PushRequest::decode(raw.as_slice()).unwrap()
    }

    #[test]
    fn protobuf_round_trips_through_snappy_and_the_logproto_messages() {
        let b = sample();
        let batch = b.batches().next().unwrap();
        let mut enc = BodyEncoder::new(PushFormat::Protobuf, PushCompression::None);
        let req = decode_protobuf(enc.encode(batch, true).unwrap());
        assert_eq!(req.streams.len(), 2);
        let app = &req.streams[0];
        assert_eq!(app.labels, r#"{job="app"}"#);
        assert_eq!(app.entries.len(), 2);
        assert_eq!(
            app.entries[0].timestamp,
            Some(Timestamp {
                seconds: 1_714_557_600,
                nanos: 123
            })
        );
        assert_eq!(app.entries[0].line, "first \"quoted\" line\twith tab");
        assert_eq!(
            app.entries[0].structured_metadata,
            vec![LabelPairAdapter {
                name: "trace_id".into(),
                value: "abc".into()
            }]
        );
        assert_eq!(app.entries[1].line, "third é");
        assert_eq!(app.entries[1].timestamp.unwrap().seconds, 1_714_557_600);
        let db = &req.streams[1];
        assert_eq!(db.labels, r#"{job="db"}"#);
        assert_eq!(db.entries[0].timestamp, Some(Timestamp::default()));
        assert_eq!(db.entries[0].line, "");
    }

    #[test]
    fn hand_written_protobuf_matches_prost_byte_for_byte() {
        let b = sample();
        let batch = b.batches().next().unwrap();
        let mut raw = Vec::new();
        write_push_request(&mut raw, batch, true);
        let decoded = PushRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(decoded.encode_to_vec(), raw);
    }

    #[test]
    fn a_body_compressed_chunk_by_chunk_is_the_whole_message_compressed_at_once() {
        // Several 64 KiB chunks, lines that do not fall on chunk boundaries, and one line
        // longer than a chunk.
        let mut entries: Vec<Entry> = (0..3000)
            .map(|i| {
                let line = format!("line {i} {}", "abcdefghij".repeat(i % 23));
                entry(&[("job", "app")], "2024-05-01T10:00:00Z", &line, &[])
            })
            .collect();
        entries.insert(
            1500,
            entry(
                &[("job", "db")],
                "2024-05-01T10:00:01Z",
                &"x".repeat(150_000),
                &[],
            ),
        );
        let b = batcher_with(entries);
        let batch = b.batches().next().unwrap();
        let mut whole = Vec::new();
        write_push_request(&mut whole, batch, true);
        assert!(whole.len() > 4 * SNAPPY_CHUNK);
        let mut enc = BodyEncoder::new(PushFormat::Protobuf, PushCompression::None);
        let body = enc.encode(batch, true).unwrap().to_vec();
        assert_eq!(
            snap::raw::Decoder::new().decompress_vec(&body).unwrap(),
            whole
        );
        assert_eq!(
            body,
            snap::raw::Encoder::new().compress_vec(&whole).unwrap(),
            "byte for byte what compressing the whole message gives"
        );
        // Encoding again (the buffers are reused) gives the same body.
        assert_eq!(enc.encode(batch, true).unwrap(), body.as_slice());
    }

    #[test]
    fn protobuf_without_structured_metadata_leaves_it_out() {
        let b = sample();
        let batch = b.batches().next().unwrap();
        let mut enc = BodyEncoder::new(PushFormat::Protobuf, PushCompression::None);
        let req = decode_protobuf(enc.encode(batch, false).unwrap());
        assert!(req.streams[0].entries[0].structured_metadata.is_empty());
        assert_eq!(
            req.streams[0].entries[0].line,
            "first \"quoted\" line\twith tab"
        );
    }

    #[test]
    fn json_has_loki_push_shape_exactly() {
        let b = sample();
        let batch = b.batches().next().unwrap();
        let mut enc = BodyEncoder::new(PushFormat::Json, PushCompression::None);
        let body = enc.encode(batch, true).unwrap();
        let expected = concat!(
            r#"{"streams":["#,
            r#"{"stream":{"job":"app"},"values":["#,
            r#"["1714557600000000123","first \"quoted\" line\twith tab",{"trace_id":"abc"}],"#,
            r#"["1714557600000000000","third é"]]},"#,
            r#"{"stream":{"job":"db"},"values":[["0",""]]}"#,
            r#"]}"#
        );
        assert_eq!(std::str::from_utf8(body).unwrap(), expected);
        assert_eq!(enc.content_type(), "application/json");
        assert_eq!(enc.content_encoding(), None);
    }

    #[test]
    fn json_without_structured_metadata_has_two_values_per_entry() {
        let b = sample();
        let batch = b.batches().next().unwrap();
        let mut enc = BodyEncoder::new(PushFormat::Json, PushCompression::None);
        let body = enc.encode(batch, false).unwrap();
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        let first = &v["streams"][0]["values"][0];
        assert_eq!(first.as_array().unwrap().len(), 2);
    }

    #[test]
    fn json_escapes_control_characters_so_a_json_parser_reads_the_line_back() {
        let line = "a\u{1}b\u{1f}\"\\\r\n\u{8}\u{c}é\u{7f}";
        let b = batcher_with(vec![entry(
            &[("k", "v\"")],
            "2024-01-01T00:00:00Z",
            line,
            &[],
        )]);
        let batch = b.batches().next().unwrap();
        let mut enc = BodyEncoder::new(PushFormat::Json, PushCompression::None);
        let body = enc.encode(batch, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["streams"][0]["values"][0][1], line);
        assert_eq!(v["streams"][0]["stream"]["k"], "v\"");
    }

    #[test]
    fn gzip_json_decompresses_to_the_plain_body() {
        let b = sample();
        let batch = b.batches().next().unwrap();
        let mut plain_encoder = BodyEncoder::new(PushFormat::Json, PushCompression::None);
        let plain = plain_encoder.encode(batch, true).unwrap().to_vec();
        let mut enc = BodyEncoder::new(PushFormat::Json, PushCompression::Gzip);
        let body = enc.encode(batch, true).unwrap();
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain);
        assert_eq!(enc.content_encoding(), Some("gzip"));
    }

    #[test]
    fn buffers_keep_their_capacity_from_batch_to_batch() {
        let b = sample();
        let batch = b.batches().next().unwrap();
        let mut enc = BodyEncoder::new(PushFormat::Protobuf, PushCompression::None);
        let len = enc.encode(batch, true).unwrap().len();
        let (raw, out) = (enc.raw.as_ptr(), enc.out.as_ptr());
        assert_eq!(enc.encode(batch, true).unwrap().len(), len);
        assert_eq!(
            (enc.raw.as_ptr(), enc.out.as_ptr()),
            (raw, out),
            "no new allocation"
        );
        assert_eq!(enc.body().len(), len);
    }

    #[test]
    fn label_pair_len_matches_prost() {
        let pair = LabelPairAdapter {
            name: "trace_id".into(),
            value: "x".repeat(200),
        };
        assert_eq!(label_pair_len(&pair.name, &pair.value), pair.encoded_len());
        assert_eq!(label_pair_len("", ""), 0);
    }

    #[test]
    fn decimal_writer_handles_zero_and_negatives() {
        let mut out = Vec::new();
        write_decimal(&mut out, 0);
        out.push(b' ');
        write_decimal(&mut out, -1_500_000_000);
        out.push(b' ');
        write_decimal(&mut out, 1_714_557_600_000_000_123);
        assert_eq!(out, b"0 -1500000000 1714557600000000123");
    }
}
