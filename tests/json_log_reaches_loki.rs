//! A JSON application log (the reference deployment's format) reaches Loki with labels from
//! `json` + `labels`, its own timestamp from `timestamp`, and the correlation ID as structured
//! metadata, in every wire encoding.

use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::receiver::{Encoding, Receiver};

const STAGES: &str = r#"      - json:
          expressions:
            level:
            logger:
            ts: timestamp
            correlation_id:
      - labels:
          level:
          logger:
      - timestamp:
          source: ts
          format: RFC3339Nano
      - structured_metadata:
          correlation_id:
"#;

struct Record {
    level: String,
    logger: String,
    ts_ns: i128,
    correlation_id: Option<String>,
    raw: String,
}

/// The demo's JSON log, parsed independently of the agent to know what must arrive.
fn expected_records() -> Vec<Record> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/logs/app.json.log"
    ))
    .unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ts =
                chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
            Record {
                level: v["level"].as_str().unwrap().to_string(),
                logger: v["logger"].as_str().unwrap().to_string(),
                ts_ns: i128::from(ts.timestamp_nanos_opt().unwrap()),
                correlation_id: v
                    .get("correlation_id")
                    .and_then(|c| c.as_str())
                    .map(String::from),
                raw: l.to_string(),
            }
        })
        .collect()
}

async fn ships_json_log(client_extra: &str, encoding: Encoding) {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.json.log");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/logs/app.json.log"),
        &log,
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        &file_job_config(
            &receiver.url(),
            &dir.path().join("positions.yaml"),
            &log.display().to_string(),
            client_extra,
            STAGES,
        ),
    );
    let agent = AgentProcess::start(&config, &[]);
    let expected = expected_records();
    let got = receiver
        .wait_for_entries(expected.len(), Duration::from_secs(20))
        .await;
    assert_eq!(
        got.len(),
        expected.len(),
        "agent log:\n{}",
        agent.stderr_text()
    );
    // Loki groups entries by stream, so match each record to its entry by line.
    for r in &expected {
        let matching: Vec<_> = got.iter().filter(|e| e.line == r.raw).collect();
        assert_eq!(
            matching.len(),
            1,
            "record must arrive exactly once: {}",
            r.raw
        );
        let e = matching[0];
        assert_eq!(e.encoding, encoding);
        assert_eq!(e.labels.get("level"), Some(&r.level));
        assert_eq!(e.labels.get("logger"), Some(&r.logger));
        assert_eq!(e.labels.get("job").map(String::as_str), Some("app"));
        assert_eq!(e.labels.get("filename"), Some(&log.display().to_string()));
        assert!(
            !e.labels.contains_key("correlation_id"),
            "correlation id must never be a label"
        );
        assert_eq!(e.timestamp_ns, r.ts_ns, "timestamp comes from the record");
        match &r.correlation_id {
            Some(id) => assert_eq!(
                e.structured_metadata,
                vec![("correlation_id".to_string(), id.clone())]
            ),
            None => assert!(e.structured_metadata.is_empty()),
        }
    }
    let (status, _) = agent.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn json_log_arrives_with_labels_timestamp_and_metadata_over_protobuf() {
    ships_json_log("", Encoding::Protobuf).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_log_arrives_with_labels_timestamp_and_metadata_over_json() {
    ships_json_log("    format: json\n", Encoding::Json).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_log_arrives_with_labels_timestamp_and_metadata_over_gzip_json() {
    ships_json_log(
        "    format: json\n    compression: gzip\n",
        Encoding::JsonGzip,
    )
    .await;
}
