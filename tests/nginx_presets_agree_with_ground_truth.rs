//! Field-level agreement of the `nginx_access` and `nginx_error` presets with other parsers'
//! expected output on the same lines (tests/data/nginx, see tests/data/SOURCES.md):
//! Filebeat's nginx module (expected.json), Vector's `parse_nginx_log` unit cases, Google Ops
//! Agent's transformation tests; and, for nginx-agent's logs that come with their
//! `log_format` but no per-field expectations, the share of lines the format parses.
//!
//! Values are compared after one normalisation on both sides: `-` and the empty string mean
//! "not set", numbers compare as numbers, times as instants. Every disagreement must be in
//! [`KNOWN_DISAGREEMENTS`] with its reason, and every listed one must still occur, so a fix or
//! a regression both show up here.

use crate::support::nginx_fields::*;

use serde_json::Value;
use tailward::pipeline::PipelineEntry;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nginx");

/// (source, record index, field or `*` for every field of the record): why we differ.
const KNOWN_DISAGREEMENTS: &[(&str, usize, &str, &str)] = &[
    (
        "beats-access",
        2,
        "client_ip",
        "Filebeat takes the first public address of the list; client_ip is the first address \
         (the originating client as reported)",
    ),
    (
        "beats-access",
        4,
        "client_ip",
        "Filebeat takes the first public address of the list; client_ip is the first address \
         (the originating client as reported)",
    ),
    (
        "vrl-access",
        5,
        "compression",
        "Vector's combined also reads an optional trailing \"$gzip_ratio\"; nginx's combined \
         has no such field, extra trailing fields are ignored",
    ),
];

/// Agreement must stay at or above this share of compared fields. Measured: 459 of 462
/// (0.994); the listed disagreements are all that is missing.
const MIN_AGREEMENT: f64 = 0.97;
/// Share of lines of the format-only sets the given format must parse.
const MIN_PARSED: f64 = 0.99;

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{DATA}/{name}")).unwrap()
}

/// Runs `lines` through `stages` (YAML list), flushing held entries at the end.
fn run(stages_yaml: &str, lines: &[&str]) -> Vec<PipelineEntry> {
    crate::support::stage_runner::run_lines(stages_yaml, "truth", "2000-01-01T00:00:00Z", lines).0
}

#[derive(Default)]
struct Tally {
    compared: usize,
    agreed: usize,
    disagreements: Vec<(String, usize, String, String)>,
}

impl Tally {
    fn compare(&mut self, source: &str, index: usize, expected: &Fields, got: &Fields) {
        for (field, want) in expected {
            self.compared += 1;
            let have = got.get(field);
            let ok = match field.as_str() {
                // Filebeat keeps the error's context in `message`; we split it into fields.
                "message_prefix" => got
                    .get("message")
                    .is_some_and(|m| want.starts_with(m.as_str())),
                _ => have.is_some_and(|h| same(want, h)),
            };
            if ok {
                self.agreed += 1;
            } else {
                self.disagreements.push((
                    source.to_string(),
                    index,
                    field.clone(),
                    format!("expected {want:?}, got {have:?}"),
                ));
            }
        }
    }
}

/// Runs a fixture's log through `stages` and compares each entry with its expected record.
fn compare_log(t: &mut Tally, source: &str, stages: &str, log: &str, want: &[Fields], key: &str) {
    let lines: Vec<&str> = log.lines().collect();
    let got = run(stages, &lines);
    assert_eq!(got.len(), want.len(), "{source}: entries");
    for (i, (e, want)) in got.iter().zip(want).enumerate() {
        t.compare(source, i, want, &ours(e, key));
    }
}

/// Vector's cases, each run on its own with the format it names.
fn compare_vector_cases(t: &mut Tally, source: &str, cases: &str, access: bool) {
    for (i, line) in cases.lines().enumerate() {
        let (case, stages, key) = if access {
            let case = vector_case(line, VRL_ACCESS_KEYS);
            let stages = access_preset(&case.format);
            (case, stages, "status")
        } else {
            (
                vector_case(line, VRL_ERROR_KEYS),
                error_preset("UTC"),
                "level",
            )
        };
        let got = run(&stages, &[case.input.as_str()]);
        t.compare(source, i, &case.want, &ours(&got[0], key));
    }
}

fn beats_access(t: &mut Tally) {
    let want = beats_access_expected(&read("beats__nginx-access-test.log-expected.json"));
    let log = read("beats__nginx-access-test.log");
    compare_log(
        t,
        "beats-access",
        &access_preset("combined"),
        &log,
        &want,
        "status",
    );
}

fn vrl_access(t: &mut Tally) {
    compare_vector_cases(
        t,
        "vrl-access",
        &read("vrl__parse_nginx_log_cases.jsonl"),
        true,
    );
}

fn ops_access(t: &mut Tally) {
    let want = ops_access_expected(&read("ops-agent__nginx-access.output_fluentbit.yaml"));
    let log = read("ops-agent__nginx-access.input.log");
    compare_log(
        t,
        "ops-access",
        &access_preset("combined"),
        &log,
        &want,
        "status",
    );
}

fn beats_error(t: &mut Tally) {
    let want = beats_error_expected(&read("beats__nginx-error.log-expected.json"));
    // The expected output was produced with the pipeline's time zone at -02:00.
    let log = read("beats__nginx-error.log");
    compare_log(
        t,
        "beats-error",
        &error_preset("Etc/GMT+2"),
        &log,
        &want,
        "level",
    );
}

fn vrl_error(t: &mut Tally) {
    let cases = read("vrl__parse_nginx_log_error_cases.jsonl");
    compare_vector_cases(t, "vrl-error", &cases, false);
}

fn ops_error(t: &mut Tally) {
    let want = ops_error_expected(&read("ops-agent__nginx-error.output_fluentbit.yaml"));
    let log = read("ops-agent__nginx-error.input.log");
    compare_log(t, "ops-error", &error_preset("UTC"), &log, &want, "level");
}

/// nginx-agent's logs with their formats: the share of lines parsed.
fn format_only_sets() -> Vec<(String, usize, usize)> {
    let formats: Vec<Value> =
        serde_json::from_str(&read("nginx-agent-v2__access_log_formats.json")).unwrap();
    let mut sets: Vec<(String, String)> = formats
        .iter()
        .filter(|f| f["utf8_valid"] == Value::Bool(true))
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_string(),
                f["log_format"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    sets.push((
        "nginx-agent-v3__test-access.log".into(),
        NGINX_AGENT_V3_FORMAT.into(),
    ));
    sets.iter()
        .map(|(file, format)| {
            let text = read(file);
            let lines: Vec<&str> = text.lines().collect();
            let got = run(&access_preset(format), &lines);
            let parsed = got
                .iter()
                .filter(|e| e.extracted.get("status").is_some())
                .count();
            (file.clone(), parsed, lines.len())
        })
        .collect()
}

#[test]
fn nginx_presets_agree_with_filebeat_vector_and_ops_agent_field_by_field() {
    let mut t = Tally::default();
    beats_access(&mut t);
    vrl_access(&mut t);
    ops_access(&mut t);
    beats_error(&mut t);
    vrl_error(&mut t);
    ops_error(&mut t);
    let agreement = t.agreed as f64 / t.compared as f64;
    println!(
        "field agreement: {}/{} = {:.4}",
        t.agreed, t.compared, agreement
    );
    let unexplained: Vec<String> = t
        .disagreements
        .iter()
        .filter(|(s, i, f, _)| {
            !KNOWN_DISAGREEMENTS
                .iter()
                .any(|(ks, ki, kf, _)| ks == s && ki == i && (kf == f || *kf == "*"))
        })
        .map(|(s, i, f, what)| format!("{s} #{i} {f}: {what}"))
        .collect();
    assert!(
        unexplained.is_empty(),
        "disagreements without a reason:\n{}",
        unexplained.join("\n")
    );
    for (s, i, f, reason) in KNOWN_DISAGREEMENTS {
        assert!(
            t.disagreements
                .iter()
                .any(|(ds, di, df, _)| ds == s && di == i && (df == f || *f == "*")),
            "listed disagreement {s} #{i} {f} no longer occurs ({reason}): remove it"
        );
    }
    assert!(
        agreement >= MIN_AGREEMENT,
        "agreement {agreement:.4} below {MIN_AGREEMENT}"
    );
}

#[test]
fn logs_with_a_known_log_format_parse_whole() {
    let mut sets = format_only_sets();
    let text = read("nginx-agent-v2__error_log_test_lines.log");
    let lines: Vec<&str> = text.lines().collect();
    let got = run(&error_preset("UTC"), &lines);
    let parsed = got
        .iter()
        .filter(|e| e.extracted.get("level").is_some())
        .count();
    sets.push((
        "nginx-agent-v2__error_log_test_lines.log".into(),
        parsed,
        lines.len(),
    ));
    for (file, parsed, total) in sets {
        println!("{file}: {parsed}/{total} lines parsed");
        assert!(
            parsed as f64 >= MIN_PARSED * total as f64,
            "{file}: only {parsed} of {total} lines parsed"
        );
    }
}
