//! The series the `metrics` stage records: one family per metric name per agent, shared by
//! every `metrics` stage (of any job) that declares the name, served on the agent's registry.
//!
//! Owns series storage keyed by label set, idle expiry, registration on the agent's registry
//! and the sharing of a family between stages. It must not know about stage config keys or
//! extracted values: the stage decides what to record, this module only keeps it.
//!
//! A series' labels are the entry's labels at the stage, so label names differ from series to
//! series, which the prometheus crate's `*Vec` types (fixed label names) cannot hold. Promtail
//! uses unchecked collectors of const-label metrics; here one collector per family renders
//! its series directly. Labels Prometheus refuses are left out of a series as Promtail does
//! (invalid names, reserved `__` names), and so is `le` on histograms (Promtail panics there).
//!
//! Sharing: in Promtail two jobs declaring the same metric both feed one exposed family, and
//! a conflict (other type or description, or the same series from both) only shows up as a
//! failing scrape. Here stages declaring the same name with the same type, description and
//! buckets share one family (so even identical series add up instead of clashing), and a
//! conflicting declaration is a config error. The prometheus registry cannot hand back a
//! registered collector, so a process-wide table maps each agent's [`Metrics`] to its families;
//! it is keyed per agent, so several agents in one process stay apart.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use prometheus::Registry;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

use crate::metrics::Metrics;
use crate::model::labels::{LabelSet, is_valid_label_name};

/// Series idle past their limit are also dropped when a new series arrives at most this
/// often, so memory stays bounded when nobody scrapes `/metrics`.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// The label a histogram's bucket samples use; a series cannot carry it as well.
const BUCKET_LABEL: &str = "le";

#[derive(Clone, Debug, PartialEq)]
pub enum FamilyKind {
    Counter,
    Gauge,
    /// Upper bounds, strictly increasing and finite; the `+Inf` bucket is implied.
    Histogram {
        buckets: Vec<f64>,
    },
}

impl FamilyKind {
    fn type_name(&self) -> &'static str {
        match self {
            FamilyKind::Counter => "Counter",
            FamilyKind::Gauge => "Gauge",
            FamilyKind::Histogram { .. } => "Histogram",
        }
    }
}

/// How long a stage's series live when idle and how many series a stage lets its metric
/// hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesLimits {
    pub max_idle: Duration,
    /// A new series past this many is not created (the caller counts the refusal).
    pub max_series: usize,
}

impl From<Duration> for SeriesLimits {
    fn from(max_idle: Duration) -> Self {
        Self {
            max_idle,
            max_series: usize::MAX,
        }
    }
}

/// What a family is: stages declaring the same name must agree on all of it.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilySpec {
    /// The exposed name, prefix included (checked by the stage).
    pub name: String,
    pub help: String,
    pub kind: FamilyKind,
}

/// A family as a stage holds it. The last stage dropping it takes it off the registry.
pub struct Family {
    store: Arc<SeriesStore>,
    registry: Registry,
    desc: Desc,
}

struct SeriesStore {
    spec: FamilySpec,
    state: Mutex<StoreState>,
}

struct StoreState {
    series: HashMap<LabelSet, Series>,
    last_prune: Instant,
}

struct Series {
    value: SeriesValue,
    last_update: Instant,
    /// The idle limit of the stage that updated the series last.
    max_idle: Duration,
}

enum SeriesValue {
    Number(f64),
    Histogram {
        /// Observations per bucket (not cumulative); those above every bound count only in
        /// `count`.
        per_bucket: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

/// The families of one agent, by exposed name.
struct AgentFamilies {
    agent: Weak<Metrics>,
    by_name: HashMap<String, Weak<Family>>,
}

static FAMILIES: Mutex<Vec<AgentFamilies>> = Mutex::new(Vec::new());

/// A lock that survives a panic elsewhere: the guarded data stays consistent between
/// statements, so a poisoned lock is still safe to use.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Family {
    /// The family `spec.name` of the agent owning `metrics`: the one another stage already
    /// declared (when it declared the same thing), or a new one registered on the agent's
    /// registry. The error says what clashed.
    pub fn obtain(metrics: &Arc<Metrics>, spec: FamilySpec) -> Result<Arc<Family>, String> {
        // The registry needs a help string to check names; an empty description still
        // renders without `# HELP`, as Promtail renders it.
        let desc_help = if spec.help.is_empty() {
            spec.name.clone()
        } else {
            spec.help.clone()
        };
        let desc = Desc::new(spec.name.clone(), desc_help, Vec::new(), HashMap::new())
            .map_err(|e| e.to_string())?;

        let mut table = lock(&FAMILIES);
        table.retain(|a| a.agent.strong_count() > 0);
        let at = match table
            .iter()
            .position(|a| std::ptr::eq(a.agent.as_ptr(), Arc::as_ptr(metrics)))
        {
            Some(i) => i,
            None => {
                table.push(AgentFamilies {
                    agent: Arc::downgrade(metrics),
                    by_name: HashMap::new(),
                });
                table.len() - 1
            }
        };
        let known = table[at].by_name.get(&spec.name).cloned();
        let store = Arc::new(SeriesStore::new(spec));
        if let Some(weak) = known {
            if let Some(existing) = weak.upgrade() {
                if existing.store.spec == store.spec {
                    return Ok(existing);
                }
                let message = conflict_message(&existing.store.spec, &store.spec);
                // Dropping the last handle takes the table lock: release it first.
                drop(table);
                drop(existing);
                return Err(message);
            }
            // Its last stage is gone but may not have unregistered it yet (that waits for
            // this lock); take it off now so the name can be registered again.
            let _ = metrics.registry.unregister(Box::new(FamilyCollector {
                desc: desc.clone(),
                store: store.clone(),
            }));
        }
        metrics
            .registry
            .register(Box::new(FamilyCollector {
                desc: desc.clone(),
                store: store.clone(),
            }))
            .map_err(|e| {
                format!(
                    "`{}` clashes with a metric the agent already exposes ({e})",
                    store.spec.name
                )
            })?;
        let family = Arc::new(Family {
            store,
            registry: metrics.registry.clone(),
            desc,
        });
        table[at]
            .by_name
            .insert(family.store.spec.name.clone(), Arc::downgrade(&family));
        Ok(family)
    }

    pub fn spec(&self) -> &FamilySpec {
        &self.store.spec
    }

    /// Adds `amount` to the counter or gauge series of `labels` (created at 0). False when
    /// the series did not exist and the family is at its series limit.
    pub fn add(
        &self,
        labels: &LabelSet,
        amount: f64,
        now: Instant,
        limits: impl Into<SeriesLimits>,
    ) -> bool {
        self.store.update(labels, now, limits.into(), |v| {
            if let SeriesValue::Number(n) = v {
                *n += amount;
            }
        })
    }

    /// Sets the gauge series of `labels` to `value` (false as for [`Family::add`]).
    pub fn set(
        &self,
        labels: &LabelSet,
        value: f64,
        now: Instant,
        limits: impl Into<SeriesLimits>,
    ) -> bool {
        self.store.update(labels, now, limits.into(), |v| {
            if let SeriesValue::Number(n) = v {
                *n = value;
            }
        })
    }

    /// Records `value` in the histogram series of `labels` (false as for [`Family::add`]).
    pub fn observe(
        &self,
        labels: &LabelSet,
        value: f64,
        now: Instant,
        limits: impl Into<SeriesLimits>,
    ) -> bool {
        let FamilyKind::Histogram { buckets } = &self.store.spec.kind else {
            return true;
        };
        // The first bound the value does not exceed; NaN fits none, as in Go's client.
        let bucket = if value.is_nan() {
            buckets.len()
        } else {
            buckets.partition_point(|&bound| bound < value)
        };
        self.store.update(labels, now, limits.into(), |v| {
            if let SeriesValue::Histogram {
                per_bucket,
                sum,
                count,
            } = v
            {
                if let Some(n) = per_bucket.get_mut(bucket) {
                    *n += 1;
                }
                *sum += value;
                *count += 1;
            }
        })
    }
}

impl Drop for Family {
    fn drop(&mut self) {
        let mut table = lock(&FAMILIES);
        let me: *const Family = self;
        let mut registered_by_me = false;
        for agent in table.iter_mut() {
            let name = &self.store.spec.name;
            // A newer family of the same name may have taken over the registration already.
            if agent
                .by_name
                .get(name)
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), me))
            {
                agent.by_name.remove(name);
                registered_by_me = true;
            }
        }
        if registered_by_me {
            let _ = self.registry.unregister(Box::new(FamilyCollector {
                desc: self.desc.clone(),
                store: self.store.clone(),
            }));
        }
    }
}

fn conflict_message(existing: &FamilySpec, wanted: &FamilySpec) -> String {
    let what = if existing.kind.type_name() != wanted.kind.type_name() {
        format!("as a {}", existing.kind.type_name())
    } else if existing.help != wanted.help {
        format!("with description {:?}", existing.help)
    } else {
        "with other buckets".to_string()
    };
    format!(
        "`{}` is already declared {what} by another metrics stage; every stage declaring \
         a metric must give it the same type, description and buckets",
        existing.name
    )
}

impl SeriesStore {
    fn new(spec: FamilySpec) -> Self {
        Self {
            spec,
            state: Mutex::new(StoreState {
                series: HashMap::new(),
                last_prune: Instant::now(),
            }),
        }
    }

    fn update(
        &self,
        labels: &LabelSet,
        now: Instant,
        limits: SeriesLimits,
        change: impl FnOnce(&mut SeriesValue),
    ) -> bool {
        let max_idle = limits.max_idle;
        let key = self.series_labels(labels);
        let mut state = lock(&self.state);
        if let Some(series) = state.series.get_mut(key.as_ref()) {
            change(&mut series.value);
            series.last_update = now;
            series.max_idle = max_idle;
            return true;
        }
        if now.saturating_duration_since(state.last_prune) >= PRUNE_INTERVAL {
            state.prune(now);
        }
        if state.series.len() >= limits.max_series {
            // Idle series may have expired since the last prune: make room from them first,
            // at most once a second so a family at its limit does not scan on every line.
            if now.saturating_duration_since(state.last_prune) >= Duration::from_secs(1) {
                state.prune(now);
            }
            if state.series.len() >= limits.max_series {
                return false;
            }
        }
        let mut value = self.zero();
        change(&mut value);
        state.series.insert(
            key.into_owned(),
            Series {
                value,
                last_update: now,
                max_idle,
            },
        );
        true
    }

    fn zero(&self) -> SeriesValue {
        match &self.spec.kind {
            FamilyKind::Counter | FamilyKind::Gauge => SeriesValue::Number(0.0),
            FamilyKind::Histogram { buckets } => SeriesValue::Histogram {
                per_bucket: vec![0; buckets.len()],
                sum: 0.0,
                count: 0,
            },
        }
    }

    /// The labels a series of `labels` carries; borrowed (no allocation) when all are kept.
    fn series_labels<'a>(&self, labels: &'a LabelSet) -> Cow<'a, LabelSet> {
        let histogram = matches!(self.spec.kind, FamilyKind::Histogram { .. });
        let keep = |name: &str| {
            is_valid_label_name(name)
                && !name.starts_with("__")
                && !(histogram && name == BUCKET_LABEL)
        };
        if labels.iter().all(|(name, _)| keep(name)) {
            return Cow::Borrowed(labels);
        }
        let mut kept = labels.clone();
        kept.retain(|name, _| keep(name));
        Cow::Owned(kept)
    }

    /// The family as the registry renders it, after dropping series idle past their limit.
    fn snapshot(&self, now: Instant) -> MetricFamily {
        let mut state = lock(&self.state);
        state.prune(now);
        let mut series: Vec<(&LabelSet, &Series)> = state.series.iter().collect();
        series.sort_by(|a, b| a.0.cmp(b.0));
        let metrics = series
            .into_iter()
            .map(|(labels, s)| self.render_series(labels, &s.value))
            .collect();
        let mut family = MetricFamily::default();
        family.set_name(self.spec.name.clone());
        family.set_help(self.spec.help.clone());
        family.set_field_type(match self.spec.kind {
            FamilyKind::Counter => MetricType::COUNTER,
            FamilyKind::Gauge => MetricType::GAUGE,
            FamilyKind::Histogram { .. } => MetricType::HISTOGRAM,
        });
        family.set_metric(metrics);
        family
    }

    fn render_series(&self, labels: &LabelSet, value: &SeriesValue) -> proto::Metric {
        let pairs = labels
            .iter()
            .map(|(name, value)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name(name.to_string());
                pair.set_value(value.to_string());
                pair
            })
            .collect();
        let mut metric = proto::Metric::from_label(pairs);
        match (value, &self.spec.kind) {
            (SeriesValue::Number(n), FamilyKind::Gauge) => {
                let mut gauge = proto::Gauge::default();
                gauge.set_value(*n);
                metric.set_gauge(gauge);
            }
            (SeriesValue::Number(n), _) => {
                let mut counter = proto::Counter::default();
                counter.set_value(*n);
                metric.set_counter(counter);
            }
            (
                SeriesValue::Histogram {
                    per_bucket,
                    sum,
                    count,
                },
                kind,
            ) => {
                let bounds: &[f64] = match kind {
                    FamilyKind::Histogram { buckets } => buckets,
                    _ => &[],
                };
                let mut cumulative = 0;
                let buckets = bounds
                    .iter()
                    .zip(per_bucket)
                    .map(|(bound, n)| {
                        cumulative += n;
                        let mut bucket = proto::Bucket::default();
                        bucket.set_upper_bound(*bound);
                        bucket.set_cumulative_count(cumulative);
                        bucket
                    })
                    .collect();
                let mut histogram = proto::Histogram::default();
                histogram.set_bucket(buckets);
                histogram.set_sample_sum(*sum);
                histogram.set_sample_count(*count);
                metric.set_histogram(histogram);
            }
        }
        metric
    }
}

impl StoreState {
    fn prune(&mut self, now: Instant) {
        self.series
            .retain(|_, s| now.saturating_duration_since(s.last_update) < s.max_idle);
        self.last_prune = now;
    }
}

/// What the registry holds for a family.
struct FamilyCollector {
    desc: Desc,
    store: Arc<SeriesStore>,
}

impl Collector for FamilyCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        vec![self.store.snapshot(Instant::now())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(300);

    fn counter(name: &str, help: &str) -> FamilySpec {
        FamilySpec {
            name: name.into(),
            help: help.into(),
            kind: FamilyKind::Counter,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        LabelSet::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn series_with_different_label_names_render_in_one_family() {
        let metrics = Arc::new(Metrics::new());
        let family = Family::obtain(&metrics, counter("x_total", "Lines.")).unwrap();
        let now = Instant::now();
        family.add(&labels(&[("job", "a")]), 1.0, now, IDLE);
        family.add(&labels(&[("job", "a"), ("level", "warn")]), 2.5, now, IDLE);
        family.add(&labels(&[("job", "a")]), 1.0, now, IDLE);
        let text = metrics.render();
        assert!(text.contains("# HELP x_total Lines.\n# TYPE x_total counter\n"));
        assert!(text.contains("x_total{job=\"a\"} 2\n"), "{text}");
        assert!(
            text.contains("x_total{job=\"a\",level=\"warn\"} 2.5\n"),
            "{text}"
        );
    }

    #[test]
    fn reserved_and_invalid_label_names_are_left_out_of_series() {
        let metrics = Arc::new(Metrics::new());
        let family = Family::obtain(&metrics, counter("y_total", "h")).unwrap();
        let now = Instant::now();
        family.add(
            &labels(&[("__tenant_id__", "t1"), ("job", "a"), ("bad-name", "v")]),
            1.0,
            now,
            IDLE,
        );
        family.add(&labels(&[("job", "a")]), 1.0, now, IDLE);
        let text = metrics.render();
        assert!(text.contains("y_total{job=\"a\"} 2\n"), "{text}");
        assert!(!text.contains("tenant"), "{text}");
    }

    #[test]
    fn histogram_counts_cumulative_buckets_and_drops_le_label() {
        let metrics = Arc::new(Metrics::new());
        let family = Family::obtain(
            &metrics,
            FamilySpec {
                name: "h_seconds".into(),
                help: "h".into(),
                kind: FamilyKind::Histogram {
                    buckets: vec![1.0, 2.0],
                },
            },
        )
        .unwrap();
        let l = labels(&[("job", "a"), ("le", "x")]);
        let now = Instant::now();
        for v in [0.5, 1.0, 1.5, 7.0] {
            family.observe(&l, v, now, IDLE);
        }
        let text = metrics.render();
        assert!(
            text.contains("h_seconds_bucket{job=\"a\",le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("h_seconds_bucket{job=\"a\",le=\"2\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("h_seconds_bucket{job=\"a\",le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("h_seconds_sum{job=\"a\"} 10\n"), "{text}");
        assert!(text.contains("h_seconds_count{job=\"a\"} 4\n"), "{text}");
    }

    #[test]
    fn series_idle_past_their_limit_are_not_exposed() {
        let metrics = Arc::new(Metrics::new());
        let family = Family::obtain(&metrics, counter("idle_total", "h")).unwrap();
        let now = Instant::now();
        let long_ago = now.checked_sub(Duration::from_secs(10)).unwrap();
        family.add(
            &labels(&[("s", "old")]),
            1.0,
            long_ago,
            Duration::from_secs(5),
        );
        family.add(
            &labels(&[("s", "slow")]),
            1.0,
            long_ago,
            Duration::from_secs(60),
        );
        family.add(&labels(&[("s", "new")]), 1.0, now, Duration::from_secs(5));
        let text = metrics.render();
        assert!(!text.contains("s=\"old\""), "{text}");
        assert!(text.contains("idle_total{s=\"slow\"} 1\n"), "{text}");
        assert!(text.contains("idle_total{s=\"new\"} 1\n"), "{text}");
    }

    #[test]
    fn same_declaration_shares_one_family_and_its_series() {
        let metrics = Arc::new(Metrics::new());
        let a = Family::obtain(&metrics, counter("shared_total", "h")).unwrap();
        let b = Family::obtain(&metrics, counter("shared_total", "h")).unwrap();
        let l = labels(&[("job", "x")]);
        a.add(&l, 1.0, Instant::now(), IDLE);
        b.add(&l, 1.0, Instant::now(), IDLE);
        let text = metrics.render();
        assert_eq!(text.matches("# TYPE shared_total").count(), 1, "{text}");
        assert!(text.contains("shared_total{job=\"x\"} 2\n"), "{text}");
    }

    #[test]
    fn conflicting_declaration_is_refused_with_what_differs() {
        let metrics = Arc::new(Metrics::new());
        let _a = Family::obtain(&metrics, counter("c_total", "one")).unwrap();
        let err = Family::obtain(
            &metrics,
            FamilySpec {
                kind: FamilyKind::Gauge,
                ..counter("c_total", "one")
            },
        )
        .err()
        .unwrap();
        assert!(err.contains("already declared as a Counter"), "{err}");
        let err = Family::obtain(&metrics, counter("c_total", "two"))
            .err()
            .unwrap();
        assert!(err.contains("with description \"one\""), "{err}");
    }

    #[test]
    fn agents_do_not_share_families() {
        let one = Arc::new(Metrics::new());
        let two = Arc::new(Metrics::new());
        let a = Family::obtain(&one, counter("apart_total", "h")).unwrap();
        let _b = Family::obtain(
            &two,
            FamilySpec {
                kind: FamilyKind::Gauge,
                ..counter("apart_total", "h")
            },
        )
        .unwrap();
        a.add(&labels(&[("j", "1")]), 1.0, Instant::now(), IDLE);
        assert!(one.render().contains("apart_total{j=\"1\"} 1"));
        assert!(!two.render().contains("apart_total{j=\"1\"}"));
    }

    #[test]
    fn last_stage_dropping_a_family_unregisters_it_so_it_can_be_declared_again() {
        let metrics = Arc::new(Metrics::new());
        let family = Family::obtain(&metrics, counter("again_total", "h")).unwrap();
        family.add(&labels(&[("j", "1")]), 1.0, Instant::now(), IDLE);
        drop(family);
        assert!(!metrics.render().contains("again_total"));
        let again = Family::obtain(&metrics, counter("again_total", "h")).unwrap();
        again.add(&labels(&[("j", "1")]), 1.0, Instant::now(), IDLE);
        assert!(metrics.render().contains("again_total{j=\"1\"} 1\n"));
    }

    #[test]
    fn name_of_an_agent_metric_is_refused() {
        let metrics = Arc::new(Metrics::new());
        let err = Family::obtain(&metrics, counter("logentry_dropped_lines_total", "h"))
            .err()
            .unwrap();
        assert!(
            err.contains("clashes with a metric the agent already exposes"),
            "{err}"
        );
    }
}
