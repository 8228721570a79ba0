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
