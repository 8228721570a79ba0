//! `kubernetes_sd_configs` against a strict fake API server: the pods of this node (and
//! only those) become targets through the Helm chart's relabel rules, their kubelet log
//! files are tailed through rotation and gzip, every line arrives once with the chart's
//! labels; pods that come, change and go are followed through list/watch; a 410 relist
//! loses nothing; an unreachable server, 500s and an expired token are retried with
//! backoff, counted, logged once per state change, while the other jobs keep shipping.
//! Kubeconfig over TLS serves the node role.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::kube_apiserver::{FakeApiServer, ServerTls};
use crate::support::kubelet_logs::{ContainerLog, pod};
use crate::support::receiver::{ReceivedEntry, Receiver};
use crate::support::{eventually, watch_for_stragglers};

/// Promtail's Helm chart `kubernetes-pods` job (values.yaml `config.snippets`), with
/// `/var/log/pods` replaced by `root`.
fn chart_job(api: &str, token_file: &Path, root: &Path) -> String {
    let root = root.display();
    format!(
        r#"  - job_name: kubernetes-pods
    pipeline_stages:
      - cri: {{}}
    kubernetes_sd_configs:
      - role: pod
        api_server: {api}
        bearer_token_file: {token}
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_controller_name]
        regex: ([0-9a-z-.]+?)(-[0-9a-f]{{8,10}})?
        action: replace
        target_label: __tmp_controller_name
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name, __meta_kubernetes_pod_label_app, __tmp_controller_name, __meta_kubernetes_pod_name]
        regex: ^;*([^;]+)(;.*)?$
        action: replace
        target_label: app
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_instance, __meta_kubernetes_pod_label_instance]
        regex: ^;*([^;]+)(;.*)?$
        action: replace
        target_label: instance
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_component, __meta_kubernetes_pod_label_component]
        regex: ^;*([^;]+)(;.*)?$
        action: replace
        target_label: component
      - action: replace
        source_labels: [__meta_kubernetes_pod_node_name]
        target_label: node_name
      - action: replace
        source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - action: replace
        replacement: $1
        separator: /
        source_labels: [namespace, app]
        target_label: job
      - action: replace
        source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - action: replace
        source_labels: [__meta_kubernetes_pod_container_name]
        target_label: container
      - action: replace
        replacement: {root}/*$1/*.log
        separator: /
        source_labels: [__meta_kubernetes_pod_uid, __meta_kubernetes_pod_container_name]
        target_label: __path__
      - action: replace
        regex: true/(.*)
        replacement: {root}/*$1/*.log
        separator: /
        source_labels: [__meta_kubernetes_pod_annotationpresent_kubernetes_io_config_hash, __meta_kubernetes_pod_annotation_kubernetes_io_config_hash, __meta_kubernetes_pod_container_name]
        target_label: __path__
"#,
        token = token_file.display()
    )
}

const EXAMPLE_CONFIGMAP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/kubernetes/configmap.yaml"
);

/// The `config.yaml` of examples/kubernetes/configmap.yaml (a block scalar indented by 4).
fn example_config() -> String {
    let text = std::fs::read_to_string(EXAMPLE_CONFIGMAP).unwrap();
    let body = text
        .split_once("  config.yaml: |\n")
        .expect("the ConfigMap has data.config.yaml")
        .1;
    body.lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The example's config pointed at the fakes: Loki, the API server (instead of the
/// in-cluster service account), pod logs under `root`, positions and port of the test.
fn example_config_for(dir: &Path, loki: &str, api: &str, token: &Path, root: &Path) -> String {
    let cfg = example_config()
        .replace(
            "  http_listen_port: 3101",
            "  http_listen_port: 0\n  http_listen_address: 127.0.0.1",
        )
        .replace("http://loki-gateway/loki/api/v1/push", loki)
        .replace(
            "/run/tailward/positions.yaml",
            &dir.join("positions.yaml").display().to_string(),
        )
        .replace("/var/log/pods", &root.display().to_string())
        .replace(
            "      - role: pod\n",
            &format!(
                "      - role: pod\n        api_server: {api}\n        bearer_token_file: {}\n",
                token.display()
            ),
        );
    assert!(cfg.contains(api) && cfg.contains(loki), "{cfg}");
    cfg
}

fn config(dir: &Path, loki: &str, jobs: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 5s
positions:
  filename: {positions}
  sync_period: 200ms
target_config:
  sync_period: 500ms
clients:
  - url: {loki}
    batchwait: 100ms
    backoff_config: {{min_period: 50ms, max_period: 200ms, max_retries: 20}}
scrape_configs:
{jobs}"#,
            positions = dir.join("positions.yaml").display()
        ),
    )
}

fn numbered(prefix: &str, from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("{prefix} line {i}"))
        .collect()
}

/// Lines received per line text.
fn counts(entries: &[ReceivedEntry]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in entries {
        *m.entry(e.line.clone()).or_insert(0) += 1;
    }
    m
}

async fn arrived(rx: &Receiver, want: &[String], timeout: Duration) -> bool {
    eventually(timeout, || {
        let got = counts(&rx.received());
        want.iter().all(|w| got.contains_key(w))
    })
    .await
}

fn token_file(dir: &Path, token: &str) -> std::path::PathBuf {
    let p = dir.join("token");
    std::fs::write(&p, token).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_this_node_are_tailed_once_with_the_charts_labels_as_they_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let api = FakeApiServer::start("sa-token").await;
    let rx = Receiver::start().await;
    api.apply(&pod(
        "shop",
        "web-5d4f8b7c9-abcde",
        "uid-web1",
        "node-a",
        &[
            ("app.kubernetes.io/name", "web"),
            ("app.kubernetes.io/instance", "shop-web"),
        ],
        &["app", "sidecar"],
    ));
    // A pod on another node: its files exist here too (a shared volume), but it is not ours.
    api.apply(&pod(
        "shop",
        "db-0",
        "uid-db0",
        "node-b",
        &[("app", "db")],
        &["db"],
    ));
    let mut web_app = ContainerLog::new(&root, "shop", "web-5d4f8b7c9-abcde", "uid-web1", "app");
    let web_side = ContainerLog::new(&root, "shop", "web-5d4f8b7c9-abcde", "uid-web1", "sidecar");
    let db = ContainerLog::new(&root, "shop", "db-0", "uid-db0", "db");
    web_app.write(&numbered("web1/app", 0, 50));
    web_side.write(&numbered("web1/sidecar", 0, 20));
    db.write(&numbered("db0/db", 0, 20));

    let tok = token_file(dir.path(), "sa-token");
    // The shipped example's config, as a DaemonSet pod would run it.
    let cfg = write_config(
        dir.path(),
        &example_config_for(dir.path(), &rx.url(), &api.url(), &tok, &root),
    );
    let agent = AgentProcess::start_with_env(&cfg, &[], &[("HOSTNAME", "node-a")]);

    let mut want = numbered("web1/app", 0, 50);
    want.extend(numbered("web1/sidecar", 0, 20));
    assert!(
        arrived(&rx, &want, Duration::from_secs(20)).await,
        "initial pod lines missing; stderr:\n{}",
        agent.stderr_text()
    );
    // The chart's labels.
    let e = rx
        .received()
        .into_iter()
        .find(|e| e.line == "web1/app line 0")
        .unwrap();
    let labels: BTreeMap<&str, &str> = e
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(labels["namespace"], "shop");
    assert_eq!(labels["pod"], "web-5d4f8b7c9-abcde");
    assert_eq!(labels["container"], "app");
    assert_eq!(labels["app"], "web");
    assert_eq!(labels["instance"], "shop-web");
    assert_eq!(labels["job"], "shop/web");
    assert_eq!(labels["node_name"], "node-a");
    assert_eq!(
        labels["filename"],
        web_app.current().display().to_string().as_str()
    );
    assert!(!labels.contains_key("component"), "{labels:?}");
    // Promtail's node filter reached the API server.
    assert!(
        api.requests().iter().any(|r| r.path == "/api/v1/pods"
            && r.query.get("fieldSelector").map(String::as_str) == Some("spec.nodeName=node-a")
            && r.query.get("watch").map(String::as_str) == Some("1")),
        "{:?}",
        api.requests()
    );

    // A pod starts: a new target, read from its first line.
    api.apply(&pod(
        "shop",
        "api-7f9c6d5b4-xyz12",
        "uid-api1",
        "node-a",
        &[("app", "api")],
        &["api"],
    ));
    let api_log = ContainerLog::new(&root, "shop", "api-7f9c6d5b4-xyz12", "uid-api1", "api");
    api_log.write(&numbered("api1/api", 0, 30));
    want.extend(numbered("api1/api", 0, 30));

    // The kubelet rotates web's app log twice (the older rotation gzipped) while it writes.
    web_app.write(&numbered("web1/app", 50, 25));
    web_app.rotate();
    web_app.write(&numbered("web1/app", 75, 25));
    web_app.rotate();
    web_app.write(&numbered("web1/app", 100, 25));
    want.extend(numbered("web1/app", 50, 75));
    assert!(
        arrived(&rx, &want, Duration::from_secs(20)).await,
        "lines missing after a pod start and rotation; stderr:\n{}",
        agent.stderr_text()
    );
    let api_entry = rx
        .received()
        .into_iter()
        .find(|e| e.line == "api1/api line 0")
        .unwrap();
    assert_eq!(api_entry.labels["app"], "api");
    assert_eq!(api_entry.labels["job"], "shop/api");

    // A change that keeps the target (a new label the rules ignore) starts nothing twice.
    api.apply(&pod(
        "shop",
        "web-5d4f8b7c9-abcde",
        "uid-web1",
        "node-a",
        &[
            ("app.kubernetes.io/name", "web"),
            ("app.kubernetes.io/instance", "shop-web"),
            ("rev", "2"),
        ],
        &["app", "sidecar"],
    ));
    web_side.write(&numbered("web1/sidecar", 20, 10));
    want.extend(numbered("web1/sidecar", 20, 10));

    // The pod is deleted right after its last lines: they are read before its tailer stops,
    // and then the kubelet removes its directory.
    api_log.write(&numbered("api1/api", 30, 10));
    want.extend(numbered("api1/api", 30, 10));
    assert!(api.delete::<Pod>("shop", "api-7f9c6d5b4-xyz12"));
    // A pod that is gone before discovery could see it running (a failed job's pod): its
    // lines are still read.
    let short = ContainerLog::new(&root, "shop", "job-x-1", "uid-job1", "task");
    short.write(&numbered("job1/task", 0, 5));
    api.apply(&pod(
        "shop",
        "job-x-1",
        "uid-job1",
        "node-a",
        &[("app", "job")],
        &["task"],
    ));
    assert!(api.delete::<Pod>("shop", "job-x-1"));
    want.extend(numbered("job1/task", 0, 5));
    assert!(
        arrived(&rx, &want, Duration::from_secs(20)).await,
        "lines of a deleted pod or a modified one missing; stderr:\n{}",
        agent.stderr_text()
    );
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| {
            let page = a.get("/targets").1;
            !page.contains("api-7f9c6d5b4-xyz12") && !page.contains("job-x-1")
        }),
        "the deleted pod's target stayed: {}",
        agent.get("/targets").1
    );
    std::fs::remove_dir_all(api_log.dir.parent().unwrap()).unwrap();

    watch_for_stragglers(Duration::from_secs(2)).await;
    let got = counts(&rx.received());
    let dups: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated lines: {dups:?}");
    assert!(
        !got.keys().any(|l| l.starts_with("db0/")),
        "a pod of another node was tailed"
    );
    let extra: Vec<_> = got.keys().filter(|l| !want.contains(l)).collect();
    assert!(extra.is_empty(), "unexpected lines: {extra:?}");
    assert_eq!(got.len(), want.len());
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_after_410_gone_loses_no_pod() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let api = FakeApiServer::start("sa-token").await;
    let rx = Receiver::start().await;
    api.apply(&pod(
        "ops",
        "a-0",
        "uid-a0",
        "node-a",
        &[("app", "a")],
        &["main"],
    ));
    let a = ContainerLog::new(&root, "ops", "a-0", "uid-a0", "main");
    a.write(&numbered("a0", 0, 10));
    let tok = token_file(dir.path(), "sa-token");
    let cfg = config(dir.path(), &rx.url(), &chart_job(&api.url(), &tok, &root));
    let agent = AgentProcess::start_with_env(&cfg, &[], &[("HOSTNAME", "node-a")]);
    assert!(arrived(&rx, &numbered("a0", 0, 10), Duration::from_secs(20)).await);

    // The API server compacts its history and restarts; a pod started meanwhile is only in
    // a new list.
    let b = ContainerLog::new(&root, "ops", "b-0", "uid-b0", "main");
    b.write(&numbered("b0", 0, 10));
    let lists_before = api
        .requests()
        .iter()
        .filter(|r| !r.query.contains_key("watch") && r.status == 200)
        .count();
    api.restart_compacted_after(&pod(
        "ops",
        "b-0",
        "uid-b0",
        "node-a",
        &[("app", "b")],
        &["main"],
    ));
    assert!(
        arrived(&rx, &numbered("b0", 0, 10), Duration::from_secs(20)).await,
        "the pod added across the 410 was lost; stderr:\n{}",
        agent.stderr_text()
    );
    let lists_after = api
        .requests()
        .iter()
        .filter(|r| !r.query.contains_key("watch") && r.status == 200)
        .count();
    assert!(lists_after > lists_before, "no relist after 410");
    assert!(
        agent.metric(r#"tailward_kubernetes_sd_failures_total{job="kubernetes-pods",reason="gone",resource="pods"}"#)
            >= 1.0
    );
    a.write(&numbered("a0", 10, 5));
    assert!(arrived(&rx, &numbered("a0", 10, 5), Duration::from_secs(20)).await);
    watch_for_stragglers(Duration::from_secs(1)).await;
    let got = counts(&rx.received());
    assert!(
        got.values().all(|n| *n == 1),
        "duplicates after relist: {got:?}"
    );
    assert_eq!(got.len(), 25);
    agent.terminate();
}

/// Bookmarks carry the resource version past events the node filter hides, so a watch cut
/// after the history was compacted resumes from there: no 410, no relist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_let_a_cut_watch_resume_without_a_relist() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let api = FakeApiServer::start("sa-token").await;
    api.set_bookmark_interval(Duration::from_millis(200));
    let rx = Receiver::start().await;
    api.apply(&pod(
        "ops",
        "a-0",
        "uid-a0",
        "node-a",
        &[("app", "a")],
        &["main"],
    ));
    let a = ContainerLog::new(&root, "ops", "a-0", "uid-a0", "main");
    a.write(&numbered("a0", 0, 5));
    let tok = token_file(dir.path(), "sa-token");
    let cfg = config(dir.path(), &rx.url(), &chart_job(&api.url(), &tok, &root));
    let agent = AgentProcess::start_with_env(&cfg, &[], &[("HOSTNAME", "node-a")]);
    assert!(arrived(&rx, &numbered("a0", 0, 5), Duration::from_secs(20)).await);
    // Changes on another node move the resource version without an event for this agent.
    for i in 0..5 {
        api.apply(&pod(
            "ops",
            &format!("x-{i}"),
            &format!("uid-x{i}"),
            "node-b",
            &[],
            &["main"],
        ));
    }
    let bookmark = r#"tailward_kubernetes_sd_events_total{event="bookmark",job="kubernetes-pods",resource="pods"}"#;
    let seen = agent.metric(bookmark);
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a.metric(bookmark)
            >= seen + 2.0),
        "no bookmarks: {}",
        agent.stderr_text()
    );
    let lists = |api: &FakeApiServer| {
        api.requests()
            .iter()
            .filter(|r| !r.query.contains_key("watch"))
            .count()
    };
    let lists_before = lists(&api);
    let watches_before = api.requests().len() - lists_before;
    api.compact();
    api.cut_watches();
    assert!(
        eventually(Duration::from_secs(10), || api.requests().len()
            - lists(&api)
            > watches_before)
        .await
    );
    a.write(&numbered("a0", 5, 5));
    assert!(arrived(&rx, &numbered("a0", 5, 5), Duration::from_secs(20)).await);
    assert_eq!(
        lists(&api),
        lists_before,
        "a relist although bookmarks kept the version"
    );
    assert_eq!(failures(&agent, "gone"), 0.0);
    agent.terminate();
}

fn failures(agent: &AgentProcess, reason: &str) -> f64 {
    agent.metric(&format!(
        r#"tailward_kubernetes_sd_failures_total{{job="kubernetes-pods",reason="{reason}",resource="pods"}}"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_500s_and_an_expired_token_are_retried_counted_and_block_no_other_job() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let rx = Receiver::start().await;
    // A port with nothing listening yet.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let host_log = dir.path().join("host.log");
    std::fs::write(&host_log, "host line 0\n").unwrap();
    let tok = token_file(dir.path(), "sa-token");
    let jobs = format!(
        "{}  - job_name: host\n    static_configs:\n      - labels: {{job: host, __path__: {}}}\n",
        chart_job(&format!("http://{addr}"), &tok, &root),
        host_log.display()
    );
    let cfg = config(dir.path(), &rx.url(), &jobs);
    let agent = AgentProcess::start_with_env(&cfg, &[], &[("HOSTNAME", "node-a")]);

    // Unreachable: counted, and the host job ships meanwhile.
    assert!(
        agent.wait_until(Duration::from_secs(15), |a| failures(a, "unreachable")
            >= 2.0),
        "{}",
        agent.stderr_text()
    );
    assert!(arrived(&rx, &["host line 0".to_string()], Duration::from_secs(10)).await);
    let api = FakeApiServer::start_on(addr, "sa-token", None).await;
    api.apply(&pod(
        "ops",
        "a-0",
        "uid-a0",
        "node-a",
        &[("app", "a")],
        &["main"],
    ));
    let a = ContainerLog::new(&root, "ops", "a-0", "uid-a0", "main");
    a.write(&numbered("a0", 0, 5));
    assert!(
        arrived(&rx, &numbered("a0", 0, 5), Duration::from_secs(40)).await,
        "no recovery once the API server came up; stderr:\n{}",
        agent.stderr_text()
    );

    // 500s.
    api.fail_next(3, 500);
    api.cut_watches();
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| failures(a, "server_error")
            >= 3.0),
        "{}",
        agent.stderr_text()
    );
    api.apply(&pod(
        "ops",
        "b-0",
        "uid-b0",
        "node-a",
        &[("app", "b")],
        &["main"],
    ));
    let b = ContainerLog::new(&root, "ops", "b-0", "uid-b0", "main");
    b.write(&numbered("b0", 0, 5));
    assert!(
        arrived(&rx, &numbered("b0", 0, 5), Duration::from_secs(30)).await,
        "no recovery after 500s; stderr:\n{}",
        agent.stderr_text()
    );

    // The token expires; the host job keeps shipping; a rotated token is picked up from the
    // file.
    api.revoke("sa-token");
    api.cut_watches();
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| failures(a, "unauthorized")
            >= 2.0),
        "{}",
        agent.stderr_text()
    );
    std::fs::write(&host_log, "host line 0\nhost line 1\n").unwrap();
    assert!(arrived(&rx, &["host line 1".to_string()], Duration::from_secs(10)).await);
    api.grant("sa-token-2", None);
    std::fs::write(&tok, "sa-token-2\n").unwrap();
    api.apply(&pod(
        "ops",
        "c-0",
        "uid-c0",
        "node-a",
        &[("app", "c")],
        &["main"],
    ));
    let c = ContainerLog::new(&root, "ops", "c-0", "uid-c0", "main");
    c.write(&numbered("c0", 0, 5));
    assert!(
        arrived(&rx, &numbered("c0", 0, 5), Duration::from_secs(40)).await,
        "no recovery after the token was rotated; stderr:\n{}",
        agent.stderr_text()
    );

    // Logged once per state change, not once per retry.
    let stderr = agent.stderr_text();
    let failing: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("kubernetes discovery failing") && l.contains("pods in all"))
        .collect();
    assert_eq!(failing.len(), 3, "{failing:#?}");
    assert!(failing[0].contains("unreachable"), "{}", failing[0]);
    assert!(failing[1].contains("500"), "{}", failing[1]);
    assert!(failing[2].contains("401"), "{}", failing[2]);
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("kubernetes discovery recovered"))
            .count(),
        3,
        "{stderr}"
    );
    agent.terminate();
}

/// The node role through a kubeconfig whose cluster is served over TLS with its own CA,
/// the user a token: `__meta_kubernetes_node_*` labels relabeled onto the node's log file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_over_tls_serves_the_node_role_with_prometheus_labels() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let api = FakeApiServer::start_on(
        "127.0.0.1:0".parse().unwrap(),
        "kc-token",
        Some(ServerTls {
            cert_pem: server.pem(),
            key_pem: server_key.serialize_pem(),
        }),
    )
    .await;
    // Only nodes may be read by this user.
    api.revoke("kc-token");
    api.grant("kc-token", Some(vec!["nodes"]));
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "z1"}},
        "spec": {"providerID": "kind://node-a"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.10"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}
    }))
    .unwrap();
    api.apply(&node);
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(
        dir.path().join("kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority: ca.pem\nusers:\n- name: u\n  user:\n    token: kc-token\ncontexts:\n- name: test\n  context:\n    cluster: fake\n    user: u\n",
            api.url()
        ),
    )
    .unwrap();
    let logs = dir.path().join("nodes");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("node-a.log"), "kubelet line 0\n").unwrap();
    let rx = Receiver::start().await;
    let jobs = format!(
        r#"  - job_name: nodes
    kubernetes_sd_configs:
      - role: node
        kubeconfig_file: {kc}
    relabel_configs:
      - source_labels: [__meta_kubernetes_node_name]
        replacement: {logs}/$1.log
        target_label: __path__
      - action: labelmap
        regex: __meta_kubernetes_node_label_(.+)
      - source_labels: [__meta_kubernetes_node_address_InternalIP]
        target_label: address
      - source_labels: [__address__]
        target_label: kubelet
"#,
        kc = dir.path().join("kubeconfig").display(),
        logs = logs.display()
    );
    let cfg = config(dir.path(), &rx.url(), &jobs);
    let agent = AgentProcess::start(&cfg, &[]);
    assert!(
        arrived(
            &rx,
            &["kubelet line 0".to_string()],
            Duration::from_secs(20)
        )
        .await,
        "{}",
        agent.stderr_text()
    );
    let e = rx.received().remove(0);
    assert_eq!(e.labels["instance"], "node-a");
    assert_eq!(e.labels["topology_kubernetes_io_zone"], "z1");
    assert_eq!(e.labels["address"], "192.168.0.10");
    assert_eq!(e.labels["kubelet"], "192.168.0.10:10250");
    assert!(api.requests().iter().all(|r| r.path == "/api/v1/nodes"));
    agent.terminate();
}

#[test]
fn the_kubernetes_example_configmap_passes_check_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &example_config());
    let out = std::process::Command::new(crate::support::agent_process::BIN)
        .arg(format!("-config.file={}", cfg.display()))
        .arg("-check-syntax")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A typo in the same config is refused, so the check above is not vacuous.
    std::fs::write(&cfg, example_config().replace("role: pod", "role: pods")).unwrap();
    let out = std::process::Command::new(crate::support::agent_process::BIN)
        .arg(format!("-config.file={}", cfg.display()))
        .arg("-check-syntax")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kubernetes_sd_configs[0].role"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fake refuses what kube-apiserver refuses, so a client bug fails the tests above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_api_server_refuses_what_kube_apiserver_refuses() {
    let api = FakeApiServer::start("good").await;
    api.apply(&pod("ns1", "p", "u", "n1", &[("app", "x")], &["c"]));
    let addr = api.addr();
    let get = |path: &str, token: Option<&str>| {
        let (code, body) = raw_get(addr, path, token);
        (
            code,
            serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default(),
        )
    };
    assert_eq!(get("/api/v1/pods", None).0, 401);
    assert_eq!(get("/api/v1/pods", Some("bad")).0, 401);
    let (code, list) = get("/api/v1/pods", Some("good"));
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"][0]["metadata"]["name"], "p");
    let rv: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(get("/api/v1/namespaces/ns1/pods", Some("good")).0, 200);
    assert_eq!(get("/api/v1/namespaces/ns1/nodes", Some("good")).0, 404);
    assert_eq!(get("/api/v1/pod", Some("good")).0, 404);
    let (code, body) = get("/api/v1/pods?labelSelector=app%20in%20x", Some("good"));
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    let (code, body) = get("/api/v1/pods?fieldSelector=spec.host%3Dn1", Some("good"));
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("field label not supported")
    );
    assert_eq!(
        get("/api/v1/pods?fieldSelector=spec.nodeName", Some("good")).0,
        400
    );
    assert_eq!(get("/api/v1/pods?limit=ten", Some("good")).0, 400);
    assert_eq!(get("/api/v1/pods?watch=yes", Some("good")).0, 400);
    assert_eq!(get("/api/v1/pods?wacth=1", Some("good")).0, 400);
    let (_, filtered) = get(
        "/api/v1/pods?fieldSelector=spec.nodeName%3Dn2",
        Some("good"),
    );
    assert_eq!(filtered["items"].as_array().unwrap().len(), 0);
    api.grant("nodes-only", Some(vec!["nodes"]));
    let (code, body) = get("/api/v1/pods", Some("nodes-only"));
    assert_eq!(code, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot list resource \"pods\"")
    );
    // A watch from a compacted version is a 410 ERROR event.
    api.apply(&pod("ns1", "q", "u2", "n1", &[], &["c"]));
    api.compact();
    let (code, text) = raw_get(
        addr,
        &format!("/api/v1/pods?watch=1&resourceVersion={rv}&timeoutSeconds=1"),
        Some("good"),
    );
    assert_eq!(code, 200);
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a watch event");
    let ev: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
}

/// One GET over a fresh connection (the fake closes it after each answer): status and body
/// (a chunked body is left framed; its event lines are whole).
fn raw_get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n{auth}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (code, body.to_string())
}
