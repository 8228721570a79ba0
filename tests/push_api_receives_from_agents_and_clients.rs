//! The `loki_push_api` source receives what a second tailward pushes to it (protobuf, and
//! JSON with gzip through its client's `format: json`), and what a client written from Loki's
//! documented JSON format sends: labels, structured metadata, incoming timestamps and the
//! `X-Scope-OrgID` tenant arrive at Loki, relabeled and with the job's `labels`; the raw
//! endpoint makes one entry per line; `/ready` answers `ready`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::push_client::{gzip, post, protobuf_push, push_port, receiving_config};
use crate::support::receiver::Receiver;

fn push_job(port: u16) -> String {
    format!(
        "    loki_push_api:\n      server:\n        http_listen_address: 127.0.0.1\n        http_listen_port: {port}\n      labels: {{pushserver: a}}\n      use_incoming_timestamp: true\n    relabel_configs:\n      - source_labels: [enc]\n        target_label: encoding\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_tailward_pushes_protobuf_and_json_and_every_line_arrives_once_each() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = 0;
    let first = AgentProcess::start(
        &receiving_config(dir.path(), &receiver.url(), "", &push_job(port)),
        &[],
    );
    let port = push_port(&first, 1);

    let sender_dir = tempfile::tempdir().unwrap();
    let log = sender_dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let url = format!("http://127.0.0.1:{port}/loki/api/v1/push");
    let second = AgentProcess::start(
        &write_config(
            sender_dir.path(),
            &format!(
                r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {positions}
clients:
  - url: {url}
    batchwait: 200ms
    external_labels: {{enc: protobuf}}
  - url: {url}
    batchwait: 200ms
    format: json
    compression: gzip
    external_labels: {{enc: json}}
scrape_configs:
  - job_name: app
    static_configs:
      - labels: {{job: app, __path__: {log}}}
    pipeline_stages:
      - regex: {{expression: 'cid=(?P<cid>\S+)'}}
      - structured_metadata: {{cid: ""}}
"#,
                positions = sender_dir.path().join("positions.yaml").display(),
                log = log.display(),
            ),
        ),
        &[],
    );
    let n = 500;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for i in 0..n {
        writeln!(f, "line {i:04} cid=c{i}").unwrap();
    }
    drop(f);
    let entries = receiver
        .wait_for_entries(2 * n, Duration::from_secs(60))
        .await;
    let mut seen: BTreeMap<(String, String), i128> = BTreeMap::new();
    for e in &entries {
        let encoding = e.labels.get("encoding").cloned().unwrap_or_default();
        assert_eq!(
            e.labels.get("job").map(String::as_str),
            Some("app"),
            "{e:?}"
        );
        assert_eq!(
            e.labels.get("pushserver").map(String::as_str),
            Some("a"),
            "the job's labels are added: {e:?}"
        );
        let cid = e.line.split("cid=").nth(1).unwrap().to_string();
        assert_eq!(
            e.structured_metadata,
            [("cid".to_string(), cid)],
            "structured metadata carried over: {e:?}"
        );
        let before = seen.insert((encoding, e.line.clone()), e.timestamp_ns);
        assert!(before.is_none(), "twice: {e:?}");
    }
    assert_eq!(entries.len(), 2 * n, "every line once per encoding");
    for i in 0..n {
        let line = format!("line {i:04} cid=c{i}");
        let proto = seen.get(&("protobuf".to_string(), line.clone()));
        let json = seen.get(&("json".to_string(), line.clone()));
        assert!(proto.is_some() && json.is_some(), "{line} missing");
        assert_eq!(
            proto, json,
            "use_incoming_timestamp keeps the sender's timestamp, whichever the encoding"
        );
    }
    assert_eq!(
        first.metric("tailward_push_entries_total{source=\"loki_push_api\"}"),
        (2 * n) as f64
    );
    let _ = second.terminate();
    let _ = first.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_written_from_lokis_json_format_gets_its_tenant_metadata_and_timestamps_through() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = 0;
    let agent = AgentProcess::start(
        &receiving_config(dir.path(), &receiver.url(), "", &push_job(port)),
        &[],
    );
    let port = push_port(&agent, 1);
    // Loki's documented JSON push body, with structured metadata as the third value.
    let json = br#"{"streams": [{"stream": {"job": "fizz", "enc": "handmade"}, "values": [["1700000000000000001", "fizzbuzz", {"trace_id": "t1"}], ["1700000000000000002", "buzz"]]}]}"#;
    let json_type = ("Content-Type", "application/json");
    let a = post(
        port,
        "/loki/api/v1/push",
        &[json_type, ("X-Scope-OrgID", "team-a")],
        json,
    );
    assert_eq!(a.status, 204, "{a:?}");
    let zipped = gzip(json);
    let a = post(
        port,
        "/loki/api/v1/push",
        &[json_type, ("Content-Encoding", "gzip")],
        &zipped,
    );
    assert_eq!(a.status, 204, "{a:?}");
    let proto = protobuf_push(
        r#"{job="proto"}"#,
        &[(
            1_700_000_000_000_000_003,
            "from protobuf",
            &[("trace_id", "t3")],
        )],
    );
    let a = post(
        port,
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &proto,
    );
    assert_eq!(a.status, 204, "{a:?}");
    let a = post(port, "/promtail/api/v1/raw", &[], b"raw one\r\n\nraw two\n");
    assert_eq!(a.status, 204, "{a:?}");
    let entries = receiver.wait_for_entries(7, Duration::from_secs(30)).await;
    assert_eq!(entries.len(), 7, "{entries:#?}");
    let tenant_a: Vec<_> = entries
        .iter()
        .filter(|e| e.tenant.as_deref() == Some("team-a"))
        .collect();
    assert_eq!(
        tenant_a.len(),
        2,
        "X-Scope-OrgID is the tenant: {entries:#?}"
    );
    let fizz = entries
        .iter()
        .find(|e| e.line == "fizzbuzz" && e.tenant.is_none())
        .unwrap();
    assert_eq!(fizz.timestamp_ns, 1_700_000_000_000_000_001);
    assert_eq!(
        fizz.structured_metadata,
        [("trace_id".to_string(), "t1".to_string())]
    );
    assert_eq!(
        fizz.labels.get("encoding").map(String::as_str),
        Some("handmade")
    );
    let proto = entries.iter().find(|e| e.line == "from protobuf").unwrap();
    assert_eq!(proto.timestamp_ns, 1_700_000_000_000_000_003);
    let raw: Vec<_> = entries
        .iter()
        .filter(|e| e.line.starts_with("raw "))
        .collect();
    assert_eq!(raw.len(), 2, "one entry per non-empty line");
    assert!(
        raw.iter()
            .all(|e| e.labels == BTreeMap::from([("pushserver".to_string(), "a".to_string())])),
        "the raw endpoint's entries carry the job's labels only: {raw:?}"
    );
    let (status, body) = crate::support::agent_process::http_get(port, "/ready");
    assert_eq!((status, body.as_str()), (200, "ready"));
    let (_, discovery) = agent.get("/service-discovery");
    assert!(
        discovery.contains(&format!("127.0.0.1:{port}")) && discovery.contains("pushserver"),
        "the job's target shows its address and labels: {discovery}"
    );
    assert_eq!(
        agent.metric("tailward_push_requests_total{source=\"loki_push_api\",status=\"204\"}"),
        4.0
    );
    let _ = agent.terminate();
}
