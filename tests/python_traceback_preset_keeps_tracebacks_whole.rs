//! The `python_traceback` preset against ground truth: tracebacks stay whole with their
//! header line, nothing else is merged, and the exception type and message come from the
//! traceback's last line. Data in tests/data/multiline (see SOURCES.md there): Datadog's
//! Airflow log-pipeline tests (samples with expected `error.kind`/`error.message`), lnav's
//! Python logging example (un-bracketed asctime, Python 3.11 `~~^~~` markers) and
//! fluent-plugin-detect-exceptions' Python traceback block behind a Flask header.

use std::collections::BTreeMap;

use crate::support::stdin_dry_run::stdin_dry_run;
use serde_json::Value;

fn data(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/multiline/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The entries the preset makes of `input`: the whole entry text plus the fields asked for.
fn entries(input: &str) -> Vec<BTreeMap<String, String>> {
    let stages = "      - preset: python_traceback\n      \
                  - pack: {labels: [level, exception_type, exception_message], ingest_timestamp: false}\n";
    let out = stdin_dry_run("{job: test}", stages, input, "UTC", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            // The packed line is the last `{...}` cell of the dry-run line.
            let labels_end = l.find('}').unwrap();
            let packed: BTreeMap<String, Value> =
                serde_json::from_str(l[labels_end + 1..].trim_start()).unwrap();
            packed
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap().to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn airflow_samples_come_out_as_the_events_datadog_expects() {
    let tests: Value =
        tailward::config::yaml::from_str(&data("datadog__airflow_tests.yaml")).unwrap();
    let samples = tests["tests"].as_array().unwrap();
    let got = entries(&data("datadog__airflow_samples.log"));
    assert_eq!(got.len(), samples.len(), "one entry per sample event");
    let (mut compared, mut agreed) = (0, 0);
    let mut disagreements = Vec::new();
    for (i, (sample, entry)) in samples.iter().zip(&got).enumerate() {
        let mut check = |what: &str, want: &str, got: Option<&String>| {
            compared += 1;
            if got.map(String::as_str) == Some(want) {
                agreed += 1;
            } else {
                disagreements.push(format!("sample {i} {what}: want {want:?}, got {got:?}"));
            }
        };
        let text = sample["sample"].as_str().unwrap().trim_end_matches('\n');
        check("entry", text, entry.get("_entry"));
        let error = &sample["result"]["custom"]["error"];
        if let Some(kind) = error["kind"].as_str() {
            check("error.kind", kind, entry.get("exception_type"));
            check(
                "error.message",
                error["message"].as_str().unwrap(),
                entry.get("exception_message"),
            );
        } else {
            assert!(
                !entry.contains_key("exception_type"),
                "sample {i} has no error but got {entry:?}"
            );
        }
    }
    // Measured: 14 of 14 (10 whole events, 2 kinds, 2 messages). Every one must hold.
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert_eq!((agreed, compared), (14, 14));
}

#[test]
fn python_logging_example_keeps_its_traceback_and_multi_line_messages() {
    let got = entries(&data("lnav__python-example.log"));
    let levels: Vec<&str> = got.iter().map(|e| e["level"].as_str()).collect();
    assert_eq!(levels, ["DEBUG", "INFO", "WARNING", "ERROR", "ERROR"]);
    assert_eq!(
        got[1]["_entry"],
        "2025-09-26 21:12:39,385 INFO info message:\nprocessing started -- log_example.py"
    );
    let last = &got[4];
    assert!(
        last["_entry"].starts_with("2025-09-26 21:12:39,385 ERROR exception message: caught unexpected error\nTraceback (most recent call last):\n"),
        "{last:?}"
    );
    assert!(last["_entry"].ends_with("    1 / 0\n    ~~^~~\nZeroDivisionError: division by zero"));
    assert_eq!(last["exception_type"], "ZeroDivisionError");
    assert_eq!(last["exception_message"], "division by zero");
    assert!(!got[3].contains_key("exception_type"));
}

#[test]
fn flask_header_keeps_a_whole_detect_exceptions_traceback() {
    let block = data("detect-exceptions__python_traceback.log");
    let header =
        "[2026-11-20 10:00:02,500] ERROR in app.handle_exception:1891 - Exception on /start [GET]";
    let next = "[2026-11-20 10:00:03,000] INFO in app.index:42 - GET / served";
    let got = entries(&format!("{header}\n{block}{next}\n"));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["_entry"], format!("{header}\n{}", block.trim_end()));
    assert_eq!(got[0]["level"], "ERROR");
    assert_eq!(got[0]["exception_type"], "Exception");
    assert_eq!(got[0]["exception_message"], "('spam', 'eggs')");
    assert_eq!(got[1]["_entry"], next);
}
