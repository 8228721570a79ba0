//! `metrics`: Prometheus counters, gauges and histograms fed from extracted values, served on
//! the agent's `/metrics` (never pushed to Loki).
//!
//! Each metric is `prefix` (default `promtail_custom_`) + its name, reads the extracted key
//! `source` (default: its name) and records into the series of the entry's current labels.
//! Series not updated for `max_idle_duration` (default 5m, at least 1s) disappear. It must
//! not change the entry. Series storage and sharing live in `metrics/families.rs`.
//!
//! As in Promtail: `type` and `action` are case-insensitive; a missing source skips the
//! metric; `value` keeps only entries whose source (as `getString` renders it) equals it;
//! numbers come from numbers, booleans (1/0), numeric strings or Go durations (in seconds);
//! a value that is not a number is skipped. Counters: `inc` or `add`; `match_all: true` counts
//! every entry whatever its source, and `count_entry_bytes: true` (with `match_all` and
//! `add`) adds the line's length in bytes. Gauges: `set`, `inc`, `dec`, `add`, `sub`.
//! Histograms: `buckets` (default Prometheus' `.005` to `10`).
//!
//! tailward extension: `max_series` (default 10000) bounds the series a metric keeps, so a
//! high-cardinality label cannot grow `/metrics` without end. An update that would create a
//! series past it is not recorded and is counted in
//! `tailward_metric_series_overflow_total{metric}` instead; series that expire when idle make
//! room again.
//!
//! Deviations: a negative or NaN `add` to a counter is skipped (Promtail's client panics or
//! poisons the counter); keys a type does not use (`buckets` on a Counter, `action` on a
//! Histogram, ...) and `match_all` with `add` but no `count_entry_bytes` (which counts nothing
//! in Promtail) are config errors; unsorted buckets are a config error, not a panic; names are
//! checked when the config loads. Stages (of any job) declaring the same metric share it;
//! declaring it again with another type, description or buckets is a config error (in
//! Promtail it breaks every scrape instead).

mod families;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::model::units::GoDuration;
use crate::model::units::parse_duration;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict, value_as_string};
use families::{Family, FamilyKind, FamilySpec, SeriesLimits};

const DEFAULT_PREFIX: &str = "promtail_custom_";
const DEFAULT_MAX_IDLE: Duration = Duration::from_secs(300);
const MIN_MAX_IDLE: Duration = Duration::from_secs(1);
const DEFAULT_MAX_SERIES: usize = 10_000;

/// `metrics:` — metric name to its definition.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct MetricsConfig {
    pub metrics: BTreeMap<String, MetricConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// `Counter`, `Gauge` or `Histogram` (any case).
    #[serde(rename = "type")]
    pub metric_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Empty means the default, as in Promtail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle_duration: Option<GoDuration>,
    /// tailward: series this metric keeps at most (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_series: Option<usize>,
    #[serde(default)]
    pub config: MetricSettings,
}

/// A metric's `config` block; which keys apply depends on the type.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_all: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_entry_bytes: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<f64>>,
}

pub struct MetricsStage {
    metrics: Vec<StageMetric>,
}

struct StageMetric {
    source: String,
    value_filter: Option<String>,
    update: Update,
    limits: SeriesLimits,
    family: Arc<Family>,
    /// `tailward_metric_series_overflow_total`; its series for this metric is created at the
    /// first overflow, so `/metrics` shows none for metrics that never overflowed.
    overflow: prometheus::IntCounterVec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Update {
    CounterInc,
    CounterAdd,
    /// `match_all` with `inc`: every entry.
    CountEntries,
    /// `match_all` with `count_entry_bytes`: every entry's line length.
    CountEntryBytes,
    GaugeSet,
    GaugeInc,
    GaugeDec,
    GaugeAdd,
    GaugeSub,
    Observe,
}

impl MetricsStage {
    pub fn new(cfg: &MetricsConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        if cfg.metrics.is_empty() {
            return Err(StageError::new("", "expected at least one metric"));
        }
        let metrics = cfg
            .metrics
            .iter()
            .map(|(name, m)| StageMetric::new(name, m, ctx))
            .collect::<Result<_, _>>()?;
        Ok(Self { metrics })
    }
}

impl StageMetric {
    fn new(name: &str, cfg: &MetricConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        let key = |k: &str| format!("{name}.{k}");
        let prefix = match cfg.prefix.as_deref() {
            None | Some("") => DEFAULT_PREFIX,
            Some(p) => p,
        };
        let full_name = format!("{prefix}{name}");
        if !is_valid_metric_name(&full_name) {
            let at = if is_valid_metric_name(prefix) {
                name.to_string()
            } else {
                key("prefix")
            };
            return Err(StageError::new(
                at,
                format!(
                    "{full_name:?} is not a valid Prometheus metric name: expected \
                     [a-zA-Z_:][a-zA-Z0-9_:]*"
                ),
            ));
        }
        let source = match cfg.source.as_deref() {
            None => name.to_string(),
            Some("") => {
                return Err(StageError::new(
                    key("source"),
                    "expected a non-empty extracted key",
                ));
            }
            Some(s) => s.to_string(),
        };
        let max_idle = match cfg.max_idle_duration {
            None => DEFAULT_MAX_IDLE,
            Some(GoDuration(d)) if d < MIN_MAX_IDLE => {
                return Err(StageError::new(
                    key("max_idle_duration"),
                    "expected at least 1s",
                ));
            }
            Some(GoDuration(d)) => d,
        };
        let max_series = match cfg.max_series {
            None => DEFAULT_MAX_SERIES,
            Some(0) => {
                return Err(StageError::new(key("max_series"), "expected at least 1"));
            }
            Some(n) => n,
        };
        let settings = &cfg.config;
        let (kind, update) = match cfg.metric_type.to_ascii_lowercase().as_str() {
            "counter" => (FamilyKind::Counter, counter_update(settings, &key)?),
            "gauge" => (FamilyKind::Gauge, gauge_update(settings, &key)?),
            "histogram" => (
                FamilyKind::Histogram {
                    buckets: histogram_buckets(settings, &key)?,
                },
                Update::Observe,
            ),
            other => {
                return Err(StageError::new(
                    key("type"),
                    format!("expected Counter, Gauge or Histogram, got {other:?}"),
                ));
            }
        };
        let family = Family::obtain(
            &ctx.metrics,
            FamilySpec {
                name: full_name,
                help: cfg.description.clone(),
                kind,
            },
        )
        .map_err(|message| StageError::new(name, message))?;
        let overflow = ctx.metrics.pipeline.metric_series_overflow.clone();
        Ok(Self {
            source,
            value_filter: settings.value.clone(),
            update,
            limits: SeriesLimits {
                max_idle,
                max_series,
            },
            family,
            overflow,
        })
    }

    fn record(&self, entry: &PipelineEntry, now: Instant) {
        if !self.try_record(entry, now) {
            self.overflow
                .with_label_values(&[&self.family.spec().name])
                .inc();
        }
    }

    /// False when the update was refused for the series limit.
    fn try_record(&self, entry: &PipelineEntry, now: Instant) -> bool {
        let family = &self.family;
        let labels = &entry.labels;
        match self.update {
            Update::CountEntries => return family.add(labels, 1.0, now, self.limits),
            Update::CountEntryBytes => {
                return family.add(labels, entry.line.len() as f64, now, self.limits);
            }
            _ => {}
        }
        let Some(value) = entry.extracted.get(&self.source) else {
            return true;
        };
        if let Some(expected) = &self.value_filter {
            match value_as_string(value) {
                Some(s) if s == expected.as_str() => {}
                _ => return true,
            }
        }
        let number = || {
            let n = value_as_float(value);
            if n.is_none() {
                tracing::debug!(
                    metric = %family.spec().name,
                    source = %self.source,
                    "metrics stage: extracted value is not a number, skipped"
                );
            }
            n
        };
        match self.update {
            Update::CounterInc | Update::GaugeInc => family.add(labels, 1.0, now, self.limits),
            Update::GaugeDec => family.add(labels, -1.0, now, self.limits),
            Update::CounterAdd => match number() {
                Some(n) if n >= 0.0 => family.add(labels, n, now, self.limits),
                Some(n) => {
                    tracing::debug!(
                        metric = %family.spec().name,
                        value = n,
                        "metrics stage: a counter cannot go down, value skipped"
                    );
                    true
                }
                None => true,
            },
            Update::GaugeSet => number().is_none_or(|n| family.set(labels, n, now, self.limits)),
            Update::GaugeAdd => number().is_none_or(|n| family.add(labels, n, now, self.limits)),
            Update::GaugeSub => number().is_none_or(|n| family.add(labels, -n, now, self.limits)),
            Update::Observe => number().is_none_or(|n| family.observe(labels, n, now, self.limits)),
            Update::CountEntries | Update::CountEntryBytes => true,
        }
    }
}

fn counter_update(s: &MetricSettings, key: &dyn Fn(&str) -> String) -> Result<Update, StageError> {
    if s.buckets.is_some() {
        return Err(not_for(key("config.buckets"), "Histogram"));
    }
    let add = match s.action.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("inc") => false,
        Some("add") => true,
        Some(other) => {
            return Err(StageError::new(
                key("config.action"),
                format!("expected inc or add, got {other:?}"),
            ));
        }
        None => {
            return Err(StageError::new(
                key("config.action"),
                "a counter needs an action: inc or add",
            ));
        }
    };
    let match_all = s.match_all == Some(true);
    let count_bytes = s.count_entry_bytes == Some(true);
    if match_all && s.value.is_some() {
        return Err(StageError::new(
            key("config.match_all"),
            "match_all: true cannot be combined with value; remove one of them",
        ));
    }
    if count_bytes && !match_all {
        return Err(StageError::new(
            key("config.count_entry_bytes"),
            "count_entry_bytes: true requires match_all: true",
        ));
    }
    if count_bytes && !add {
        return Err(StageError::new(
            key("config.count_entry_bytes"),
            "count_entry_bytes: true requires action: add",
        ));
    }
    Ok(match (match_all, count_bytes, add) {
        (true, true, _) => Update::CountEntryBytes,
        (true, false, false) => Update::CountEntries,
        (true, false, true) => {
            return Err(StageError::new(
                key("config.match_all"),
                "match_all with action add has no value to add: set count_entry_bytes: true \
                 or use action inc",
            ));
        }
        (false, _, false) => Update::CounterInc,
        (false, _, true) => Update::CounterAdd,
    })
}

fn gauge_update(s: &MetricSettings, key: &dyn Fn(&str) -> String) -> Result<Update, StageError> {
    if s.buckets.is_some() {
        return Err(not_for(key("config.buckets"), "Histogram"));
    }
    if s.match_all.is_some() {
        return Err(not_for(key("config.match_all"), "Counter"));
    }
    if s.count_entry_bytes.is_some() {
        return Err(not_for(key("config.count_entry_bytes"), "Counter"));
    }
    match s.action.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("set") => Ok(Update::GaugeSet),
        Some("inc") => Ok(Update::GaugeInc),
        Some("dec") => Ok(Update::GaugeDec),
        Some("add") => Ok(Update::GaugeAdd),
        Some("sub") => Ok(Update::GaugeSub),
        Some(other) => Err(StageError::new(
            key("config.action"),
            format!("expected set, inc, dec, add or sub, got {other:?}"),
        )),
        None => Err(StageError::new(
            key("config.action"),
            "a gauge needs an action: set, inc, dec, add or sub",
        )),
    }
}

/// The bucket bounds: Prometheus' defaults when none are given, a trailing `+Inf` dropped
/// (it is always implied), otherwise finite and strictly increasing.
fn histogram_buckets(
    s: &MetricSettings,
    key: &dyn Fn(&str) -> String,
) -> Result<Vec<f64>, StageError> {
    if s.action.is_some() {
        return Err(not_for(key("config.action"), "Counter and Gauge"));
    }
    if s.match_all.is_some() {
        return Err(not_for(key("config.match_all"), "Counter"));
    }
    if s.count_entry_bytes.is_some() {
        return Err(not_for(key("config.count_entry_bytes"), "Counter"));
    }
    let mut buckets = match &s.buckets {
        Some(b) if !b.is_empty() => b.clone(),
        _ => prometheus::DEFAULT_BUCKETS.to_vec(),
    };
    if buckets.last() == Some(&f64::INFINITY) {
        buckets.pop();
    }
    if buckets.iter().any(|b| !b.is_finite()) {
        return Err(StageError::new(
            key("config.buckets"),
            "expected finite bucket bounds (+Inf is implied)",
        ));
    }
    if buckets.windows(2).any(|w| w[0] >= w[1]) {
        return Err(StageError::new(
            key("config.buckets"),
            "expected strictly increasing bucket bounds",
        ));
    }
    Ok(buckets)
}

fn not_for(key: String, types: &str) -> StageError {
    StageError::new(key, format!("applies only to metrics of type {types}"))
}

/// Prometheus' metric name rule: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Promtail's `getFloat`: numbers, booleans as 1/0, strings holding a float or a Go duration
/// (as seconds, so `250ms` is 0.25). Anything else has no number.
fn value_as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => parse_go_float(s).or_else(|| parse_go_duration_seconds(s)),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Go's `strconv.ParseFloat`, which refuses out-of-range literals Rust rounds to infinity.
fn parse_go_float(s: &str) -> Option<f64> {
    let f: f64 = s.parse().ok()?;
    if f.is_infinite() && !s.to_ascii_lowercase().contains("inf") {
        return None;
    }
    Some(f)
}

/// Go's `time.ParseDuration` in seconds (signed; no surrounding spaces).
fn parse_go_duration_seconds(s: &str) -> Option<f64> {
    if s.trim() != s {
        return None;
    }
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if unsigned.starts_with(['+', '-']) {
        return None;
    }
    let seconds = parse_duration(unsigned).ok()?.as_secs_f64();
    Some(if negative { -seconds } else { seconds })
}

impl Stage for MetricsStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let now = Instant::now();
        for metric in &self.metrics {
            metric.record(entry, now);
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::pipeline::stages::testing::entry;

    fn ctx() -> BuildContext {
        BuildContext::new("job", Arc::new(Metrics::new()))
    }

    fn config(yaml: &str) -> MetricsConfig {
        crate::pipeline::go::yaml::from_str(yaml).unwrap()
    }

    fn build(yaml: &str, ctx: &BuildContext) -> Result<MetricsStage, StageError> {
        MetricsStage::new(&config(yaml), ctx)
    }

    fn with_extracted(line: &str, pairs: &[(&str, Value)]) -> PipelineEntry {
        let mut e = entry(line, &[("app", "web")]);
        for (k, v) in pairs {
            e.extracted.insert(k.to_string(), v.clone());
        }
        e
    }

    /// The value of one rendered sample line (name with labels), if present.
    fn sample(ctx: &BuildContext, series: &str) -> Option<f64> {
        ctx.metrics.render().lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
    }

    #[test]
    fn promtail_doc_example_counts_lines_and_bytes_and_matching_values() {
        let ctx = ctx();
        let mut stage = build(
            r#"
log_lines_total:
  type: Counter
  description: "total number of log lines"
  prefix: my_promtail_custom_
  max_idle_duration: 24h
  config:
    match_all: true
    action: inc
log_bytes_total:
  type: Counter
  description: "total bytes of log lines"
  prefix: my_promtail_custom_
  config:
    match_all: true
    count_entry_bytes: true
    action: add
panic_total:
  type: Counter
  description: "total count of panic"
  source: level
  config:
    value: panic
    action: inc
"#,
            &ctx,
        )
        .unwrap();
        for (line, level) in [("first", "info"), ("second!", "panic"), ("x", "panic")] {
            let mut e = with_extracted(line, &[("level", Value::from(level))]);
            assert_eq!(stage.process(&mut e), Verdict::Keep);
        }
        let mut no_level = entry("abc", &[("app", "web")]);
        stage.process(&mut no_level);
        assert_eq!(
            sample(&ctx, r#"my_promtail_custom_log_lines_total{app="web"}"#),
            Some(4.0)
        );
        assert_eq!(
            sample(&ctx, r#"my_promtail_custom_log_bytes_total{app="web"}"#),
            Some(5.0 + 7.0 + 1.0 + 3.0)
        );
        assert_eq!(
            sample(&ctx, r#"promtail_custom_panic_total{app="web"}"#),
            Some(2.0)
        );
    }

    #[test]
    fn counter_add_sums_numbers_numeric_strings_and_durations_and_skips_the_rest() {
        let ctx = ctx();
        let mut stage = build(
            "bytes_total:\n  type: counter\n  config:\n    action: ADD\n",
            &ctx,
        )
        .unwrap();
        for v in [
            Value::from(10),
            Value::from("2.5"),
            Value::from("250ms"),
            Value::Bool(true),
            Value::from("not a number"),
            Value::from(-4),
            Value::Null,
        ] {
            stage.process(&mut with_extracted("l", &[("bytes_total", v)]));
        }
        assert_eq!(
            sample(&ctx, r#"promtail_custom_bytes_total{app="web"}"#),
            Some(10.0 + 2.5 + 0.25 + 1.0)
        );
    }

    #[test]
    fn gauge_actions_set_inc_dec_add_sub() {
        let ctx = ctx();
        let mut stage = build(
            r#"
queue:
  type: Gauge
  config: {action: set}
up:
  type: Gauge
  source: queue
  config: {action: inc}
down:
  type: Gauge
  source: queue
  config: {action: dec}
plus:
  type: Gauge
  source: queue
  config: {action: add}
minus:
  type: Gauge
  source: queue
  config: {action: sub}
"#,
            &ctx,
        )
        .unwrap();
        for v in ["5", "3"] {
            stage.process(&mut with_extracted("l", &[("queue", Value::from(v))]));
        }
        let get = |n: &str| sample(&ctx, &format!("promtail_custom_{n}{{app=\"web\"}}"));
        assert_eq!(get("queue"), Some(3.0));
        assert_eq!(get("up"), Some(2.0));
        assert_eq!(get("down"), Some(-2.0));
        assert_eq!(get("plus"), Some(8.0));
        assert_eq!(get("minus"), Some(-8.0));
    }

    #[test]
    fn histogram_observes_numbers_into_configured_buckets() {
        let ctx = ctx();
        let mut stage = build(
            r#"
response_seconds:
  type: Histogram
  description: "response time"
  source: response_time
  config:
    buckets: [0.001, 0.0025, 0.005, 0.010, 0.025, 0.050]
"#,
            &ctx,
        )
        .unwrap();
        for v in ["0.002", "3ms", "0.04", "1", "fast"] {
            stage.process(&mut with_extracted(
                "l",
                &[("response_time", Value::from(v))],
            ));
        }
        let bucket = |le: &str| {
            sample(
                &ctx,
                &format!("promtail_custom_response_seconds_bucket{{app=\"web\",le=\"{le}\"}}"),
            )
        };
        assert_eq!(bucket("0.001"), Some(0.0));
        assert_eq!(bucket("0.0025"), Some(1.0));
        assert_eq!(bucket("0.005"), Some(2.0));
        assert_eq!(bucket("0.05"), Some(3.0));
        assert_eq!(bucket("+Inf"), Some(4.0));
        assert_eq!(
            sample(&ctx, r#"promtail_custom_response_seconds_count{app="web"}"#),
            Some(4.0)
        );
    }

    #[test]
    fn value_filter_compares_the_string_form_of_numbers() {
        let ctx = ctx();
        let mut stage = build(
            "status_500_total:\n  type: Counter\n  source: status\n  config:\n    value: \"500\"\n    action: inc\n",
            &ctx,
        )
        .unwrap();
        for v in [Value::from(500), Value::from("500"), Value::from(200)] {
            stage.process(&mut with_extracted("l", &[("status", v)]));
        }
        assert_eq!(
            sample(&ctx, r#"promtail_custom_status_500_total{app="web"}"#),
            Some(2.0)
        );
    }

    #[test]
    fn series_follow_the_entrys_current_labels() {
        let ctx = ctx();
        let mut stage = build(
            "lines_total:\n  type: Counter\n  config: {match_all: true, action: inc}\n",
            &ctx,
        )
        .unwrap();
        stage.process(&mut entry("a", &[("app", "web")]));
        stage.process(&mut entry("b", &[("app", "web"), ("level", "warn")]));
        assert_eq!(
            sample(&ctx, r#"promtail_custom_lines_total{app="web"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &ctx,
                r#"promtail_custom_lines_total{app="web",level="warn"}"#
            ),
            Some(1.0)
        );
    }

    #[test]
    fn two_jobs_declaring_the_same_metric_share_it() {
        let ctx = ctx();
        let yaml = "lines_total:\n  type: Counter\n  config: {match_all: true, action: inc}\n";
        let mut one = build(yaml, &ctx).unwrap();
        let mut two = build(yaml, &BuildContext::new("other", ctx.metrics.clone())).unwrap();
        one.process(&mut entry("a", &[("job", "one")]));
        two.process(&mut entry("a", &[("job", "two")]));
        two.process(&mut entry("a", &[("job", "two")]));
        assert_eq!(
            sample(&ctx, r#"promtail_custom_lines_total{job="one"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&ctx, r#"promtail_custom_lines_total{job="two"}"#),
            Some(2.0)
        );
        let err = build(
            "lines_total:\n  type: Gauge\n  config: {action: inc}\n",
            &BuildContext::new("third", ctx.metrics.clone()),
        )
        .err()
        .unwrap();
        assert_eq!(err.key, "lines_total");
        assert!(err.message.contains("already declared as a Counter"));
    }

    #[test]
    fn config_errors_name_the_key() {
        let cases = [
            ("m:\n  type: Summary\n", "m.type"),
            ("m:\n  type: Counter\n", "m.config.action"),
            (
                "m:\n  type: Counter\n  config: {action: set}\n",
                "m.config.action",
            ),
            (
                "m:\n  type: Counter\n  config: {action: inc, match_all: true, value: x}\n",
                "m.config.match_all",
            ),
            (
                "m:\n  type: Counter\n  config: {action: add, count_entry_bytes: true}\n",
                "m.config.count_entry_bytes",
            ),
            (
                "m:\n  type: Counter\n  config: {action: inc, match_all: true, count_entry_bytes: true}\n",
                "m.config.count_entry_bytes",
            ),
            (
                "m:\n  type: Counter\n  config: {action: add, match_all: true}\n",
                "m.config.match_all",
            ),
            (
                "m:\n  type: Gauge\n  config: {action: observe}\n",
                "m.config.action",
            ),
            (
                "m:\n  type: Histogram\n  config: {buckets: [1, 1]}\n",
                "m.config.buckets",
            ),
            (
                "m:\n  type: Histogram\n  config: {action: inc}\n",
                "m.config.action",
            ),
            (
                "m:\n  type: Counter\n  config: {action: inc, buckets: [1]}\n",
                "m.config.buckets",
            ),
            (
                "m:\n  type: Counter\n  max_idle_duration: 500ms\n  config: {action: inc}\n",
                "m.max_idle_duration",
            ),
            (
                "m:\n  type: Counter\n  source: \"\"\n  config: {action: inc}\n",
                "m.source",
            ),
            (
                "bad-name:\n  type: Counter\n  config: {action: inc}\n",
                "bad-name",
            ),
            (
                "m:\n  type: Counter\n  prefix: 1x_\n  config: {action: inc}\n",
                "m.prefix",
            ),
        ];
        for (yaml, key) in cases {
            let err = build(yaml, &ctx())
                .err()
                .unwrap_or_else(|| panic!("{yaml}"));
            assert_eq!(err.key, key, "{yaml}: {}", err.message);
        }
        assert_eq!(build("{}", &ctx()).err().unwrap().key, "");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(
            crate::pipeline::go::yaml::from_str::<MetricsConfig>(
                "m:\n  type: Counter\n  actoin: inc\n"
            )
            .is_err()
        );
        assert!(
            crate::pipeline::go::yaml::from_str::<MetricsConfig>(
                "m:\n  type: Counter\n  config: {actoin: inc}\n"
            )
            .is_err()
        );
    }

    #[test]
    fn histogram_buckets_default_and_drop_a_trailing_infinity() {
        let key = |k: &str| k.to_string();
        let none = MetricSettings::default();
        assert_eq!(
            histogram_buckets(&none, &key).unwrap(),
            prometheus::DEFAULT_BUCKETS.to_vec()
        );
        let with_inf = MetricSettings {
            buckets: Some(vec![1.0, 2.0, f64::INFINITY]),
            ..Default::default()
        };
        assert_eq!(histogram_buckets(&with_inf, &key).unwrap(), vec![1.0, 2.0]);
    }

    #[test]
    fn floats_parse_as_go_parses_them() {
        assert_eq!(value_as_float(&Value::from("1e3")), Some(1000.0));
        assert_eq!(value_as_float(&Value::from("+Inf")), Some(f64::INFINITY));
        assert_eq!(value_as_float(&Value::from("1e400")), None);
        assert_eq!(value_as_float(&Value::from("1h30m")), Some(5400.0));
        assert_eq!(value_as_float(&Value::from("-1.5s")), Some(-1.5));
        assert_eq!(value_as_float(&Value::from(" 5s")), None);
        assert_eq!(value_as_float(&Value::Bool(false)), Some(0.0));
        assert_eq!(value_as_float(&serde_json::json!([1])), None);
    }

    #[test]
    fn max_series_refuses_new_series_past_the_limit_and_counts_them() {
        let ctx = ctx();
        let mut stage = build(
            "by_user_total:\n  type: Counter\n  max_series: 2\n  config: {match_all: true, action: inc}\n",
            &ctx,
        )
        .unwrap();
        for user in ["a", "b", "c", "a", "d"] {
            stage.process(&mut entry("l", &[("user", user)]));
        }
        assert_eq!(
            sample(&ctx, r#"promtail_custom_by_user_total{user="a"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&ctx, r#"promtail_custom_by_user_total{user="b"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&ctx, r#"promtail_custom_by_user_total{user="c"}"#),
            None
        );
        assert_eq!(
            sample(
                &ctx,
                r#"tailward_metric_series_overflow_total{metric="promtail_custom_by_user_total"}"#
            ),
            Some(2.0)
        );
        let err = build(
            "m:\n  type: Counter\n  max_series: 0\n  config: {action: inc}\n",
            &ctx,
        )
        .err()
        .unwrap();
        assert_eq!(err.key, "m.max_series");
    }

    #[test]
    fn stage_leaves_the_entry_unchanged() {
        let ctx = ctx();
        let mut stage = build(
            "lines_total:\n  type: Counter\n  config: {match_all: true, action: inc}\n",
            &ctx,
        )
        .unwrap();
        let mut e = with_extracted("line", &[("k", Value::from("v"))]);
        let before = (
            e.labels.clone(),
            e.line.clone(),
            e.timestamp,
            e.extracted.len(),
        );
        stage.process(&mut e);
        assert_eq!(
            (
                e.labels.clone(),
                e.line.clone(),
                e.timestamp,
                e.extracted.len()
            ),
            before
        );
    }
}
