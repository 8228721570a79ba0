//! The `auth` preset against ground truth: Filebeat's system/auth module test fixtures
//! (elastic/beats, Apache-2.0, copied into tests/data/auth/, see SOURCES.md there), run
//! through the real binary with `-stdin -dry-run`. Each field Filebeat's pipeline extracted
//! is mapped to the preset's name for it and compared; the test fails when field-level
//! agreement drops below the threshold or when a disagreement appears that is not listed
//! below with its reason.

use std::collections::BTreeMap;

use crate::support::stdin_dry_run::stdin_dry_run;
use chrono::DateTime;
use serde_json::Value;

/// Measured: 75 of 78 compared fields agree (96.2%); the 3 others are listed below. The
/// threshold is the measured figure: fixing a listed one raises it, and any unlisted
/// disagreement fails the listing check anyway.
const MIN_AGREEMENT: f64 = 0.96;

/// (fixture, line index, Filebeat field, why the preset's value differs).
const KNOWN_DISAGREEMENTS: &[(&str, usize, &str, &str)] = &[
    (
        "beats__test.log",
        3,
        "system.auth.ssh.ip",
        "fixture version skew: the stored expected.json predates beats replacing the \
         address in test.log with a GeoIP test-database address (116.31.116.24 -> \
         216.160.83.57); the preset reads the address the line has",
    ),
    (
        "beats__test.log",
        5,
        "system.auth.ssh.dropped_ip",
        "same version skew (123.57.245.163 -> 2.125.160.217)",
    ),
    (
        "beats__timestamp.log",
        0,
        "@timestamp",
        "Filebeat stores milliseconds (Elasticsearch's date type); the preset keeps the \
         line's microseconds (.912134)",
    ),
];

/// Filebeat field -> the preset's extracted key; values compared as text.
const FIELD_MAP: &[(&str, &str)] = &[
    ("system.auth.hostname", "hostname"),
    ("host.hostname", "hostname"),
    ("system.auth.pid", "pid"),
    ("process.name", "program"),
    ("message", "message"),
    ("system.auth.user", "user"),
    ("system.auth.ssh.ip", "source_ip"),
    ("system.auth.ssh.dropped_ip", "source_ip"),
    ("system.auth.ssh.port", "source_port"),
    ("system.auth.ssh.method", "auth_method"),
    ("system.auth.ssh.signature", "signature"),
    ("system.auth.sudo.command", "command"),
    ("system.auth.sudo.pwd", "pwd"),
    ("system.auth.sudo.tty", "tty"),
    ("system.auth.sudo.user", "target_user"),
    ("system.auth.sudo.error", "reason"),
    ("system.auth.groupadd.name", "group"),
    ("system.auth.groupadd.gid", "gid"),
    ("system.auth.useradd.name", "user"),
    ("system.auth.useradd.uid", "uid"),
    ("system.auth.useradd.gid", "gid"),
    ("system.auth.useradd.home", "home"),
    ("system.auth.useradd.shell", "shell"),
];

/// Filebeat's `system.auth.ssh.event` -> the preset's `event`.
const SSH_EVENTS: &[(&str, &str)] = &[
    ("Accepted", "login_success"),
    ("Failed", "login_failure"),
    ("Invalid", "invalid_user"),
];

/// Fields Filebeat adds that are not parsed from the line (pipeline metadata, GeoIP
/// enrichment, the raw syslog time text).
fn is_not_parsed_from_the_line(field: &str) -> bool {
    field.starts_with("fileset.")
        || field.starts_with("event.")
        || field.starts_with("input.")
        || field.starts_with("log.")
        || field.starts_with("service.")
        || field.starts_with("system.auth.ssh.geoip.")
        || matches!(
            field,
            "offset" | "prospector.type" | "system.auth.timestamp"
        )
}

const PACKED: &[&str] = &[
    "hostname",
    "program",
    "pid",
    "message",
    "event",
    "user",
    "source_ip",
    "source_port",
    "auth_method",
    "signature",
    "command",
    "pwd",
    "tty",
    "target_user",
    "reason",
    "group",
    "gid",
    "uid",
    "home",
    "shell",
];

struct Parsed {
    timestamp: DateTime<chrono::FixedOffset>,
    fields: BTreeMap<String, String>,
}

/// Runs the preset over a fixture; `reference` stands in for the read time the year of
/// RFC3164 headers is inferred from (Filebeat's fixtures assume the year they were made).
fn run_preset(fixture: &str, reference: &str, location: &str) -> Vec<Parsed> {
    let path = format!("{}/tests/data/auth/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let input = std::fs::read_to_string(&path).unwrap();
    let packed: Vec<String> = PACKED.iter().map(|k| format!("\"{k}\"")).collect();
    let stages = format!(
        "      - template: {{source: read_time, template: '{reference}'}}\n\
         \x20     - timestamp: {{source: read_time, format: RFC3339}}\n\
         \x20     - preset: {{name: auth, parameters: {{location: {location}}}}}\n\
         \x20     - pack: {{labels: [{}], ingest_timestamp: false}}\n",
        packed.join(", ")
    );
    let out = stdin_dry_run("{job: test}", &stages, &input, "UTC", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout
        .lines()
        .map(|l| {
            // `<time>\t<labels>\t<line>`; the tabwriter drops a tab after a cell whose
            // width is a multiple of 8, so split on the brackets instead.
            let labels_start = l.find('{').unwrap();
            let timestamp =
                DateTime::parse_from_str(l[..labels_start].trim_end(), "%Y-%m-%dT%H:%M:%S%.f%z")
                    .unwrap();
            let json_start = labels_start + l[labels_start..].find("}").unwrap() + 1;
            let packed: BTreeMap<String, Value> =
                serde_json::from_str(l[json_start..].trim_start()).unwrap();
            let fields = packed
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                .collect();
            Parsed { timestamp, fields }
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    compared: usize,
    agreed: usize,
    unexplained: Vec<String>,
}

fn compare(fixture: &str, reference: &str, location: &str, tally: &mut Tally) {
    let expected_path = format!(
        "{}/tests/data/auth/{fixture}-expected.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let expected: Vec<BTreeMap<String, Value>> =
        serde_json::from_str(&std::fs::read_to_string(expected_path).unwrap()).unwrap();
    let parsed = run_preset(fixture, reference, location);
    assert_eq!(
        parsed.len(),
        expected.len(),
        "{fixture}: one entry per event"
    );
    for (i, (want, got)) in expected.iter().zip(&parsed).enumerate() {
        let mut check = |field: &str, want: String, got: Option<&String>| {
            tally.compared += 1;
            if got == Some(&want) {
                tally.agreed += 1;
            } else if !KNOWN_DISAGREEMENTS
                .iter()
                .any(|(f, line, name, _)| *f == fixture && *line == i && *name == field)
            {
                tally.unexplained.push(format!(
                    "{fixture} line {i}: {field}: Filebeat {want:?}, preset {got:?}"
                ));
            }
        };
        for (field, value) in want {
            if is_not_parsed_from_the_line(field) {
                continue;
            }
            let want_text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if field == "@timestamp" {
                let want_time = DateTime::parse_from_rfc3339(&want_text).unwrap();
                let got_text = if got.timestamp == want_time {
                    want_time.to_rfc3339()
                } else {
                    got.timestamp.to_rfc3339()
                };
                check(field, want_time.to_rfc3339(), Some(&got_text));
            } else if field == "system.auth.ssh.event" {
                let mapped = SSH_EVENTS
                    .iter()
                    .find(|(f, _)| *f == want_text)
                    .map(|(_, ours)| ours.to_string())
                    .unwrap_or_else(|| format!("(unmapped Filebeat event {want_text})"));
                check(field, mapped, got.fields.get("event"));
            } else if let Some((_, ours)) = FIELD_MAP.iter().find(|(f, _)| f == field) {
                check(field, want_text, got.fields.get(*ours));
            } else {
                check(field, format!("(unmapped Filebeat field {field})"), None);
            }
        }
    }
}

#[test]
fn auth_preset_fields_agree_with_filebeat_expected_output() {
    let mut tally = Tally::default();
    // Filebeat's test.log expectations assume 2018 and UTC.
    compare("beats__test.log", "2018-06-01T00:00:00Z", "UTC", &mut tally);
    // timestamp.log's expectations were made with the pipeline's zone at -02:00.
    compare(
        "beats__timestamp.log",
        "2019-07-01T00:00:00Z",
        "Etc/GMT+2",
        &mut tally,
    );
    let agreement = tally.agreed as f64 / tally.compared as f64;
    eprintln!(
        "auth preset vs Filebeat: {} of {} fields agree ({:.1}%)",
        tally.agreed,
        tally.compared,
        agreement * 100.0
    );
    assert!(
        tally.unexplained.is_empty(),
        "disagreements not listed in KNOWN_DISAGREEMENTS:\n{}",
        tally.unexplained.join("\n")
    );
    assert!(
        agreement >= MIN_AGREEMENT,
        "agreement {agreement:.3} below {MIN_AGREEMENT}"
    );
    assert!(
        tally.compared >= 78,
        "only {} fields compared",
        tally.compared
    );
}
