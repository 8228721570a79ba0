//! A `heroku_drain` job receives the logplex bodies Heroku's HTTPS drain documentation shows,
//! with the headers Logplex sends: each frame one entry, its header fields, the drain token
//! and the URL's query values as `__heroku_drain_*` meta labels for relabeling, the frame's
//! timestamp with `use_incoming_timestamp`. A bad frame is answered 400 and counted in
//! `promtail_heroku_drain_target_parsing_errors_total`; what came before it is shipped.

use std::time::Duration;

use crate::support::agent_process::AgentProcess;
use crate::support::push_client::{post, push_port, receiving_config};
use crate::support::receiver::Receiver;

/// Heroku's documented drain body: two frames, each with its newline inside its length.
const HEROKU_EXAMPLE: &str = "83 <40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\n119 <40>1 2012-11-30T06:45:26+00:00 host app web.3 - Starting process with command `bundle exec rackup config.ru -p 24405`\n";

const LOGPLEX_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "application/logplex-1"),
    ("Logplex-Msg-Count", "2"),
    ("Logplex-Frame-Id", "09C557EAFCFB6CF2740EE62F62971098"),
    (
        "Logplex-Drain-Token",
        "d.fc6b856b-3332-4546-93de-7d0ee272c3bd",
    ),
    ("User-Agent", "Logplex/v72"),
];

#[tokio::test(flavor = "multi_thread")]
async fn herokus_documented_drain_bodies_arrive_with_meta_labels_and_frame_timestamps() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = 0;
    let job = format!(
        r#"    heroku_drain:
      server:
        http_listen_address: 127.0.0.1
        http_listen_port: {port}
      labels: {{job: heroku}}
      use_incoming_timestamp: true
    relabel_configs:
      - {{source_labels: [__heroku_drain_app], target_label: app}}
      - {{source_labels: [__heroku_drain_proc], target_label: proc}}
      - {{source_labels: [__heroku_drain_host], target_label: host}}
      - {{source_labels: [__heroku_drain_log_id], target_label: log_id}}
      - {{source_labels: [__heroku_drain_param_env], target_label: env}}
      - {{source_labels: [__heroku_drain_token], target_label: drain}}
"#
    );
    let agent = AgentProcess::start(
        &receiving_config(dir.path(), &receiver.url(), "", &job),
        &[],
    );
    let port = push_port(&agent, 1);
    let a = post(
        port,
        "/heroku/api/v1/drain?env=prod&env=eu",
        LOGPLEX_HEADERS,
        HEROKU_EXAMPLE.as_bytes(),
    );
    assert_eq!(a.status, 204, "{a:?}");
    let entries = receiver.wait_for_entries(2, Duration::from_secs(20)).await;
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let up = entries
        .iter()
        .find(|e| e.line == "State changed from starting to up")
        .unwrap_or_else(|| panic!("{entries:#?}"));
    let labels: Vec<(&str, &str)> = up
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("app", "app"),
            ("drain", "d.fc6b856b-3332-4546-93de-7d0ee272c3bd"),
            ("env", "prod,eu"),
            ("host", "host"),
            ("job", "heroku"),
            ("log_id", "-"),
            ("proc", "web.3"),
        ]
    );
    // 2012-11-30T06:45:29Z, the frame's own time.
    assert_eq!(up.timestamp_ns, 1_354_257_929_000_000_000);
    assert!(
        entries
            .iter()
            .any(|e| e.line
                == "Starting process with command `bundle exec rackup config.ru -p 24405`")
    );
    assert_eq!(
        agent.metric("promtail_heroku_drain_target_entries_total"),
        2.0
    );

    // A router line, then a frame whose length is not a number: the first is shipped.
    let router = "<158>1 2024-05-01T10:20:30.123456+00:00 host heroku router - at=info method=GET path=\"/\" status=200\n";
    let body = format!("{} {router}x9 <40>1 broken", router.len());
    let a = post(
        port,
        "/heroku/api/v1/drain",
        LOGPLEX_HEADERS,
        body.as_bytes(),
    );
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.body.contains("bad frame"), "{a:?}");
    let entries = receiver.wait_for_entries(3, Duration::from_secs(20)).await;
    let routed = entries
        .iter()
        .find(|e| e.line.starts_with("at=info method=GET"))
        .unwrap_or_else(|| panic!("the frame before the bad one is shipped: {entries:#?}"));
    assert_eq!(
        routed.labels.get("proc").map(String::as_str),
        Some("router")
    );
    assert_eq!(
        agent.metric("promtail_heroku_drain_target_parsing_errors_total"),
        1.0
    );
    let (status, body) = crate::support::agent_process::http_get(port, "/ready");
    assert_eq!((status, body.as_str()), (200, "ready"));
    let _ = agent.terminate();
}
