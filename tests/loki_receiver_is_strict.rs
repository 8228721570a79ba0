//! Proves the Loki test receiver accepts what Loki accepts and rejects what Loki rejects,
//! with Loki's status codes, and that its scripting and down mode work. A receiver that
//! accepts anything would make every end-to-end test worthless, so each rejection is checked
//! for its status and for nothing having been recorded.

use std::io::Write;
use std::time::Duration;

use prost::Message;
use tailward::client::logproto::{
    EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp,
};

use crate::support::receiver::{Encoding, Receiver, ReceiverConfig, Reply, parse_label_selector};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn client_builder() -> reqwest::ClientBuilder {
    // reqwest is built without a bundled TLS provider and panics at build time unless one is
    // installed, even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy()
}

fn client() -> reqwest::Client {
    client_builder().build().expect("reqwest client")
}

fn entry(seconds: i64, nanos: i32, line: &str, metadata: &[(&str, &str)]) -> EntryAdapter {
    EntryAdapter {
        timestamp: Some(Timestamp { seconds, nanos }),
        line: line.to_string(),
        structured_metadata: metadata
            .iter()
            .map(|(name, value)| LabelPairAdapter {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect(),
    }
}

fn stream(labels: &str, entries: Vec<EntryAdapter>) -> StreamAdapter {
    StreamAdapter {
        labels: labels.to_string(),
        entries,
        hash: 0,
    }
}

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(bytes)
        .expect("snappy compress")
}

fn protobuf_body(streams: Vec<StreamAdapter>) -> Vec<u8> {
    snappy(&PushRequest { streams }.encode_to_vec())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip write");
    encoder.finish().expect("gzip finish")
}

async fn post(rx: &Receiver, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let mut request = client().post(rx.url()).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("receiver reachable");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn post_protobuf(rx: &Receiver, streams: Vec<StreamAdapter>) -> (u16, String) {
    post(rx, &[("content-type", PROTOBUF)], protobuf_body(streams)).await
}

async fn post_json(rx: &Receiver, json: &str) -> (u16, String) {
    post(rx, &[("content-type", JSON)], json.as_bytes().to_vec()).await
}

/// Asserts the status, that the message mentions `needle`, and that nothing was recorded.
fn assert_rejected(rx: &Receiver, (status, body): (u16, String), expected: u16, needle: &str) {
    assert_eq!(status, expected, "unexpected status; body: {body}");
    assert!(
        body.contains(needle),
        "body {body:?} does not mention {needle:?}"
    );
    assert!(
        rx.received().is_empty(),
        "a rejected push was recorded: {:?}",
        rx.received()
    );
}

#[tokio::test]
async fn accepts_snappy_protobuf_and_records_every_field() {
    let rx = Receiver::start().await;
    let streams = vec![stream(
        r#"{job="varlogs", host="a\"b"}"#,
        vec![
            entry(1_700_000_000, 5, "first", &[("trace_id", "t1"), ("a", "z")]),
            entry(-1, 0, "second", &[]),
        ],
    )];
    let body = protobuf_body(streams);
    let status = post(
        &rx,
        &[("content-type", PROTOBUF), ("x-scope-orgid", "team-a")],
        body,
    )
    .await;
    assert_eq!(status.0, 204, "{}", status.1);

    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].labels_raw, r#"{job="varlogs", host="a\"b"}"#);
    assert_eq!(
        got[0]
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        vec![("host", "a\"b"), ("job", "varlogs")]
    );
    assert_eq!(got[0].timestamp_ns, 1_700_000_000_000_000_005);
    assert_eq!(got[0].line, "first");
    assert_eq!(
        got[0].structured_metadata,
        vec![("trace_id".into(), "t1".into()), ("a".into(), "z".into())]
    );
    assert_eq!(got[0].tenant.as_deref(), Some("team-a"));
    assert_eq!(got[0].encoding, Encoding::Protobuf);
    assert_eq!(got[1].timestamp_ns, -1_000_000_000);
    assert!(got[1].structured_metadata.is_empty());
}

#[tokio::test]
async fn protobuf_field_numbers_match_loki_push_proto() {
    // Hand-encoded so a wrong tag in the prost structs cannot hide behind a symmetric encoder:
    // PushRequest.streams=1 { labels=1 "{a=\"b\"}", entries=2 { timestamp=1 {seconds=1: 7,
    // nanos=2: 9}, line=2 "hi", structuredMetadata=3 { name=1 "k", value=2 "v" } }, hash=3: 5 }
    let sm = [0x0a, 1, b'k', 0x12, 1, b'v'];
    let ts = [0x08, 7, 0x10, 9];
    let mut entry = vec![0x0a, ts.len() as u8];
    entry.extend(ts);
    entry.extend([0x12, 2, b'h', b'i', 0x1a, sm.len() as u8]);
    entry.extend(sm);
    let labels = br#"{a="b"}"#;
    let mut stream = vec![0x0a, labels.len() as u8];
    stream.extend(labels);
    stream.extend([0x12, entry.len() as u8]);
    stream.extend(entry);
    stream.extend([0x18, 5]);
    let mut request = vec![0x0a, stream.len() as u8];
    request.extend(stream);

    let rx = Receiver::start().await;
    let (status, body) = post(&rx, &[("content-type", PROTOBUF)], snappy(&request)).await;
    assert_eq!(status, 204, "{body}");
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].timestamp_ns, got[0].line.as_str()),
        (7_000_000_009, "hi")
    );
    assert_eq!(
        got[0].structured_metadata,
        vec![("k".to_string(), "v".to_string())]
    );
}

#[tokio::test]
async fn accepts_json_with_and_without_structured_metadata_in_document_order() {
    let rx = Receiver::start().await;
    let json = r#"{"streams":[{"stream":{"job":"j","app":"x"},"values":[
        ["1700000000000000001","plain"],
        ["1700000000000000002","with sm",{"zeta":"1","alpha":"2"}]]}]}"#;
    let (status, body) = post_json(&rx, json).await;
    assert_eq!(status, 204, "{body}");
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].labels_raw, r#"{app="x", job="j"}"#);
    assert_eq!(got[0].timestamp_ns, 1_700_000_000_000_000_001);
    assert_eq!(got[0].encoding, Encoding::Json);
    assert!(got[0].structured_metadata.is_empty());
    assert_eq!(got[1].line, "with sm");
    assert_eq!(
        got[1].structured_metadata,
        vec![("zeta".into(), "1".into()), ("alpha".into(), "2".into())]
    );
}

#[tokio::test]
async fn accepts_gzip_encoded_json_and_protobuf() {
    let rx = Receiver::start().await;
    let json = r#"{"streams":[{"stream":{"job":"j"},"values":[["5","zipped json"]]}]}"#;
    let headers = [("content-type", JSON), ("content-encoding", "gzip")];
    assert_eq!(post(&rx, &headers, gzip(json.as_bytes())).await.0, 204);
    let body = gzip(&protobuf_body(vec![stream(
        r#"{job="j"}"#,
        vec![entry(1, 0, "zipped proto", &[])],
    )]));
    let headers = [("content-type", PROTOBUF), ("content-encoding", "gzip")];
    assert_eq!(post(&rx, &headers, body).await.0, 204);

    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].line.as_str(), got[0].encoding),
        ("zipped json", Encoding::JsonGzip)
    );
    assert_eq!(
        (got[1].line.as_str(), got[1].encoding),
        ("zipped proto", Encoding::ProtobufGzip)
    );
}

#[tokio::test]
async fn records_request_headers_for_auth_and_identity_checks() {
    let rx = Receiver::start().await;
    let headers = [
        ("content-type", PROTOBUF),
        ("content-encoding", "snappy"),
        ("authorization", "Basic dXNlcjpwYXNz"),
        ("user-agent", "tailward/0.1.0"),
        ("x-scope-orgid", "tenant-1"),
    ];
    let body = protobuf_body(vec![stream(r#"{job="j"}"#, vec![entry(1, 0, "l", &[])])]);
    assert_eq!(post(&rx, &headers, body).await.0, 204);
    let requests = rx.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(rx.request_count(), 1);
    let request = &requests[0];
    assert_eq!(request.authorization.as_deref(), Some("Basic dXNlcjpwYXNz"));
    assert_eq!(request.user_agent.as_deref(), Some("tailward/0.1.0"));
    assert_eq!(request.content_type.as_deref(), Some(PROTOBUF));
    assert_eq!(request.content_encoding.as_deref(), Some("snappy"));
    assert_eq!(request.tenant.as_deref(), Some("tenant-1"));
    assert_eq!(request.status, 204);
}

#[test]
fn label_selector_grammar_matches_prometheus() {
    let parsed = parse_label_selector(
        " { a = \"x\\n\\\"y\\\\\" , b='it\\'s', c=`raw\\n`, d=\"\\u00e9\\x41\\101\", } ",
    );
    assert_eq!(
        parsed,
        Ok(vec![
            ("a".into(), "x\n\"y\\".into()),
            ("b".into(), "it's".into()),
            ("c".into(), "raw\\n".into()),
            ("d".into(), "éAA".into()),
        ])
    );
    assert_eq!(parse_label_selector("{}"), Ok(vec![]));
    for bad in [
        r#"job="x""#,
        r#"{job="x""#,
        r#"{job="x"} junk"#,
        r#"{job=~"x"}"#,
        r#"{job!="x"}"#,
        r#"{1job="x"}"#,
        r#"{job-name="x"}"#,
        r#"{job=x}"#,
        r#"{,}"#,
        r#"{job="x" host="y"}"#,
        r#"{job="\q"}"#,
        r#"{job='a\"b'}"#,
        "{job=\"line\nbreak\"}",
        r#"{job="\xff"}"#,
        r#"metric{job="x"}"#,
    ] {
        assert!(parse_label_selector(bad).is_err(), "{bad:?} was accepted");
    }
}

#[tokio::test]
async fn drops_empty_label_values_as_loki_does() {
    let rx = Receiver::start().await;
    let (status, _) = post_protobuf(
        &rx,
        vec![stream(
            r#"{job="j", empty=""}"#,
            vec![entry(1, 0, "l", &[])],
        )],
    )
    .await;
    assert_eq!(status, 204);
    let got = rx.received();
    assert_eq!(got[0].labels.keys().collect::<Vec<_>>(), vec!["job"]);
}

#[tokio::test]
async fn rejects_corrupt_snappy() {
    let rx = Receiver::start().await;
    let request = PushRequest {
        streams: vec![stream(r#"{job="j"}"#, vec![entry(1, 0, "l", &[])])],
    };
    // Uncompressed protobuf is not a snappy block.
    let response = post(&rx, &[("content-type", PROTOBUF)], request.encode_to_vec()).await;
    assert_rejected(&rx, response, 400, "snappy");
    let response = post(&rx, &[("content-type", PROTOBUF)], Vec::new()).await;
    assert_rejected(&rx, response, 400, "snappy");
}

#[tokio::test]
async fn rejects_snappy_stream_format_instead_of_block_format() {
    let rx = Receiver::start().await;
    let plain = PushRequest {
        streams: vec![stream(r#"{job="j"}"#, vec![entry(1, 0, "l", &[])])],
    }
    .encode_to_vec();
    let mut framed = snap::write::FrameEncoder::new(Vec::new());
    framed.write_all(&plain).expect("frame write");
    let body = framed.into_inner().expect("frame finish");
    assert_rejected(
        &rx,
        post(&rx, &[("content-type", PROTOBUF)], body).await,
        400,
        "snappy",
    );
}

#[tokio::test]
async fn rejects_garbage_protobuf_inside_valid_snappy() {
    let rx = Receiver::start().await;
    let body = snappy(&[0x0a, 0x20, 0x01]);
    assert_rejected(
        &rx,
        post(&rx, &[("content-type", PROTOBUF)], body).await,
        400,
        "proto",
    );
}

#[tokio::test]
async fn rejects_invalid_utf8_line_in_protobuf() {
    let rx = Receiver::start().await;
    let mut raw = PushRequest {
        streams: vec![stream(r#"{job="j"}"#, vec![entry(1, 0, "ab", &[])])],
    }
    .encode_to_vec();
    let at = raw.windows(2).position(|w| w == b"ab").expect("line bytes");
    raw[at] = 0xff;
    assert_rejected(
        &rx,
        post(&rx, &[("content-type", PROTOBUF)], snappy(&raw)).await,
        400,
        "proto",
    );
}

#[tokio::test]
async fn rejects_missing_or_out_of_range_protobuf_timestamps() {
    let rx = Receiver::start().await;
    let mut no_ts = entry(1, 0, "l", &[]);
    no_ts.timestamp = None;
    assert_rejected(
        &rx,
        post_protobuf(&rx, vec![stream(r#"{job="j"}"#, vec![no_ts])]).await,
        400,
        "timestamp",
    );
    let bad_nanos = entry(1, 1_000_000_000, "l", &[]);
    assert_rejected(
        &rx,
        post_protobuf(&rx, vec![stream(r#"{job="j"}"#, vec![bad_nanos])]).await,
        400,
        "nanos",
    );
    let negative_nanos = entry(1, -1, "l", &[]);
    assert_rejected(
        &rx,
        post_protobuf(&rx, vec![stream(r#"{job="j"}"#, vec![negative_nanos])]).await,
        400,
        "nanos",
    );
}

#[tokio::test]
async fn rejects_label_strings_loki_cannot_parse() {
    let rx = Receiver::start().await;
    for labels in [
        r#"job="x""#,
        r#"{job="x""#,
        r#"{1job="x"}"#,
        r#"{job.name="x"}"#,
        r#"{job=~"x"}"#,
    ] {
        let response = post_protobuf(&rx, vec![stream(labels, vec![entry(1, 0, "l", &[])])]).await;
        assert_rejected(&rx, response, 400, "couldn't parse labels");
    }
}

#[tokio::test]
async fn unparseable_labels_reject_the_whole_request() {
    let rx = Receiver::start().await;
    let good = stream(r#"{job="ok"}"#, vec![entry(1, 0, "l", &[])]);
    let bad = stream("nobraces", vec![entry(1, 0, "l", &[])]);
    assert_rejected(
        &rx,
        post_protobuf(&rx, vec![good, bad]).await,
        400,
        "couldn't parse labels",
    );
}

#[tokio::test]
async fn rejects_an_empty_label_set() {
    let rx = Receiver::start().await;
    for labels in ["{}", r#"{job=""}"#] {
        let response = post_protobuf(&rx, vec![stream(labels, vec![entry(1, 0, "l", &[])])]).await;
        assert_rejected(
            &rx,
            response,
            400,
            "error at least one label pair is required per stream",
        );
    }
    let response = post_json(&rx, r#"{"streams":[{"stream":{},"values":[["1","l"]]}]}"#).await;
    assert_rejected(&rx, response, 400, "at least one label pair");
}

#[tokio::test]
async fn rejects_duplicate_label_names() {
    let rx = Receiver::start().await;
    let response = post_protobuf(
        &rx,
        vec![stream(r#"{job="a", job="b"}"#, vec![entry(1, 0, "l", &[])])],
    )
    .await;
    assert_rejected(&rx, response, 400, "has duplicate label name: 'job'");
}

#[tokio::test]
async fn enforces_label_count_and_length_limits() {
    let rx = Receiver::start().await;
    let sixteen: Vec<String> = (0..16).map(|i| format!("l{i}=\"v\"")).collect();
    let labels = format!("{{{}}}", sixteen.join(", "));
    let response = post_protobuf(&rx, vec![stream(&labels, vec![entry(1, 0, "l", &[])])]).await;
    assert_rejected(&rx, response, 400, "has 16 label names; limit 15");
    let long_name = format!("{{{}=\"v\"}}", "n".repeat(1025));
    let response = post_protobuf(&rx, vec![stream(&long_name, vec![entry(1, 0, "l", &[])])]).await;
    assert_rejected(&rx, response, 400, "label name too long");
    let long_value = format!("{{job=\"{}\"}}", "v".repeat(2049));
    let response = post_protobuf(&rx, vec![stream(&long_value, vec![entry(1, 0, "l", &[])])]).await;
    assert_rejected(&rx, response, 400, "label value too long");
}

#[tokio::test]
async fn rejects_unsupported_content_types_and_encodings() {
    let rx = Receiver::start().await;
    let body = protobuf_body(vec![stream(r#"{job="j"}"#, vec![entry(1, 0, "l", &[])])]);
    assert_rejected(
        &rx,
        post(&rx, &[("content-type", "text/plain")], body.clone()).await,
        415,
        "Content-Type",
    );
    assert_rejected(
        &rx,
        post(&rx, &[], body.clone()).await,
        400,
        "no media type",
    );
    let headers = [("content-type", PROTOBUF), ("content-encoding", "br")];
    assert_rejected(
        &rx,
        post(&rx, &headers, body.clone()).await,
        400,
        "not supported",
    );
    let headers = [("content-type", PROTOBUF), ("content-encoding", "gzip")];
    assert_rejected(&rx, post(&rx, &headers, body).await, 400, "gzip");
}

#[tokio::test]
async fn rejects_malformed_json() {
    let rx = Receiver::start().await;
    for json in [
        "not json",
        r#"{"streams":[{"stream":{"job":"j"},"values":[["1","l"]]}]"#,
        r#"{"streams":[{"stream":{"job":"j"},"values":[["1","l"]]}]} trailing"#,
        r#"{"streams":{"stream":{"job":"j"}}}"#,
        r#"{"streams":[{"stream":{"job":"j"},"values":[["1",42]]}]}"#,
        r#"{"streams":[{"stream":{"job":"j"},"values":[["1","l",{"k":1}]]}]}"#,
        r#"{"streams":[{"stream":{"job":"j"},"values":[["1","l",["k","v"]]]}]}"#,
    ] {
        assert_rejected(&rx, post_json(&rx, json).await, 400, "");
    }
}

#[tokio::test]
async fn rejects_json_timestamps_that_are_not_strings_of_integer_nanoseconds() {
    let rx = Receiver::start().await;
    for ts in [
        "1700000000000000000",
        "\"1.5\"",
        "\"2024-01-01T00:00:00Z\"",
        "\"\"",
        "\"99999999999999999999\"",
    ] {
        let json = format!(r#"{{"streams":[{{"stream":{{"job":"j"}},"values":[[{ts},"l"]]}}]}}"#);
        assert_rejected(&rx, post_json(&rx, &json).await, 400, "");
    }
}

#[tokio::test]
async fn rejects_json_values_with_other_than_two_or_three_items() {
    let rx = Receiver::start().await;
    for values in [r#"[]"#, r#"["1"]"#, r#"["1","l",{},"extra"]"#] {
        let json = format!(r#"{{"streams":[{{"stream":{{"job":"j"}},"values":[{values}]}}]}}"#);
        assert_rejected(&rx, post_json(&rx, &json).await, 400, "");
    }
}

#[tokio::test]
async fn rejects_json_stream_with_invalid_label_name() {
    let rx = Receiver::start().await;
    for name in ["1job", "job-name", "", "service.name"] {
        let json = format!(r#"{{"streams":[{{"stream":{{"{name}":"x"}},"values":[["1","l"]]}}]}}"#);
        assert_rejected(
            &rx,
            post_json(&rx, &json).await,
            400,
            "couldn't parse labels",
        );
    }
}

#[tokio::test]
async fn loki2_mode_rejects_json_structured_metadata_and_drops_protobuf_metadata() {
    let rx = Receiver::start_with(ReceiverConfig::loki2()).await;
    let json = r#"{"streams":[{"stream":{"job":"j"},"values":[["1","l",{"k":"v"}]]}]}"#;
    assert_rejected(
        &rx,
        post_json(&rx, json).await,
        400,
        "array must contains 2 values",
    );

    let (status, _) = post_protobuf(
        &rx,
        vec![stream(
            r#"{job="j"}"#,
            vec![entry(1, 0, "l", &[("k", "v")])],
        )],
    )
    .await;
    assert_eq!(status, 204);
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].structured_metadata.is_empty(),
        "Loki 2 kept metadata: {:?}",
        got[0]
    );
    assert_eq!(post_json(&rx, r#"{"streams":[]}"#).await.0, 204);
}

#[tokio::test]
async fn empty_push_is_422_on_loki3_and_streams_without_entries_are_accepted() {
    let rx = Receiver::start().await;
    let expected = "error at least one valid stream is required for ingestion";
    assert_rejected(
        &rx,
        post_json(&rx, r#"{"streams":[]}"#).await,
        422,
        expected,
    );
    assert_rejected(&rx, post_protobuf(&rx, vec![]).await, 422, expected);
    assert_eq!(
        post_protobuf(&rx, vec![stream(r#"{job="j"}"#, vec![])])
            .await
            .0,
        204
    );
    assert!(rx.received().is_empty());
}

#[tokio::test]
async fn max_line_size_rejects_long_lines_but_keeps_the_valid_ones() {
    let config = ReceiverConfig {
        max_line_size: Some(8),
        ..ReceiverConfig::default()
    };
    let rx = Receiver::start_with(config).await;
    let entries = vec![
        entry(1, 0, "short", &[]),
        entry(2, 0, "much too long", &[]),
        entry(3, 0, "8 bytes!", &[]),
    ];
    let (status, body) = post_protobuf(&rx, vec![stream(r#"{job="j"}"#, entries)]).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("Max entry size '8' bytes exceeded for stream '{job=\"j\"}'"),
        "{body}"
    );
    let lines: Vec<String> = rx.received().into_iter().map(|e| e.line).collect();
    assert_eq!(lines, vec!["short", "8 bytes!"]);
}

#[tokio::test]
async fn max_body_bytes_answers_413_and_records_nothing_of_a_larger_push() {
    let config = ReceiverConfig {
        max_body_bytes: Some(60),
        ..ReceiverConfig::default()
    };
    let rx = Receiver::start_with(config).await;
    let big: Vec<_> = (0..20)
        .map(|i| entry(i, 0, &format!("entry number {i} of a big push"), &[]))
        .collect();
    let (status, body) = post_protobuf(&rx, vec![stream(r#"{job="j"}"#, big)]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("message size too large"), "{body}");
    assert!(rx.received().is_empty());
    let (status, body) = post_protobuf(
        &rx,
        vec![stream(r#"{job="j"}"#, vec![entry(1, 0, "small", &[])])],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test]
async fn out_of_order_entries_are_accepted() {
    let rx = Receiver::start().await;
    let entries = vec![entry(20, 0, "later", &[]), entry(10, 0, "earlier", &[])];
    assert_eq!(
        post_protobuf(&rx, vec![stream(r#"{job="j"}"#, entries)])
            .await
            .0,
        204
    );
    assert_eq!(
        post_protobuf(
            &rx,
            vec![stream(r#"{job="j"}"#, vec![entry(5, 0, "oldest", &[])])]
        )
        .await
        .0,
        204
    );
    assert_eq!(rx.received().len(), 3);
}

#[tokio::test]
async fn old_and_future_samples_are_rejected_when_configured() {
    let config = ReceiverConfig {
        reject_old_samples_max_age: Some(Duration::from_secs(3600)),
        creation_grace_period: Some(Duration::from_secs(600)),
        ..ReceiverConfig::default()
    };
    let rx = Receiver::start_with(config).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let entries = vec![
        entry(now - 7200, 0, "old", &[]),
        entry(now + 3600, 0, "future", &[]),
        entry(now, 0, "now", &[]),
    ];
    let (status, body) = post_protobuf(&rx, vec![stream(r#"{job="j"}"#, entries)]).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("timestamp too old") && body.contains("timestamp too new"),
        "{body}"
    );
    let lines: Vec<String> = rx.received().into_iter().map(|e| e.line).collect();
    assert_eq!(lines, vec!["now"]);
}

#[tokio::test]
async fn require_tenant_answers_401_without_org_id() {
    let config = ReceiverConfig {
        require_tenant: true,
        ..ReceiverConfig::default()
    };
    let rx = Receiver::start_with(config).await;
    let body = protobuf_body(vec![stream(r#"{job="j"}"#, vec![entry(1, 0, "l", &[])])]);
    assert_rejected(
        &rx,
        post(&rx, &[("content-type", PROTOBUF)], body.clone()).await,
        401,
        "no org id",
    );
    let headers = [("content-type", PROTOBUF), ("x-scope-orgid", "t")];
    assert_eq!(post(&rx, &headers, body).await.0, 204);
}

#[tokio::test]
async fn only_post_is_routed() {
    let rx = Receiver::start().await;
    let response = client().get(rx.url()).send().await.expect("reachable");
    assert_eq!(response.status().as_u16(), 405);
}

#[tokio::test]
async fn scripted_replies_come_first_and_are_not_recorded() {
    let rx = Receiver::start().await;
    rx.script(vec![
        Reply::Status(500),
        Reply::TooManyRequests {
            retry_after_secs: Some(1),
        },
        Reply::BadRequest("entry out of order".into()),
    ]);
    let push = || {
        post_protobuf(
            &rx,
            vec![stream(r#"{job="j"}"#, vec![entry(1, 0, "l", &[])])],
        )
    };
    assert_eq!(push().await.0, 500);
    let response = client()
        .post(rx.url())
        .header("content-type", PROTOBUF)
        .body(protobuf_body(vec![stream(
            r#"{job="j"}"#,
            vec![entry(1, 0, "l", &[])],
        )]))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let (status, body) = push().await;
    assert_eq!((status, body.trim()), (400, "entry out of order"));
    assert!(
        rx.received().is_empty(),
        "scripted failures must not record the push"
    );

    assert_eq!(
        push().await.0,
        204,
        "normal behaviour resumes after the script"
    );
    assert_eq!(rx.received().len(), 1);
    let statuses: Vec<u16> = rx.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 429, 400, 204]);
}

#[tokio::test]
async fn scripted_delay_still_ingests() {
    let rx = Receiver::start().await;
    rx.script(vec![Reply::Delay(Duration::from_millis(300))]);
    let slow_client = client_builder()
        .timeout(Duration::from_millis(50))
        .build()
        .expect("client");
    let body = protobuf_body(vec![stream(r#"{job="j"}"#, vec![entry(1, 0, "slow", &[])])]);
    let result = slow_client
        .post(rx.url())
        .header("content-type", PROTOBUF)
        .body(body)
        .send()
        .await;
    assert!(result.is_err_and(|e| e.is_timeout()));
    let got = rx.wait_for_entries(1, Duration::from_secs(5)).await;
    assert_eq!(
        got.len(),
        1,
        "the delayed push is ingested after the client gave up"
    );
}

#[tokio::test]
async fn down_mode_refuses_connections_then_recovers_on_the_same_url() {
    let rx = Receiver::start().await;
    let url = rx.url();
    let client = client();
    let push = |body: Vec<u8>| {
        client
            .post(&url)
            .header("content-type", PROTOBUF)
            .body(body)
            .send()
    };
    let body = || protobuf_body(vec![stream(r#"{job="j"}"#, vec![entry(1, 0, "l", &[])])]);
    assert_eq!(push(body()).await.expect("up").status().as_u16(), 204);

    rx.set_down(true).await;
    let error = push(body()).await.expect_err("down receiver must refuse");
    assert!(
        error.is_connect() || error.is_request(),
        "not a transport error: {error:?}"
    );
    assert_eq!(rx.request_count(), 1, "a down receiver saw a request");

    rx.set_down(false).await;
    assert_eq!(rx.url(), url);
    assert_eq!(push(body()).await.expect("up again").status().as_u16(), 204);
    assert_eq!(rx.received().len(), 2);
}

#[tokio::test]
async fn stop_closes_the_port() {
    let rx = Receiver::start().await;
    let addr = rx.addr();
    rx.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port still open after stop"
    );
}

#[tokio::test]
async fn wait_for_entries_returns_what_arrived_when_the_timeout_passes() {
    let rx = Receiver::start().await;
    assert_eq!(
        post_protobuf(
            &rx,
            vec![stream(r#"{job="j"}"#, vec![entry(1, 0, "only", &[])])]
        )
        .await
        .0,
        204
    );
    let started = std::time::Instant::now();
    let got = rx.wait_for_entries(2, Duration::from_millis(200)).await;
    assert_eq!(got.len(), 1);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        rx.wait_for_requests(1, Duration::from_secs(1)).await.len(),
        1
    );
}
