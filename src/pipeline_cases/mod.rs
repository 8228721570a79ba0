//! `tailward test FILE...`: runs pipeline test cases (see [`case_file`] for the format)
//! through a job's real `pipeline_stages`, in process, and reports `PASS name` or
//! `FAIL name` with what differed, then `N passed, M failed`.
//!
//! Each case gets a freshly built pipeline (stateful stages such as `limit` and `multiline`
//! start empty), its lines are read at the case's fixed read time, and everything held is
//! flushed at the end, as at the end of `-stdin`. Input labels are the job's static labels
//! without the `__` ones (as `-stdin` uses them), plus the case's `labels`;
//! `relabel_configs` and the clients' `external_labels` are not applied, since they are not
//! part of the pipeline.
//!
//! Owns running cases and comparing and printing results. It must not read flags or decide
//! exit codes; `main` does.

pub mod case_file;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, SecondsFormat};

use crate::config::{self, Config, Overrides, ScrapeConfig};
use crate::metrics::Metrics;
use crate::model::entry::{Entry, Outgoing};
use crate::model::labels::{LabelSet, TENANT_LABEL, quote_go_into};
use crate::pipeline::inspect::Inspector;
use crate::pipeline::{BuildContext, Pipeline, PipelineEntry, take_extracted};
use case_file::{Case, CaseFile, Expected};

/// What a run found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    /// Case files that could not be run at all (unreadable, invalid, bad config, no job).
    pub errors: usize,
}

impl Summary {
    pub fn success(&self) -> bool {
        self.failed == 0 && self.errors == 0
    }

    /// `N passed, M failed`, and `, K errors` when a file could not be run.
    pub fn line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed, self.failed);
        if self.errors > 0 {
            let _ = write!(line, ", {} errors", self.errors);
        }
        line
    }
}

/// How a run is set up.
#[derive(Clone, Debug, Default)]
pub struct RunSettings {
    /// Applied when a case file's config is loaded (`-config.expand-env`).
    pub overrides: Overrides,
    /// Report each stage's changes on stderr (`-inspect`).
    pub inspect: bool,
}

/// Runs every case of every file in `paths`, writing results and the summary line to `out`.
pub fn run_files(paths: &[PathBuf], settings: &RunSettings, out: &mut dyn Write) -> Summary {
    let mut summary = Summary::default();
    for path in paths {
        match load(path, &settings.overrides) {
            Ok((file, config)) => run_file(&file, &config, settings.inspect, out, &mut summary),
            Err(message) => {
                summary.errors += 1;
                let _ = writeln!(out, "ERROR {message}");
            }
        }
    }
    let _ = writeln!(out, "{}", summary.line());
    summary
}

/// Runs the case file beside `config_path` (`<name>.tests.yaml`) against `config`, the one
/// `-check-syntax` just loaded. `None` when there is no such file.
pub fn run_beside_config(
    config: &Config,
    config_path: &Path,
    inspect: bool,
    out: &mut dyn Write,
) -> Option<Summary> {
    let path = case_file::beside_config(config_path)?;
    let mut summary = Summary::default();
    match case_file::read(&path) {
        Ok(file) => match &file.config {
            Some(named) if !same_file(named, config_path) => {
                summary.errors += 1;
                let _ = writeln!(
                    out,
                    "ERROR {}: config: names {}, but the file beside it is {}; remove the key or rename the file",
                    path.display(),
                    named.display(),
                    config_path.display()
                );
            }
            _ => run_file(&file, config, inspect, out, &mut summary),
        },
        Err(e) => {
            summary.errors += 1;
            let _ = writeln!(out, "ERROR {e}");
        }
    }
    let _ = writeln!(out, "{}", summary.line());
    Some(summary)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Reads a case file and the config it tests.
fn load(path: &Path, overrides: &Overrides) -> Result<(CaseFile, Config), String> {
    let file = case_file::read(path).map_err(|e| e.to_string())?;
    let config_path = match &file.config {
        Some(p) => p.clone(),
        None => case_file::config_beside(path).ok_or_else(|| {
            format!(
                "{}: config: not given, and no config beside it (a case file named <name>.tests.yaml tests <name>.yaml)",
                path.display()
            )
        })?,
    };
    let name = config_path.display().to_string();
    let (config, _) = config::load(&name, overrides)
        .map_err(|e| format!("{}: invalid config: {e}", path.display()))?;
    // The whole config must build, as `-check-syntax` requires, not only the job under test.
    crate::agent::build::build_jobs(&config, &name, &Arc::new(Metrics::new()))
        .map_err(|e| format!("{}: invalid config: {e}", path.display()))?;
    Ok((file, config))
}

fn run_file(
    file: &CaseFile,
    config: &Config,
    inspect: bool,
    out: &mut dyn Write,
    summary: &mut Summary,
) {
    let (index, job) = match find_job(config, file.job.as_deref()) {
        Ok(found) => found,
        Err(message) => {
            summary.errors += 1;
            let _ = writeln!(out, "ERROR {}: {message}", file.path.display());
            return;
        }
    };
    // Pipelines are async only to sleep on `limit`'s waits; one thread with a timer is
    // all a case needs.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            summary.errors += 1;
            let _ = writeln!(out, "ERROR cannot start a runtime: {e}");
            return;
        }
    };
    let base_labels = static_labels(job);
    for case in &file.cases {
        let got = match runtime.block_on(run_case(index, job, &base_labels, case, inspect)) {
            Ok(got) => got,
            Err(message) => {
                summary.errors += 1;
                let _ = writeln!(out, "ERROR {}: {message}", file.path.display());
                return;
            }
        };
        let problems = compare(&case.expect, &got);
        if problems.is_empty() {
            summary.passed += 1;
            let _ = writeln!(out, "PASS {}", case.name);
        } else {
            summary.failed += 1;
            let _ = writeln!(out, "FAIL {}", case.name);
            for p in problems {
                let _ = writeln!(out, "{p}");
            }
        }
    }
}

/// The scrape config named `job`, or the only one when no name is given.
fn find_job<'c>(
    config: &'c Config,
    job: Option<&str>,
) -> Result<(usize, &'c ScrapeConfig), String> {
    let names = || {
        config
            .scrape_configs
            .iter()
            .map(|j| j.job_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match job {
        Some(name) => config
            .scrape_configs
            .iter()
            .enumerate()
            .find(|(_, j)| j.job_name == name)
            .ok_or_else(|| format!("job: no scrape config named {name:?}; jobs: {}", names())),
        None => match config.scrape_configs.as_slice() {
            [only] => Ok((0, only)),
            [] => Err("the config has no scrape_configs to test".into()),
            _ => Err(format!(
                "job: expected the job_name to test; jobs: {}",
                names()
            )),
        },
    }
}

/// A job's static labels without the `__` ones, as `-stdin` reads them.
fn static_labels(job: &ScrapeConfig) -> LabelSet {
    let mut labels = LabelSet::new();
    for sc in &job.static_configs {
        for (k, v) in &sc.labels {
            if !k.starts_with("__") {
                labels.insert(k.clone(), v.clone());
            }
        }
    }
    labels
}

async fn run_case(
    index: usize,
    job: &ScrapeConfig,
    base_labels: &LabelSet,
    case: &Case,
    inspect: bool,
) -> Result<Vec<Entry>, String> {
    let ctx = BuildContext::new(&job.job_name, Arc::new(Metrics::new()));
    let mut pipeline = Pipeline::build(
        &format!("scrape_configs[{index}].pipeline_stages"),
        &job.pipeline_stages,
        &ctx,
    )
    .map_err(|e| e.to_string())?
    .with_extracted_shown();
    if inspect {
        pipeline = pipeline.with_inspector(Inspector::stderr());
    }
    let mut labels = base_labels.clone();
    for (k, v) in &case.labels {
        labels.insert(k.clone(), v.clone());
    }
    let mut out = Vec::new();
    for line in &case.lines {
        let entry = PipelineEntry::new(labels.clone(), line.clone(), case.read_time);
        pipeline.run(entry, &mut out).await;
    }
    pipeline
        .release(std::time::Instant::now(), true, &mut out)
        .await;
    Ok(out
        .into_iter()
        .filter_map(|o| match o {
            Outgoing::Entry { entry, .. } => Some(entry),
            Outgoing::Consumed { .. } => None,
        })
        .collect())
}

/// What differs between the expected entries and those produced, one indented block per
/// difference; empty when the case passes. The entries may carry their extracted values
/// as a pipeline with [`Pipeline::with_extracted_shown`] hands them on.
pub fn compare(expected: &[Expected], got: &[Entry]) -> Vec<String> {
    let mut problems = Vec::new();
    for (n, (want, entry)) in expected.iter().zip(got).enumerate() {
        let n = n + 1;
        let mut structured_metadata = entry.structured_metadata.clone();
        let extracted: BTreeMap<String, String> = take_extracted(&mut structured_metadata)
            .into_iter()
            .collect();
        let mut field = |name: &str, want: String, got: String| {
            problems.push(format!(
                "    entry {n} {name}:\n      expected: {want}\n      got:      {got}"
            ));
        };
        if let Some(labels) = &want.labels {
            let mut got_labels = entry.labels.clone();
            got_labels.remove(TENANT_LABEL);
            if *labels != got_labels {
                field("labels", labels.to_string(), got_labels.to_string());
            }
        }
        if let Some(line) = &want.line
            && *line != entry.line
        {
            field("line", quoted(line), quoted(&entry.line));
        }
        if let Some(ts) = &want.timestamp
            && *ts != entry.timestamp
        {
            field("timestamp", rfc3339(ts), rfc3339(&entry.timestamp));
        }
        if let Some(sm) = &want.structured_metadata {
            let got_sm: BTreeMap<String, String> = structured_metadata.iter().cloned().collect();
            if *sm != got_sm {
                field("structured_metadata", pairs(sm), pairs(&got_sm));
            }
        }
        if let Some(want_extracted) = &want.extracted {
            for (key, want_value) in want_extracted {
                let got_value = extracted.get(key);
                if want_value.as_ref() != got_value {
                    let show =
                        |v: Option<&String>| v.map_or_else(|| "absent".to_string(), |v| quoted(v));
                    field(
                        &format!("extracted[{}]", quoted(key)),
                        show(want_value.as_ref()),
                        show(got_value),
                    );
                }
            }
        }
        if let Some(tenant) = &want.tenant {
            let got_tenant = entry.labels.get(TENANT_LABEL);
            if Some(tenant.as_str()) != got_tenant {
                field(
                    "tenant",
                    quoted(tenant),
                    got_tenant.map_or_else(|| "none".to_string(), quoted),
                );
            }
        }
    }
    if expected.len() != got.len() {
        let mut block = format!(
            "    entries:\n      expected: {}\n      got:      {}",
            expected.len(),
            got.len()
        );
        for (n, entry) in got.iter().enumerate().skip(expected.len()) {
            let _ = write!(
                block,
                "\n      extra entry {}: {} {} {}",
                n + 1,
                rfc3339(&entry.timestamp),
                entry.labels,
                quoted(&entry.line)
            );
        }
        problems.push(block);
    }
    problems
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    quote_go_into(s, &mut out);
    out
}

fn rfc3339(ts: &DateTime<FixedOffset>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn pairs(map: &BTreeMap<String, String>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        quote_go_into(v, &mut out);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(labels: &[(&str, &str)], line: &str) -> Entry {
        Entry {
            labels: LabelSet::from_pairs(labels.iter().copied()),
            timestamp: DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap(),
            line: line.into(),
            structured_metadata: vec![("trace_id".into(), "abc".into())],
        }
    }

    #[test]
    fn matching_given_fields_only_passes() {
        let want = Expected {
            labels: Some(LabelSet::from_pairs([("job", "app")])),
            tenant: Some("t1".into()),
            ..Expected::default()
        };
        let got = entry(&[("job", "app"), (TENANT_LABEL, "t1")], "anything");
        assert_eq!(compare(&[want], &[got]), Vec::<String>::new());
    }

    #[test]
    fn each_differing_field_is_named_with_expected_and_got() {
        let want = Expected {
            labels: Some(LabelSet::from_pairs([("job", "app"), ("level", "ERROR")])),
            line: Some("a\tb".into()),
            timestamp: Some(DateTime::parse_from_rfc3339("2024-01-01T00:00:01Z").unwrap()),
            structured_metadata: Some(BTreeMap::from([("trace_id".into(), "xyz".into())])),
            extracted: None,
            tenant: Some("t1".into()),
        };
        let got = entry(&[("job", "app"), ("level", "error")], "a b");
        assert_eq!(
            compare(&[want], &[got]),
            vec![
                "    entry 1 labels:\n      expected: {job=\"app\", level=\"ERROR\"}\n      got:      {job=\"app\", level=\"error\"}",
                "    entry 1 line:\n      expected: \"a\\tb\"\n      got:      \"a b\"",
                "    entry 1 timestamp:\n      expected: 2024-01-01T00:00:01Z\n      got:      2024-01-01T00:00:00Z",
                "    entry 1 structured_metadata:\n      expected: {trace_id=\"xyz\"}\n      got:      {trace_id=\"abc\"}",
                "    entry 1 tenant:\n      expected: \"t1\"\n      got:      none",
            ]
        );
    }

    #[test]
    fn count_mismatch_lists_extra_entries() {
        let got = [entry(&[("job", "a")], "one"), entry(&[("job", "a")], "two")];
        let problems = compare(&[Expected::default()], &got);
        assert_eq!(
            problems,
            vec![
                "    entries:\n      expected: 1\n      got:      2\n      extra entry 2: 2024-01-01T00:00:00Z {job=\"a\"} \"two\""
            ]
        );
        let problems = compare(&[Expected::default()], &[]);
        assert_eq!(
            problems,
            vec!["    entries:\n      expected: 1\n      got:      0"]
        );
    }

    fn config(yaml: &str) -> Config {
        config::load_str(yaml, "test.yaml", &Overrides::default()).unwrap()
    }

    const CONFIG: &str = r#"
scrape_configs:
  - job_name: app_json
    static_configs:
      - labels: {job: app, __path__: /var/log/app.log}
    pipeline_stages:
      - json: {expressions: {level: level, cid: correlation_id, ts: timestamp}}
      - labels: {level: ""}
      - structured_metadata: {correlation_id: cid}
      - timestamp: {source: ts, format: RFC3339}
      - drop: {source: level, value: DEBUG}
"#;

    fn run(file_text: &str) -> (Summary, String) {
        let file = case_file::parse(file_text, Path::new("c.tests.yaml")).unwrap();
        let mut out = Vec::new();
        let mut summary = Summary::default();
        run_file(&file, &config(CONFIG), false, &mut out, &mut summary);
        (summary, String::from_utf8(out).unwrap())
    }

    #[test]
    fn cases_run_through_the_jobs_pipeline_with_static_labels() {
        let (summary, out) = run(r#"
cases:
  - name: error with correlation id
    lines: ['{"level":"ERROR","correlation_id":"abc","timestamp":"2024-01-01T00:00:00Z"}']
    expect:
      - labels: {job: app, level: ERROR}
        timestamp: 2024-01-01T00:00:00Z
        structured_metadata: {correlation_id: abc}
  - name: debug is dropped and read time applies without a timestamp
    read_time: 2024-06-01T00:00:00Z
    labels: {env: prod}
    lines: ['{"level":"DEBUG"}', '{"level":"INFO"}']
    expect:
      - labels: {env: prod, job: app, level: INFO}
        timestamp: 2024-06-01T00:00:00Z
"#);
        assert_eq!(
            out,
            "PASS error with correlation id\nPASS debug is dropped and read time applies without a timestamp\n"
        );
        assert_eq!(
            summary,
            Summary {
                passed: 2,
                failed: 0,
                errors: 0
            }
        );
    }

    #[test]
    fn failing_case_prints_fail_and_the_field() {
        let (summary, out) = run(r#"
cases:
  - name: wrong level
    lines: ['{"level":"WARN"}']
    expect:
      - labels: {job: app, level: ERROR}
"#);
        assert_eq!(summary.failed, 1);
        assert!(
            out.starts_with("FAIL wrong level\n    entry 1 labels:\n      expected: {job=\"app\", level=\"ERROR\"}\n      got:      {job=\"app\", level=\"WARN\"}\n"),
            "{out}"
        );
    }

    #[test]
    fn unknown_job_is_an_error_listing_jobs() {
        let (summary, out) = run("job: nope\ncases:\n  - {name: a, lines: [x], expect: []}\n");
        assert_eq!(summary.errors, 1);
        assert!(
            out.contains("job: no scrape config named \"nope\"; jobs: app_json"),
            "{out}"
        );
        assert!(!summary.success());
    }

    #[test]
    fn extracted_fields_are_checked_by_key_and_absent_ones_by_null() {
        let (summary, out) = run(r#"
cases:
  - name: extracted values
    lines: ['{"level":"ERROR","correlation_id":"abc"}']
    expect:
      - extracted: {level: ERROR, cid: abc, ts: <nil>, job: app, nope: ~}
        structured_metadata: {correlation_id: abc}
  - name: a wrong extracted value
    lines: ['{"level":"WARN"}']
    expect:
      - extracted: {level: ERROR, cid: "<nil>", job: ~}
"#);
        assert_eq!(summary.passed, 1, "{out}");
        assert_eq!(summary.failed, 1, "{out}");
        assert!(
            out.contains(
                "FAIL a wrong extracted value\n    entry 1 extracted[\"job\"]:\n      expected: absent\n      got:      \"app\"\n    entry 1 extracted[\"level\"]:\n      expected: \"ERROR\"\n      got:      \"WARN\"\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn summary_line_counts_passed_failed_and_errors() {
        let s = Summary {
            passed: 3,
            failed: 1,
            errors: 0,
        };
        assert_eq!(s.line(), "3 passed, 1 failed");
        let s = Summary { errors: 2, ..s };
        assert_eq!(s.line(), "3 passed, 1 failed, 2 errors");
    }
}
