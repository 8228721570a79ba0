//! The `nginx_access` and `nginx_error` presets on the forms nginx writes, as listed in
//! tests/data/nginx/tailward__access_forms.yaml and tailward__error_forms.yaml (written from
//! nginx's source and documentation, see their headers): every line gives the fields listed
//! for it, leaves out those listed absent, is marked ambiguous when it reads more than one
//! way, and gives nothing at all when it must be rejected.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::DateTime;
use serde::Deserialize;
use serde_json::Value;
use tailward::metrics::Metrics;
use tailward::model::labels::LabelSet;
use tailward::pipeline::stages::StageConfig;
use tailward::pipeline::{
    BuildContext, PipelineEntry, build_stages, release_stages, run_stages, value_as_string,
};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nginx");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    name: String,
    line: String,
    #[serde(default)]
    log_format: Option<String>,
    #[serde(default)]
    escape: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    ambiguous: bool,
    #[serde(default)]
    reject: bool,
}

fn forms(file: &str) -> Vec<Form> {
    let text = std::fs::read_to_string(format!("{DATA}/{file}")).unwrap();
    tailward::config::yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The one entry `line` becomes through `stages_yaml`.
fn run(stages_yaml: &str, line: &str) -> PipelineEntry {
    let value: Value = tailward::config::yaml::from_str(stages_yaml).unwrap();
    let configs: Vec<StageConfig> = serde_json::from_value(value).unwrap();
    let metrics = Arc::new(Metrics::new());
    let ctx = BuildContext::new("forms", metrics.clone());
    let mut stages = build_stages("pipeline_stages", &configs, &ctx).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let read_time = DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z").unwrap();
    let mut done = Vec::new();
    let mut consumed = Vec::new();
    runtime.block_on(async {
        let entry = PipelineEntry::new(
            LabelSet::from_pairs([("job", "forms")]),
            line.to_string(),
            read_time,
        );
        run_stages(&mut stages, 0, entry, &metrics, &mut done, &mut consumed).await;
        release_stages(
            &mut stages,
            Instant::now(),
            true,
            &metrics,
            &mut done,
            &mut consumed,
        )
        .await;
    });
    assert_eq!(done.len(), 1, "{line}");
    done.remove(0)
}

/// The extracted keys a preset added (the seeded `job` and the metrics stages' temporary
/// labels left out).
fn found(e: &PipelineEntry) -> BTreeMap<String, String> {
    e.extracted
        .iter()
        .filter(|(k, _)| *k != "job")
        .filter_map(|(k, v)| Some((k.to_string(), value_as_string(v)?.into_owned())))
        .collect()
}

fn check(form: &Form, e: &PipelineEntry, parsed_key: &str) -> Vec<String> {
    let got = found(e);
    let mut problems = Vec::new();
    if form.reject {
        let parsed: Vec<&String> = got.keys().filter(|k| !k.starts_with("security_")).collect();
        if !parsed.is_empty() {
            problems.push(format!("rejected line gave {parsed:?}"));
        }
        return problems;
    }
    if !got.contains_key(parsed_key) && !form.ambiguous {
        problems.push(format!("not parsed (no {parsed_key})"));
    }
    for (key, want) in &form.fields {
        if got.get(key) != Some(want) {
            problems.push(format!("{key}: expected {want:?}, got {:?}", got.get(key)));
        }
    }
    for key in &form.absent {
        if let Some(v) = got.get(key) {
            problems.push(format!("{key}: expected absent, got {v:?}"));
        }
    }
    let marked = got.get("ambiguous").map(String::as_str) == Some("true");
    if marked != form.ambiguous {
        problems.push(format!(
            "ambiguous: expected {}, got {marked}",
            form.ambiguous
        ));
    }
    problems
}

fn report(file: &str, failures: Vec<String>, count: usize) {
    assert!(
        failures.is_empty(),
        "{file}: {} of {count} forms failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn nginx_access_reads_every_form_nginx_writes_and_rejects_the_rest() {
    let file = "tailward__access_forms.yaml";
    let forms = forms(file);
    let mut failures = Vec::new();
    for form in &forms {
        let mut params = String::new();
        if let Some(f) = &form.log_format {
            params.push_str(&format!(
                "      log_format: {}\n",
                serde_json::to_string(f).unwrap()
            ));
        }
        if let Some(e) = &form.escape {
            params.push_str(&format!("      escape: {e}\n"));
        }
        let stages = if params.is_empty() {
            "- preset: nginx_access\n".to_string()
        } else {
            format!("- preset:\n    name: nginx_access\n    parameters:\n{params}")
        };
        let e = run(&stages, &form.line);
        for p in check(form, &e, "status") {
            failures.push(format!("{}: {p}", form.name));
        }
    }
    report(file, failures, forms.len());
}

#[test]
fn nginx_error_reads_every_form_nginx_writes_and_rejects_the_rest() {
    let file = "tailward__error_forms.yaml";
    let forms = forms(file);
    let mut failures = Vec::new();
    for form in &forms {
        let e = run(
            "- preset:\n    name: nginx_error\n    parameters: {location: UTC}\n",
            &form.line,
        );
        for p in check(form, &e, "level") {
            failures.push(format!("{}: {p}", form.name));
        }
    }
    report(file, failures, forms.len());
}
