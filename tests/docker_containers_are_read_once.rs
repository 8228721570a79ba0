//! docker_sd_configs against a real Docker daemon (tests/support/dockerd.rs): containers
//! printing numbered lines to stdout and stderr, with and without a TTY, are discovered and
//! read through the Engine API; every line arrives exactly once at the strict receiver with
//! its relabeled labels, its `stream` and Docker's timestamp, across container restarts,
//! removal and re-creation, containers that live between two refreshes, an agent restart, a
//! container that ends while the agent is down, and an agent kill -9.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::dockerd::Dockerd;
use crate::support::receiver::{ReceivedEntry, Receiver};
use crate::support::watch_for_stragglers;

/// A config with one docker job: the container name (without its slash) as `container`, the
/// log stream as `stream`, a container label as `app`, as Promtail's docs relabel them.
fn config(dir: &Path, url: &str, host: &str, refresh: &str) -> String {
    format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 5s
positions:
  filename: {positions}
  sync_period: 100ms
clients:
  - url: {url}
    batchwait: 100ms
    backoff_config:
      min_period: 50ms
      max_period: 200ms
      max_retries: 50
scrape_configs:
  - job_name: docker
    docker_sd_configs:
      - host: {host}
        refresh_interval: {refresh}
        filters:
          - name: label
            values: ["logging=tailward"]
    relabel_configs:
      - source_labels: ['__meta_docker_container_name']
        regex: '/(.*)'
        target_label: 'container'
      - source_labels: ['__meta_docker_container_log_stream']
        target_label: 'stream'
      - source_labels: ['__meta_docker_container_label_app']
        target_label: 'app'
"#,
        positions = dir.join("positions.yaml").display(),
    )
}

/// Prints `n` numbered lines to stdout and `n` to stderr, tagged with `tag`.
fn numbered(tag: &str, n: u32) -> String {
    format!("for i in $(seq 1 {n}); do echo \"{tag} out $i\"; echo \"{tag} err $i\" >&2; done")
}

/// How many times each (container, stream, line) arrived.
fn counts(entries: &[ReceivedEntry]) -> HashMap<(String, String, String), usize> {
    let mut m = HashMap::new();
    for e in entries {
        let key = (
            e.labels.get("container").cloned().unwrap_or_default(),
            e.labels.get("stream").cloned().unwrap_or_default(),
            e.line.clone(),
        );
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

/// The lines `numbered(tag, n)` prints in container `name`, as expected keys.
fn expected(name: &str, tag: &str, n: u32, tty: bool) -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for i in 1..=n {
        v.push((name.into(), "stdout".into(), format!("{tag} out {i}")));
        let err_stream = if tty { "stdout" } else { "stderr" };
        v.push((name.into(), err_stream.into(), format!("{tag} err {i}")));
    }
    v
}

/// Every expected line arrived exactly once, and nothing else did.
fn assert_once(entries: &[ReceivedEntry], want: &[(String, String, String)]) {
    let want: HashMap<_, usize> = want.iter().map(|k| (k.clone(), 1)).collect();
    assert_counts(entries, &want);
}

/// Each line arrived as many times as `want` says, and nothing else did.
fn assert_counts(entries: &[ReceivedEntry], want: &HashMap<(String, String, String), usize>) {
    let got = counts(entries);
    let wrong: Vec<_> = want
        .iter()
        .filter(|(k, n)| got.get(*k) != Some(*n))
        .map(|(k, n)| (k, *n, got.get(k).copied().unwrap_or(0)))
        .take(5)
        .collect();
    let unexpected: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        wrong.is_empty() && unexpected.is_empty(),
        "{} lines expected, {} entries received; (line, wanted, got): {wrong:?}; unexpected {unexpected:?}",
        want.len(),
        entries.len()
    );
}

/// The per-stream marks (Unix nanoseconds) saved under `cursor-<id>`: `<stdout>,<stderr>` or
/// one value for both, each `<seconds>.<nanoseconds>`.
fn saved_marks(positions: &str, id: &str) -> (i128, i128) {
    let key = format!("cursor-{id}:");
    let value = positions
        .lines()
        .find_map(|l| l.trim().strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in positions:\n{positions}"))
        .trim()
        .trim_matches('"');
    let ns = |t: &str| {
        let (s, n) = t.split_once('.').unwrap_or((t, "0"));
        s.parse::<i128>().unwrap() * 1_000_000_000 + n.parse::<i128>().unwrap()
    };
    match value.split_once(',') {
        Some((out, err)) => (ns(out), ns(err)),
        None => (ns(value), ns(value)),
    }
}

async fn settle(receiver: &Receiver, n: usize) -> Vec<ReceivedEntry> {
    receiver.wait_for_entries(n, Duration::from_secs(60)).await;
    watch_for_stragglers(Duration::from_millis(1500)).await;
    receiver.received()
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_lines_arrive_once_with_labels_stream_and_docker_timestamps() {
    let docker = Dockerd::start();
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &config(dir.path(), &receiver.url(), &docker.host(), "1s"),
    );
    let agent = AgentProcess::start(&cfg, &[]);

    let plain = docker.run(
        &[
            "--name",
            "plain",
            "--label",
            "logging=tailward",
            "--label",
            "app=shop",
        ],
        &numbered("plain", 200),
    );
    let tty = docker.run(
        &["-t", "--name", "tty", "--label", "logging=tailward"],
        &numbered("tty", 100),
    );
    // Not matched by the filter: never read.
    let other = docker.run(&["--name", "other"], &numbered("other", 5));
    for id in [&plain, &tty, &other] {
        docker.wait_exit(id);
    }
    let entries = settle(&receiver, 600).await;
    let mut want = expected("plain", "plain", 200, false);
    want.extend(expected("tty", "tty", 100, true));
    assert_once(&entries, &want);

    let first = entries
        .iter()
        .find(|e| e.line == "plain out 1")
        .expect("plain out 1");
    let labels: BTreeMap<&str, &str> = first
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        BTreeMap::from([
            ("app", "shop"),
            ("container", "plain"),
            ("stream", "stdout")
        ]),
        "relabeled labels only; no __meta_ label reaches Loki"
    );
    let tty_line = entries.iter().find(|e| e.line == "tty out 1").unwrap();
    assert!(!tty_line.line.ends_with('\r'), "a TTY's \\r\\n is trimmed");
    assert!(!tty_line.labels.contains_key("app"), "no label, no app");

    // Docker's own timestamp, to the nanosecond.
    let logs = docker.docker(&["logs", "--timestamps", &plain]);
    let docker_first = logs
        .lines()
        .find(|l| l.ends_with(" plain out 1"))
        .and_then(|l| l.split_once(' '))
        .map(|(ts, _)| ts.to_string())
        .expect("docker logs shows the line");
    let ts = chrono::DateTime::parse_from_rfc3339(&docker_first).unwrap();
    assert_eq!(
        first.timestamp_ns,
        ts.timestamp_nanos_opt().unwrap() as i128
    );

    assert_eq!(
        agent.get("/ready").0,
        200,
        "a docker job is ready, as Promtail's is"
    );
    // Discovery shows the containers with their meta labels.
    let (_, page) = agent.get("/service-discovery");
    assert!(page.contains(&plain), "container id on the page:\n{page}");
    assert!(
        page.contains("__meta_docker_container_label_logging"),
        "{page}"
    );
    assert!(
        page.contains("__meta_docker_network_mode")
            || page.contains("__meta_docker_container_network_mode"),
        "{page}"
    );
    assert!(!page.contains("/other"), "filtered out:\n{page}");
    assert!(
        agent.metric("promtail_docker_target_entries_total") >= 600.0,
        "entries counted"
    );

    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    let positions = std::fs::read_to_string(dir.path().join("positions.yaml")).unwrap();
    assert!(
        positions.contains(&format!("cursor-{plain}")),
        "Promtail's key cursor-<container ID>:\n{positions}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_restarts_removal_and_short_lived_containers_ship_every_line_once() {
    let docker = Dockerd::start();
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A long refresh: containers living between two refreshes are found by their start event.
    let cfg = write_config(
        dir.path(),
        &config(dir.path(), &receiver.url(), &docker.host(), "10m"),
    );
    let agent = AgentProcess::start(&cfg, &[]);
    assert!(agent.wait_until(Duration::from_secs(20), |a| {
        a.stderr_text().contains("docker daemon reachable")
    }));

    // Each run counts itself in the container's own file system, which a restart keeps.
    let script = "n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs; \
                  for i in $(seq 1 50); do echo \"run$n out $i\"; echo \"run$n err $i\" >&2; done";
    let id = docker.run(&["--name", "again", "--label", "logging=tailward"], script);
    docker.wait_exit(&id);
    docker.docker(&["start", &id]);
    docker.wait_exit(&id);
    docker.docker(&["start", &id]);
    docker.wait_exit(&id);
    let mut want = Vec::new();
    for run in 1..=3 {
        want.extend(expected("again", &format!("run{run}"), 50, false));
    }
    let entries = settle(&receiver, want.len()).await;
    assert_once(&entries, &want);

    // Removed, then made again under the same name: a new ID, read from its start (its
    // first run prints run1 again).
    docker.docker(&["rm", &id]);
    let id2 = docker.run(&["--name", "again", "--label", "logging=tailward"], script);
    assert_ne!(id, id2);
    docker.wait_exit(&id2);
    let mut want: HashMap<_, usize> = want.into_iter().map(|k| (k, 1)).collect();
    for k in expected("again", "run1", 50, false) {
        want.insert(k, 2);
    }
    // Several short-lived containers at once.
    let mut short = Vec::new();
    for c in 0..5 {
        let name = format!("short{c}");
        short.push(docker.run(
            &["--name", &name, "--label", "logging=tailward"],
            &numbered(&name, 20),
        ));
        want.extend(
            expected(&name, &name, 20, false)
                .into_iter()
                .map(|k| (k, 1)),
        );
    }
    for s in &short {
        docker.wait_exit(s);
    }
    let total: usize = want.values().sum();
    let entries = settle(&receiver, total).await;
    assert_counts(&entries, &want);

    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_agent_restart_and_kill_resume_where_delivery_stopped() {
    let docker = Dockerd::start();
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &config(dir.path(), &receiver.url(), &docker.host(), "1s"),
    );
    let agent = AgentProcess::start(&cfg, &[]);

    // Writes for a while: the agent is restarted and killed under it.
    let n = 1500;
    let steady = format!(
        "for i in $(seq 1 {n}); do echo \"steady out $i\"; echo \"steady err $i\" >&2; sleep 0.004; done"
    );
    let steady_id = docker.run(
        &["--name", "steady", "--label", "logging=tailward"],
        &steady,
    );
    // Ends while the agent is down, after it read part of it.
    let ending = "for i in $(seq 1 40); do echo \"ending out $i\"; echo \"ending err $i\" >&2; done; \
                  sleep 3; for i in $(seq 41 80); do echo \"ending out $i\"; echo \"ending err $i\" >&2; done";
    let ending_id = docker.run(&["--name", "ending", "--label", "logging=tailward"], ending);
    receiver
        .wait_for_entries(200, Duration::from_secs(30))
        .await;
    assert!(
        receiver
            .received()
            .iter()
            .any(|e| e.line == "ending out 40"),
        "the first half of `ending` is read before the agent stops"
    );

    // A graceful restart: exactly once.
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    docker.wait_exit(&ending_id);
    let agent = AgentProcess::start(&cfg, &[]);
    receiver
        .wait_for_entries(receiver.received().len() + 200, Duration::from_secs(30))
        .await;
    let ending_done = crate::support::wait_until(Duration::from_secs(30), || {
        let got = counts(&receiver.received());
        (41..=80).all(|i| {
            got.contains_key(&("ending".into(), "stderr".into(), format!("ending err {i}")))
        })
    });
    assert!(
        ending_done,
        "what `ending` wrote while the agent was down is read once it is back"
    );
    let so_far = counts(&receiver.received());
    let twice: Vec<_> = so_far.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        twice.is_empty(),
        "sent again after a graceful restart: {twice:?}"
    );

    // kill -9: lines delivered after the last positions save are sent again (with the same
    // timestamp, so Loki stores them once), nothing saved as delivered is; none is lost.
    let _ = agent.kill_hard();
    // What the killed agent had saved as delivered: only lines after it may come again.
    let saved = std::fs::read_to_string(dir.path().join("positions.yaml")).unwrap();
    let mut marks: HashMap<(String, String), i128> = HashMap::new();
    for (name, id) in [("steady", &steady_id), ("ending", &ending_id)] {
        let (out, err) = saved_marks(&saved, id);
        marks.insert((name.into(), "stdout".into()), out);
        marks.insert((name.into(), "stderr".into()), err);
    }
    let agent = AgentProcess::start(&cfg, &[]);
    docker.wait_exit(&steady_id);
    let mut want = expected("steady", "steady", n, false);
    want.extend(expected("ending", "ending", 80, false));
    let total = want.len();
    receiver
        .wait_for_entries(total, Duration::from_secs(90))
        .await;
    watch_for_stragglers(Duration::from_millis(1500)).await;
    let entries = receiver.received();

    let mut seen: HashMap<(String, String, String), i128> = HashMap::new();
    for e in &entries {
        let key = (
            e.labels.get("container").cloned().unwrap_or_default(),
            e.labels.get("stream").cloned().unwrap_or_default(),
            e.line.clone(),
        );
        if let Some(ts) = seen.insert(key.clone(), e.timestamp_ns) {
            assert_eq!(
                ts, e.timestamp_ns,
                "{key:?} sent again with another timestamp"
            );
        }
    }
    let missing: Vec<_> = want
        .iter()
        .filter(|k| !seen.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "lost across restart and kill: {missing:?}"
    );
    assert_eq!(seen.len(), total, "nothing unexpected");
    for (key, n) in counts(&entries) {
        let e = entries.iter().find(|e| e.line == key.2).unwrap();
        let mark = marks[&(key.0.clone(), key.1.clone())];
        if n > 1 {
            assert!(
                e.timestamp_ns > mark,
                "{key:?} sent {n} times though positions had it as delivered"
            );
        }
    }
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
}
