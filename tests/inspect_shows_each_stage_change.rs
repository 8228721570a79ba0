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

#[test]
fn each_stage_inside_a_preset_is_reported_under_the_preset_s_name() {
    let stages = "      - preset: nginx_error\n      - static_labels: {after: \"yes\"}\n";
    let input = "2026/11/28 01:02:03 [error] 1#0: *5 x failed, client: 192.0.2.5, server: s, request: \"GET /a HTTP/1.1\"\n\
                 2026/11/28 01:02:04 [warn] 1#0: second\n";
    let out = stdin_dry_run("{job: test}", stages, input, "UTC", &["-inspect"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    // The first record is held by the preset's multiline stage until the second starts,
    // released, then parsed by the preset's later stages, each reported on its own.
    for expected in [
        "[inspect: preset nginx_error / multiline stage]: held\n",
        "[inspect: preset nginx_error / multiline stage]: released\n\tline: 2026/11/28 01:02:03 [error]",
        "[inspect: preset nginx_error / nginx_error stage]: \n",
        "{stages.Entry}.Extracted[\"client\"]:\n\t+: 192.0.2.5\n",
        "[inspect: preset nginx_error / labels stage]: \n{stages.Entry}.Entry.Labels[\"level\"]:\n\t+: error\n",
        "[inspect: preset nginx_error / timestamp stage]: \n",
        "[inspect: static_labels stage]: \n{stages.Entry}.Entry.Labels[\"after\"]:\n\t+: yes\n",
    ] {
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("[inspect: preset stage]"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
}
