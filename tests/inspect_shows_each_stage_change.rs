//! `-inspect` prints, on stderr, what each stage changed in each entry, in the shape of
//! Promtail's inspector: a `[inspect: <stage> stage]:` header, then the changed fields with
//! `-:` old and `+:` new values, or `none`. Without a terminal there is no colour, and the
//! dry-run output on stdout is unchanged.

use std::process::Output;

use crate::support::stdin_dry_run::stdin_dry_run;

fn run_inspected(input: &str) -> Output {
    let stages = r#"      - json:
          expressions: {level: level, msg: msg}
      - labels: {level: ""}
      - output: {source: msg}
"#;
    let out = stdin_dry_run("{job: test}", stages, input, "UTC", &["-inspect"]);
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
