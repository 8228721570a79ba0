//! The vocabulary shared by the tests that compare the nginx presets' fields with other
//! parsers' expected output (Filebeat, Vector, Ops Agent): normalised values, instants,
//! numeric equality, the presets as stage YAML, and the log formats and key maps those
//! parsers' fixtures use.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use tailward::pipeline::value_as_string;

pub type Fields = BTreeMap<String, String>;

/// "-" and "" are "not set"; numbers keep their text (compared as numbers later).
pub fn norm(v: &Value) -> Option<String> {
    let s = match v {
        Value::Null => return None,
        Value::Number(n) => n.to_string(),
        other => value_as_string(other)?.into_owned(),
    };
    (!s.is_empty() && s != "-").then_some(s)
}

pub fn instant(s: &str) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%:z"))
        .ok()?;
    Some(
        t.with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

pub fn same(expected: &str, got: &str) -> bool {
    if expected == got {
        return true;
    }
    match (expected.parse::<f64>(), got.parse::<f64>()) {
        (Ok(a), Ok(b)) => (a - b).abs() < 1e-9,
        _ => false,
    }
}

pub fn fields(pairs: &[(&str, Option<String>)]) -> Fields {
    pairs
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
        .collect()
}

pub fn get<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Null)
}

pub fn access_preset(log_format: &str) -> String {
    format!(
        "- preset:\n    name: nginx_access\n    parameters:\n      log_format: {}\n",
        serde_json::to_string(log_format).unwrap()
    )
}

pub fn error_preset(location: &str) -> String {
    format!("- preset:\n    name: nginx_error\n    parameters:\n      location: {location}\n")
}

/// ingress-nginx's `upstreaminfo` format, which Vector's cases use.
pub const INGRESS_UPSTREAMINFO: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id"#;

/// Vector's field names to ours.
pub const VRL_ACCESS_KEYS: &[(&str, &str)] = &[
    ("client", "remote_addr"),
    ("user", "remote_user"),
    ("size", "body_bytes_sent"),
    ("body_bytes_size", "body_bytes_sent"),
    ("referer", "http_referer"),
    ("agent", "http_user_agent"),
];

pub const VRL_ERROR_KEYS: &[(&str, &str)] = &[
    ("severity", "level"),
    ("cid", "connection_id"),
    ("referer", "referrer"),
    ("timestamp", "time"),
];

/// nginx-agent v3's test log format.
pub const NGINX_AGENT_V3_FORMAT: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" "$bytes_sent" "$request_length" "$request_time" "$gzip_ratio" "$server_protocol" "$upstream_connect_time""$upstream_header_time" "$upstream_response_length" "$upstream_response_time""#;

/// What a preset extracted from `e`, in the comparison's vocabulary: `parsed` (whether
/// `parsed_key` has a value), `time` when parsed, `url` from path and query.
pub fn ours(e: &tailward::pipeline::PipelineEntry, parsed_key: &str) -> Fields {
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

fn time_of(v: &Value) -> Option<String> {
    norm(v).and_then(|s| instant(&s))
}

/// Filebeat's nginx access `expected.json`: the fields of each record.
pub fn beats_access_expected(json: &str) -> Vec<Fields> {
    let records: Vec<Value> = serde_json::from_str(json).expect("Filebeat's expected.json");
    records
        .iter()
        .map(|x| {
            fields(&[
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
                ("time", time_of(get(x, "@timestamp"))),
            ])
        })
        .collect()
}

/// Filebeat's nginx error `expected.json`.
pub fn beats_error_expected(json: &str) -> Vec<Fields> {
    let records: Vec<Value> = serde_json::from_str(json).expect("Filebeat's expected.json");
    records
        .iter()
        .map(|x| {
            fields(&[
                ("parsed", Some("true".into())),
                ("level", norm(get(x, "log.level"))),
                ("pid", norm(get(x, "process.pid"))),
                ("tid", norm(get(x, "process.thread.id"))),
                ("connection_id", norm(get(x, "nginx.error.connection_id"))),
                ("message_prefix", norm(get(x, "message"))),
                ("time", time_of(get(x, "@timestamp"))),
            ])
        })
        .collect()
}

/// One of Vector's `parse_nginx_log` cases (a JSON line): the log format it names, its
/// input line and the fields it expects (`parsed: false` for a case that must fail).
/// `keys` maps Vector's names to ours.
pub struct VectorCase {
    pub format: String,
    pub input: String,
    pub want: Fields,
}

pub fn vector_case(line: &str, keys: &[(&str, &str)]) -> VectorCase {
    let case: Value = serde_json::from_str(line).expect("a Vector case is JSON");
    let format = match case["format"].as_str().unwrap_or("combined") {
        "ingress_upstreaminfo" => INGRESS_UPSTREAMINFO,
        other => other,
    };
    let mut want = Fields::new();
    match case.get("expected") {
        Some(Value::Object(map)) => {
            want.insert("parsed".into(), "true".into());
            for (k, v) in map {
                let key = keys
                    .iter()
                    .find(|(theirs, _)| theirs == k)
                    .map_or(k.as_str(), |(_, o)| o);
                let (key, value) = if key == "timestamp" || key == "time" {
                    ("time", time_of(v))
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
    VectorCase {
        format: format.to_string(),
        input: case["input"]
            .as_str()
            .expect("a Vector case has input")
            .to_string(),
        want,
    }
}

/// Ops Agent's fluent-bit output for its nginx access test.
pub fn ops_access_expected(yaml: &str) -> Vec<Fields> {
    ops_entries(yaml)
        .iter()
        .map(|x| {
            let h = get(x, "httpRequest");
            fields(&[
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
                ("time", time_of(get(x, "timestamp"))),
            ])
        })
        .collect()
}

/// Ops Agent's fluent-bit output for its nginx error test. Its blank input lines are
/// entries of their own there; here they end the record before, so they are left out.
pub fn ops_error_expected(yaml: &str) -> Vec<Fields> {
    ops_entries(yaml)
        .iter()
        .filter(|e| norm(get(get(e, "jsonPayload"), "message")).is_some())
        .map(|x| {
            let p = get(x, "jsonPayload");
            fields(&[
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
                ("time", time_of(get(x, "timestamp"))),
            ])
        })
        .collect()
}

fn ops_entries(yaml: &str) -> Vec<Value> {
    let out: Value = tailward::config::yaml::from_str(yaml).expect("Ops Agent's output YAML");
    out[0]["entries"]
        .as_array()
        .expect("Ops Agent's output has entries")
        .clone()
}
