//! `-inspect` prints, on stderr, what each stage changed in each entry, in the shape of
//! Promtail's inspector: a `[inspect: <stage> stage]:` header, then the changed fields with
//! `-:` old and `+:` new values, or `none`. Without a terminal there is no colour, and the
//! dry-run output on stdout is unchanged.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tailward");

fn run_inspected(input: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"server:
  disable: true
positions:
  filename: {}/positions.yaml
scrape_configs:
  - job_name: test
    static_configs:
      - labels: {{job: test}}
    pipeline_stages:
      - json:
          expressions: {{level: level, msg: msg}}
      - labels: {{level: ""}}
      - output: {{source: msg}}
"#,
            dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            &format!("-config.file={}", cfg.display()),
            "-stdin",
            "-dry-run",
            "-inspect",
            "-log.level=warn",
        ])
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn block(level: &str, msg: &str, raw: &str) -> String {
    format!(
        "[inspect: json stage]: \n\
         {{stages.Entry}}.Extracted[\"level\"]:\n\t+: {level}\n\
         {{stages.Entry}}.Extracted[\"msg\"]:\n\t+: {msg}\n\
         [inspect: labels stage]: \n\
         {{stages.Entry}}.Entry.Labels[\"level\"]:\n\t+: {level}\n\
         [inspect: output stage]: \n\
         {{stages.Entry}}.Entry.Entry.Line:\n\t-: {raw}\n\t+: {msg}\n"
    )
}

#[test]
fn each_stage_reports_its_changes_for_each_entry_in_order() {
    let first = r#"{"level":"warn","msg":"disk full"}"#;
    let second = r#"{"level":"info","msg":"ok"}"#;
    let out = run_inspected(&format!("{first}\n{second}\n"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = format!(
        "{}{}",
        block("warn", "disk full", first),
        block("info", "ok", second)
    );
    assert!(
        stderr.contains(&expected),
        "expected on stderr:\n{expected}\ngot:\n{stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "colour without a terminal:\n{stderr}"
    );
    assert!(!stderr.contains("not supported"), "{stderr}");
}

#[test]
fn dry_run_output_is_unchanged_by_inspect() {
    let out = run_inspected("{\"level\":\"warn\",\"msg\":\"disk full\"}\n");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (_, rest) = stdout.split_once('\t').unwrap();
    assert_eq!(rest, "{job=\"test\", level=\"warn\"}\tdisk full\n");
}

#[test]
fn a_stage_that_changes_nothing_reports_none() {
    // No `msg` field: `output` finds no source and leaves the line alone.
    let out = run_inspected("{\"level\":\"warn\"}\n");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("[inspect: output stage]: none\n"),
        "{stderr}"
    );
}
