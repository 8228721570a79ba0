//! A Loki push request's body read as Loki's `ParseLokiRequest` reads it: `Content-Encoding`
//! (none or `snappy`: as sent; `gzip`, `deflate`: decompressed; anything else refused), then
//! `Content-Type` (`application/json`: Loki's JSON push format; `application/x-protobuf`:
//! snappy block-compressed `logproto.PushRequest`; missing: `mime: no media type`; any other
//! type 415), then each stream's label string ([`super::labels`]).
//!
//! Owns decoding and the answers a bad body gets, with Loki's status codes and wording. It
//! must not relabel, number or hand on entries: [`super`] does, with what this returns.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use prost::Message;
use serde::Deserializer;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Refusal;
use super::labels;
use crate::model::logproto;

/// One pushed stream: its labels and entries, as sent.
#[derive(Debug)]
pub struct Stream {
    pub labels: BTreeMap<String, String>,
    pub entries: Vec<PushedEntry>,
}

#[derive(Debug)]
pub struct PushedEntry {
    /// `None`: the protobuf entry had no timestamp (Loki reads Go's zero time).
    pub timestamp: Option<DateTime<FixedOffset>>,
    pub line: String,
    pub structured_metadata: Vec<(String, String)>,
}

/// Loki's answer to a body larger than it takes (`util.ErrMessageSizeTooLarge`).
pub fn too_large(size: usize, max: usize) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("message size too large than max ({size} vs {max})"),
    )
}

/// Decodes a push body of at most `max` bytes as sent and once decompressed.
pub fn decode(headers: &HeaderMap, body: &[u8], max: usize) -> Result<Vec<Stream>, Refusal> {
    let encoding = header_text(headers, header::CONTENT_ENCODING);
    let body: std::borrow::Cow<'_, [u8]> = match encoding.as_str() {
        "" | "snappy" => body.into(),
        "gzip" => inflate(flate2::read::MultiGzDecoder::new(body), max)?.into(),
        "deflate" => inflate(flate2::read::DeflateDecoder::new(body), max)?.into(),
        other => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "unsupported_encoding",
                format!("Content-Encoding {other:?} not supported"),
            ));
        }
    };
    let content_type = header_text(headers, header::CONTENT_TYPE);
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
        "" => Err(bad_body("mime: no media type")),
        "application/json" => decode_json(&body),
        "application/x-protobuf" => decode_protobuf(&body, max),
        other => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "unsupported Content-Type {other:?}: expected application/x-protobuf (snappy) or application/json"
            ),
        )),
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn bad_body(message: impl fmt::Display) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, "bad_body", message.to_string())
}

/// Decompresses at most `max` bytes; more is 413, as a compressed bomb must not fill memory.
fn inflate(reader: impl Read, max: usize) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| bad_body(format!("decompress: {e}")))?;
    if out.len() > max {
        return Err(too_large(out.len(), max));
    }
    Ok(out)
}

fn decode_protobuf(body: &[u8], max: usize) -> Result<Vec<Stream>, Refusal> {
    let len = snap::raw::decompress_len(body).map_err(|_| bad_body("snappy: corrupt input"))?;
    if len > max {
        return Err(too_large(len, max));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|_| bad_body("snappy: corrupt input"))?;
    let request = logproto::PushRequest::decode(raw.as_slice())
        .map_err(|e| bad_body(format!("proto: {e}")))?;
    let mut streams = Vec::with_capacity(request.streams.len());
    for stream in request.streams {
        let labels = parse_labels(&stream.labels)?;
        let entries = stream
            .entries
            .into_iter()
            .map(|e| PushedEntry {
                timestamp: e.timestamp.and_then(|t| {
                    Utc.timestamp_opt(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
                        .single()
                        .map(|t| t.fixed_offset())
                }),
                line: e.line,
                structured_metadata: e
                    .structured_metadata
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect(),
            })
            .collect();
        streams.push(Stream { labels, entries });
    }
    Ok(streams)
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, Refusal> {
    labels::parse(text).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_labels",
            format!("couldn't parse labels: {e}"),
        )
    })
}

#[derive(serde::Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(serde::Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<JsonEntry>,
}

/// One `values` item: `["<unix ns>", "<line>"]` or `["<unix ns>", "<line>", {metadata}]`.
struct JsonEntry(PushedEntry);

impl<'de> serde::Deserialize<'de> for JsonEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(JsonEntryVisitor)
    }
}

struct JsonEntryVisitor;

impl<'de> Visitor<'de> for JsonEntryVisitor {
    type Value = JsonEntry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of \"<unix epoch in nanoseconds>\", \"<log line>\" and optionally {structured metadata}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonEntry, A::Error> {
        let ts: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let ns = ts
            .parse::<i64>()
            .map_err(|e| de::Error::custom(format!("error reading entry timestamp {ts:?}: {e}")))?;
        let line: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let structured_metadata = seq
            .next_element::<OrderedPairs>()?
            .map(|p| p.0)
            .unwrap_or_default();
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(4, &self));
        }
        Ok(JsonEntry(PushedEntry {
            timestamp: Some(Utc.timestamp_nanos(ns).fixed_offset()),
            line,
            structured_metadata,
        }))
    }
}

/// A JSON object of string values, in document order.
struct OrderedPairs(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for OrderedPairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = OrderedPairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string values (structured metadata)")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<OrderedPairs, M::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(OrderedPairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

fn decode_json(body: &[u8]) -> Result<Vec<Stream>, Refusal> {
    let request: JsonPush = serde_json::from_slice(body).map_err(bad_body)?;
    let mut streams = Vec::with_capacity(request.streams.len());
    for stream in request.streams {
        // Loki renders the object as a label string and parses that: the same names are
        // refused as in a protobuf push.
        let mut text = String::from("{");
        for (i, (k, v)) in stream.stream.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(k);
            text.push('=');
            crate::model::labels::quote_go_into(v, &mut text);
        }
        text.push('}');
        let labels = parse_labels(&text)?;
        streams.push(Stream {
            labels,
            entries: stream.values.into_iter().map(|e| e.0).collect(),
        });
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(content_type: &str, encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if !content_type.is_empty() {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(content_type).unwrap(),
            );
        }
        if !encoding.is_empty() {
            h.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_str(encoding).unwrap(),
            );
        }
        h
    }

    fn protobuf() -> Vec<u8> {
        let request = logproto::PushRequest {
            streams: vec![logproto::StreamAdapter {
                labels: r#"{job="app", host="a"}"#.into(),
                entries: vec![logproto::EntryAdapter {
                    timestamp: Some(logproto::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 5,
                    }),
                    line: "hello".into(),
                    structured_metadata: vec![logproto::LabelPairAdapter {
                        name: "trace_id".into(),
                        value: "abc".into(),
                    }],
                }],
                hash: 0,
            }],
        };
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap()
    }

    #[test]
    fn protobuf_json_and_gzip_bodies_decode_to_the_same_stream() {
        let json = br#"{"streams":[{"stream":{"job":"app","host":"a"},"values":[["1700000000000000005","hello",{"trace_id":"abc"}]]}]}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, json).unwrap();
        let gz = gz.finish().unwrap();
        // Go's compress/flate: raw DEFLATE, no zlib header.
        let mut deflated =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut deflated, json).unwrap();
        let deflated = deflated.finish().unwrap();
        for (h, body) in [
            (headers("application/json", "deflate"), deflated),
            (headers("application/x-protobuf", ""), protobuf()),
            (headers("application/x-protobuf", "snappy"), protobuf()),
            (
                headers("application/json; charset=utf-8", ""),
                json.to_vec(),
            ),
            (headers("application/json", "gzip"), gz),
        ] {
            let streams = decode(&h, &body, 1 << 20).unwrap();
            assert_eq!(streams.len(), 1);
            let s = &streams[0];
            assert_eq!(s.labels["job"], "app");
            assert_eq!(s.labels["host"], "a");
            let e = &s.entries[0];
            assert_eq!(e.line, "hello");
            assert_eq!(
                e.timestamp.unwrap().timestamp_nanos_opt(),
                Some(1_700_000_000_000_000_005)
            );
            assert_eq!(
                e.structured_metadata,
                [("trace_id".to_string(), "abc".to_string())]
            );
        }
    }

    #[test]
    fn bad_bodies_get_lokis_status_and_wording() {
        let cases: &[(&str, &str, &[u8], u16, &str)] = &[
            (
                "application/x-protobuf",
                "",
                b"garbage!",
                400,
                "snappy: corrupt input",
            ),
            ("application/json", "", b"{\"streams\": [", 400, "EOF"),
            (
                "application/json",
                "",
                br#"{"streams":[{"stream":{"foo-bar":"x"},"values":[]}]}"#,
                400,
                "couldn't parse labels",
            ),
            ("", "", b"{}", 400, "mime: no media type"),
            ("text/plain", "", b"x", 415, "unsupported Content-Type"),
            (
                "application/json",
                "br",
                b"x",
                400,
                "Content-Encoding \"br\" not supported",
            ),
            ("application/json", "gzip", b"not gzip", 400, "decompress"),
        ];
        for (ct, enc, body, status, text) in cases {
            let r = decode(&headers(ct, enc), body, 1 << 20).unwrap_err();
            assert_eq!(r.status.as_u16(), *status, "{ct} {enc}: {}", r.message);
            assert!(r.message.contains(text), "{ct} {enc}: {}", r.message);
        }
    }

    #[test]
    fn a_body_decompressing_past_the_limit_is_413() {
        let big = vec![b'a'; 4096];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &big).unwrap();
        let gz = gz.finish().unwrap();
        let r = decode(&headers("application/json", "gzip"), &gz, 1000).unwrap_err();
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        let r = decode(&headers("application/x-protobuf", ""), &protobuf(), 10).unwrap_err();
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
