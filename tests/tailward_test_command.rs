//! `tailward test FILE...` runs case files through their config's pipeline in process:
//! `PASS name` / `FAIL name` lines, a diff naming each differing field, a final
//! `N passed, M failed`, exit 0 only when everything passed. `-check-syntax` runs the case
//! file beside the config (`<name>.tests.yaml`) too.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tailward");

const CONFIG: &str = r#"server:
  disable: true
scrape_configs:
  - job_name: app_json
    static_configs:
      - labels: {job: app, __path__: /var/log/app/*.log}
    pipeline_stages:
      - json:
          expressions: {level: level, correlation_id: correlation_id, timestamp: timestamp, msg: msg}
      - labels: {level: ""}
      - structured_metadata: {correlation_id: ""}
      - timestamp: {source: timestamp, format: RFC3339}
      - output: {source: msg}
  - job_name: other
    static_configs:
      - labels: {job: other, __path__: /var/log/other.log}
"#;

const PASSING: &str = r#"job: app_json
cases:
  - name: error with correlation id
    lines: ['{"level":"ERROR","correlation_id":"abc","timestamp":"2024-01-01T00:00:00Z","msg":"boom"}']
    expect:
      - labels: {job: app, level: ERROR}
        line: boom
        timestamp: 2024-01-01T00:00:00Z
        structured_metadata: {correlation_id: abc}
        extracted: {level: ERROR, msg: boom, job: app, nothing: ~}
  - name: extra input labels join the static ones
    labels: {env: prod}
    lines: ['{"level":"INFO","msg":"a"}', '{"level":"WARN","msg":"b"}']
    expect:
      - labels: {env: prod, job: app, level: INFO}
      - line: b
"#;

const FAILING: &str = r#"job: app_json
cases:
  - name: level is expected upper case
    lines: ['{"level":"error","msg":"boom"}']
    expect:
      - labels: {job: app, level: ERROR}
        line: boom
        extracted: {level: ERROR, correlation_id: "<nil>"}
  - name: still passes
    lines: ['{"level":"INFO","msg":"a"}']
    expect:
      - line: a
"#;

fn tailward(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn passing_file_exits_zero_with_pass_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "promtail.yaml", CONFIG);
    let cases = write(dir.path(), "promtail.tests.yaml", PASSING);
    let out = tailward(&["test", &cases]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        stdout,
        "PASS error with correlation id\nPASS extra input labels join the static ones\n2 passed, 0 failed\n"
    );
}

#[test]
fn failing_file_exits_one_with_a_diff_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "promtail.yaml", CONFIG);
    let cases = write(dir.path(), "promtail.tests.yaml", FAILING);
    let out = tailward(&["test", &cases]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "FAIL level is expected upper case\n    entry 1 labels:\n      expected: {job=\"app\", level=\"ERROR\"}\n      got:      {job=\"app\", level=\"error\"}\n    entry 1 extracted[\"level\"]:\n      expected: \"ERROR\"\n      got:      \"error\"\n"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("entry 1 line"), "line matched: {stdout}");
    assert!(stdout.contains("PASS still passes\n"), "{stdout}");
    assert!(stdout.ends_with("1 passed, 1 failed\n"), "{stdout}");
}

#[test]
fn case_file_may_name_its_config_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cases")).unwrap();
    write(dir.path(), "agent.yaml", CONFIG);
    let cases = write(
        &dir.path().join("cases"),
        "app.yaml",
        &format!("config: ../agent.yaml\n{PASSING}"),
    );
    let out = tailward(&["test", &cases]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).ends_with("2 passed, 0 failed\n"));
}

#[test]
fn case_file_without_config_and_no_sibling_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = write(dir.path(), "lonely.yaml", PASSING);
    let out = tailward(&["test", &cases]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("config: not given"), "{stdout}");
    assert!(
        stdout.ends_with("0 passed, 0 failed, 1 errors\n"),
        "{stdout}"
    );
}

#[test]
fn check_syntax_runs_the_case_file_beside_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "promtail.yaml", CONFIG);
    let flag = format!("-config.file={config}");

    // Without a case file, only the syntax is checked.
    let out = tailward(&[&flag, "-check-syntax"]);
    assert!(out.status.success());
    assert!(
        !text(&out.stdout).contains("passed"),
        "{}",
        text(&out.stdout)
    );

    write(dir.path(), "promtail.tests.yaml", PASSING);
    let out = tailward(&[&flag, "-check-syntax"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.starts_with("Valid config file!"), "{stdout}");
    assert!(
        stdout.contains("PASS error with correlation id\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("2 passed, 0 failed\n"), "{stdout}");

    write(dir.path(), "promtail.tests.yaml", FAILING);
    let out = tailward(&[&flag, "-check-syntax"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL level is expected upper case"),
        "{stdout}"
    );
}
