//! `file_sd_configs`: targets listed in JSON and YAML files are tailed as static ones are;
//! target files added, changed and removed while the agent runs start, relabel and stop
//! tailing at once (the directory is watched: `refresh_interval` is an hour here) with no
//! line lost or shipped twice; a malformed target file keeps its last good targets and is
//! counted in `prometheus_sd_file_read_errors_total`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::numbered_lines::{append, number_of};
use crate::support::receiver::{ReceivedEntry, Receiver};
use crate::support::{eventually, watch_for_stragglers};

/// Writes a target file as tools do, by renaming a complete file into place.
fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn json_group(log: &Path, env: &str) -> String {
    format!(
        r#"[{{"targets": ["localhost"], "labels": {{"__path__": "{}", "env": "{env}"}}}}]"#,
        log.display()
    )
}

/// Lines of `file` (its name) by number, with each one's `env` label.
fn lines_of(entries: &[ReceivedEntry], file: &str) -> BTreeMap<usize, Vec<String>> {
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for e in entries
        .iter()
        .filter(|e| e.labels.get("filename").is_some_and(|f| f.ends_with(file)))
    {
        if let Some(n) = number_of(&e.line) {
            out.entry(n)
                .or_default()
                .push(e.labels.get("env").cloned().unwrap_or_default());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_added_changed_and_removed_at_runtime_lose_and_repeat_nothing() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("sd");
    std::fs::create_dir(&sd).unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    append(&a, 0, 100);
    append(&b, 0, 50);
    put(&sd.join("a.json"), &json_group(&a, "one"));
    let config = format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {positions}
  sync_period: 200ms
target_config:
  sync_period: 1h
clients:
  - url: {url}
    batchwait: 100ms
scrape_configs:
  - job_name: sd
    file_sd_configs:
      - files: ['{sd}/*.json', '{sd}/*.yml']
        refresh_interval: 1h
    relabel_configs:
      - source_labels: [__meta_filepath]
        target_label: sd_file
"#,
        positions = dir.path().join("positions.yaml").display(),
        url = receiver.url(),
        sd = sd.display(),
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &config), &[]);
    let got = |n: usize, file: &'static str| {
        let receiver = &receiver;
        move || lines_of(&receiver.received(), file).len() >= n
    };
    assert!(
        eventually(Duration::from_secs(30), got(100, "a.log")).await,
        "{}",
        agent.stderr_text()
    );
    let first = receiver.received();
    let e = first
        .iter()
        .find(|e| e.labels["filename"].ends_with("a.log"))
        .unwrap();
    assert_eq!(e.labels["env"], "one");
    assert_eq!(e.labels["job"], "sd");
    assert_eq!(e.labels["sd_file"], sd.join("a.json").display().to_string());
    assert!(
        lines_of(&first, "b.log").is_empty(),
        "b.log tailed before any target named it"
    );

    // Added: a YAML file naming b.log.
    put(
        &sd.join("b.yml"),
        &format!(
            "- targets: [localhost]\n  labels:\n    __path__: {}\n    env: bee\n",
            b.display()
        ),
    );
    assert!(
        eventually(Duration::from_secs(20), got(50, "b.log")).await,
        "{}",
        agent.stderr_text()
    );

    // Changed: a.log's labels, while it is being written.
    append(&a, 100, 150);
    put(&sd.join("a.json"), &json_group(&a, "two"));
    // Lines keep coming while the change is picked up.
    let mut next = 150;
    let relabeled = eventually(Duration::from_secs(20), || {
        append(&a, next, next + 1);
        next += 1;
        lines_of(&receiver.received(), "a.log")
            .values()
            .any(|envs| envs.contains(&"two".to_string()))
    })
    .await;
    assert!(
        relabeled,
        "a.log never carried its new labels\n{}",
        agent.stderr_text()
    );
    append(&a, next, 200.max(next));
    let next = 200.max(next);
    // Malformed: a.json broken, its last good targets are kept.
    assert_eq!(agent.metric("prometheus_sd_file_read_errors_total"), 0.0);
    put(
        &sd.join("a.json"),
        r#"[{"targets": ["localhost"], "labels": "#,
    );
    let counted = agent.wait_until(Duration::from_secs(20), |a| {
        a.metric("prometheus_sd_file_read_errors_total") >= 1.0
    });
    assert!(counted, "{}", agent.stderr_text());
    append(&a, next, next + 50);
    let total = next + 50;

    // Removed: b.yml deleted, b.log no longer tailed.
    std::fs::remove_file(sd.join("b.yml")).unwrap();
    let stopped = agent.wait_until(Duration::from_secs(20), |ag| {
        !ag.get("/targets").1.contains("b.log")
    });
    assert!(stopped, "{}", agent.get("/targets").1);
    append(&b, 50, 60);

    assert!(
        eventually(Duration::from_secs(30), got(total, "a.log")).await,
        "{}",
        agent.stderr_text()
    );
    watch_for_stragglers(Duration::from_millis(1500)).await;
    let entries = receiver.received();
    let a_lines = lines_of(&entries, "a.log");
    let twice: Vec<_> = a_lines
        .iter()
        .filter(|(_, envs)| envs.len() != 1)
        .take(5)
        .collect();
    assert!(twice.is_empty(), "a.log lines not exactly once: {twice:?}");
    assert_eq!(
        a_lines.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    // The labels change once, in order: every line after the first "two" is "two" too.
    let envs: Vec<&str> = a_lines.values().map(|e| e[0].as_str()).collect();
    let switch = envs.iter().position(|e| *e == "two").unwrap();
    assert!(switch >= 100, "relabeled before the change: line {switch}");
    assert!(envs[switch..].iter().all(|e| *e == "two"), "{envs:?}");
    assert!(envs[..100].iter().all(|e| *e == "one"));
    let b_lines = lines_of(&entries, "b.log");
    assert_eq!(
        b_lines.keys().copied().collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    assert!(b_lines.values().all(|e| e == &["bee".to_string()]));
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
}
