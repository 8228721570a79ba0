//! Bad pushes get Loki's status codes and wording, are counted by reason in
//! `tailward_push_rejected_total`, ship nothing, and leave the agent serving: an oversized
//! body (413), garbage (400), invalid label names (400), no streams (422), an unsupported
//! content type (415) or encoding (400), a missing content type (400 `mime: no media type`).

use std::time::Duration;

use crate::support::agent_process::AgentProcess;
use crate::support::push_client::{post, protobuf_push, push_port, receiving_config};
use crate::support::receiver::Receiver;

/// What is sent (name, headers, body), and what must come back (status, words, reason counted).
type Case<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    Vec<u8>,
    u16,
    &'a str,
    &'a str,
);

#[tokio::test(flavor = "multi_thread")]
async fn each_bad_body_is_answered_as_loki_would_counted_and_the_agent_keeps_serving() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = 0;
    let job = format!(
        "    loki_push_api:\n      server:\n        http_listen_address: 127.0.0.1\n        http_listen_port: {port}\n      max_request_size: 64KiB\n"
    );
    let agent = AgentProcess::start(
        &receiving_config(dir.path(), &receiver.url(), "", &job),
        &[],
    );
    let port = push_port(&agent, 1);
    let proto = [("Content-Type", "application/x-protobuf")];
    let json = [("Content-Type", "application/json")];
    let big = protobuf_push(r#"{job="a"}"#, &[(1, &"x".repeat(200_000), &[])]);
    let oversized_json = format!(
        r#"{{"streams":[{{"stream":{{"job":"a"}},"values":[["1","{}"]]}}]}}"#,
        "y".repeat(100_000)
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "oversized",
            &json,
            oversized_json.into_bytes(),
            413,
            "message size too large than max",
            "too_large",
        ),
        (
            "garbage protobuf",
            &proto,
            b"garbage! not snappy".to_vec(),
            400,
            "snappy: corrupt input",
            "bad_body",
        ),
        (
            "garbage json",
            &json,
            b"{\"streams\": [{\"stream\"".to_vec(),
            400,
            "EOF",
            "bad_body",
        ),
        (
            "invalid label name (protobuf)",
            &proto,
            protobuf_push(r#"{foo-bar="x"}"#, &[(1, "l", &[])]),
            400,
            "couldn't parse labels",
            "invalid_labels",
        ),
        (
            "invalid label name (json)",
            &json,
            br#"{"streams":[{"stream":{"1abc":"x"},"values":[["1","l"]]}]}"#.to_vec(),
            400,
            "couldn't parse labels",
            "invalid_labels",
        ),
        (
            "missing streams",
            &json,
            br#"{"streams":[]}"#.to_vec(),
            422,
            "error at least one valid stream is required for ingestion",
            "no_streams",
        ),
        (
            "wrong content type",
            &[("Content-Type", "text/plain")],
            b"hello".to_vec(),
            415,
            "unsupported Content-Type",
            "unsupported_media_type",
        ),
        (
            "no content type",
            &[],
            b"hello".to_vec(),
            400,
            "mime: no media type",
            "bad_body",
        ),
        (
            "unsupported encoding",
            &[
                ("Content-Type", "application/json"),
                ("Content-Encoding", "br"),
            ],
            b"x".to_vec(),
            400,
            "Content-Encoding \"br\" not supported",
            "unsupported_encoding",
        ),
    ];
    // A protobuf body that decompresses past the limit is refused before it is decoded.
    let a = post(port, "/loki/api/v1/push", &proto, &big);
    assert_eq!(a.status, 413, "snappy bomb: {a:?}");
    for (what, headers, body, status, says, reason) in &cases {
        let a = post(port, "/loki/api/v1/push", headers, body);
        assert_eq!(a.status, *status, "{what}: {a:?}");
        assert!(a.body.contains(says), "{what}: {a:?}");
        let counted = agent.metric(&format!(
            "tailward_push_rejected_total{{reason=\"{reason}\",source=\"loki_push_api\"}}"
        ));
        assert!(
            counted >= 1.0,
            "{what} not counted as {reason}: {}",
            agent
                .get("/metrics")
                .1
                .lines()
                .filter(|l| l.contains("push_"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // A chunked body has no length to check first: it is cut off at the limit as it arrives.
    let chunked = chunked_post(port, &"z".repeat(100_000));
    assert!(
        chunked.starts_with("HTTP/1.1 413") && chunked.contains("message size too large than max"),
        "{chunked}"
    );
    assert_eq!(
        agent.metric("tailward_push_rejected_total"),
        (cases.len() + 2) as f64,
        "each refusal counted once"
    );
    let (status, _) = crate::support::agent_process::http_get(port, "/loki/api/v1/push");
    assert_eq!(status, 405, "GET on the push route");
    let a = post(port, "/nowhere", &json, b"{}");
    assert_eq!(a.status, 404);
    // Still serving, and nothing of the bad pushes reached Loki.
    let good = protobuf_push(
        r#"{job="ok"}"#,
        &[(1_700_000_000_000_000_000, "still here", &[])],
    );
    let a = post(port, "/loki/api/v1/push", &proto, &good);
    assert_eq!(a.status, 204, "{a:?}");
    let entries = receiver.wait_for_entries(1, Duration::from_secs(20)).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].line, "still here");
    crate::support::watch_for_stragglers(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1, "bad pushes shipped nothing");
    let _ = agent.terminate();
}

/// POSTs `body` as JSON with `Transfer-Encoding: chunked`, in 8 KiB chunks; the raw answer.
fn chunked_post(port: u16, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let _ = s.write_all(
        b"POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    for chunk in body.as_bytes().chunks(8192) {
        let _ = write!(s, "{:x}\r\n", chunk.len());
        let _ = s.write_all(chunk);
        let _ = s.write_all(b"\r\n");
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}
