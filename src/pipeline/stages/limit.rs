//! `limit`: a token bucket of `rate` lines per second holding at most `burst` tokens (full
//! at start), as Go's `golang.org/x/time/rate` limiter that Promtail uses.
//!
//! - `drop: false` (default): an entry without a token makes the stage answer
//!   `Wait(time until the next token)`; the pipeline sleeps and asks again, so reading slows
//!   down and nothing is lost (Promtail blocks the same way).
//! - `drop: true`: it is dropped, counted as `ratelimit_drop_stage`.
//! - `by_label_name` (requires `drop: true`): one bucket per value of that label; entries
//!   without the label are not limited. Drops are also counted in
//!   `logentry_dropped_lines_by_label_total{label_name, label_value}`. Buckets are kept for
//!   the most recently seen `max_distinct_labels` values (default and minimum 10000, as in
//!   Promtail), in two generations: when the newer one fills up the older is forgotten.
//!
//! Deviation: when a generation of buckets is forgotten, Promtail resets the whole
//! by-label counter (the series of every limit stage); here only the series of the values
//! forgotten are removed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;
use serde::{Deserialize, Serialize};

use super::StageError;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict};

const DROP_REASON: &str = "ratelimit_drop_stage";
/// About 1 MiB of buckets; also Promtail's floor for `max_distinct_labels`.
const MIN_DISTINCT_LABELS: usize = 10_000;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Tokens added per second.
    #[serde(default)]
    pub rate: f64,
    #[serde(default)]
    pub burst: i64,
    #[serde(default)]
    pub drop: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_label_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_distinct_labels: Option<usize>,
}

/// Where the stage reads the time; tests drive it by hand.
pub type Clock = Box<dyn FnMut() -> Instant + Send>;

pub struct LimitStage {
    rate: f64,
    burst: f64,
    drop: bool,
    limiter: Limiter,
    clock: Clock,
}

enum Limiter {
    Single(TokenBucket),
    ByLabel {
        label_name: String,
        buckets: Generations,
        dropped: IntCounterVec,
    },
}

impl LimitStage {
    pub fn new(cfg: &LimitConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        Self::with_clock(cfg, ctx, Box::new(Instant::now))
    }

    pub fn with_clock(
        cfg: &LimitConfig,
        ctx: &BuildContext,
        clock: Clock,
    ) -> Result<Self, StageError> {
        if !(cfg.rate > 0.0 && cfg.rate.is_finite()) {
            return Err(StageError::new(
                "rate",
                format!(
                    "expected a positive number of lines per second, got {}",
                    cfg.rate
                ),
            ));
        }
        if cfg.burst <= 0 {
            return Err(StageError::new(
                "burst",
                format!("expected a positive number of lines, got {}", cfg.burst),
            ));
        }
        let limiter = match cfg.by_label_name.as_deref() {
            None | Some("") => Limiter::Single(TokenBucket::default()),
            Some(_) if !cfg.drop => {
                return Err(StageError::new(
                    "by_label_name",
                    "limiting by label requires drop: true",
                ));
            }
            Some(name) => {
                let max = match cfg.max_distinct_labels {
                    None => MIN_DISTINCT_LABELS,
                    Some(n) if n < MIN_DISTINCT_LABELS => {
                        tracing::warn!(
                            job = %ctx.job,
                            max_distinct_labels = n,
                            "limit stage: max_distinct_labels raised to the minimum of {MIN_DISTINCT_LABELS}"
                        );
                        MIN_DISTINCT_LABELS
                    }
                    Some(n) => n,
                };
                Limiter::ByLabel {
                    label_name: name.to_string(),
                    buckets: Generations::new(max),
                    dropped: ctx.metrics.pipeline.dropped_lines_by_label.clone(),
                }
            }
        };
        Ok(Self {
            rate: cfg.rate,
            burst: cfg.burst as f64,
            drop: cfg.drop,
            limiter,
            clock,
        })
    }
}

impl Stage for LimitStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let (rate, burst) = (self.rate, self.burst);
        match &mut self.limiter {
            Limiter::Single(bucket) => match bucket.take(rate, burst, (self.clock)()) {
                Ok(()) => Verdict::Keep,
                Err(_) if self.drop => Verdict::Drop {
                    reason: DROP_REASON.into(),
                },
                Err(wait) => Verdict::Wait(wait),
            },
            Limiter::ByLabel {
                label_name,
                buckets,
                dropped,
            } => {
                let Some(value) = entry.labels.get(label_name) else {
                    return Verdict::Keep;
                };
                let now = (self.clock)();
                let (taken, forgotten) =
                    buckets.with_bucket(value, |bucket| bucket.take(rate, burst, now));
                for gone in forgotten {
                    // The series may never have been created.
                    let _ = dropped.remove_label_values(&[label_name.as_str(), gone.as_str()]);
                }
                match taken {
                    Ok(()) => Verdict::Keep,
                    Err(_) => {
                        dropped
                            .with_label_values(&[label_name.as_str(), value])
                            .inc();
                        Verdict::Drop {
                            reason: DROP_REASON.into(),
                        }
                    }
                }
            }
        }
    }
}

#[derive(Default)]
struct TokenBucket {
    tokens: f64,
    /// `None` until first used: a new bucket is full.
    last: Option<Instant>,
}

impl TokenBucket {
    /// Takes a token, or says how long until one is there (taking nothing).
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let tokens = match self.last {
            None => burst,
            Some(last) => {
                (self.tokens + now.saturating_duration_since(last).as_secs_f64() * rate).min(burst)
            }
        };
        // Never move backwards: an earlier `now` adds nothing.
        self.last = Some(self.last.map_or(now, |last| last.max(now)));
        if tokens >= 1.0 {
            self.tokens = tokens - 1.0;
            Ok(())
        } else {
            self.tokens = tokens;
            let nanos = ((1.0 - tokens) / rate * 1e9).ceil();
            Err(Duration::from_nanos((nanos as u64).max(1)))
        }
    }
}

/// Buckets by label value for the most recently used values: a value seen in the older
/// generation moves to the newer one; when the newer one reaches `max`, the older one is
/// forgotten and the newer one becomes the older.
struct Generations {
    newer: HashMap<String, TokenBucket>,
    older: HashMap<String, TokenBucket>,
    max: usize,
}

impl Generations {
    fn new(max: usize) -> Self {
        Self {
            newer: HashMap::new(),
            older: HashMap::new(),
            max,
        }
    }

    /// Runs `f` on the bucket of `value` (new buckets are full) and returns its result with
    /// the values forgotten to make room (usually none).
    fn with_bucket<R>(
        &mut self,
        value: &str,
        f: impl FnOnce(&mut TokenBucket) -> R,
    ) -> (R, Vec<String>) {
        let mut forgotten = Vec::new();
        // Taken out and put back so the key string is allocated only for a new value.
        let (key, mut bucket) = match self.newer.remove_entry(value) {
            Some(found) => found,
            None => {
                let found = self
                    .older
                    .remove_entry(value)
                    .unwrap_or_else(|| (value.to_string(), TokenBucket::default()));
                if self.newer.len() + 1 >= self.max {
                    let full = std::mem::take(&mut self.newer);
                    forgotten.extend(std::mem::replace(&mut self.older, full).into_keys());
                }
                found
            }
        };
        let result = f(&mut bucket);
        self.newer.insert(key, bucket);
        (result, forgotten)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::metrics::Metrics;
    use crate::pipeline::stages::testing::entry;

    /// A clock moved by hand, in milliseconds from a fixed start.
    #[derive(Clone)]
    struct ManualClock {
        start: Instant,
        millis: Arc<AtomicU64>,
    }

    impl ManualClock {
        fn new() -> Self {
            Self {
                start: Instant::now(),
                millis: Arc::new(AtomicU64::new(0)),
            }
        }
        fn advance(&self, ms: u64) {
            self.millis.fetch_add(ms, Ordering::SeqCst);
        }
        fn clock(&self) -> Clock {
            let c = self.clone();
            Box::new(move || c.start + Duration::from_millis(c.millis.load(Ordering::SeqCst)))
        }
    }

    fn stage(yaml: &str, clock: &ManualClock, metrics: &Arc<Metrics>) -> LimitStage {
        let ctx = BuildContext::new("job", metrics.clone());
        LimitStage::with_clock(
            &crate::pipeline::go::yaml::from_str(yaml).unwrap(),
            &ctx,
            clock.clock(),
        )
        .unwrap()
    }

    #[test]
    fn burst_passes_then_drops_until_tokens_refill() {
        let clock = ManualClock::new();
        let mut s = stage(
            "{rate: 10, burst: 3, drop: true}",
            &clock,
            &Arc::new(Metrics::new()),
        );
        for _ in 0..3 {
            assert_eq!(s.process(&mut entry("x", &[])), Verdict::Keep);
        }
        assert_eq!(
            s.process(&mut entry("x", &[])),
            Verdict::Drop {
                reason: "ratelimit_drop_stage".into()
            }
        );
        clock.advance(100);
        assert_eq!(s.process(&mut entry("x", &[])), Verdict::Keep);
        assert!(matches!(
            s.process(&mut entry("x", &[])),
            Verdict::Drop { .. }
        ));
        // Tokens never exceed the burst, however long it stays idle.
        clock.advance(60_000);
        let kept = (0..10)
            .filter(|_| s.process(&mut entry("x", &[])) == Verdict::Keep)
            .count();
        assert_eq!(kept, 3);
    }

    #[test]
    fn without_drop_waits_until_the_next_token() {
        let clock = ManualClock::new();
        let mut s = stage("{rate: 4, burst: 1}", &clock, &Arc::new(Metrics::new()));
        let mut e = entry("x", &[]);
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(s.process(&mut e), Verdict::Wait(Duration::from_millis(250)));
        clock.advance(100);
        assert_eq!(s.process(&mut e), Verdict::Wait(Duration::from_millis(150)));
        clock.advance(150);
        assert_eq!(s.process(&mut e), Verdict::Keep);
    }

    #[test]
    fn fractional_rate_refills_slowly() {
        let clock = ManualClock::new();
        let mut s = stage("{rate: 0.5, burst: 1}", &clock, &Arc::new(Metrics::new()));
        assert_eq!(s.process(&mut entry("x", &[])), Verdict::Keep);
        assert_eq!(
            s.process(&mut entry("x", &[])),
            Verdict::Wait(Duration::from_secs(2))
        );
    }

    #[test]
    fn by_label_limits_each_value_separately_and_counts_drops() {
        let clock = ManualClock::new();
        let metrics = Arc::new(Metrics::new());
        let mut s = stage(
            "{rate: 1, burst: 1, drop: true, by_label_name: app}",
            &clock,
            &metrics,
        );
        assert_eq!(s.process(&mut entry("x", &[("app", "a")])), Verdict::Keep);
        assert_eq!(s.process(&mut entry("x", &[("app", "b")])), Verdict::Keep);
        assert!(matches!(
            s.process(&mut entry("x", &[("app", "a")])),
            Verdict::Drop { .. }
        ));
        // Entries without the label are not limited.
        for _ in 0..5 {
            assert_eq!(s.process(&mut entry("x", &[("other", "a")])), Verdict::Keep);
        }
        let by_label = &metrics.pipeline.dropped_lines_by_label;
        assert_eq!(by_label.with_label_values(&["app", "a"]).get(), 1);
        assert_eq!(by_label.with_label_values(&["app", "b"]).get(), 0);
    }

    #[test]
    fn two_by_label_stages_share_the_counter() {
        let clock = ManualClock::new();
        let metrics = Arc::new(Metrics::new());
        let yaml = "{rate: 1, burst: 1, drop: true, by_label_name: app}";
        let mut first = stage(yaml, &clock, &metrics);
        let mut second = stage(yaml, &clock, &metrics);
        for s in [&mut first, &mut second] {
            s.process(&mut entry("x", &[("app", "a")]));
            s.process(&mut entry("x", &[("app", "a")]));
        }
        assert_eq!(
            metrics
                .pipeline
                .dropped_lines_by_label
                .with_label_values(&["app", "a"])
                .get(),
            2
        );
    }

    #[test]
    fn generations_keep_recent_values_and_report_forgotten_ones() {
        let mut g = Generations::new(3);
        let mut forgotten_all = Vec::new();
        // "a" is used again after the first rotation, so it moves to the newer generation
        // and only "b" is forgotten at the second.
        for v in ["a", "b", "c", "a", "d"] {
            let ((), forgotten) = g.with_bucket(v, |_| ());
            forgotten_all.extend(forgotten);
        }
        assert_eq!(forgotten_all, vec!["b".to_string()]);
        assert_eq!(g.len(), 3);
    }

    #[test]
    fn forgotten_values_lose_their_series() {
        let clock = ManualClock::new();
        let metrics = Arc::new(Metrics::new());
        let mut s = stage(
            "{rate: 1, burst: 1, drop: true, by_label_name: app}",
            &clock,
            &metrics,
        );
        if let Limiter::ByLabel { buckets, .. } = &mut s.limiter {
            *buckets = Generations::new(2);
        }
        s.process(&mut entry("x", &[("app", "a")]));
        s.process(&mut entry("x", &[("app", "a")]));
        assert!(metrics.render().contains("label_value=\"a\""));
        for v in ["b", "c", "d", "e"] {
            s.process(&mut entry("x", &[("app", v)]));
        }
        assert!(!metrics.render().contains("label_value=\"a\""));
    }

    #[test]
    fn config_errors_name_their_key() {
        let metrics = Arc::new(Metrics::new());
        let ctx = BuildContext::new("job", metrics);
        let cases = [
            ("{burst: 1}", "rate"),
            ("{rate: -1, burst: 1}", "rate"),
            ("{rate: 1}", "burst"),
            ("{rate: 1, burst: 1, by_label_name: app}", "by_label_name"),
        ];
        for (yaml, key) in cases {
            let cfg: LimitConfig = crate::pipeline::go::yaml::from_str(yaml).unwrap();
            assert_eq!(
                LimitStage::new(&cfg, &ctx).err().unwrap().key,
                key,
                "{yaml}"
            );
        }
    }

    #[test]
    fn max_distinct_labels_is_raised_to_the_minimum() {
        let metrics = Arc::new(Metrics::new());
        let ctx = BuildContext::new("job", metrics);
        let cfg: LimitConfig = crate::pipeline::go::yaml::from_str(
            "{rate: 1, burst: 1, drop: true, by_label_name: app, max_distinct_labels: 5}",
        )
        .unwrap();
        let s = LimitStage::new(&cfg, &ctx).unwrap();
        let Limiter::ByLabel { buckets, .. } = &s.limiter else {
            panic!("expected a by-label limiter");
        };
        assert_eq!(buckets.max, MIN_DISTINCT_LABELS);
    }

    #[test]
    fn limiter_reads_the_injected_clock_not_wall_time() {
        // Guards the test clock itself: without advancing, no token comes back.
        let clock = ManualClock::new();
        let mut s = stage(
            "{rate: 1000, burst: 1, drop: true}",
            &clock,
            &Arc::new(Metrics::new()),
        );
        assert_eq!(s.process(&mut entry("x", &[])), Verdict::Keep);
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(
            s.process(&mut entry("x", &[])),
            Verdict::Drop { .. }
        ));
    }
}
