//! Docker source benchmark: 20 containers print real access-log lines at once; the agent
//! reads them through the Engine API (docker_sd_configs) and ships them to a local endpoint
//! that answers 204. Beside it, the same lines written to 20 files and tailed by a file job.
//! Prints lines per CPU-second of the agent (and of dockerd, which does the logging work
//! of the containers' side), wall time and the agent's peak RSS.
//!
//! Lines come from a real log: `TAILWARD_BENCH_LOG` if set, else the shared Apache/nginx
//! sample (/work/shared/data/nginx-access/elastic-examples__apache_logs.log), else
//! examples/logs/nginx-access.log; each container prints it over until it has printed its
//! share.
//!
//! Run: `cargo bench --bench docker -- [LINES_PER_CONTAINER]` (default 20000). Needs root
//! (it starts its own dockerd, as the tests do: Debian's docker.io and busybox-static).

mod agent_process;
#[path = "../tests/support/dockerd.rs"]
#[allow(dead_code)]
mod dockerd;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

const BIN: &str = env!("CARGO_BIN_EXE_tailward");
const CONTAINERS: usize = 20;

fn main() {
    let per: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let sample = sample_lines();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind sink");
    let sink = listener.local_addr().expect("sink addr");
    runtime.spawn(async move {
        let app = Router::new().route(
            "/loki/api/v1/push",
            post(|_body: axum::body::Bytes| async { StatusCode::NO_CONTENT }),
        );
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().expect("temp dir");
    // Each container's share, and the same lines for the file run.
    let mut share = String::new();
    for i in 0..per {
        share.push_str(&sample[i % sample.len()]);
        share.push('\n');
    }
    let share_path = dir.path().join("share.log");
    std::fs::write(&share_path, &share).expect("write share");
    let total = per * CONTAINERS;
    println!(
        "{CONTAINERS} containers x {per} lines ({} MiB in all) of real access-log lines; \
         protobuf+snappy, default batches",
        (share.len() * CONTAINERS) >> 20
    );

    let docker = dockerd::Dockerd::start();
    let dockerd_pid = std::fs::read_to_string(dir_of(&docker).join("docker.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok());
    let config = dir.path().join("docker.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: 0, log_level: warn}}
positions: {{filename: {dir}/docker-positions.yaml}}
clients:
  - url: http://{sink}/loki/api/v1/push
scrape_configs:
  - job_name: docker
    docker_sd_configs:
      - host: {host}
        refresh_interval: 60s
    relabel_configs:
      - source_labels: ['__meta_docker_container_name']
        regex: '/(.*)'
        target_label: 'container'
      - source_labels: ['__meta_docker_container_log_stream']
        target_label: 'stream'
"#,
            dir = dir.path().display(),
            host = docker.host(),
        ),
    )
    .expect("write config");
    let mut ids = Vec::new();
    for c in 0..CONTAINERS {
        let volume = format!("{}:/share.log:ro", share_path.display());
        let name = format!("bench{c}");
        ids.push(docker.docker(&[
            "create",
            "--network",
            "none",
            "--name",
            &name,
            "-v",
            &volume,
            dockerd::IMAGE,
            "cat",
            "/share.log",
        ]));
    }
    let dockerd_cpu_before = dockerd_pid.map(cpu_tree);
    let (agent, port) = start(&config);
    let started = Instant::now();
    let mut args = vec!["start"];
    args.extend(ids.iter().map(String::as_str));
    docker.docker(&args);
    wait_sent(port, total);
    let docker_wall = started.elapsed();
    let docker_cpu = agent_process::cpu_seconds(agent.id());
    let docker_rss = agent_process::status_kib(agent.id(), "VmHWM");
    let dockerd_cpu = dockerd_pid
        .map(cpu_tree)
        .zip(dockerd_cpu_before)
        .map(|(after, before)| after - before);
    stop(agent);

    // The same lines from 20 files.
    let files = dir.path().join("files");
    std::fs::create_dir(&files).expect("files dir");
    let config = dir.path().join("files.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: 0, log_level: warn}}
positions: {{filename: {dir}/file-positions.yaml}}
clients:
  - url: http://{sink}/loki/api/v1/push
scrape_configs:
  - job_name: files
    static_configs:
      - labels: {{job: files, __path__: {files}/*.log}}
"#,
            dir = dir.path().display(),
            files = files.display(),
        ),
    )
    .expect("write config");
    let (agent, port) = start(&config);
    let started = Instant::now();
    for c in 0..CONTAINERS {
        std::fs::write(files.join(format!("c{c}.log")), &share).expect("write file");
    }
    wait_sent(port, total);
    let file_wall = started.elapsed();
    let file_cpu = agent_process::cpu_seconds(agent.id());
    let file_rss = agent_process::status_kib(agent.id(), "VmHWM");
    stop(agent);

    println!("source  lines     agent CPU s  lines/CPU-s  wall s  peak RSS MiB  dockerd CPU s");
    println!(
        "docker  {total:<9} {docker_cpu:<12.2} {:<12.0} {:<7.2} {:<13.1} {}",
        total as f64 / docker_cpu,
        docker_wall.as_secs_f64(),
        docker_rss as f64 / 1024.0,
        dockerd_cpu.map_or("-".into(), |c| format!("{c:.2}")),
    );
    println!(
        "file    {total:<9} {file_cpu:<12.2} {:<12.0} {:<7.2} {:<13.1} -",
        total as f64 / file_cpu,
        file_wall.as_secs_f64(),
        file_rss as f64 / 1024.0,
    );
}

fn dir_of(docker: &dockerd::Dockerd) -> &Path {
    docker.socket().parent().expect("socket dir")
}

fn sample_lines() -> Vec<String> {
    let candidates = [
        std::env::var("TAILWARD_BENCH_LOG").unwrap_or_default(),
        "/work/shared/data/nginx-access/elastic-examples__apache_logs.log".into(),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/logs/nginx-access.log"
        )
        .into(),
    ];
    for c in candidates.iter().filter(|c| !c.is_empty()) {
        if let Ok(text) = std::fs::read_to_string(c) {
            let lines: Vec<String> = text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            if !lines.is_empty() {
                println!("lines from {c} ({} distinct)", lines.len());
                return lines;
            }
        }
    }
    panic!("no sample log found");
}

fn start(config: &Path) -> (std::process::Child, u16) {
    let mut child = Command::new(BIN)
        .arg(format!("-config.file={}", config.display()))
        .env("TAILWARD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tailward");
    let port = agent_process::listening_port(child.stderr.take().expect("stderr"));
    (child, port)
}

fn stop(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_sent(port: u16, lines: usize) {
    let started = Instant::now();
    loop {
        let sent = sent_entries(port);
        if sent >= lines as f64 {
            return;
        }
        if started.elapsed() > Duration::from_secs(900) {
            panic!("only {sent} of {lines} entries sent after 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CPU seconds of `pid` and its children (dockerd runs containerd and the shims).
fn cpu_tree(pid: u32) -> f64 {
    let mut total = agent_process::cpu_seconds(pid);
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            total += cpu_tree(child);
        }
    }
    total
}

fn sent_entries(port: u16) -> f64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with("promtail_sent_entries_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
