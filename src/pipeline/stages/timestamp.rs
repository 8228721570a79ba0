//! `timestamp`: sets the entry's timestamp from an extracted value.
//!
//! Owns the stage's config, trying `format` then each of `fallback_formats`, and what happens
//! when none parses (`action_on_failure`): `fudge` (default) gives the entry the last good
//! timestamp of its label set plus 1ns, or keeps its timestamp when the label set has none
//! yet; `skip` keeps it. As in Promtail, a missing or non-string source value counts as a
//! failure too. Parsing itself lives in [`crate::pipeline::go::time`]; this stage must not know
//! about layouts.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::StageError;
use crate::model::labels::LabelSet;
use crate::pipeline::go::time::TimestampFormat;
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

/// How many label sets `fudge` remembers a last good timestamp for (Promtail's LRU size).
const LAST_KNOWN_CAPACITY: usize = 10_000;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    pub source: String,
    pub format: String,
    #[serde(default)]
    pub fallback_formats: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_on_failure: Option<String>,
}

pub struct TimestampStage {
    source: String,
    /// `format` first, then `fallback_formats` in order.
    formats: Vec<TimestampFormat>,
    location: Option<Tz>,
    /// Some format is a year-less layout, so each parse needs the current time.
    needs_now: bool,
    /// Present only with `action_on_failure: fudge`.
    last_known: Option<LastKnownTimestamps>,
    /// The last value parsed and its result: consecutive lines often carry the same
    /// timestamp text (second resolution), and parsing is deterministic unless a layout
    /// needs the current year. The text's buffer is reused.
    last_parsed: Option<(String, DateTime<FixedOffset>)>,
}

impl TimestampStage {
    pub fn new(cfg: &TimestampConfig) -> Result<Self, StageError> {
        if cfg.source.is_empty() {
            return Err(StageError::new(
                "source",
                "expected the extracted key that holds the timestamp",
            ));
        }
        if cfg.format.is_empty() {
            return Err(StageError::new(
                "format",
                "expected a timestamp format: a Go layout, a named format (RFC3339, ...) \
                 or Unix, UnixMs, UnixUs, UnixNs",
            ));
        }
        let mut formats = Vec::with_capacity(1 + cfg.fallback_formats.len());
        formats.push(TimestampFormat::new(&cfg.format).map_err(|e| StageError::new("format", e))?);
        for (i, fallback) in cfg.fallback_formats.iter().enumerate() {
            let format = TimestampFormat::new(fallback)
                .map_err(|e| StageError::new(format!("fallback_formats[{i}]"), e))?;
            formats.push(format);
        }
        let location = cfg.location.as_deref().map(parse_location).transpose()?;
        let fudge = match cfg.action_on_failure.as_deref() {
            None | Some("fudge") => true,
            Some("skip") => false,
            Some(other) => {
                return Err(StageError::new(
                    "action_on_failure",
                    format!("invalid action on failure {other:?}: expected fudge or skip"),
                ));
            }
        };
        Ok(Self {
            source: cfg.source.clone(),
            needs_now: formats.iter().any(TimestampFormat::needs_now),
            formats,
            location,
            last_known: fudge.then(|| LastKnownTimestamps::new(LAST_KNOWN_CAPACITY)),
            last_parsed: None,
        })
    }

    /// The first format that parses `value`; Promtail reports the primary format's error.
    fn parse(&mut self, value: &str) -> Option<DateTime<FixedOffset>> {
        if self.needs_now {
            return self.parse_uncached(value, Utc::now());
        }
        if let Some((text, ts)) = &self.last_parsed
            && text == value
        {
            return Some(*ts);
        }
        // Only year-less layouts read the clock, so the others skip the syscall.
        let ts = self.parse_uncached(value, DateTime::UNIX_EPOCH)?;
        let (text, last) = self.last_parsed.get_or_insert_with(|| (String::new(), ts));
        text.clear();
        text.push_str(value);
        *last = ts;
        Some(ts)
    }

    fn parse_uncached(&self, value: &str, now: DateTime<Utc>) -> Option<DateTime<FixedOffset>> {
        let mut first_error = None;
        for format in &self.formats {
            match format.parse(value, self.location, now) {
                Ok(ts) => return Some(ts),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(error) = first_error {
            tracing::debug!(%error, value, "timestamp stage: failed to parse time");
        }
        None
    }
}

/// Go's `time.LoadLocation` accepts `""` and `UTC` for UTC; `Local` (the host's zone) is
/// refused so that a config means the same on every host.
fn parse_location(name: &str) -> Result<Tz, StageError> {
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>().map_err(|_| {
        StageError::new(
            "location",
            format!("invalid location {name:?}: expected an IANA time zone such as Europe/Berlin"),
        )
    })
}

impl Stage for TimestampStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let parsed = match entry.extracted.get(&self.source) {
            None => {
                tracing::debug!(
                    source = %self.source,
                    "timestamp stage: extracted data did not contain a timestamp"
                );
                None
            }
            Some(value) => match value_as_string(value) {
                Some(text) => self.parse(&text),
                None => {
                    tracing::debug!(
                        source = %self.source,
                        "timestamp stage: failed to convert extracted time to string"
                    );
                    None
                }
            },
        };
        match (parsed, self.last_known.as_mut()) {
            (Some(ts), last_known) => {
                entry.timestamp = ts;
                if let Some(last_known) = last_known {
                    last_known.set(&entry.labels, ts);
                }
            }
            (None, Some(last_known)) => {
                // Fudging also stores the result, so consecutive failures stay ordered.
                if let Some(last) = last_known.get_mut(&entry.labels) {
                    *last += TimeDelta::nanoseconds(1);
                    entry.timestamp = *last;
                }
            }
            (None, None) => {}
        }
        Verdict::Keep
    }
}

/// Sentinel for "no slot" in the recency list.
const NO_SLOT: usize = usize::MAX;

/// Last good timestamp per label set, bounded: beyond `capacity` label sets the least
/// recently used one is forgotten. A doubly linked recency list threaded through a slot
/// vector keeps lookups and updates O(1) without allocating once a label set is known.
struct LastKnownTimestamps {
    capacity: usize,
    index: HashMap<LabelSet, usize>,
    /// Slot by the address of a label set seen before: lines of a stream share one set, so
    /// this finds the slot without hashing every label name and value. Only a hint: a hit
    /// counts only when the slot holds that very set, so stale entries are harmless.
    by_address: HashMap<usize, usize, BuildHasherDefault<AddressHasher>>,
    slots: Vec<Slot>,
    most_recent: usize,
    least_recent: usize,
}

struct Slot {
    labels: LabelSet,
    timestamp: DateTime<FixedOffset>,
    newer: usize,
    older: usize,
}

impl LastKnownTimestamps {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            index: HashMap::new(),
            by_address: HashMap::default(),
            slots: Vec::new(),
            most_recent: NO_SLOT,
            least_recent: NO_SLOT,
        }
    }

    /// The slot remembering `labels`, found by address when this very set was seen before.
    fn find(&mut self, labels: &LabelSet) -> Option<usize> {
        let address = labels.shared_address();
        if let Some(&slot) = self.by_address.get(&address)
            && self
                .slots
                .get(slot)
                .is_some_and(|s| s.labels.ptr_eq(labels))
        {
            return Some(slot);
        }
        let slot = *self.index.get(labels)?;
        // Holding this very set makes the next lookup of it a pointer comparison.
        self.slots[slot].labels = labels.clone();
        if self.by_address.len() >= 2 * self.capacity {
            self.by_address.clear();
        }
        self.by_address.insert(address, slot);
        Some(slot)
    }

    fn get_mut(&mut self, labels: &LabelSet) -> Option<&mut DateTime<FixedOffset>> {
        let slot = self.find(labels)?;
        self.mark_used(slot);
        Some(&mut self.slots[slot].timestamp)
    }

    fn set(&mut self, labels: &LabelSet, timestamp: DateTime<FixedOffset>) {
        if let Some(slot) = self.find(labels) {
            self.slots[slot].timestamp = timestamp;
            self.mark_used(slot);
            return;
        }
        let slot = if self.slots.len() < self.capacity {
            self.slots.push(Slot {
                labels: labels.clone(),
                timestamp,
                newer: NO_SLOT,
                older: NO_SLOT,
            });
            self.slots.len() - 1
        } else {
            let evicted = self.least_recent;
            self.unlink(evicted);
            let old = std::mem::replace(&mut self.slots[evicted].labels, labels.clone());
            self.index.remove(&old);
            self.slots[evicted].timestamp = timestamp;
            evicted
        };
        self.index.insert(labels.clone(), slot);
        self.push_most_recent(slot);
    }

    fn mark_used(&mut self, slot: usize) {
        if self.most_recent != slot {
            self.unlink(slot);
            self.push_most_recent(slot);
        }
    }

    fn unlink(&mut self, slot: usize) {
        let Slot { newer, older, .. } = self.slots[slot];
        match newer {
            NO_SLOT => self.most_recent = older,
            n => self.slots[n].older = older,
        }
        match older {
            NO_SLOT => self.least_recent = newer,
            o => self.slots[o].newer = newer,
        }
        self.slots[slot].newer = NO_SLOT;
        self.slots[slot].older = NO_SLOT;
    }

    fn push_most_recent(&mut self, slot: usize) {
        self.slots[slot].older = self.most_recent;
        self.slots[slot].newer = NO_SLOT;
        match self.most_recent {
            NO_SLOT => self.least_recent = slot,
            previous => self.slots[previous].newer = slot,
        }
        self.most_recent = slot;
    }
}

/// Hashes a label set's address: a multiply folded to 64 bits spreads the aligned pointer's
/// bits over both ends of the hash.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(self.0 ^ u64::from(*b));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        let product = u128::from(n ^ self.0) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::{entry, read_time};
    use chrono::Datelike;
    use serde_json::{Value, json};

    fn config(format: &str) -> TimestampConfig {
        TimestampConfig {
            source: "ts".into(),
            format: format.into(),
            ..TimestampConfig::default()
        }
    }

    fn stage(cfg: TimestampConfig) -> TimestampStage {
        TimestampStage::new(&cfg).unwrap()
    }

    fn at(rfc3339: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap()
    }

    /// Runs one entry with labels `labels` and `ts` set to `value` (absent for `None`).
    fn run(
        s: &mut TimestampStage,
        labels: &[(&str, &str)],
        value: Option<Value>,
    ) -> DateTime<FixedOffset> {
        let mut e = entry("line", labels);
        if let Some(v) = value {
            e.extracted.insert("ts".into(), v);
        }
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(e.line, "line");
        e.timestamp
    }

    fn error_key(cfg: TimestampConfig) -> String {
        match TimestampStage::new(&cfg) {
            Err(e) => e.key,
            Ok(_) => panic!("config accepted: {cfg:?}"),
        }
    }

    #[test]
    fn sets_timestamp_from_nginx_time_local() {
        let mut s = stage(config("02/Jan/2006:15:04:05 -0700"));
        let ts = run(&mut s, &[], Some(json!("07/Dec/2016:11:05:07 +0100")));
        assert_eq!(ts, at("2016-12-07T11:05:07+01:00"));
        assert_eq!(ts.offset().local_minus_utc(), 3600);
    }

    #[test]
    fn sets_timestamp_from_rfc3339nano() {
        let mut s = stage(config("RFC3339Nano"));
        let ts = run(&mut s, &[], Some(json!("2023-03-24T14:26:16.243Z")));
        assert_eq!(ts, at("2023-03-24T14:26:16.243Z"));
    }

    #[test]
    fn json_numbers_are_stringified_for_unix_formats() {
        let mut s = stage(config("Unix"));
        assert_eq!(
            run(&mut s, &[], Some(json!(1562708916))),
            at("2019-07-09T21:48:36Z")
        );
        assert_eq!(
            run(&mut s, &[], Some(json!(1562708916.25))),
            at("2019-07-09T21:48:36.25Z")
        );
        let mut s = stage(config("UnixMs"));
        assert_eq!(
            run(&mut s, &[], Some(json!(1562708916414u64))),
            at("2019-07-09T21:48:36.414Z")
        );
    }

    #[test]
    fn fallback_formats_are_tried_in_order() {
        let mut s = stage(TimestampConfig {
            fallback_formats: vec!["2006-01-02 15:04:05,000".into(), "RFC3339".into()],
            ..config("UnixMs")
        });
        assert_eq!(
            run(&mut s, &[], Some(json!("2012-11-01T22:08:41-04:00"))),
            at("2012-11-01T22:08:41-04:00")
        );
        assert_eq!(
            run(&mut s, &[], Some(json!("2024-01-15 10:30:45,123"))),
            at("2024-01-15T10:30:45.123Z")
        );
        assert_eq!(
            run(&mut s, &[], Some(json!("1562708916414"))),
            at("2019-07-09T21:48:36.414Z")
        );
    }

    #[test]
    fn location_applies_to_custom_layouts() {
        let mut s = stage(TimestampConfig {
            location: Some("America/New_York".into()),
            ..config("2006-01-02 15:04:05")
        });
        assert_eq!(
            run(&mut s, &[], Some(json!("2019-07-22 20:29:32"))),
            at("2019-07-22T20:29:32-04:00")
        );
    }

    #[test]
    fn location_does_not_apply_to_named_formats() {
        let mut s = stage(TimestampConfig {
            location: Some("America/New_York".into()),
            ..config("RFC1123")
        });
        assert_eq!(
            run(&mut s, &[], Some(json!("Mon, 15 Jan 2024 10:30:45 EST"))),
            at("2024-01-15T10:30:45Z")
        );
    }

    #[test]
    fn yearless_syslog_timestamp_gets_the_current_year() {
        let before = Utc::now();
        // The current month never triggers the New-Year rollover.
        let value = format!("{} 15 06:07:08", before.format("%b"));
        let mut s = stage(config("Jan _2 15:04:05"));
        let ts = run(&mut s, &[], Some(json!(value)));
        assert_eq!(
            (ts.year(), ts.month(), ts.day()),
            (before.year(), before.month(), 15)
        );
    }

    #[test]
    fn fudge_adds_a_nanosecond_per_failure_to_the_last_good_timestamp() {
        let mut s = stage(config("RFC3339Nano"));
        let labels = [("filename", "/1.log")];
        assert_eq!(
            run(&mut s, &labels, Some(json!("2019-10-01T01:02:03.4Z"))),
            at("2019-10-01T01:02:03.4Z")
        );
        // Missing source, then an unparsable value: both are failures.
        assert_eq!(
            run(&mut s, &labels, None),
            at("2019-10-01T01:02:03.400000001Z")
        );
        assert_eq!(
            run(&mut s, &labels, Some(json!("garbage"))),
            at("2019-10-01T01:02:03.400000002Z")
        );
        // A value without a string form (an object) is a failure too.
        assert_eq!(
            run(&mut s, &labels, Some(json!({"a": 1}))),
            at("2019-10-01T01:02:03.400000003Z")
        );
        // The next good timestamp replaces the fudged one.
        assert_eq!(
            run(&mut s, &labels, Some(json!("2019-10-01T01:02:05Z"))),
            at("2019-10-01T01:02:05Z")
        );
        assert_eq!(
            run(&mut s, &labels, None),
            at("2019-10-01T01:02:05.000000001Z")
        );
    }

    #[test]
    fn fudge_keeps_the_offset_of_the_last_good_timestamp() {
        let mut s = stage(config("RFC3339"));
        run(&mut s, &[], Some(json!("2024-01-15T10:30:45-07:00")));
        let fudged = run(&mut s, &[], None);
        assert_eq!(fudged, at("2024-01-15T10:30:45.000000001-07:00"));
        assert_eq!(fudged.offset().local_minus_utc(), -7 * 3600);
    }

    /// Repeating the last value reuses its result; every result equals a fresh stage's.
    #[test]
    fn repeated_values_give_what_a_fresh_parse_gives() {
        let values = [
            "27/Nov/2026:10:00:00 +0000",
            "27/Nov/2026:10:00:00 +0000",
            "27/Nov/2026:10:00:01 +0000",
            "27/Nov/2026:10:00:01 +0100",
            "not a time",
            "27/Nov/2026:10:00:01 +0100",
            "27/Nov/2026:10:00:01 +0100 ",
        ];
        let cfg = || TimestampConfig {
            action_on_failure: Some("skip".into()),
            ..config("02/Jan/2006:15:04:05 -0700")
        };
        let mut reused = stage(cfg());
        for value in values {
            let fresh = run(&mut stage(cfg()), &[], Some(json!(value)));
            assert_eq!(
                run(&mut reused, &[], Some(json!(value))),
                fresh,
                "{value:?}"
            );
        }
        assert_eq!(
            run(&mut reused, &[], Some(json!("27/Nov/2026:10:00:01 +0100"))),
            at("2026-11-27T10:00:01+01:00")
        );
    }

    #[test]
    fn fudge_is_tracked_per_label_set() {
        let mut s = stage(TimestampConfig {
            action_on_failure: Some("fudge".into()),
            ..config("RFC3339Nano")
        });
        let one = [("app", "m"), ("filename", "/1.log")];
        let two = [("app", "l"), ("filename", "/2.log")];
        run(&mut s, &one, Some(json!("2019-10-01T01:02:03.4Z")));
        run(&mut s, &two, Some(json!("2019-10-01T01:02:03.8Z")));
        assert_eq!(
            run(&mut s, &one, None),
            at("2019-10-01T01:02:03.400000001Z")
        );
        assert_eq!(
            run(&mut s, &two, None),
            at("2019-10-01T01:02:03.800000001Z")
        );
        assert_eq!(
            run(&mut s, &one, None),
            at("2019-10-01T01:02:03.400000002Z")
        );
    }

    #[test]
    fn fudge_without_history_keeps_the_read_time() {
        let mut s = stage(config("RFC3339Nano"));
        run(
            &mut s,
            &[("filename", "/1.log")],
            Some(json!("2019-10-01T01:02:03.4Z")),
        );
        assert_eq!(run(&mut s, &[("filename", "/2.log")], None), read_time());
    }

    #[test]
    fn skip_keeps_the_read_time() {
        let mut s = stage(TimestampConfig {
            action_on_failure: Some("skip".into()),
            ..config("RFC3339Nano")
        });
        assert_eq!(
            run(&mut s, &[], Some(json!("2019-10-01T01:02:03.4Z"))),
            at("2019-10-01T01:02:03.4Z")
        );
        assert_eq!(run(&mut s, &[], None), read_time());
        assert_eq!(run(&mut s, &[], Some(json!("garbage"))), read_time());
        assert!(s.last_known.is_none());
    }

    /// The address shortcut must agree with the content index: equal sets in separate
    /// allocations are one label set, and a set evicted and replaced is never found through
    /// a stale address.
    #[test]
    fn last_known_finds_sets_by_content_whatever_their_allocation() {
        let mut cache = LastKnownTimestamps::new(2);
        let set = |name: &str| LabelSet::from_pairs([("job", name)]);
        let a1 = set("a");
        let a2 = set("a");
        assert!(!a1.ptr_eq(&a2));
        cache.set(&a1, at("2024-01-01T00:00:01Z"));
        assert_eq!(
            cache.get_mut(&a2).copied(),
            Some(at("2024-01-01T00:00:01Z"))
        );
        cache.set(&a2, at("2024-01-01T00:00:02Z"));
        assert_eq!(
            cache.get_mut(&a1).copied(),
            Some(at("2024-01-01T00:00:02Z"))
        );
        assert_eq!(
            cache.get_mut(&a1).copied(),
            Some(at("2024-01-01T00:00:02Z"))
        );
        let (b, c) = (set("b"), set("c"));
        cache.set(&b, at("2024-01-01T00:00:03Z"));
        cache.set(&c, at("2024-01-01T00:00:04Z"));
        // `a` was least recently used and is gone, by either allocation.
        assert!(cache.get_mut(&a1).is_none());
        assert!(cache.get_mut(&a2).is_none());
        assert_eq!(cache.get_mut(&b).copied(), Some(at("2024-01-01T00:00:03Z")));
        assert_eq!(cache.get_mut(&c).copied(), Some(at("2024-01-01T00:00:04Z")));
    }

    #[test]
    fn last_known_forgets_the_least_recently_used_label_set() {
        let mut cache = LastKnownTimestamps::new(2);
        let set = |name: &str| LabelSet::from_pairs([("job", name)]);
        let (a, b, c) = (set("a"), set("b"), set("c"));
        cache.set(&a, at("2024-01-01T00:00:01Z"));
        cache.set(&b, at("2024-01-01T00:00:02Z"));
        // Using `a` makes `b` the least recently used.
        assert_eq!(cache.get_mut(&a).copied(), Some(at("2024-01-01T00:00:01Z")));
        cache.set(&c, at("2024-01-01T00:00:03Z"));
        assert!(cache.get_mut(&b).is_none());
        assert_eq!(cache.get_mut(&a).copied(), Some(at("2024-01-01T00:00:01Z")));
        assert_eq!(cache.get_mut(&c).copied(), Some(at("2024-01-01T00:00:03Z")));
        assert_eq!(cache.index.len(), 2);
        assert_eq!(cache.slots.len(), 2);
        // Updating an existing set neither grows nor evicts.
        cache.set(&a, at("2024-01-01T00:00:09Z"));
        assert_eq!(cache.get_mut(&a).copied(), Some(at("2024-01-01T00:00:09Z")));
        assert!(cache.get_mut(&c).is_some());
    }

    #[test]
    fn stage_remembers_at_most_ten_thousand_label_sets() {
        let mut s = stage(config("UnixNs"));
        for i in 0..=LAST_KNOWN_CAPACITY {
            let name = i.to_string();
            run(&mut s, &[("n", name.as_str())], Some(json!(i.to_string())));
        }
        let last_known = s.last_known.as_ref().unwrap();
        assert_eq!(last_known.index.len(), LAST_KNOWN_CAPACITY);
        // The first label set was the least recently used and is gone.
        assert_eq!(run(&mut s, &[("n", "0")], None), read_time());
        assert_eq!(
            run(&mut s, &[("n", "1")], None),
            DateTime::from_timestamp_nanos(2).fixed_offset()
        );
    }

    #[test]
    fn config_requires_source_and_format() {
        assert_eq!(error_key(config("RFC3339").with_source("")), "source");
        assert_eq!(error_key(config("")), "format");
    }

    #[test]
    fn config_refuses_bad_formats_naming_the_key() {
        assert_eq!(error_key(config("rfc3339")), "format");
        assert_eq!(
            error_key(TimestampConfig {
                fallback_formats: vec!["RFC3339".into(), "epoch".into()],
                ..config("UnixMs")
            }),
            "fallback_formats[1]"
        );
    }

    #[test]
    fn config_refuses_unknown_location() {
        let cfg = TimestampConfig {
            location: Some("America/Canada".into()),
            ..config("2006-01-02")
        };
        let err = TimestampStage::new(&cfg).err().unwrap();
        assert_eq!(err.key, "location");
        assert!(err.message.contains("America/Canada"), "{}", err.message);
    }

    #[test]
    fn empty_location_means_utc() {
        let mut s = stage(TimestampConfig {
            location: Some(String::new()),
            ..config("2006-01-02 15:04:05")
        });
        assert_eq!(
            run(&mut s, &[], Some(json!("2019-07-22 20:29:32"))),
            at("2019-07-22T20:29:32Z")
        );
    }

    #[test]
    fn config_refuses_unknown_action_on_failure() {
        let cfg = TimestampConfig {
            action_on_failure: Some("drop".into()),
            ..config("RFC3339")
        };
        let err = TimestampStage::new(&cfg).err().unwrap();
        assert_eq!(err.key, "action_on_failure");
        assert!(err.message.contains("fudge or skip"), "{}", err.message);
    }

    #[test]
    fn config_refuses_unknown_keys_and_round_trips() {
        let unknown = serde_json::from_value::<TimestampConfig>(
            json!({"source": "ts", "format": "RFC3339", "fallback_format": ["Unix"]}),
        );
        assert!(unknown.unwrap_err().to_string().contains("fallback_format"));
        let cfg: TimestampConfig = serde_json::from_value(json!({
            "source": "ts", "format": "RFC3339", "location": "Europe/Berlin"
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&cfg).unwrap(),
            json!({"source": "ts", "format": "RFC3339", "fallback_formats": [], "location": "Europe/Berlin"})
        );
    }

    impl TimestampConfig {
        fn with_source(mut self, source: &str) -> Self {
            self.source = source.into();
            self
        }
    }
}
