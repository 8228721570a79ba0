//! The `auth` preset on lines written as their programs write them: tests/data/auth/*.yaml,
//! one file per program and wording, each case built from the program's format string (the
//! file's header names the source: OpenSSH's auth.c, auth2.c, packet.c, sshd.c; Linux-PAM's
//! pam_unix; sudo; shadow-utils and util-linux su), not from sample logs. A case gives the
//! line, then either the exact fields the preset must find (`fields`: the event, status and
//! login_attempts of a login attempt, `ambiguous`, and the `auth_event` fields; the header's
//! fields and labels are not in it) and optionally what the syslog header gives (`header`), or
//! `reject: true` for a line that must give no event.
//!
//! openssh-injection.yaml holds lines whose text a remote user chose: the preset must give
//! the real address when the format leaves one reading, and mark the line (`ambiguous`,
//! counted in `tailward_auth_ambiguous_lines_total`, no `source_ip`) when it leaves two.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde::Deserialize;
use tailward::pipeline::{PipelineEntry, value_as_string};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/auth");
const READ_TIME: &str = "2025-06-01T00:00:00Z";

/// What the syslog stage sets (and the job label); everything else on the entry is the
/// `auth_event` stage's.
const HEADER_KEYS: &[&str] = &[
    "hostname",
    "program",
    "pid",
    "message",
    "severity",
    "facility",
    "msgid",
    "structured_data",
    "job",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    line: String,
    #[serde(default)]
    why: Option<String>,
    #[serde(default)]
    fields: Option<BTreeMap<String, String>>,
    #[serde(default)]
    header: Option<BTreeMap<String, String>>,
    #[serde(default)]
    reject: bool,
}

struct Run {
    entries: Vec<PipelineEntry>,
    metrics: String,
}

fn run(lines: &[&str]) -> Run {
    let (done, metrics) = crate::support::stage_runner::run_lines(
        "[{preset: {name: auth, parameters: {location: UTC}}}]",
        "auth",
        READ_TIME,
        lines,
    );
    assert_eq!(done.len(), lines.len(), "one entry per line");
    Run {
        entries: done,
        metrics: metrics.render(),
    }
}

fn auth_fields(e: &PipelineEntry) -> BTreeMap<String, String> {
    e.extracted
        .iter()
        .filter(|(k, _)| !HEADER_KEYS.contains(k))
        .filter_map(|(k, v)| Some((k.to_string(), value_as_string(v)?.into_owned())))
        .collect()
}

fn extracted(e: &PipelineEntry, key: &str) -> Option<String> {
    e.extracted
        .get(key)
        .and_then(value_as_string)
        .map(|v| v.into_owned())
}

/// Checks every case of `file`; returns the failing cases (each with what differed), how
/// many cases there were and how many were ambiguous.
fn check_file(file: &str) -> (Vec<String>, usize, usize, Run) {
    let text = std::fs::read_to_string(format!("{DATA}/{file}")).unwrap();
    let cases: Vec<Case> =
        tailward::config::yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(!cases.is_empty(), "{file}: no cases");
    let lines: Vec<&str> = cases.iter().map(|c| c.line.as_str()).collect();
    let out = run(&lines);
    let mut failing = Vec::new();
    let mut ambiguous = 0;
    for (i, (case, entry)) in cases.iter().zip(&out.entries).enumerate() {
        let mut failures = Vec::new();
        let what = format!(
            "{file} case {} ({}): {}",
            i + 1,
            case.why.as_deref().unwrap_or("-"),
            case.line
        );
        assert!(
            case.reject != case.fields.is_some() || (!case.reject && case.header.is_some()),
            "{what}: a case gives `fields` or `reject: true`"
        );
        assert_eq!(entry.line, case.line, "{what}: the line is kept as it is");
        let got = auth_fields(entry);
        if case.reject {
            if got.contains_key("event") {
                failing.push(format!("{what}\n    must be rejected, gave {got:?}"));
            }
            continue;
        }
        if let Some(want) = &case.fields {
            if want.contains_key("ambiguous") {
                ambiguous += 1;
            }
            if &got != want {
                failures.push(format!("{what}\n    want {want:?}\n    got  {got:?}"));
            }
            // What goes to Loki as structured metadata.
            for key in ["event", "user", "source_ip", "ambiguous"] {
                let sm = entry
                    .structured_metadata
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone());
                if sm != want.get(key).cloned() {
                    failures.push(format!(
                        "{what}\n    structured metadata {key}: want {:?}, got {sm:?}",
                        want.get(key)
                    ));
                }
            }
        }
        if let Some(header) = &case.header {
            for (key, want) in header {
                let got = if key == "time" {
                    let want_t = DateTime::parse_from_rfc3339(want).unwrap();
                    (entry.timestamp == want_t)
                        .then(|| want.clone())
                        .or_else(|| Some(entry.timestamp.to_rfc3339()))
                } else {
                    extracted(entry, key)
                };
                if got.as_ref() != Some(want) {
                    failures.push(format!(
                        "{what}\n    header {key}: want {want:?}, got {got:?}"
                    ));
                }
            }
            for key in ["hostname", "pid"] {
                if !header.contains_key(key)
                    && header.contains_key("program")
                    && let Some(v) = extracted(entry, key)
                {
                    failures.push(format!("{what}\n    header {key}: want none, got {v:?}"));
                }
            }
        }
        if !failures.is_empty() {
            failing.push(failures.join("\n"));
        }
    }
    (failing, cases.len(), ambiguous, out)
}

fn assert_file(file: &str) {
    let (failing, cases, _, _) = check_file(file);
    assert!(
        failing.is_empty(),
        "{} of {cases} cases differ:\n{}",
        failing.len(),
        failing.join("\n")
    );
}

#[test]
fn openssh_login_outcomes() {
    assert_file("openssh-auth-log.yaml");
}

#[test]
fn openssh_connections_disconnects_and_invalid_users() {
    assert_file("openssh-connection.yaml");
}

#[test]
fn openssh_refusals_reverse_mapping_and_pam_errors() {
    assert_file("openssh-refusals.yaml");
}

#[test]
fn openssh_key_exchange_and_identification_failures() {
    assert_file("openssh-kex.yaml");
}

#[test]
fn pam_unix_in_its_spellings_and_orders() {
    assert_file("pam-unix.yaml");
}

#[test]
fn sudo_commands_refusals_and_failures() {
    assert_file("sudo.yaml");
}

#[test]
fn su_of_shadow_utils_and_util_linux() {
    assert_file("su.yaml");
}

#[test]
fn shadow_tools_and_cron() {
    assert_file("shadow-tools-and-cron.yaml");
}

#[test]
fn syslog_headers_of_daemons_journald_and_macos() {
    assert_file("syslog-headers.yaml");
}

#[test]
fn text_a_remote_user_chose_never_decides_source_ip() {
    let (failing, cases, ambiguous, out) = check_file("openssh-injection.yaml");
    assert!(
        failing.is_empty(),
        "{} of {cases} cases differ:\n{}",
        failing.len(),
        failing.join("\n")
    );
    for e in &out.entries {
        assert_ne!(
            extracted(e, "source_ip").as_deref(),
            Some("6.6.6.6"),
            "{}",
            e.line
        );
    }
    assert!(ambiguous >= 5, "only {ambiguous} ambiguous cases");
    let counted = format!(
        r#"tailward_auth_ambiguous_lines_total{{job="auth",reason="several_readings"}} {ambiguous}"#
    );
    assert!(out.metrics.contains(&counted), "{}", out.metrics);
}

#[test]
fn a_message_cut_at_sshds_limit_is_marked_not_read() {
    // The connection id's user part (200 bytes, each control byte written as 4) can push a
    // message past sshd's 500-byte syslog limit, the cut landing after a fake address.
    let prefix = "Connection closed by authenticating user ";
    let fake = " 6.6.6.6 port 22";
    let mut message = prefix.to_string();
    while message.len() + fake.len() < 500 {
        message.push_str("\\001");
    }
    message.truncate(500 - fake.len());
    message.push_str(fake);
    let line = format!("Feb  3 04:05:06 web1 sshd[4211]: {message}");
    let out = run(&[&line]);
    let got = auth_fields(&out.entries[0]);
    let want: BTreeMap<String, String> = [("event", "disconnect"), ("ambiguous", "true")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(
        out.metrics
            .contains(r#"tailward_auth_ambiguous_lines_total{job="auth",reason="possibly_cut"} 1"#),
        "{}",
        out.metrics
    );
}
