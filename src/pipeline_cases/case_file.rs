//! The case file `tailward test` reads: which config and job to test, and cases of input
//! lines with the entries they must become.
//!
//! ```yaml
//! config: ./promtail.yaml   # optional, relative to this file
//! job: app_json             # optional when the config has one scrape config
//! read_time: 2024-01-01T00:00:00Z   # optional, for every case
//! cases:
//!   - name: error with correlation id
//!     labels: {job: app}    # optional, added to (and winning over) the job's static labels
//!     read_time: ...        # optional, this case only
//!     lines: ['{"level":"ERROR","correlation_id":"abc"}']
//!     expect:               # exactly this many entries, in order
//!       - labels: {job: app, level: ERROR}
//!         line: '...'
//!         timestamp: 2024-01-01T00:00:00Z
//!         structured_metadata: {correlation_id: abc}
//!         extracted: {level: ERROR, user: ~}
//!         tenant: team-a
//! ```
//!
//! Every field of an expected entry is optional and compared only when given; `expect: []`
//! says every line is dropped. `structured_metadata` is the entry's whole set; `extracted`
//! names only the keys it checks, in the extracted map as the last stage left it: a value
//! is compared with the value's text (`3`, `true`, objects and arrays as compact JSON, null
//! as `<nil>`), and `~` (null) says the key must be absent. A file named `<name>.tests.yaml` (or `.tests.yml`) beside a
//! config `<name>.yaml` (or `.yml`) tests that config without saying so, and is what
//! `-check-syntax` runs.
//!
//! Owns parsing and validating the file (unknown keys refused, label names and timestamps
//! checked, errors naming the file and the key). It must not run pipelines.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::model::labels::{LabelSet, is_valid_label_name};

/// When a case does not say, entries are read at this time, so timestamps of lines no stage
/// re-times are the same on every run.
pub const DEFAULT_READ_TIME: &str = "2000-01-01T00:00:00Z";

/// A case file, validated.
#[derive(Clone, Debug)]
pub struct CaseFile {
    pub path: PathBuf,
    /// The config it tests, resolved against the case file's folder; `None` when the file
    /// did not name one (the config beside it then applies).
    pub config: Option<PathBuf>,
    pub job: Option<String>,
    pub cases: Vec<Case>,
}

#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    /// Input labels added to the job's static labels.
    pub labels: Vec<(String, String)>,
    pub lines: Vec<String>,
    pub read_time: DateTime<FixedOffset>,
    pub expect: Vec<Expected>,
}

/// One entry the case must produce; `None` fields are not compared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expected {
    /// Every label but the reserved tenant label, which `tenant` covers.
    pub labels: Option<LabelSet>,
    pub line: Option<String>,
    pub timestamp: Option<DateTime<FixedOffset>>,
    pub structured_metadata: Option<BTreeMap<String, String>>,
    /// Extracted keys to check: a value, or `None` for "must be absent".
    pub extracted: Option<BTreeMap<String, Option<String>>>,
    pub tenant: Option<String>,
}

/// A case file that cannot be used: which file, and what is wrong where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseFileError {
    pub file: String,
    pub message: String,
}

impl fmt::Display for CaseFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

impl std::error::Error for CaseFileError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    config: Option<String>,
    #[serde(default)]
    job: Option<String>,
    #[serde(default)]
    read_time: Option<String>,
    cases: Vec<RawCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, ScalarString>,
    lines: Vec<ScalarString>,
    #[serde(default)]
    read_time: Option<String>,
    expect: Vec<RawExpected>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpected {
    #[serde(default)]
    labels: Option<BTreeMap<String, ScalarString>>,
    #[serde(default)]
    line: Option<ScalarString>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    structured_metadata: Option<BTreeMap<String, ScalarString>>,
    #[serde(default)]
    extracted: Option<BTreeMap<String, Option<ScalarString>>>,
    #[serde(default)]
    tenant: Option<ScalarString>,
}

/// A YAML scalar read as text, so `status: 200` and `line: 42` mean the string written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct ScalarString(String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = ScalarString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ScalarString, E> {
                Ok(ScalarString(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// Reads and validates the case file at `path`.
pub fn read(path: &Path) -> Result<CaseFile, CaseFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| CaseFileError {
        file: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, path)
}

/// Parses case-file `text`; `path` names the file in errors and anchors a relative `config`.
pub fn parse(text: &str, path: &Path) -> Result<CaseFile, CaseFileError> {
    let error = |message: String| CaseFileError {
        file: path.display().to_string(),
        message,
    };
    let raw: RawFile = crate::config::yaml::from_str(text).map_err(|e| error(e.to_string()))?;
    let file_read_time = match &raw.read_time {
        Some(t) => parse_time(t).map_err(|m| error(format!("read_time: {m}")))?,
        None => parse_time(DEFAULT_READ_TIME).map_err(error)?,
    };
    if raw.cases.is_empty() {
        return Err(error("cases: expected at least one case".into()));
    }
    let mut names = HashSet::new();
    let mut cases = Vec::with_capacity(raw.cases.len());
    for (i, rc) in raw.cases.into_iter().enumerate() {
        let at = |key: &str, message: String| error(format!("cases[{i}].{key}: {message}"));
        if rc.name.trim().is_empty() {
            return Err(at("name", "expected a name".into()));
        }
        if !names.insert(rc.name.clone()) {
            return Err(at("name", format!("another case is named {:?}", rc.name)));
        }
        if rc.lines.is_empty() {
            return Err(at("lines", "expected at least one input line".into()));
        }
        let labels = label_pairs(rc.labels).map_err(|m| at("labels", m))?;
        let read_time = match &rc.read_time {
            Some(t) => parse_time(t).map_err(|m| at("read_time", m))?,
            None => file_read_time,
        };
        let mut expect = Vec::with_capacity(rc.expect.len());
        for (e, re) in rc.expect.into_iter().enumerate() {
            let at = |key: &str, message: String| at(&format!("expect[{e}].{key}"), message);
            let labels = match re.labels {
                Some(map) => {
                    let pairs = label_pairs(map).map_err(|m| at("labels", m))?;
                    if pairs
                        .iter()
                        .any(|(k, _)| k == crate::model::labels::TENANT_LABEL)
                    {
                        return Err(at(
                            "labels",
                            "expect the tenant with `tenant:`, not as a label".into(),
                        ));
                    }
                    Some(LabelSet::from_pairs(pairs))
                }
                None => None,
            };
            let timestamp = match &re.timestamp {
                Some(t) => Some(parse_time(t).map_err(|m| at("timestamp", m))?),
                None => None,
            };
            expect.push(Expected {
                labels,
                line: re.line.map(|s| s.0),
                timestamp,
                structured_metadata: re
                    .structured_metadata
                    .map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect()),
                extracted: re
                    .extracted
                    .map(|m| m.into_iter().map(|(k, v)| (k, v.map(|v| v.0))).collect()),
                tenant: re.tenant.map(|s| s.0),
            });
        }
        cases.push(Case {
            name: rc.name,
            labels,
            lines: rc.lines.into_iter().map(|s| s.0).collect(),
            read_time,
            expect,
        });
    }
    let folder = path.parent().unwrap_or(Path::new(""));
    Ok(CaseFile {
        path: path.to_path_buf(),
        config: raw.config.map(|c| folder.join(c)),
        job: raw.job,
        cases,
    })
}

fn label_pairs(map: BTreeMap<String, ScalarString>) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::with_capacity(map.len());
    for (k, v) in map {
        if !is_valid_label_name(&k) {
            return Err(format!(
                "invalid label name {k:?}: expected [a-zA-Z_][a-zA-Z0-9_]*"
            ));
        }
        pairs.push((k, v.0));
    }
    Ok(pairs)
}

fn parse_time(text: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(text.trim()).map_err(|e| {
        format!("expected an RFC3339 time such as 2024-01-02T03:04:05Z, got {text:?}: {e}")
    })
}

/// The case file that tests `config` without naming it: `<name>.tests.yaml` or
/// `<name>.tests.yml` in the same folder, where `config` is `<name>.yaml`, `<name>.yml` or
/// `<name>`. `None` when neither exists.
pub fn beside_config(config: &Path) -> Option<PathBuf> {
    let stem = config_stem(config)?;
    ["tests.yaml", "tests.yml"]
        .iter()
        .map(|ext| config.with_file_name(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}

/// The config a case file tests when it does not name one: `<name>.yaml` or `<name>.yml`
/// beside a case file named `<name>.tests.yaml` or `<name>.tests.yml`.
pub fn config_beside(case_file: &Path) -> Option<PathBuf> {
    let file_name = case_file.file_name()?.to_str()?;
    let stem = file_name
        .strip_suffix(".tests.yaml")
        .or_else(|| file_name.strip_suffix(".tests.yml"))?;
    ["yaml", "yml"]
        .iter()
        .map(|ext| case_file.with_file_name(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}

fn config_stem(config: &Path) -> Option<&str> {
    let file_name = config.file_name()?.to_str()?;
    Some(
        file_name
            .strip_suffix(".yaml")
            .or_else(|| file_name.strip_suffix(".yml"))
            .unwrap_or(file_name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> CaseFile {
        parse(text, Path::new("/etc/tailward/promtail.tests.yaml")).unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse(text, Path::new("t.yaml")).unwrap_err().to_string()
    }

    #[test]
    fn full_case_file_is_read_with_every_field() {
        let f = parse_ok(
            r#"
config: ./promtail.yaml
job: app_json
cases:
  - name: error with correlation id
    labels: {job: app, code: 200}
    lines: ['{"level":"ERROR"}', 42]
    expect:
      - labels: {job: app, level: ERROR}
        line: 'x'
        timestamp: 2024-01-01T00:00:00Z
        structured_metadata: {correlation_id: abc}
        extracted: {level: ERROR, n: 3, gone: ~}
        tenant: team-a
      - {}
"#,
        );
        assert_eq!(
            f.config.as_deref(),
            Some(Path::new("/etc/tailward/./promtail.yaml"))
        );
        assert_eq!(f.job.as_deref(), Some("app_json"));
        let case = &f.cases[0];
        assert_eq!(case.name, "error with correlation id");
        assert_eq!(
            case.labels,
            vec![("code".into(), "200".into()), ("job".into(), "app".into())]
        );
        assert_eq!(case.lines, vec![r#"{"level":"ERROR"}"#, "42"]);
        assert_eq!(
            case.read_time,
            DateTime::parse_from_rfc3339(DEFAULT_READ_TIME).unwrap()
        );
        let e = &case.expect[0];
        assert_eq!(
            e.labels,
            Some(LabelSet::from_pairs([("job", "app"), ("level", "ERROR")]))
        );
        assert_eq!(e.line.as_deref(), Some("x"));
        assert_eq!(
            e.timestamp,
            Some(DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap())
        );
        assert_eq!(
            e.structured_metadata,
            Some(BTreeMap::from([("correlation_id".into(), "abc".into())]))
        );
        assert_eq!(
            e.extracted,
            Some(BTreeMap::from([
                ("gone".into(), None),
                ("level".into(), Some("ERROR".into())),
                ("n".into(), Some("3".into())),
            ]))
        );
        assert_eq!(e.tenant.as_deref(), Some("team-a"));
        assert_eq!(case.expect[1], Expected::default());
    }

    #[test]
    fn read_time_of_a_case_overrides_the_file_one() {
        let f = parse_ok(
            "read_time: 2024-02-03T04:05:06+01:00\ncases:\n  - {name: a, lines: [x], expect: []}\n  - {name: b, lines: [x], read_time: 2025-01-01T00:00:00Z, expect: []}\n",
        );
        assert_eq!(
            f.cases[0].read_time.to_rfc3339(),
            "2024-02-03T04:05:06+01:00"
        );
        assert_eq!(
            f.cases[1].read_time.to_rfc3339(),
            "2025-01-01T00:00:00+00:00"
        );
        assert_eq!(f.config, None);
    }

    #[test]
    fn unknown_key_is_refused_naming_it() {
        let err =
            parse_err("cases:\n  - name: a\n    lines: [x]\n    expect:\n      - lable: {a: b}\n");
        assert!(
            err.contains("cases[0].expect[0].lable: unknown key `lable`"),
            "{err}"
        );
        assert!(err.starts_with("t.yaml: "), "{err}");
    }

    #[test]
    fn bad_timestamp_names_case_and_key() {
        let err = parse_err(
            "cases:\n  - name: a\n    lines: [x]\n    expect:\n      - timestamp: yesterday\n",
        );
        assert!(
            err.contains("cases[0].expect[0].timestamp: expected an RFC3339 time"),
            "{err}"
        );
    }

    #[test]
    fn invalid_label_name_and_duplicate_case_names_are_refused() {
        let err = parse_err("cases:\n  - {name: a, labels: {a-b: x}, lines: [x], expect: []}\n");
        assert!(
            err.contains("cases[0].labels: invalid label name \"a-b\""),
            "{err}"
        );
        let err = parse_err(
            "cases:\n  - {name: a, lines: [x], expect: []}\n  - {name: a, lines: [y], expect: []}\n",
        );
        assert!(
            err.contains("cases[1].name: another case is named \"a\""),
            "{err}"
        );
    }

    #[test]
    fn case_without_lines_or_file_without_cases_is_refused() {
        let err = parse_err("cases:\n  - {name: a, lines: [], expect: []}\n");
        assert!(
            err.contains("cases[0].lines: expected at least one"),
            "{err}"
        );
        let err = parse_err("cases: []\n");
        assert!(err.contains("cases: expected at least one case"), "{err}");
    }

    #[test]
    fn tenant_label_must_be_expected_through_tenant() {
        let err = parse_err(
            "cases:\n  - name: a\n    lines: [x]\n    expect:\n      - labels: {__tenant_id__: t}\n",
        );
        assert!(err.contains("expect the tenant with `tenant:`"), "{err}");
    }

    #[test]
    fn null_label_value_is_refused() {
        let err = parse_err("cases:\n  - {name: a, labels: {job: ~}, lines: [x], expect: []}\n");
        assert!(
            err.contains("expected a string, number or boolean"),
            "{err}"
        );
    }

    #[test]
    fn sibling_names_pair_config_and_case_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("promtail.yml");
        std::fs::write(&config, "").unwrap();
        assert_eq!(beside_config(&config), None);
        let tests = dir.path().join("promtail.tests.yml");
        std::fs::write(&tests, "").unwrap();
        assert_eq!(beside_config(&config), Some(tests.clone()));
        assert_eq!(config_beside(&tests), Some(config));
        assert_eq!(config_beside(&dir.path().join("other.yaml")), None);
    }
}
