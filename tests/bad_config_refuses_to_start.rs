//! A config with a mistake names the file, the key path and what was expected; the agent
//! exits non-zero and starts nothing. `-check-syntax` reports the same errors, stage errors
//! included.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tailward");

/// Runs the binary on `yaml` with `args`; returns (exit code, stderr, stdout).
fn run(yaml: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("promtail.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(BIN)
        .arg(format!("-config.file={}", path.display()))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (
        out.status.code().unwrap_or(-1),
        stderr,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const HEAD: &str = "server:\n  http_listen_port: 0\n  http_listen_address: 127.0.0.1\nclients:\n  - url: http://127.0.0.1:9/loki/api/v1/push\n";

fn assert_refused(yaml: &str, expected: &str) {
    assert_refused_as_written(&format!("{HEAD}{yaml}"), expected);
}

/// As [`assert_refused`], for a config that brings its own `server` and `clients`.
fn assert_refused_as_written(full: &str, expected: &str) {
    for args in [&["-check-syntax"][..], &[][..]] {
        let (code, stderr, _) = run(full, args);
        assert_eq!(code, 1, "args {args:?}: expected exit 1, stderr:\n{stderr}");
        assert!(
            stderr.contains(expected),
            "args {args:?}: expected {expected:?} in:\n{stderr}"
        );
        assert!(
            !stderr.contains("tailward started"),
            "nothing may start:\n{stderr}"
        );
    }
}

#[test]
fn misspelt_stage_key_names_its_path() {
    assert_refused(
        r#"scrape_configs:
  - job_name: a
    static_configs: [{labels: {__path__: /tmp/none-a.log}}]
  - job_name: b
    static_configs: [{labels: {__path__: /tmp/none-b.log}}]
    pipeline_stages:
      - json:
          expresions: {level: level}
"#,
        "FILE: scrape_configs[1].pipeline_stages[0].json.expresions: unknown key `expresions`; expected one of: expressions, source, drop_malformed",
    );
}

#[test]
fn misspelt_top_level_key_names_its_path() {
    assert_refused(
        "positions:\n  filenme: /tmp/p.yaml\n",
        "FILE: positions.filenme: unknown key `filenme`",
    );
}

#[test]
fn invalid_regex_names_the_expression() {
    assert_refused(
        r#"scrape_configs:
  - job_name: a
    static_configs: [{labels: {__path__: /tmp/none.log}}]
    pipeline_stages:
      - regex:
          expression: "(?P<level>[a-z"
"#,
        "FILE: scrape_configs[0].pipeline_stages[0].regex.expression: invalid regular expression",
    );
    let (_, stderr, _) = run(
        &format!(
            "{HEAD}scrape_configs:\n  - job_name: nginx_access\n    static_configs: [{{labels: {{__path__: /tmp/none.log}}}}]\n    pipeline_stages:\n      - regex:\n          expression: \"(?P<level>[a-z\"\n"
        ),
        &["-check-syntax"],
    );
    assert!(
        stderr.contains("(job \"nginx_access\")"),
        "the job is named:\n{stderr}"
    );
}

#[test]
fn invalid_label_name_is_refused() {
    assert_refused(
        r#"scrape_configs:
  - job_name: a
    static_configs: [{labels: {__path__: /tmp/none.log, app-name: web}}]
"#,
        "FILE: scrape_configs[0].static_configs[0].labels.app-name: invalid label name",
    );
    assert_refused(
        r#"scrape_configs:
  - job_name: a
    static_configs: [{labels: {__path__: /tmp/none.log}}]
    pipeline_stages:
      - labels:
          log-level:
"#,
        "FILE: scrape_configs[0].pipeline_stages[0].labels.log-level: invalid label name",
    );
}

#[test]
fn unknown_stage_is_refused() {
    assert_refused(
        r#"scrape_configs:
  - job_name: a
    static_configs: [{labels: {__path__: /tmp/none.log}}]
    pipeline_stages:
      - jason: {expressions: {a: a}}
"#,
        "FILE: scrape_configs[0].pipeline_stages[0]: unknown stage or value `jason`; expected one of: json, regex",
    );
}

#[test]
fn two_stages_in_one_item_are_refused() {
    assert_refused(
        r#"scrape_configs:
  - job_name: a
    static_configs: [{labels: {__path__: /tmp/none.log}}]
    pipeline_stages:
      - regex: {expression: "(?P<a>.)"}
        labels: {a: ""}
"#,
        "FILE: scrape_configs[0].pipeline_stages[0]: each pipeline stage must name exactly one stage",
    );
}

#[test]
fn wrong_value_type_says_what_was_expected() {
    assert_refused(
        "positions:\n  sync_period: soon\n",
        "FILE: positions.sync_period: invalid duration \"soon\"",
    );
    assert_refused(
        "limits_config:\n  max_streams: many\n",
        "FILE: limits_config.max_streams: expected a whole number from 0 to 4294967295, found \"many\" (line 7)",
    );
}

#[test]
fn periods_that_would_busy_loop_and_timeouts_that_cut_pushes_are_refused() {
    assert_refused(
        "positions:\n  sync_period: 1ns\n",
        "FILE: positions.sync_period: expected at least 100ms, got 1ns",
    );
    assert_refused(
        "target_config:\n  sync_period: 0s\n",
        "FILE: target_config.sync_period: expected at least 100ms, got 0s",
    );
    assert_refused_as_written(
        "server:\n  http_listen_port: 0\n  http_listen_address: 127.0.0.1\nclients:\n  - url: http://127.0.0.1:3100/loki/api/v1/push\n    timeout: 1ns\n",
        "FILE: clients[0].timeout: expected at least 1s (or 0 for none), got 1ns",
    );
}

#[test]
fn duplicate_job_names_are_refused() {
    assert_refused(
        "scrape_configs:\n  - job_name: a\n    static_configs: [{labels: {__path__: /x}}]\n  - job_name: a\n    static_configs: [{labels: {__path__: /y}}]\n",
        "FILE: scrape_configs[1].job_name: found multiple scrape configs with job name \"a\"",
    );
}

#[test]
fn valid_config_passes_check_syntax() {
    let (code, stderr, stdout) = run(
        &format!(
            "{HEAD}scrape_configs:\n  - job_name: a\n    static_configs: [{{labels: {{__path__: /tmp/none.log}}}}]\n"
        ),
        &["-check-syntax"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Valid config file!"), "{stdout}");
}

#[test]
fn check_syntax_prints_the_pack_timestamp_warning_and_passes() {
    let (code, stderr, stdout) = run(
        &format!(
            "{HEAD}scrape_configs:\n  - job_name: a\n    static_configs: [{{labels: {{__path__: /tmp/none.log}}}}]\n\
             \x20   pipeline_stages:\n\
             \x20     - regex: {{expression: '^(?P<ts>\\S+) (?P<level>\\w+)'}}\n\
             \x20     - timestamp: {{source: ts, format: RFC3339}}\n\
             \x20     - match:\n\
             \x20         selector: '{{job=\"a\"}}'\n\
             \x20         stages:\n\
             \x20           - timestamp: {{source: ts, format: RFC3339}}\n\
             \x20           - pack: {{labels: [level]}}\n\
             \x20     - pack: {{labels: [level]}}\n\
             \x20     - pack: {{labels: [level], ingest_timestamp: false}}\n"
        ),
        &["-check-syntax"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Valid config file!"), "{stdout}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: FILE: scrape_configs[0].pipeline_stages[3].pack: pack replaces the timestamp \
             stage 2 (match) set with the time of packing (ingest_timestamp defaults to true); \
             set ingest_timestamp: false to keep it",
            "warning: FILE: scrape_configs[0].pipeline_stages[2].match.stages[1].pack: pack \
             replaces the timestamp stage 0 (timestamp) set with the time of packing \
             (ingest_timestamp defaults to true); set ingest_timestamp: false to keep it",
        ],
        "{stderr}"
    );
}

#[test]
fn first_existing_file_of_a_comma_list_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, format!("{HEAD}scrape_configs: []\n")).unwrap();
    let missing = dir.path().join("missing.yaml");
    let out = Command::new(BIN)
        .arg(format!(
            "-config.file={},{}",
            missing.display(),
            good.display()
        ))
        .arg("-check-syntax")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&good.display().to_string()));
}

#[test]
fn expand_env_substitutes_variables_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "server:\n  http_listen_port: ${TW_TEST_PORT}\n  log_level: ${TW_TEST_UNSET:-warn}\nclients: [{url: \"http://${TW_TEST_HOST}:3100/loki/api/v1/push\"}]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg(format!("-config.file={}", path.display()))
        .args([
            "-config.expand-env=true",
            "-check-syntax",
            "-print-config-stderr",
        ])
        .env("TW_TEST_PORT", "9123")
        .env("TW_TEST_HOST", "loki.internal")
        .env_remove("TW_TEST_UNSET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("http_listen_port: 9123"), "{stderr}");
    assert!(stderr.contains("log_level: warn"), "{stderr}");
    assert!(
        stderr.contains("http://loki.internal:3100/loki/api/v1/push"),
        "{stderr}"
    );
}

#[test]
fn flags_override_the_file() {
    let (code, stderr, _) = run(
        &format!("{HEAD}scrape_configs: []\n"),
        &[
            "-check-syntax",
            "-print-config-stderr",
            "--server.http-listen-port",
            "9099",
            "-client.external-labels=host=web1",
            "-positions.file=/tmp/p.yaml",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("http_listen_port: 9099"), "{stderr}");
    assert!(stderr.contains("host: web1"), "{stderr}");
    assert!(stderr.contains("filename: /tmp/p.yaml"), "{stderr}");
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = Command::new(BIN).arg("-no.such.flag=1").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no.such.flag"));
}

#[test]
fn version_flag_prints_version() {
    let out = Command::new(BIN).arg("-version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tailward, version "));
}

#[test]
fn unknown_preset_or_preset_parameter_is_refused() {
    let job = |preset: &str| {
        format!(
            "scrape_configs:\n  - job_name: a\n    static_configs: [{{labels: {{__path__: /tmp/none-a.log}}}}]\n    pipeline_stages:\n      - preset: {preset}\n"
        )
    };
    assert_refused(
        &job("nginx_acess"),
        "FILE: scrape_configs[0].pipeline_stages[0].preset.name: expected the name of a built-in preset (",
    );
    assert_refused(
        &job("{name: python_traceback, parameters: {max_line: 3}}"),
        "FILE: scrape_configs[0].pipeline_stages[0].preset.parameters.max_line: preset python_traceback has no parameter \"max_line\"; expected one of: ",
    );
}

#[test]
fn unknown_decompression_format_names_its_path_and_the_formats() {
    assert_refused(
        r#"scrape_configs:
  - job_name: a
    decompression:
      enabled: true
      format: gzip
    static_configs: [{labels: {__path__: /tmp/none.gz}}]
"#,
        "FILE: scrape_configs[0].decompression.format: expected gz, z (zlib) or bz2, or empty to detect the format from each file's first bytes, found \"gzip\"",
    );
}
