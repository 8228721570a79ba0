//! Built-in pipeline presets: the YAML files of `pipelines/`, embedded in the binary, and
//! how a preset's parameters are put into its stages.
//!
//! A preset file is plain YAML a user can read or copy into a config:
//!
//! ```yaml
//! description: What the preset parses, the labels it sets, the metadata it attaches.
//! parameters:            # each parameter: a default and what it means
//!   metric_prefix:
//!     default: tailward_
//!     description: Prefix of the metric names.
//! stages:                # ordinary pipeline stages
//!   - regex: ...
//! ```
//!
//! Inside `stages`, a string that is exactly `${name}` becomes the parameter's value,
//! whatever its type (so a parameter may be a list of buckets); `${name}` inside a longer
//! string, or in a map key (a metric's name), is replaced by the value's text (strings, numbers and booleans only). `$${` stands
//! for a literal `${`. Every `${...}` must name a declared parameter.
//!
//! Owns: the catalogue, parsing preset files, substitution, and turning the result into
//! stage configs with key-path errors. It must not build or run stages: the `preset` stage
//! does that with what this returns.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::stages::StageConfig;

/// The embedded presets, by the name a scrape config uses.
const CATALOGUE: &[(&str, &str)] = &[
    (
        "python_traceback",
        include_str!("../../pipelines/python_traceback.yaml"),
    ),
    (
        "nginx_access",
        include_str!("../../pipelines/nginx_access.yaml"),
    ),
    (
        "nginx_error",
        include_str!("../../pipelines/nginx_error.yaml"),
    ),
    ("json_app", include_str!("../../pipelines/json_app.yaml")),
    ("auth", include_str!("../../pipelines/auth.yaml")),
];

/// One preset parameter as the file declares it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterDecl {
    pub default: Value,
    #[serde(default)]
    pub description: String,
}

/// A parsed preset file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetFile {
    pub description: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterDecl>,
    pub stages: Vec<Value>,
}

/// Names of the built-in presets, sorted.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&str> = CATALOGUE.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names
}

/// The YAML text of a built-in preset.
pub fn source(name: &str) -> Option<&'static str> {
    CATALOGUE.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// A preset error: the key inside the `preset` block (or inside the preset file's stages)
/// and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetError {
    pub key: String,
    pub message: String,
}

impl PresetError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The stage configs of built-in preset `name` with `given` parameters.
pub fn expand(
    name: &str,
    given: &BTreeMap<String, Value>,
) -> Result<Vec<StageConfig>, PresetError> {
    let Some(text) = source(name) else {
        return Err(PresetError::new(
            "name",
            format!(
                "expected the name of a built-in preset ({}), got {name:?}",
                names().join(", ")
            ),
        ));
    };
    expand_text(name, text, given)
}

/// Like [`expand`], for preset text from anywhere (tests, `pipelines/` files on disk).
pub fn expand_text(
    name: &str,
    text: &str,
    given: &BTreeMap<String, Value>,
) -> Result<Vec<StageConfig>, PresetError> {
    let file = parse_file(text).map_err(|e| {
        PresetError::new("name", format!("built-in preset {name} is not valid: {e}"))
    })?;
    for key in given.keys() {
        if !file.parameters.contains_key(key) {
            let known: Vec<&str> = file.parameters.keys().map(String::as_str).collect();
            return Err(PresetError::new(
                format!("parameters.{key}"),
                format!(
                    "preset {name} has no parameter {key:?}; expected one of: {}",
                    known.join(", ")
                ),
            ));
        }
    }
    let values: BTreeMap<&str, &Value> = file
        .parameters
        .iter()
        .map(|(k, decl)| (k.as_str(), given.get(k).unwrap_or(&decl.default)))
        .collect();
    let mut stages = Vec::with_capacity(file.stages.len());
    for (i, stage) in file.stages.iter().enumerate() {
        let at = format!("stages[{i}]");
        let substituted = substitute(stage, &values).map_err(|message| {
            PresetError::new(at.clone(), format!("in preset {name}: {message}"))
        })?;
        if substituted.as_object().is_none_or(|m| m.len() != 1) {
            return Err(PresetError::new(
                at,
                format!("in preset {name}: expected a map naming exactly one stage"),
            ));
        }
        let config: StageConfig = serde_path_to_error::deserialize(&substituted).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." {
                at.clone()
            } else {
                format!("{at}.{path}")
            };
            PresetError::new(key, format!("in preset {name}: {}", e.inner()))
        })?;
        stages.push(config);
    }
    Ok(stages)
}

/// Parses a preset file (YAML) through JSON values, as the config loader does.
pub fn parse_file(text: &str) -> Result<PresetFile, String> {
    let value: Value = crate::pipeline::go::yaml::from_str(text).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(&value).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

fn substitute(value: &Value, params: &BTreeMap<&str, &Value>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => substitute_str(s, params)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| substitute(v, params))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                // Keys (metric names, label names) take parameters too, as text.
                let key = match substitute_str(k, params)? {
                    Value::String(key) => key,
                    _ => return Err(format!("key {k:?} must stay text after substitution")),
                };
                out.insert(key, substitute(v, params)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn substitute_str(s: &str, params: &BTreeMap<&str, &Value>) -> Result<Value, String> {
    if !s.contains("${") {
        return Ok(Value::String(s.to_string()));
    }
    if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
        && !name.contains(['$', '{', '}'])
    {
        return lookup(name, params).cloned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            // `$${` is a literal `${`.
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed ${{ in {s:?}"));
        };
        let name = &after[..end];
        match lookup(name, params)? {
            Value::String(v) => out.push_str(v),
            v @ (Value::Number(_) | Value::Bool(_)) => out.push_str(&v.to_string()),
            _ => {
                return Err(format!(
                    "parameter {name} is a list or map, so it can only stand alone as \"${{{name}}}\""
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn lookup<'a>(name: &str, params: &BTreeMap<&str, &'a Value>) -> Result<&'a Value, String> {
    params
        .get(name)
        .copied()
        .ok_or_else(|| format!("${{{name}}} names no declared parameter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
description: test preset
parameters:
  prefix:
    default: demo_
  buckets:
    default: [0.1, 1]
  source:
    default: level
stages:
  - regex:
      expression: '^(?P<level>\w+) costs $${dollars}'
  - labels:
      level: "${source}"
  - metrics:
      "${prefix}lines_total":
        type: Counter
        description: lines
        config:
          action: inc
  - metrics:
      "${prefix}seconds":
        type: Histogram
        description: seconds
        source: took
        config:
          buckets: "${buckets}"
"#;

    fn params(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn defaults_fill_parameters_and_dollar_dollar_is_literal() {
        let stages = expand_text("sample", SAMPLE, &BTreeMap::new()).unwrap();
        let yaml = serde_json::to_string(&stages).unwrap();
        assert!(yaml.contains(r#"costs ${dollars}"#), "{yaml}");
        assert!(yaml.contains("demo_lines_total"), "{yaml}");
        assert!(yaml.contains(r#""buckets":[0.1,1.0]"#), "{yaml}");
    }

    #[test]
    fn given_parameters_replace_defaults_whole_or_inside_strings() {
        let given = params(&[
            ("prefix", Value::from("cvd_")),
            ("buckets", serde_json::json!([0.5, 2.5])),
        ]);
        let stages = expand_text("sample", SAMPLE, &given).unwrap();
        let yaml = serde_json::to_string(&stages).unwrap();
        assert!(yaml.contains("cvd_lines_total"), "{yaml}");
        assert!(!yaml.contains("demo_"), "{yaml}");
        assert!(yaml.contains(r#""buckets":[0.5,2.5]"#), "{yaml}");
    }

    #[test]
    fn unknown_parameter_is_refused_with_the_known_ones() {
        let err =
            expand_text("sample", SAMPLE, &params(&[("prefx", Value::from("x"))])).unwrap_err();
        assert_eq!(err.key, "parameters.prefx");
        assert!(
            err.message.contains("buckets, prefix, source"),
            "{}",
            err.message
        );
    }

    #[test]
    fn list_parameter_inside_a_longer_string_is_refused() {
        let text = "description: d\nparameters: {b: {default: [1]}}\nstages:\n  - labels: {x: \"a${b}\"}\n";
        let err = expand_text("t", text, &BTreeMap::new()).unwrap_err();
        assert_eq!(err.key, "stages[0]");
        assert!(
            err.message.contains("can only stand alone"),
            "{}",
            err.message
        );
    }

    #[test]
    fn undeclared_reference_is_refused() {
        let text = "description: d\nstages:\n  - labels: {x: \"${nope}\"}\n";
        let err = expand_text("t", text, &BTreeMap::new()).unwrap_err();
        assert!(
            err.message.contains("${nope} names no declared parameter"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_stage_inside_a_preset_is_located() {
        let text = "description: d\nstages:\n  - json: {expresions: {a: b}}\n";
        let err = expand_text("t", text, &BTreeMap::new()).unwrap_err();
        assert!(err.key.starts_with("stages[0].json"), "{}", err.key);
        assert!(err.message.contains("expresions"), "{}", err.message);
    }

    #[test]
    fn unknown_preset_lists_the_built_in_ones() {
        let err = expand("no_such_preset", &BTreeMap::new()).unwrap_err();
        assert_eq!(err.key, "name");
        assert!(err.message.contains("no_such_preset"), "{}", err.message);
    }

    #[test]
    fn every_built_in_preset_expands_with_its_defaults() {
        for name in names() {
            let stages = expand(name, &BTreeMap::new())
                .unwrap_or_else(|e| panic!("preset {name}: {}: {}", e.key, e.message));
            assert!(!stages.is_empty(), "preset {name} has no stages");
        }
    }
}
