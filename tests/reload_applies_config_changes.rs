//! Reload (SIGHUP, or `POST /reload` with `server.enable_runtime_reload`): unchanged jobs
//! keep tailing, added ones start, removed ones stop, changed ones restart where they left
//! off, a client change hands over without losing what the old client held, and an invalid
//! config is refused while the old one keeps running. Numbered lines written throughout
//! prove that no line is lost or repeated across a reload.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::eventually;
use crate::support::numbered_lines::{Tally, Writer, append, number_of, settled_lines};
use crate::support::receiver::{ReceivedEntry, Receiver};

/// A config with one client and the given jobs: (name, file, value of a `version` label the
/// job's pipeline adds).
fn config(dir: &Path, url: &str, jobs: &[(&str, &Path, &str)]) -> String {
    let mut yaml = format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 5s
  enable_runtime_reload: true
positions:
  filename: {positions}
  sync_period: 200ms
global:
  file_watch_config:
    min_poll_frequency: 25ms
    max_poll_frequency: 100ms
target_config:
  sync_period: 300ms
clients:
  - url: {url}
    batchwait: 100ms
    backoff_config:
      min_period: 50ms
      max_period: 200ms
      max_retries: 50
scrape_configs:
"#,
        positions = dir.join("positions.yaml").display()
    );
    for (name, file, version) in jobs {
        yaml.push_str(&format!(
            "  - job_name: {name}\n    static_configs:\n      - labels:\n          job: {name}\n          __path__: {file}\n    pipeline_stages:\n      - static_labels:\n          version: {version}\n",
            file = file.display()
        ));
    }
    yaml
}

fn lines_of<'a>(entries: &'a [ReceivedEntry], file: &Path) -> Vec<&'a ReceivedEntry> {
    let name = file.display().to_string();
    entries
        .iter()
        .filter(|e| e.labels.get("filename") == Some(&name))
        .collect()
}

fn tally(entries: &[&ReceivedEntry], expected: std::ops::Range<usize>) -> Tally {
    Tally::of(entries.iter().map(|e| e.line.as_str()), expected, number_of)
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_keeps_unchanged_starts_added_stops_removed_restarts_changed_exactly_once() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("keep.log");
    let changed = dir.path().join("changed.log");
    let removed = dir.path().join("removed.log");
    let added = dir.path().join("added.log");
    append(&removed, 0, 10);
    append(&added, 0, 20);
    let v1 = config(
        dir.path(),
        &receiver.url(),
        &[
            ("keep", &keep, "v1"),
            ("changed", &changed, "v1"),
            ("removed", &removed, "v1"),
        ],
    );
    let v2 = config(
        dir.path(),
        &receiver.url(),
        &[
            ("keep", &keep, "v1"),
            ("changed", &changed, "v2"),
            ("added", &added, "v2"),
        ],
    );
    let config_path = write_config(dir.path(), &v1);
    let mut keep_writer = Writer::create(&keep, false);
    let mut changed_writer = Writer::create(&changed, false);
    let agent = AgentProcess::start(&config_path, &[]);
    receiver.wait_for_entries(10, Duration::from_secs(20)).await;

    // Two applications write steadily while the config is reloaded in the middle.
    const N: usize = 400;
    let progress = [keep_writer.written.clone(), changed_writer.written.clone()];
    let writers = std::thread::spawn(move || {
        let keep =
            std::thread::spawn(move || keep_writer.write_paced(0, N, Duration::from_secs(3)));
        changed_writer.write_paced(0, N, Duration::from_secs(3));
        keep.join().unwrap();
    });
    // The middle is where the writers are, not a time: started late on a busy machine,
    // they are still mid-way when the reload comes.
    let mid_way = eventually(Duration::from_secs(20), || {
        progress
            .iter()
            .all(|w| w.load(Ordering::SeqCst) >= N * 2 / 5)
    })
    .await;
    assert!(mid_way, "the writers did not get under way");
    std::fs::write(&config_path, &v2).unwrap();
    agent.signal(libc::SIGHUP);
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| a
            .metric("promtail_config_reload_success_total")
            == 1.0),
        "{}",
        agent.stderr_text()
    );
    // Written after the removed job stopped: must not be shipped.
    append(&removed, 10, 20);
    writers.join().unwrap();

    let expected_total = 10 + 20 + N + N;
    let lines = settled_lines(
        &receiver,
        expected_total,
        Duration::from_secs(30),
        Duration::from_millis(1500),
    )
    .await;
    assert!(lines.len() >= expected_total, "{} entries", lines.len());
    let entries = receiver.received();

    let kept = lines_of(&entries, &keep);
    let t = tally(&kept, 0..N);
    assert!(t.exactly_once(), "unchanged job: {t}");
    assert!(
        kept.iter()
            .all(|e| e.labels.get("version").map(String::as_str) == Some("v1"))
    );

    let restarted = lines_of(&entries, &changed);
    let t = tally(&restarted, 0..N);
    assert!(t.exactly_once(), "changed job: {t}");
    let v2_lines = restarted
        .iter()
        .filter(|e| e.labels.get("version").map(String::as_str) == Some("v2"))
        .count();
    assert!(
        v2_lines > 0 && v2_lines < N,
        "the changed job's new pipeline labels the lines after the reload: {v2_lines} of {N}"
    );
    // Lines after the switch are all v2: the order in the file is kept across the restart.
    let first_v2 = restarted
        .iter()
        .filter(|e| e.labels.get("version").map(String::as_str) == Some("v2"))
        .filter_map(|e| number_of(&e.line))
        .min()
        .unwrap();
    assert!(restarted.iter().all(|e| {
        let n = number_of(&e.line).unwrap();
        let v2 = e.labels.get("version").map(String::as_str) == Some("v2");
        v2 == (n >= first_v2)
    }));

    let t = tally(&lines_of(&entries, &removed), 0..10);
    assert!(
        t.exactly_once(),
        "removed job: only what it read before the reload: {t}"
    );
    let t = tally(&lines_of(&entries, &added), 0..20);
    assert!(t.exactly_once(), "added job: {t}");

    let (_, page) = agent.get("/config");
    assert!(page.contains("job_name: added") && !page.contains("job_name: removed"));
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("keep=1 stop=2 start=2"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_config_is_refused_with_a_clear_error_and_the_old_one_keeps_running() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(&app, 0, 5);
    let v1 = config(dir.path(), &receiver.url(), &[("app", &app, "v1")]);
    let config_path = write_config(dir.path(), &v1);
    let agent = AgentProcess::start(&config_path, &[]);
    receiver.wait_for_entries(5, Duration::from_secs(20)).await;

    let broken = v1.replace("static_labels:", "static_labelz:");
    std::fs::write(&config_path, broken).unwrap();
    let (status, body) = agent.post("/reload");
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("pipeline_stages") && body.contains("running config is kept"),
        "the reply names what is wrong: {body}"
    );
    assert_eq!(agent.metric("promtail_config_reload_fail_total"), 1.0);
    assert_eq!(agent.metric("promtail_config_reload_success_total"), 0.0);

    // The old config still runs: new lines arrive, with the old pipeline's label.
    append(&app, 5, 10);
    let lines = settled_lines(
        &receiver,
        10,
        Duration::from_secs(20),
        Duration::from_millis(800),
    )
    .await;
    let entries = receiver.received();
    let t = Tally::of(lines.iter().map(String::as_str), 0..10, number_of);
    assert!(t.exactly_once(), "{t}");
    assert!(
        entries
            .iter()
            .all(|e| e.labels.get("version").map(String::as_str) == Some("v1"))
    );
    let (_, page) = agent.get("/config");
    assert!(page.contains("static_labels"), "{page}");

    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    let refused = log
        .lines()
        .find(|l| l.contains("config reload failed"))
        .unwrap_or_else(|| panic!("no log line for the refused reload:\n{log}"));
    assert!(
        refused.contains("level=error") && refused.contains("static_labelz"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_change_hands_over_without_losing_or_repeating_lines() {
    let old = Receiver::start().await;
    let new = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let v1 = config(dir.path(), &old.url(), &[("app", &app, "v1")]);
    let v2 = config(dir.path(), &new.url(), &[("app", &app, "v1")]);
    let config_path = write_config(dir.path(), &v1);
    let mut writer = Writer::create(&app, false);
    let agent = AgentProcess::start(&config_path, &[]);

    const N: usize = 400;
    let writing = std::thread::spawn(move || writer.write_paced(0, N, Duration::from_secs(3)));
    old.wait_for_entries(20, Duration::from_secs(20)).await;
    std::fs::write(&config_path, &v2).unwrap();
    let (status, body) = agent.post("/reload");
    assert_eq!(status, 200, "{body}");
    writing.join().unwrap();

    // Together the two receivers hold every line once; the old one what was read before.
    let mut all: Vec<String> = old.received().into_iter().map(|e| e.line).collect();
    let after = settled_lines(
        &new,
        N - all.len(),
        Duration::from_secs(30),
        Duration::from_millis(1500),
    )
    .await;
    let before = all.len();
    all.extend(after.iter().cloned());
    let t = Tally::of(all.iter().map(String::as_str), 0..N, number_of);
    assert!(t.exactly_once(), "{t}");
    assert!(
        before >= 20 && !after.is_empty(),
        "old {before}, new {}",
        after.len()
    );
    let last_old = old
        .received()
        .iter()
        .filter_map(|e| number_of(&e.line))
        .max()
        .unwrap();
    let first_new = after.iter().filter_map(|l| number_of(l)).min().unwrap();
    assert_eq!(
        first_new,
        last_old + 1,
        "the new client continues where the old one stopped"
    );

    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
}
