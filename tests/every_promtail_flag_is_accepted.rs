//! Every flag Promtail 3.6 registers is accepted with Promtail's spelling: an ExecStart
//! line written for Promtail starts tailward with only the binary name changed. The list
//! below is written from Promtail 3.6's source (`clients/cmd/promtail/main.go` and the
//! `RegisterFlags` of its config blocks) and its vendored dskit (`server.Config`,
//! `log.Level`), with each flag's default there, independently of tailward's own table.

use std::process::Command;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, BIN, write_config};

/// (flag, Promtail's default as its `-help` prints it).
const PROMTAIL_FLAGS: &[(&str, &str)] = &[
    // clients/cmd/promtail/main.go
    ("version", "false"),
    ("print-config-stderr", "false"),
    ("log-config-reverse-order", "false"),
    ("dry-run", "false"),
    ("check-syntax", "false"),
    ("inspect", "false"),
    ("config.file", ""),
    ("config.expand-env", "false"),
    // config.GlobalConfig: file.WatchConfig
    ("file-watch.min_poll_frequency", "250ms"),
    ("file-watch.max_poll_frequency", "250ms"),
    // server.Config (Promtail's own)
    ("server.disable", "false"),
    ("server.profiling_enabled", "false"),
    ("server.enable-runtime-reload", "false"),
    // client.Config
    ("client.url", ""),
    ("client.batch-wait", "1s"),
    ("client.batch-size-bytes", "1048576"),
    ("client.max-retries", "10"),
    ("client.min-backoff", "500ms"),
    ("client.max-backoff", "5m0s"),
    ("client.timeout", "10s"),
    ("client.external-labels", ""),
    ("client.tenant-id", ""),
    ("client.drop-rate-limited-batches", "false"),
    // positions.Config
    ("positions.sync-period", "10s"),
    ("positions.file", "/var/log/positions.yaml"),
    ("positions.ignore-invalid-yaml", "false"),
    // file.Config
    ("target.sync-period", "10s"),
    ("stdin", "false"),
    // limit.Config
    ("limit.readline-rate", "10000"),
    ("limit.readline-burst", "10000"),
    ("limit.readline-rate-enabled", "false"),
    ("limit.readline-rate-drop", "true"),
    ("max-streams", "0"),
    ("max-line-size", "0"),
    ("max-line-size-truncate", "false"),
    // pkg/tracing Config
    ("tracing.enabled", "true"),
    // dskit server.Config.RegisterFlags
    ("server.http-listen-address", ""),
    ("server.http-listen-network", "tcp"),
    ("server.tls-cipher-suites", ""),
    ("server.tls-min-version", ""),
    ("server.http-tls-cert-path", ""),
    ("server.http-tls-key-path", ""),
    ("server.http-tls-client-auth", ""),
    ("server.http-tls-ca-path", ""),
    ("server.grpc-tls-cert-path", ""),
    ("server.grpc-tls-key-path", ""),
    ("server.grpc-tls-client-auth", ""),
    ("server.grpc-tls-ca-path", ""),
    ("server.http-listen-port", "80"),
    ("server.http-conn-limit", "0"),
    ("server.grpc-listen-network", "tcp"),
    ("server.grpc-listen-address", ""),
    ("server.grpc-listen-port", "9095"),
    ("server.grpc-conn-limit", "0"),
    ("server.grpc-collect-max-streams-by-conn", "true"),
    ("server.register-instrumentation", "true"),
    (
        "server.report-grpc-codes-in-instrumentation-label-enabled",
        "false",
    ),
    ("server.graceful-shutdown-timeout", "30s"),
    ("server.http-read-timeout", "30s"),
    ("server.http-read-header-timeout", "0s"),
    ("server.http-write-timeout", "30s"),
    ("server.http-idle-timeout", "2m0s"),
    (
        "server.http-log-closed-connections-without-response-enabled",
        "false",
    ),
    ("server.grpc-max-recv-msg-size-bytes", "4194304"),
    ("server.grpc-max-send-msg-size-bytes", "4194304"),
    ("server.grpc-max-concurrent-streams", "100"),
    (
        "server.grpc.keepalive.max-connection-idle",
        "2562047h47m16.854775807s",
    ),
    (
        "server.grpc.keepalive.max-connection-age",
        "2562047h47m16.854775807s",
    ),
    (
        "server.grpc.keepalive.max-connection-age-grace",
        "2562047h47m16.854775807s",
    ),
    ("server.grpc.keepalive.time", "2h0m0s"),
    ("server.grpc.keepalive.timeout", "20s"),
    ("server.grpc.keepalive.min-time-between-pings", "5m0s"),
    ("server.grpc.keepalive.ping-without-stream-allowed", "false"),
    ("server.grpc.stats-tracking-enabled", "true"),
    ("server.grpc.recv-buffer-pools-enabled", "false"),
    ("server.grpc.num-workers", "0"),
    ("server.grpc.read-buffer-size-bytes", "32768"),
    ("server.grpc.write-buffer-size-bytes", "32768"),
    ("server.path-prefix", ""),
    ("log.format", "logfmt"),
    ("log.level", "info"),
    ("server.log-source-ips-enabled", "false"),
    ("server.log-source-ips-full", "false"),
    ("server.log-source-ips-header", ""),
    ("server.log-source-ips-regex", ""),
    ("server.log-request-headers", "false"),
    ("server.log-request-headers-exclude-list", ""),
    ("server.log-request-at-info-level-enabled", "false"),
    ("server.trace-request-headers", "false"),
    ("server.trace-request-headers-exclude-list", ""),
    ("server.proxy-protocol-enabled", "false"),
    ("server.throughput.latency-cutoff", "0s"),
    ("server.throughput.unit", "samples_processed"),
    // dskit clusterutil.ServerClusterValidationConfig, prefix server.cluster-validation.
    ("server.cluster-validation.label", ""),
    ("server.cluster-validation.grpc.soft-validation", "false"),
    ("server.cluster-validation.grpc.enabled", "false"),
    ("server.cluster-validation.http.soft-validation", "false"),
    ("server.cluster-validation.http.enabled", "false"),
    ("server.cluster-validation.http.excluded-paths", ""),
    ("server.cluster-validation.http.excluded-user-agents", ""),
    ("server.create-new-traces", "false"),
];

const CONFIG: &str = "server:\n  http_listen_port: 0\n  http_listen_address: 127.0.0.1\nclients:\n  - url: http://127.0.0.1:9/loki/api/v1/push\nscrape_configs:\n  - job_name: a\n    static_configs: [{labels: {__path__: /tmp/tailward-flags-none.log}}]\n";

fn run(args: &[String]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_flag_is_accepted_alone_with_its_promtail_default() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), CONFIG);
    let mut refused = Vec::new();
    for (name, default) in PROMTAIL_FLAGS {
        if *name == "config.file" || *name == "check-syntax" {
            continue;
        }
        let args = vec![
            format!("-config.file={}", config.display()),
            "-check-syntax".to_string(),
            format!("-{name}={default}"),
        ];
        let (code, stdout, stderr) = run(&args);
        if code != 0 || !stdout.contains("Valid config file!") {
            refused.push(format!("-{name}={default}: exit {code}: {stderr}"));
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
}

#[test]
fn all_flags_at_once_in_promtail_exec_start_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), CONFIG);
    // Alternate the spellings Go's flag package reads: -flag=v, --flag=v, -flag v.
    let mut args = vec!["--config.file".to_string(), config.display().to_string()];
    for (i, (name, default)) in PROMTAIL_FLAGS.iter().enumerate() {
        if matches!(*name, "config.file" | "version" | "check-syntax") {
            continue;
        }
        let bool_flag = matches!(*default, "true" | "false");
        match (i % 3, bool_flag) {
            (0, _) | (_, true) => args.push(format!("-{name}={default}")),
            (1, false) => args.push(format!("--{name}={default}")),
            _ => {
                args.push(format!("-{name}"));
                args.push(default.to_string());
            }
        }
    }
    args.push("-check-syntax".into());
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Valid config file!"), "{stdout}");
}

#[test]
fn help_lists_every_flag() {
    let (code, stdout, stderr) = run(&["-help".to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let listed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .map(|l| l.split(['[', ' ', '=']).next().unwrap_or_default())
        .collect();
    for (name, _) in PROMTAIL_FLAGS {
        assert!(
            listed.contains(name),
            "-help does not list -{name}:\n{stdout}"
        );
    }
}

#[test]
fn ignored_flags_are_logged_once_at_start_and_the_agent_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), CONFIG);
    let agent = AgentProcess::start(
        &config,
        &[
            "-server.grpc-listen-port=0",
            "-server.profiling_enabled",
            "-server.grpc.keepalive.time",
            "2h",
        ],
    );
    assert!(agent.wait_until(Duration::from_secs(10), |a| {
        a.stderr_text().contains("server.grpc.keepalive.time")
    }));
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
    for flag in [
        "-server.grpc-listen-port",
        "-server.profiling_enabled",
        "-server.grpc.keepalive.time",
    ] {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("ignored") && l.contains(&format!("flag={flag} ")))
            .collect();
        assert_eq!(lines.len(), 1, "{flag} logged once as ignored:\n{stderr}");
    }
}
