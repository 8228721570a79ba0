//! Runs the real binary the way users test pipelines: `-stdin -dry-run` over a config with
//! one job (`test`) whose static labels and `pipeline_stages` the test gives, in a time zone
//! the test chooses.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tailward");

/// `job_labels` is a YAML map such as `{job: test}`; `stages` are the `pipeline_stages` items
/// indented six spaces, as they stand in a config file. Also checks that a dry run never
/// writes positions.
pub fn stdin_dry_run(
    job_labels: &str,
    stages: &str,
    input: &str,
    tz: &str,
    extra_args: &[&str],
) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server:\n  disable: true\npositions:\n  filename: {}/positions.yaml\nclients:\n  - url: http://127.0.0.1:9/loki/api/v1/push\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - labels: {job_labels}\n    pipeline_stages:\n{stages}",
            dir.path().display()
        ),
    )
    .expect("write config");
    let mut child = Command::new(BIN)
        .arg(format!("-config.file={}", cfg.display()))
        .args(["-stdin", "-dry-run", "-log.level=warn"])
        .args(extra_args)
        .env("TZ", tz)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tailward");
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(input.as_bytes())
        .expect("write input");
    let out = child.wait_with_output().expect("tailward exits");
    assert!(
        !dir.path().join("positions.yaml").exists(),
        "a dry run wrote positions"
    );
    out
}
