//! An honest score of the `nginx_access`, `nginx_error` and `json_app` presets on the real
//! samples in `../shared/data` (see its SOURCES.md): per family, the share of lines the preset
//! accepts and, where a sample comes with another parser's expected output, the share of
//! that output's fields the preset agrees with.
//!
//! This test prints, and asserts only floors a little under today's figures (so a regression
//! on real lines fails it); the presets were built from
//! nginx's source and documentation and from the loggers' documented field names, not from
//! these samples, and nothing may be tuned to move these numbers: they measure how the
//! presets generalise. (`nginx_presets_agree_with_ground_truth` pins the agreement on the
//! copies in tests/data/nginx with a reason for every disagreement.) Without the samples
//! (a checkout without ../shared) it fails: a pass would have measured nothing.
//!
//! Accepting a line means: `nginx_access` extracted `status`, `nginx_error` extracted
//! `level`, `json_app` extracted `message`. Values are compared after one normalisation on
//! both sides: `-` and the empty string mean "not set", numbers compare as numbers, times as
//! instants. Samples whose expected output says a line must be refused count as an agreed
//! field when the preset refuses it.

use crate::support::nginx_fields::*;
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use serde_json::Value;
use tailward::pipeline::PipelineEntry;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

fn shared() -> Option<PathBuf> {
    let dir = PathBuf::from(SHARED);
    let dir = if dir.is_dir() {
        dir
    } else {
        PathBuf::from("/work/shared/data")
    };
    dir.is_dir().then_some(dir)
}

/// A sample's text; lines that are not UTF-8 are read as the tailer reads them.
fn read(dir: &Path, name: &str) -> String {
    let bytes = std::fs::read(dir.join(name)).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn run(stages_yaml: &str, lines: &[&str]) -> Vec<PipelineEntry> {
    crate::support::stage_runner::run_lines(stages_yaml, "score", "2000-01-01T00:00:00Z", lines).0
}

fn ours(e: &PipelineEntry, parsed_key: &str) -> Fields {
    let mut f: Fields = e
        .extracted
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), norm(v)?)))
        .collect();
    let parsed = e.extracted.get(parsed_key).and_then(norm).is_some();
    f.insert("parsed".into(), parsed.to_string());
    if parsed {
        f.insert(
            "time".into(),
            e.timestamp
                .with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        );
    }
    if let Some(path) = f.get("path").cloned() {
        let url = match f.get("query") {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        f.insert("url".into(), url);
    }
    f
}

/// One family's figures.
#[derive(Default)]
struct Score {
    lines: usize,
    accepted: usize,
    compared: usize,
    agreed: usize,
    /// Per file: lines, accepted.
    files: Vec<(String, usize, usize)>,
    misses: Vec<String>,
}

impl Score {
    fn accept(&mut self, file: &str, entries: &[PipelineEntry], parsed_key: &str) {
        let accepted = entries
            .iter()
            .filter(|e| e.extracted.get(parsed_key).and_then(norm).is_some())
            .count();
        self.lines += entries.len();
        self.accepted += accepted;
        self.files.push((file.to_string(), entries.len(), accepted));
    }

    fn compare(&mut self, source: &str, index: usize, expected: &Fields, got: &Fields) {
        for (field, want) in expected {
            self.compared += 1;
            let have = got.get(field);
            let ok = match field.as_str() {
                "message_prefix" => got
                    .get("message")
                    .is_some_and(|m| want.starts_with(m.as_str())),
                _ => have.is_some_and(|h| same(want, h)),
            };
            if ok {
                self.agreed += 1;
            } else {
                self.misses.push(format!(
                    "{source} #{index} {field}: expected {want:?}, got {have:?}"
                ));
            }
        }
    }

    fn print(&self, family: &str) {
        let pct = |a: usize, b: usize| {
            if b == 0 {
                "-".to_string()
            } else {
                format!("{:.1}%", 100.0 * a as f64 / b as f64)
            }
        };
        println!(
            "{family}: accepted {}/{} lines ({}), fields agreed {}/{} ({})",
            self.accepted,
            self.lines,
            pct(self.accepted, self.lines),
            self.agreed,
            self.compared,
            pct(self.agreed, self.compared)
        );
        for (file, lines, accepted) in &self.files {
            println!("    {file}: {accepted}/{lines}");
        }
        for miss in &self.misses {
            println!("    differs: {miss}");
        }
    }
}

fn lines_of(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn nginx_access(dir: &Path) -> Score {
    let mut s = Score::default();
    let at = |name: &str| format!("nginx-access/{name}");
    // Filebeat's expected output.
    let log = read(dir, &at("beats__nginx-access-test.log"));
    let expected: Vec<Value> = serde_json::from_str(&read(
        dir,
        &at("beats__nginx-access-test.log-expected.json"),
    ))
    .unwrap_or_default();
    let got = run(&access_preset("combined"), &lines_of(&log));
    s.accept("beats__nginx-access-test.log", &got, "status");
    for (i, (e, x)) in got.iter().zip(&expected).enumerate() {
        let want = fields(&[
            ("parsed", Some("true".into())),
            ("client_ip", norm(get(x, "source.address"))),
            ("remote_user", norm(get(x, "user.name"))),
            ("method", norm(get(x, "http.request.method"))),
            ("url", norm(get(x, "url.original"))),
            (
                "protocol",
                norm(get(x, "http.version")).map(|v| format!("HTTP/{v}")),
            ),
            ("status", norm(get(x, "http.response.status_code"))),
            ("body_bytes_sent", norm(get(x, "http.response.body.bytes"))),
            ("http_referer", norm(get(x, "http.request.referrer"))),
            ("http_user_agent", norm(get(x, "user_agent.original"))),
            ("time", norm(get(x, "@timestamp")).and_then(|t| instant(&t))),
        ]);
        s.compare("beats-access", i, &want, &ours(e, "status"));
    }
    // Vector's cases, each with its format.
    let mut vrl_entries = Vec::new();
    for (i, case) in read(dir, &at("vrl__parse_nginx_log_cases.jsonl"))
        .lines()
        .enumerate()
    {
        let Ok(case) = serde_json::from_str::<Value>(case) else {
            continue;
        };
        let format = match case["format"].as_str().unwrap_or("combined") {
            "ingress_upstreaminfo" => INGRESS_UPSTREAMINFO,
            other => other,
        };
        let input = case["input"].as_str().unwrap_or_default();
        let got = run(&access_preset(format), &[input]);
        let theirs = ours(&got[0], "status");
        vrl_entries.extend(got);
        let mut want = Fields::new();
        match case.get("expected") {
            Some(Value::Object(map)) => {
                want.insert("parsed".into(), "true".into());
                for (k, v) in map {
                    let key = VRL_ACCESS_KEYS
                        .iter()
                        .find(|(t, _)| t == k)
                        .map_or(k.as_str(), |(_, o)| o);
                    let (key, value) = if key == "timestamp" {
                        ("time", norm(v).and_then(|t| instant(&t)))
                    } else {
                        (key, norm(v))
                    };
                    if let Some(value) = value {
                        want.insert(key.to_string(), value);
                    }
                }
            }
            _ => {
                want.insert("parsed".into(), "false".into());
            }
        }
        s.compare("vrl-access", i, &want, &theirs);
    }
    s.accept("vrl__parse_nginx_log_cases.jsonl", &vrl_entries, "status");
    // Google Ops Agent's expected output.
    let log = read(dir, &at("ops-agent__nginx-access.input.log"));
    let out: Value = tailward::config::yaml::from_str(&read(
        dir,
        &at("ops-agent__nginx-access.output_fluentbit.yaml"),
    ))
    .unwrap_or(Value::Null);
    let got = run(&access_preset("combined"), &lines_of(&log));
    s.accept("ops-agent__nginx-access.input.log", &got, "status");
    let none = Vec::new();
    let entries = out[0]["entries"].as_array().unwrap_or(&none);
    for (i, (e, x)) in got.iter().zip(entries).enumerate() {
        let h = get(x, "httpRequest");
        let want = fields(&[
            ("parsed", Some("true".into())),
            ("client_ip", norm(get(h, "remoteIp"))),
            ("method", norm(get(h, "requestMethod"))),
            ("url", norm(get(h, "requestUrl"))),
            ("protocol", norm(get(h, "protocol"))),
            ("status", norm(get(h, "status"))),
            ("body_bytes_sent", norm(get(h, "responseSize"))),
            ("http_referer", norm(get(h, "referer"))),
            ("http_user_agent", norm(get(h, "userAgent"))),
            ("remote_user", norm(get(get(x, "jsonPayload"), "user"))),
            ("time", norm(get(x, "timestamp")).and_then(|t| instant(&t))),
        ]);
        s.compare("ops-access", i, &want, &ours(e, "status"));
    }
    // Samples without expected output: only what is accepted.
    for (file, format) in [
        ("elastic-examples__apache_logs.log", "combined"),
        ("lnav__logfile_access_log.0.log", "combined"),
        ("lnav__logfile_access_log.1.log", "combined"),
        ("lnav__logfile_bad_access_log.0.log", "combined"),
        ("lnav__logfile_regexp_access_log.0.log", "combined"),
        ("lnav__logfile_shop_access_log.log", "main"),
    ] {
        let text = read(dir, &at(file));
        let got = run(&access_preset(format), &lines_of(&text));
        s.accept(file, &got, "status");
    }
    let formats: Vec<Value> =
        serde_json::from_str(&read(dir, &at("nginx-agent-v2__access_log_formats.json")))
            .unwrap_or_default();
    for f in &formats {
        let (Some(file), Some(format)) = (f["file"].as_str(), f["log_format"].as_str()) else {
            continue;
        };
        let text = read(dir, &at(file));
        let got = run(&access_preset(format), &lines_of(&text));
        s.accept(file, &got, "status");
    }
    let v3 = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" "$bytes_sent" "$request_length" "$request_time" "$gzip_ratio" "$server_protocol" "$upstream_connect_time""$upstream_header_time" "$upstream_response_length" "$upstream_response_time""#;
    let text = read(dir, &at("nginx-agent-v3__test-access.log"));
    let got = run(&access_preset(v3), &lines_of(&text));
    s.accept("nginx-agent-v3__test-access.log", &got, "status");
    s
}

fn nginx_error(dir: &Path) -> Score {
    let mut s = Score::default();
    let at = |name: &str| format!("nginx-error/{name}");
    let log = read(dir, &at("beats__nginx-error.log"));
    let expected: Vec<Value> =
        serde_json::from_str(&read(dir, &at("beats__nginx-error.log-expected.json")))
            .unwrap_or_default();
    // Filebeat's expected output was made with the pipeline's zone at -02:00.
    let got = run(&error_preset("Etc/GMT+2"), &lines_of(&log));
    s.accept("beats__nginx-error.log", &got, "level");
    for (i, (e, x)) in got.iter().zip(&expected).enumerate() {
        let want = fields(&[
            ("parsed", Some("true".into())),
            ("level", norm(get(x, "log.level"))),
            ("pid", norm(get(x, "process.pid"))),
            ("tid", norm(get(x, "process.thread.id"))),
            ("connection_id", norm(get(x, "nginx.error.connection_id"))),
            ("message_prefix", norm(get(x, "message"))),
            ("time", norm(get(x, "@timestamp")).and_then(|t| instant(&t))),
        ]);
        s.compare("beats-error", i, &want, &ours(e, "level"));
    }
    let mut vrl_entries = Vec::new();
    for (i, case) in read(dir, &at("vrl__parse_nginx_log_error_cases.jsonl"))
        .lines()
        .enumerate()
    {
        let Ok(case) = serde_json::from_str::<Value>(case) else {
            continue;
        };
        let got = run(
            &error_preset("UTC"),
            &[case["input"].as_str().unwrap_or_default()],
        );
        let theirs = ours(&got[0], "level");
        vrl_entries.extend(got);
        let mut want = Fields::new();
        match case.get("expected") {
            Some(Value::Object(map)) => {
                want.insert("parsed".into(), "true".into());
                for (k, v) in map {
                    let key = VRL_ERROR_KEYS
                        .iter()
                        .find(|(t, _)| t == k)
                        .map_or(k.as_str(), |(_, o)| o);
                    let value = if key == "time" {
                        norm(v).and_then(|t| instant(&t))
                    } else {
                        norm(v)
                    };
                    if let Some(value) = value {
                        want.insert(key.to_string(), value);
                    }
                }
            }
            _ => {
                want.insert("parsed".into(), "false".into());
            }
        }
        s.compare("vrl-error", i, &want, &theirs);
    }
    s.accept(
        "vrl__parse_nginx_log_error_cases.jsonl",
        &vrl_entries,
        "level",
    );
    let log = read(dir, &at("ops-agent__nginx-error.input.log"));
    let out: Value = tailward::config::yaml::from_str(&read(
        dir,
        &at("ops-agent__nginx-error.output_fluentbit.yaml"),
    ))
    .unwrap_or(Value::Null);
    let got = run(&error_preset("UTC"), &lines_of(&log));
    s.accept("ops-agent__nginx-error.input.log", &got, "level");
    let none = Vec::new();
    // Its blank input lines are entries of their own there; here they end the record before.
    let entries: Vec<&Value> = out[0]["entries"]
        .as_array()
        .unwrap_or(&none)
        .iter()
        .filter(|e| norm(get(get(e, "jsonPayload"), "message")).is_some())
        .collect();
    for (i, (e, x)) in got.iter().zip(entries).enumerate() {
        let p = get(x, "jsonPayload");
        let want = fields(&[
            ("parsed", Some("true".into())),
            ("level", norm(get(p, "level"))),
            ("pid", norm(get(p, "pid"))),
            ("tid", norm(get(p, "tid"))),
            ("connection_id", norm(get(p, "connection"))),
            ("message", norm(get(p, "message"))),
            ("client", norm(get(p, "client"))),
            ("server", norm(get(p, "server"))),
            ("request", norm(get(p, "request"))),
            ("upstream", norm(get(p, "upstream"))),
            ("host", norm(get(p, "host"))),
            ("time", norm(get(x, "timestamp")).and_then(|t| instant(&t))),
        ]);
        s.compare("ops-error", i, &want, &ours(e, "level"));
    }
    let text = read(dir, &at("nginx-agent-v2__error_log_test_lines.log"));
    let got = run(&error_preset("UTC"), &lines_of(&text));
    s.accept("nginx-agent-v2__error_log_test_lines.log", &got, "level");
    s
}

fn json_app(dir: &Path) -> Score {
    let mut s = Score::default();
    let at = |name: &str| format!("json/{name}");
    let preset = "- preset: json_app\n";
    for stem in [
        "ops-agent__logging_processor-parse_json",
        "ops-agent__logging_processor-parse_json-timestamp-format-1",
        "ops-agent__logging_processor-parse_json-timestamp-format-2",
        "ops-agent__logging_processor-parse_json_upstream",
    ] {
        let text = read(dir, &at(&format!("{stem}.input.log")));
        let out: Value = tailward::config::yaml::from_str(&read(
            dir,
            &at(&format!("{stem}.output_fluentbit.yaml")),
        ))
        .unwrap_or(Value::Null);
        let got = run(preset, &lines_of(&text));
        s.accept(&format!("{stem}.input.log"), &got, "message");
        let none = Vec::new();
        let entries = out[0]["entries"].as_array().unwrap_or(&none);
        for (i, (e, x)) in got.iter().zip(entries).enumerate() {
            let p = get(x, "jsonPayload");
            let mut got = ours(e, "message");
            // Every line is a JSON object: the time counts whether or not a message was found.
            got.insert(
                "time".into(),
                e.timestamp
                    .with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
            );
            let want = fields(&[
                ("level", norm(get(p, "level"))),
                ("message", norm(get(p, "message"))),
                ("time", norm(get(x, "timestamp")).and_then(|t| instant(&t))),
            ]);
            s.compare(stem, i, &want, &got);
        }
    }
    for file in [
        "lnav__logfile_bunyan.jsonl",
        "lnav__logfile_ecs_log.jsonl",
        "lnav__logfile_invalid_json.jsonl",
        "lnav__logfile_journald.jsonl",
        "lnav__logfile_json_edgecases.jsonl",
    ] {
        let text = read(dir, &at(file));
        let got = run(preset, &lines_of(&text));
        s.accept(file, &got, "message");
    }
    s
}

#[test]
fn presets_on_the_shared_real_world_samples_print_their_scores() {
    let dir = shared().expect("the shared sample collection ../shared/data");
    let access = nginx_access(&dir);
    access.print("nginx-access");
    let error = nginx_error(&dir);
    error.print("nginx-error");
    let json = json_app(&dir);
    json.print("json");
    // Today: access 11,069/11,074 accepted, 267/270 fields; error 24/24, 192/192; json
    // 29/45, 8/17. Floors a little under them.
    assert!(
        access.accepted * 100 >= access.lines * 99,
        "nginx-access accepted"
    );
    assert!(
        access.agreed * 100 >= access.compared * 95,
        "nginx-access fields"
    );
    assert!(error.accepted == error.lines && error.agreed * 100 >= error.compared * 98);
    assert!(json.accepted * 100 >= json.lines * 60, "json accepted");
}
