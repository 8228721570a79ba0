//! Kubernetes discovery under pod churn (issue 19): the agent's CPU and memory while 1,000
//! pods on its node are replaced and modified, served by the fake API server of the tests
//! (list/watch over HTTP, k8s-openapi objects) with each pod's log file laid out as the
//! kubelet does, and the Helm chart's config from examples/kubernetes.
//!
//! Run: `cargo bench --bench kubernetes_discovery -- [SECONDS] [CHURN_PER_SECOND]`
//! (default 60 s, 20 pods replaced and 20 modified per second). Prints the time until all
//! 1,000 first lines arrived, then CPU (share of one core) and RSS during churn, and checks
//! whether every pod's line arrived exactly once.

// The test support is shared with the integration tests; this bench uses part of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use support::agent_process::{AgentProcess, write_config};
use support::kube_apiserver::FakeApiServer;
use support::kubelet_logs::{ContainerLog, pod};
use support::receiver::Receiver;

const PODS: usize = 1_000;

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; 11 and 12 after the command.
    (ticks(11) + ticks(12)) / 100.0
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn example_config(dir: &std::path::Path, loki: &str, api: &str, root: &std::path::Path) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/kubernetes/configmap.yaml"
    ))
    .expect("example ConfigMap");
    let body = text
        .split_once("  config.yaml: |\n")
        .expect("config.yaml")
        .1;
    let cfg: Vec<&str> = body
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    std::fs::write(dir.join("token"), "bench-token").expect("token");
    cfg.join("\n")
        .replace(
            "  http_listen_port: 3101",
            "  http_listen_port: 0\n  http_listen_address: 127.0.0.1",
        )
        .replace("log_level: info", "log_level: warn")
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
                dir.join("token").display()
            ),
        )
}

fn make_pod(api: &FakeApiServer, root: &std::path::Path, n: usize, generation: u32) -> String {
    let name = format!("app{n}-5d4f8b7c9-g{generation}");
    let uid = format!("uid-{n}-{generation}");
    let labels = [("app.kubernetes.io/name", "bench"), ("rev", "1")];
    let log = ContainerLog::new(root, "bench", &name, &uid, "main");
    log.write(&[format!("{name} started")]);
    api.apply(&pod("bench", &name, &uid, "node-a", &labels, &["main"]));
    name
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(60);
    let churn = args.get(1).copied().unwrap_or(20) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("pods");
    let api = FakeApiServer::start("bench-token").await;
    let rx = Receiver::start().await;
    let mut live: Vec<(usize, u32, String)> = (0..PODS)
        .map(|n| (n, 0, make_pod(&api, &root, n, 0)))
        .collect();
    let cfg = write_config(
        dir.path(),
        &example_config(dir.path(), &rx.url(), &api.url(), &root),
    );
    let started = Instant::now();
    let agent = AgentProcess::start_with_env(&cfg, &[], &[("HOSTNAME", "node-a")]);
    let pid = agent.pid();
    let all_in = |rx: &Receiver, n: usize| rx.received().len() >= n;
    while !all_in(&rx, PODS) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {} of {PODS} first lines after 300 s",
            rx.received().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{PODS} pods discovered and their first lines shipped in {:.1} s; RSS {} KiB, CPU {:.2} s",
        started.elapsed().as_secs_f64(),
        status_kib(pid, "VmRSS"),
        cpu_seconds(pid)
    );

    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let mut expected = PODS;
    let mut max_rss = 0;
    let mut rng_state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    // Log directories of deleted pods go 10 s later, as the kubelet removes them once the
    // containers are garbage-collected (later still, by default).
    let mut gone: std::collections::VecDeque<(Instant, std::path::PathBuf)> =
        std::collections::VecDeque::new();
    for second in 0..seconds {
        let tick = Instant::now();
        while gone
            .front()
            .is_some_and(|(at, _)| at.elapsed() >= Duration::from_secs(10))
        {
            if let Some((_, d)) = gone.pop_front() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        for _ in 0..churn {
            let i = (next() as usize) % live.len();
            let (n, g, name) = live[i].clone();
            api.delete::<Pod>("bench", &name);
            gone.push_back((
                Instant::now(),
                root.join(format!("bench_{name}_uid-{n}-{g}")),
            ));
            live[i] = (n, g + 1, make_pod(&api, &root, n, g + 1));
            expected += 1;
        }
        for _ in 0..churn {
            // A status change the relabel rules do not see (readiness flapping).
            let i = (next() as usize) % live.len();
            let (n, g, name) = &live[i];
            let mut p = pod(
                "bench",
                name,
                &format!("uid-{n}-{g}"),
                "node-a",
                &[
                    ("app.kubernetes.io/name", "bench"),
                    ("rev", &second.to_string()),
                ],
                &["main"],
            );
            if let Some(s) = p.status.as_mut() {
                s.conditions = None;
            }
            api.apply(&p);
        }
        max_rss = max_rss.max(status_kib(pid, "VmRSS"));
        if let Some(rest) = Duration::from_secs(1).checked_sub(tick.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let settle = Instant::now();
    while !all_in(&rx, expected) && settle.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in rx.received() {
        *counts.entry(e.line).or_default() += 1;
    }
    let dups = counts.values().filter(|c| **c > 1).count();
    println!(
        "churn: {seconds} s, {churn} pods replaced + {churn} modified per second ({} watch events/s)",
        churn * 3
    );
    println!(
        "agent CPU during churn: {:.1}% of one core ({cpu:.2} s over {wall:.1} s); RSS max {max_rss} KiB, end {} KiB, peak (VmHWM) {} KiB",
        100.0 * cpu / wall,
        status_kib(pid, "VmRSS"),
        status_kib(pid, "VmHWM")
    );
    println!(
        "lines: expected {expected}, distinct received {}, missing {}, duplicated {dups}, settled {:.1} s after churn",
        counts.len(),
        expected.saturating_sub(counts.len()),
        settle.elapsed().as_secs_f64()
    );
    agent.terminate();
}
