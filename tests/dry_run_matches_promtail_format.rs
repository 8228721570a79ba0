//! `-stdin -dry-run` prints each entry as Promtail does, byte for byte:
//! `<ts as 2006-01-02T15:04:05.999999999-0700>\t<labels>\t<line>` through Go's tabwriter
//! (a cell whose width is a multiple of 8 gets no tab). Users diff this output when they
//! test pipelines, so every case below is a stage combination written out by hand from
//! Promtail's rules.

use crate::support::stdin_dry_run::stdin_dry_run;

fn dry_run(job_labels: &str, stages: &str, input: &str, tz: &str) -> String {
    let out = stdin_dry_run(job_labels, stages, input, tz, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn json_labels_timestamp_output() {
    let out = dry_run(
        "{job: test}",
        r#"      - json:
          expressions: {level: level, ts: ts, msg: msg}
      - labels: {level: ""}
      - timestamp: {source: ts, format: RFC3339Nano}
      - output: {source: msg}
"#,
        "{\"ts\":\"2024-03-05T07:08:09.120000000Z\",\"level\":\"warn\",\"msg\":\"disk almost full\"}\n\
         {\"ts\":\"2024-03-05T07:08:10Z\",\"level\":\"info\",\"msg\":\"ok\"}\n",
        "UTC",
    );
    assert_eq!(
        out,
        "2024-03-05T07:08:09.12+0000\t{job=\"test\", level=\"warn\"}\tdisk almost full\n\
         2024-03-05T07:08:10+0000{job=\"test\", level=\"info\"}\tok\n"
    );
}

#[test]
fn regex_labels_timestamp_with_layout_and_location() {
    let out = dry_run(
        "{job: test}",
        r#"      - regex:
          expression: '^(?P<time>\S+ \S+) (?P<level>\w+) (?P<logger>\S+) (?P<message>.*)$'
      - labels: {level: "", logger: ""}
      - timestamp:
          source: time
          format: '2006-01-02 15:04:05,000'
          location: Europe/Berlin
"#,
        "2024-01-15 10:30:45,123 ERROR app.db Connection refused\n\
         2024-07-15 10:30:45,000 INFO app.web started\n",
        "UTC",
    );
    assert_eq!(
        out,
        "2024-01-15T10:30:45.123+0100\t{job=\"test\", level=\"ERROR\", logger=\"app.db\"}\t2024-01-15 10:30:45,123 ERROR app.db Connection refused\n\
         2024-07-15T10:30:45+0200{job=\"test\", level=\"INFO\", logger=\"app.web\"}\t2024-07-15 10:30:45,000 INFO app.web started\n"
    );
}

#[test]
fn cells_of_a_multiple_of_eight_runes_get_no_tab() {
    // `{job="test1234"}` is 16 characters: Go's tabwriter pads it with nothing.
    let out = dry_run(
        "{job: test1234}",
        r#"      - regex: {expression: '^(?P<ts>[\d.]+) '}
      - timestamp: {source: ts, format: Unix}
"#,
        "1700000000.5 hello\n1700000001 again\n",
        "UTC",
    );
    // A whole-second timestamp is 24 characters: it too is glued to the labels.
    assert_eq!(
        out,
        "2023-11-14T22:13:20.5+0000\t{job=\"test1234\"}1700000000.5 hello\n\
         2023-11-14T22:13:21+0000{job=\"test1234\"}1700000001 again\n"
    );
}

#[test]
fn unix_timestamps_print_in_local_time_like_go() {
    let out = dry_run(
        "{job: test}",
        r#"      - json: {expressions: {t: time}}
      - timestamp: {source: t, format: UnixMs}
"#,
        "{\"time\":1700000000123}\n",
        "Asia/Kolkata",
    );
    assert_eq!(
        out,
        "2023-11-15T03:43:20.123+0530\t{job=\"test\"}\t{\"time\":1700000000123}\n"
    );
}

#[test]
fn label_values_are_go_quoted_and_static_labels_merge() {
    let out = dry_run(
        "{job: test}",
        r#"      - regex: {expression: 'user=(?P<user>.+?) ts=(?P<ts>\S+)'}
      - labels: {user: ""}
      - static_labels: {env: prod}
      - timestamp: {source: ts, format: RFC3339}
"#,
        "user=O'Brien \"x\"\tz ts=2024-02-29T23:59:59-05:00\n",
        "UTC",
    );
    assert_eq!(
        out,
        // The line's own tab ends a 16-character cell, so the tabwriter swallows it.
        "2024-02-29T23:59:59-0500{env=\"prod\", job=\"test\", user=\"O'Brien \\\"x\\\"\\tz\"}\tuser=O'Brien \"x\"z ts=2024-02-29T23:59:59-05:00\n"
    );
}

#[test]
fn structured_metadata_is_not_printed_and_label_moves_off_stream() {
    let out = dry_run(
        "{job: test, trace_id: abc}",
        r#"      - json: {expressions: {ts: ts}}
      - structured_metadata: {trace_id: ""}
      - timestamp: {source: ts, format: RFC3339}
"#,
        "{\"ts\":\"2024-05-01T00:00:00Z\"}\n",
        "UTC",
    );
    assert_eq!(
        out,
        "2024-05-01T00:00:00+0000{job=\"test\"}\t{\"ts\":\"2024-05-01T00:00:00Z\"}\n"
    );
}

/// `-dry-run.extracted` adds, after each entry's unchanged Promtail line, its structured
/// metadata (in attach order) and its extracted map (sorted, labels included), each on a
/// line of its own starting with a tab.
#[test]
fn dry_run_extracted_adds_structured_metadata_and_the_extracted_map() {
    let stages = r#"      - json: {expressions: {ts: ts, level: level, cid: cid, n: n, obj: obj}}
      - structured_metadata: {correlation_id: cid, trace_id: ""}
      - timestamp: {source: ts, format: RFC3339}
"#;
    let input = "{\"ts\":\"2024-05-01T00:00:00Z\",\"level\":\"warn\",\"cid\":\"a\\\"b\",\"n\":3,\"obj\":{\"k\":[1]}}\n";
    let plain = dry_run("{job: test, trace_id: t1}", stages, input, "UTC");
    let out = stdin_dry_run(
        "{job: test, trace_id: t1}",
        stages,
        input,
        "UTC",
        &["-dry-run.extracted"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out,
        format!(
            "{plain}\tstructured_metadata: {{correlation_id=\"a\\\"b\", trace_id=\"t1\"}}\n\
             \textracted: {{cid=\"a\\\"b\", job=\"test\", level=\"warn\", n=\"3\", obj=\"{{\\\"k\\\":[1]}}\", trace_id=\"t1\", ts=\"2024-05-01T00:00:00Z\"}}\n"
        )
    );
    assert!(
        plain.starts_with("2024-05-01T00:00:00+0000{job=\"test\"}\t"),
        "{plain}"
    );
}
