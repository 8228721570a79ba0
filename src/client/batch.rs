//! The open batch set of one client: entries grouped by tenant, then by stream, as Promtail's
//! client batches them, plus the ack tokens that must be settled when the set is.
//!
//! Owns tenant resolution (`__tenant_id__`, else the configured tenant), external-label
//! merging, `max_line_size` and `max_streams`, batch byte accounting and the set's age. It must
//! not do I/O, encode, or count metrics: it reports what it did and the client task acts on it.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset};
use tokio::time::Instant;

use super::logproto::label_pair_len;
use super::recent::Recent;
use crate::model::ack::AckToken;
use crate::model::entry::Entry;
use crate::model::labels::{LabelSet, TENANT_LABEL};

/// Limits that shape batches; zero turns `max_streams` and `max_line_size` off.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchLimits {
    pub batch_size: usize,
    pub max_streams: usize,
    pub max_line_size: usize,
    pub truncate_long_lines: bool,
}

/// One entry as it will be sent; its stream labels live in [`Stream`].
#[derive(Clone, Debug)]
pub(crate) struct StreamEntry {
    pub timestamp: DateTime<FixedOffset>,
    pub line: String,
    pub structured_metadata: Vec<(String, String)>,
}

#[derive(Debug)]
pub(crate) struct Stream {
    /// Labels as sent: entry labels without `__tenant_id__`, plus missing external labels.
    pub labels: LabelSet,
    /// `labels` rendered once, in the `{a="1", b="2"}` form the protobuf push carries.
    pub rendered: String,
    /// In arrival order.
    pub entries: Vec<StreamEntry>,
}

/// The batch of one tenant inside the open set.
#[derive(Debug)]
pub(crate) struct TenantBatch {
    pub tenant: String,
    /// In order of each stream's first entry.
    pub streams: Vec<Stream>,
    /// Keyed by the entry's labels before external labels are merged, so an entry of a known
    /// stream needs neither a merge nor a rendering.
    index: HashMap<LabelSet, usize>,
    /// Streams by their labels as sent; kept only with external labels, where two entry label
    /// sets (one already holding an external label) can merge into the same stream.
    by_stream_labels: HashMap<LabelSet, usize>,
    /// Line bytes plus structured-metadata bytes, as Promtail measures `batchsize`.
    bytes: usize,
    entries: usize,
    has_structured_metadata: bool,
    /// Emptied entry lists of earlier rounds, so a busy stream does not regrow its list
    /// from nothing in every batch.
    spare_entry_lists: Vec<Vec<StreamEntry>>,
}

/// Streams remembered by label storage: a few sources, or a few values of the labels a
/// `labels` stage sets, each found by pointer comparisons.
const RECENT_STREAMS: usize = 16;

/// Entry lists kept for reuse per tenant batch; more streams than this start from empty lists.
const SPARE_ENTRY_LISTS: usize = 16;

impl TenantBatch {
    fn new(tenant: String) -> Self {
        Self {
            tenant,
            streams: Vec::new(),
            index: HashMap::new(),
            by_stream_labels: HashMap::new(),
            bytes: 0,
            entries: 0,
            has_structured_metadata: false,
            spare_entry_lists: Vec::new(),
        }
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    pub fn has_structured_metadata(&self) -> bool {
        self.has_structured_metadata
    }

    /// The batch cut in two halves of (nearly) equal entry counts, streams and order kept,
    /// for an endpoint that refused it as too large (413). `None` for a single entry.
    pub fn halves(&self) -> Option<(TenantBatch, TenantBatch)> {
        if self.entries < 2 {
            return None;
        }
        let mut first = TenantBatch::new(self.tenant.clone());
        let mut second = TenantBatch::new(self.tenant.clone());
        let mut left = self.entries / 2;
        for stream in &self.streams {
            let cut = stream.entries.len().min(left);
            left -= cut;
            let (a, b) = stream.entries.split_at(cut);
            for (half, part) in [(&mut first, a), (&mut second, b)] {
                if part.is_empty() {
                    continue;
                }
                half.entries += part.len();
                for e in part {
                    half.bytes += e.line.len()
                        + e.structured_metadata
                            .iter()
                            .map(|(k, v)| k.len() + v.len())
                            .sum::<usize>();
                    half.has_structured_metadata |= !e.structured_metadata.is_empty();
                }
                half.streams.push(Stream {
                    labels: stream.labels.clone(),
                    rendered: stream.rendered.clone(),
                    entries: part.to_vec(),
                });
            }
        }
        Some((first, second))
    }

    fn clear(&mut self) {
        for stream in self.streams.drain(..) {
            if self.spare_entry_lists.len() < SPARE_ENTRY_LISTS {
                let mut list = stream.entries;
                list.clear();
                self.spare_entry_lists.push(list);
            }
        }
        self.index.clear();
        self.by_stream_labels.clear();
        self.bytes = 0;
        self.entries = 0;
        self.has_structured_metadata = false;
    }
}

/// An entry whose tenant and limits are resolved, ready to join the set.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// `None`: the client's default tenant.
    tenant: Option<String>,
    labels: LabelSet,
    entry: StreamEntry,
    size: usize,
    /// Bytes cut from an over-long line (`max_line_size_truncate`).
    pub truncated: usize,
}

#[derive(Debug)]
pub(crate) enum Shaped {
    Ready(Prepared),
    /// Longer than `max_line_size` with truncation off: dropped.
    TooLong {
        tenant: String,
        bytes: usize,
    },
}

/// A new stream would exceed `max_streams` in its tenant's batch: the entry was dropped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StreamLimited {
    pub tenant: String,
    pub bytes: usize,
}

#[derive(Debug)]
pub(crate) struct Batcher {
    limits: BatchLimits,
    /// Without `__tenant_id__`, which becomes `default_tenant` instead.
    external_labels: LabelSet,
    default_tenant: String,
    send_structured_metadata: bool,
    tenants: Vec<TenantBatch>,
    /// Default-tenant streams recent entries joined, keyed by those entries' labels: every
    /// line of a source shares one label storage (and the `labels` stage hands out one
    /// storage per distinct result), so a later line finds its stream by a pointer
    /// comparison instead of a tenant search and a label hash.
    recent_streams: Recent<RecentStream, RECENT_STREAMS>,
    /// Where the default tenant's batch sits in `tenants`, once it has one this round.
    default_tenant_at: Option<usize>,
    tokens: Vec<AckToken>,
    opened_at: Option<Instant>,
}

#[derive(Debug)]
struct RecentStream {
    labels: LabelSet,
    tenant: usize,
    stream: usize,
}

impl Batcher {
    /// `external_labels` may carry `__tenant_id__`: Promtail merges external labels before it
    /// reads the tenant, so such a label overrides `tenant_id` for entries that have none.
    pub fn new(
        limits: BatchLimits,
        mut external_labels: LabelSet,
        tenant_id: &str,
        send_structured_metadata: bool,
    ) -> Self {
        let default_tenant = external_labels
            .remove(TENANT_LABEL)
            .unwrap_or_else(|| tenant_id.to_string());
        Self {
            limits,
            external_labels,
            default_tenant,
            send_structured_metadata,
            tenants: Vec::new(),
            recent_streams: Recent::default(),
            default_tenant_at: None,
            tokens: Vec::new(),
            opened_at: None,
        }
    }

    pub fn default_tenant(&self) -> &str {
        &self.default_tenant
    }

    /// The tenant `prepared` will be sent as.
    pub fn tenant_of<'a>(&'a self, prepared: &'a Prepared) -> &'a str {
        prepared.tenant.as_deref().unwrap_or(&self.default_tenant)
    }

    /// From now on, entries enter without structured metadata (the endpoint refused it).
    pub fn stop_structured_metadata(&mut self) {
        self.send_structured_metadata = false;
    }

    /// Resolves the tenant, strips `__tenant_id__`, and applies `max_line_size`.
    pub fn shape(&self, entry: Entry) -> Shaped {
        let Entry {
            mut labels,
            timestamp,
            mut line,
            mut structured_metadata,
        } = entry;
        // The remembered stream's labels hold no tenant label: nothing to look for.
        let known_source = self.recent_stream_of(&labels).is_some();
        let tenant = if known_source {
            None
        } else {
            labels.remove(TENANT_LABEL)
        };
        let max = self.limits.max_line_size;
        let mut truncated = 0;
        if max > 0 && line.len() > max {
            if !self.limits.truncate_long_lines {
                return Shaped::TooLong {
                    tenant: tenant.unwrap_or_else(|| self.default_tenant.clone()),
                    bytes: line.len(),
                };
            }
            let cut = line.floor_char_boundary(max);
            truncated = line.len() - cut;
            line.truncate(cut);
        }
        if !self.send_structured_metadata {
            structured_metadata.clear();
        }
        let size = line.len()
            + structured_metadata
                .iter()
                .map(|(n, v)| label_pair_len(n, v))
                .sum::<usize>();
        Shaped::Ready(Prepared {
            tenant,
            labels,
            entry: StreamEntry {
                timestamp,
                line,
                structured_metadata,
            },
            size,
            truncated,
        })
    }

    /// Whether the set must be sent before `prepared` joins it: its tenant's batch already
    /// holds entries and would exceed `batchsize` (a single oversized entry still travels alone).
    pub fn needs_flush_before(&self, prepared: &Prepared) -> bool {
        let full =
            |b: &TenantBatch| b.entries > 0 && b.bytes + prepared.size > self.limits.batch_size;
        if let Some(last) = self.recent_stream_for(prepared) {
            return full(&self.tenants[last.tenant]);
        }
        self.tenant_index(prepared.tenant.as_deref())
            .is_some_and(|at| full(&self.tenants[at]))
    }

    /// Where the batch of `tenant` (`None`: the default tenant) sits in the open set.
    fn tenant_index(&self, tenant: Option<&str>) -> Option<usize> {
        match tenant {
            None => self.default_tenant_at,
            Some(t) => self.tenants.iter().position(|b| b.tenant == t),
        }
    }

    fn recent_stream_for(&self, prepared: &Prepared) -> Option<&RecentStream> {
        match prepared.tenant {
            None => self.recent_stream_of(&prepared.labels),
            Some(_) => None,
        }
    }

    fn recent_stream_of(&self, labels: &LabelSet) -> Option<&RecentStream> {
        self.recent_streams.find(|r| r.labels.ptr_eq(labels))
    }

    pub fn add(&mut self, prepared: Prepared, now: Instant) -> Result<(), StreamLimited> {
        if let Some(&RecentStream { tenant, stream, .. }) = self.recent_stream_for(&prepared) {
            let batch = &mut self.tenants[tenant];
            batch.has_structured_metadata |= !prepared.entry.structured_metadata.is_empty();
            batch.bytes += prepared.size;
            batch.entries += 1;
            batch.streams[stream].entries.push(prepared.entry);
            self.opened_at.get_or_insert(now);
            return Ok(());
        }
        let Prepared {
            tenant,
            labels,
            entry,
            size,
            ..
        } = prepared;
        let remember = tenant.is_none().then(|| labels.clone());
        let at = match self.tenant_index(tenant.as_deref()) {
            Some(at) => at,
            None => {
                let name = tenant.as_deref().unwrap_or(&self.default_tenant);
                // A `__tenant_id__` naming the default tenant shares its batch.
                let at = match self.tenants.iter().position(|b| b.tenant == name) {
                    Some(at) => at,
                    None => {
                        self.tenants.push(TenantBatch::new(name.to_string()));
                        self.tenants.len() - 1
                    }
                };
                if self.tenants[at].tenant == self.default_tenant {
                    self.default_tenant_at = Some(at);
                }
                at
            }
        };
        let batch = &mut self.tenants[at];
        let has_structured_metadata = !entry.structured_metadata.is_empty();
        let stream = if let Some(&s) = batch.index.get(&labels) {
            batch.streams[s].entries.push(entry);
            s
        } else {
            let mut stream_labels = labels.clone();
            stream_labels.merge_missing(&self.external_labels);
            let merged_into = if self.external_labels.is_empty() {
                None
            } else {
                batch.by_stream_labels.get(&stream_labels).copied()
            };
            match merged_into {
                Some(s) => {
                    batch.index.insert(labels, s);
                    batch.streams[s].entries.push(entry);
                    s
                }
                None => {
                    let max = self.limits.max_streams;
                    if max > 0 && batch.streams.len() >= max {
                        return Err(StreamLimited {
                            tenant: batch.tenant.clone(),
                            bytes: entry.line.len(),
                        });
                    }
                    let s = batch.streams.len();
                    let mut rendered = String::new();
                    stream_labels.render_into(&mut rendered);
                    if !self.external_labels.is_empty() {
                        batch.by_stream_labels.insert(stream_labels.clone(), s);
                    }
                    batch.index.insert(labels, s);
                    let mut entries = batch.spare_entry_lists.pop().unwrap_or_default();
                    entries.push(entry);
                    batch.streams.push(Stream {
                        labels: stream_labels,
                        rendered,
                        entries,
                    });
                    s
                }
            }
        };
        batch.has_structured_metadata |= has_structured_metadata;
        batch.bytes += size;
        batch.entries += 1;
        if let Some(labels) = remember {
            self.recent_streams.remember(RecentStream {
                labels,
                tenant: at,
                stream,
            });
        }
        self.opened_at.get_or_insert(now);
        Ok(())
    }

    /// Holds a token to be settled with the set, after everything received before it.
    pub fn hold_token(&mut self, token: AckToken, now: Instant) {
        // One token per run of consecutive lines: settling it settles exactly those lines.
        crate::model::ack::push_coalesced(&mut self.tokens, token);
        self.opened_at.get_or_insert(now);
    }

    /// When the first entry or token joined the open set.
    pub fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }

    /// Holds neither entries nor tokens.
    pub fn is_empty(&self) -> bool {
        self.opened_at.is_none()
    }

    /// The tenant batches that hold entries, in order of first arrival.
    pub fn batches(&self) -> impl Iterator<Item = &TenantBatch> {
        self.tenants.iter().filter(|b| b.entries > 0)
    }

    pub fn entry_count(&self) -> usize {
        self.tenants.iter().map(|b| b.entries).sum()
    }

    /// Empties the set for the next round and returns its tokens, in arrival order.
    ///
    /// Tenant batches used in this round keep their allocations; idle ones are let go so a
    /// tenant label of high cardinality cannot grow the set forever.
    pub fn clear(&mut self) -> Vec<AckToken> {
        // Tenant batches move in `retain`, so the remembered stream goes with the round.
        self.recent_streams.clear();
        self.tenants.retain(|b| b.entries > 0);
        self.default_tenant_at = self
            .tenants
            .iter()
            .position(|b| b.tenant == self.default_tenant);
        self.tenants.iter_mut().for_each(TenantBatch::clear);
        self.opened_at = None;
        std::mem::take(&mut self.tokens)
    }
}

/// Batches built by hand for other modules' unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A tenant batch with streams rendered as given, each with `n` entries.
    pub(crate) fn batch_of(streams: &[(&str, usize)]) -> TenantBatch {
        let mut batch = TenantBatch::new(String::new());
        for (rendered, n) in streams {
            let entries: Vec<StreamEntry> = (0..*n)
                .map(|i| StreamEntry {
                    timestamp: chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
                        .unwrap(),
                    line: format!("line {i}"),
                    structured_metadata: Vec::new(),
                })
                .collect();
            batch.entries += entries.len();
            batch.streams.push(Stream {
                labels: LabelSet::new(),
                rendered: rendered.to_string(),
                entries,
            });
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ack::SourceId;

    fn limits() -> BatchLimits {
        BatchLimits {
            batch_size: 1024 * 1024,
            max_streams: 0,
            max_line_size: 0,
            truncate_long_lines: false,
        }
    }

    fn entry(labels: &[(&str, &str)], line: &str) -> Entry {
        Entry {
            labels: LabelSet::from_pairs(labels.iter().copied()),
            timestamp: DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap(),
            line: line.to_string(),
            structured_metadata: Vec::new(),
        }
    }

    fn ready(b: &Batcher, e: Entry) -> Prepared {
        match b.shape(e) {
            Shaped::Ready(p) => p,
            Shaped::TooLong { .. } => panic!("entry unexpectedly too long"),
        }
    }

    fn add(b: &mut Batcher, e: Entry) {
        let p = ready(b, e);
        b.add(p, Instant::now()).unwrap();
    }

    fn lines(batch: &TenantBatch) -> Vec<(String, Vec<&str>)> {
        batch
            .streams
            .iter()
            .map(|s| {
                let lines = s.entries.iter().map(|e| e.line.as_str()).collect();
                (s.rendered.clone(), lines)
            })
            .collect()
    }

    #[test]
    fn needs_flush_only_when_the_tenant_batch_would_exceed_batchsize() {
        let mut b = Batcher::new(
            BatchLimits {
                batch_size: 10,
                ..limits()
            },
            LabelSet::new(),
            "",
            true,
        );
        let first = ready(&b, entry(&[("job", "a")], "123456"));
        assert!(
            !b.needs_flush_before(&first),
            "an empty batch takes any entry"
        );
        b.add(first, Instant::now()).unwrap();
        let fits = ready(&b, entry(&[("job", "a")], "1234"));
        assert!(
            !b.needs_flush_before(&fits),
            "6 + 4 = 10 bytes is not above 10"
        );
        b.add(fits, Instant::now()).unwrap();
        let over = ready(&b, entry(&[("job", "a")], "1"));
        assert!(b.needs_flush_before(&over), "11 bytes exceed 10");
        let other_tenant = ready(&b, entry(&[("job", "a"), (TENANT_LABEL, "t2")], "1"));
        assert!(
            !b.needs_flush_before(&other_tenant),
            "each tenant batch has its own size"
        );
    }

    #[test]
    fn a_single_oversized_entry_is_accepted_into_an_empty_batch() {
        let b = Batcher::new(
            BatchLimits {
                batch_size: 4,
                ..limits()
            },
            LabelSet::new(),
            "",
            true,
        );
        let big = ready(&b, entry(&[("job", "a")], "far more than four bytes"));
        assert!(!b.needs_flush_before(&big));
    }

    #[test]
    fn structured_metadata_counts_toward_batch_bytes_like_promtail() {
        let mut b = Batcher::new(limits(), LabelSet::new(), "", true);
        let mut e = entry(&[("job", "a")], "abc");
        e.structured_metadata = vec![("trace_id".into(), "0123".into())];
        add(&mut b, e);
        // gogo LabelAdapter.Size(): (1 + 1 + 8) + (1 + 1 + 4) = 16, plus 3 line bytes.
        assert_eq!(b.batches().next().unwrap().bytes, 19);
    }

    #[test]
    fn disabled_structured_metadata_is_neither_kept_nor_counted() {
        let mut b = Batcher::new(limits(), LabelSet::new(), "", false);
        let mut e = entry(&[("job", "a")], "abc");
        e.structured_metadata = vec![("trace_id".into(), "0123".into())];
        add(&mut b, e);
        let batch = b.batches().next().unwrap();
        assert_eq!(batch.bytes, 3);
        assert!(!batch.has_structured_metadata());
        assert!(batch.streams[0].entries[0].structured_metadata.is_empty());
    }

    #[test]
    fn streams_are_keyed_by_labels_and_keep_arrival_order() {
        let mut b = Batcher::new(limits(), LabelSet::new(), "", true);
        add(&mut b, entry(&[("job", "b")], "1"));
        add(&mut b, entry(&[("job", "a")], "2"));
        add(&mut b, entry(&[("job", "b")], "3"));
        let batch = b.batches().next().unwrap();
        assert_eq!(
            lines(batch),
            vec![
                (r#"{job="b"}"#.to_string(), vec!["1", "3"]),
                (r#"{job="a"}"#.to_string(), vec!["2"]),
            ]
        );
        assert_eq!(b.entry_count(), 3);
    }

    #[test]
    fn halves_split_entries_evenly_keeping_streams_and_order() {
        let mut b = Batcher::new(limits(), LabelSet::new(), "", true);
        for (job, line) in [("b", "1"), ("a", "2"), ("b", "3"), ("a", "4"), ("b", "5")] {
            add(&mut b, entry(&[("job", job)], line));
        }
        let batch = b.batches().next().unwrap();
        let (first, second) = batch.halves().unwrap();
        assert_eq!(
            lines(&first),
            vec![(r#"{job="b"}"#.to_string(), vec!["1", "3"])]
        );
        assert_eq!(
            lines(&second),
            vec![
                (r#"{job="b"}"#.to_string(), vec!["5"]),
                (r#"{job="a"}"#.to_string(), vec!["2", "4"]),
            ]
        );
        assert_eq!((first.entries(), second.entries()), (2, 3));
        assert!(first.halves().unwrap().0.halves().is_none(), "one entry");
    }

    #[test]
    fn tenant_label_splits_batches_and_is_stripped_from_streams() {
        let mut b = Batcher::new(limits(), LabelSet::new(), "default", true);
        add(&mut b, entry(&[("job", "a")], "1"));
        add(
            &mut b,
            entry(&[("job", "a"), (TENANT_LABEL, "team-x")], "2"),
        );
        add(
            &mut b,
            entry(&[("job", "a"), (TENANT_LABEL, "team-x")], "3"),
        );
        let batches: Vec<_> = b.batches().collect();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].tenant, "default");
        assert_eq!(lines(batches[0]), vec![(r#"{job="a"}"#.into(), vec!["1"])]);
        assert_eq!(batches[1].tenant, "team-x");
        assert_eq!(
            lines(batches[1]),
            vec![(r#"{job="a"}"#.into(), vec!["2", "3"])]
        );
    }

    #[test]
    fn external_labels_fill_gaps_but_entry_labels_win() {
        let external = LabelSet::from_pairs([("env", "prod"), ("host", "h1")]);
        let mut b = Batcher::new(limits(), external, "", true);
        add(&mut b, entry(&[("job", "a"), ("env", "dev")], "1"));
        let batch = b.batches().next().unwrap();
        assert_eq!(
            batch.streams[0].rendered,
            r#"{env="dev", host="h1", job="a"}"#
        );
        assert_eq!(batch.streams[0].labels.get("host"), Some("h1"));
    }

    #[test]
    fn label_sets_that_merge_to_the_same_stream_share_it() {
        let external = LabelSet::from_pairs([("env", "prod")]);
        let mut b = Batcher::new(limits(), external, "", true);
        add(&mut b, entry(&[("job", "a"), ("env", "prod")], "1"));
        add(&mut b, entry(&[("job", "a")], "2"));
        add(&mut b, entry(&[("job", "a")], "3"));
        add(&mut b, entry(&[("job", "a"), ("env", "prod")], "4"));
        let batch = b.batches().next().unwrap();
        assert_eq!(
            lines(batch),
            vec![(r#"{env="prod", job="a"}"#.into(), vec!["1", "2", "3", "4"])]
        );
    }

    #[test]
    fn external_tenant_label_sets_the_default_tenant() {
        let external = LabelSet::from_pairs([(TENANT_LABEL, "ext"), ("env", "prod")]);
        let mut b = Batcher::new(limits(), external, "configured", true);
        add(&mut b, entry(&[("job", "a")], "1"));
        add(&mut b, entry(&[("job", "a"), (TENANT_LABEL, "own")], "2"));
        let batches: Vec<_> = b.batches().collect();
        assert_eq!(batches[0].tenant, "ext");
        assert_eq!(batches[0].streams[0].rendered, r#"{env="prod", job="a"}"#);
        assert_eq!(batches[1].tenant, "own");
    }

    #[test]
    fn long_lines_are_dropped_when_truncation_is_off() {
        let b = Batcher::new(
            BatchLimits {
                max_line_size: 5,
                ..limits()
            },
            LabelSet::new(),
            "t0",
            true,
        );
        match b.shape(entry(&[("job", "a")], "123456")) {
            Shaped::TooLong { tenant, bytes } => {
                assert_eq!(tenant, "t0");
                assert_eq!(bytes, 6);
            }
            Shaped::Ready(_) => panic!("a 6-byte line passed max_line_size 5"),
        }
        assert!(matches!(
            b.shape(entry(&[("job", "a")], "12345")),
            Shaped::Ready(_)
        ));
    }

    #[test]
    fn long_lines_are_truncated_at_a_utf8_boundary() {
        let b = Batcher::new(
            BatchLimits {
                max_line_size: 5,
                truncate_long_lines: true,
                ..limits()
            },
            LabelSet::new(),
            "",
            true,
        );
        // "aaaé" is 5 bytes ('é' is 2); "aaaaé" would cut 'é' in half at 5, so it keeps 4.
        let p = ready(&b, entry(&[("job", "a")], "aaaaéz"));
        assert_eq!(p.entry.line, "aaaa");
        assert_eq!(p.truncated, 3);
        assert_eq!(p.size, 4);
        let p = ready(&b, entry(&[("job", "a")], "aaaéz"));
        assert_eq!(p.entry.line, "aaaé");
        assert_eq!(p.truncated, 1);
    }

    #[test]
    fn max_streams_drops_entries_of_new_streams_only() {
        let mut b = Batcher::new(
            BatchLimits {
                max_streams: 1,
                ..limits()
            },
            LabelSet::new(),
            "t",
            true,
        );
        add(&mut b, entry(&[("job", "a")], "1"));
        let p = ready(&b, entry(&[("job", "b")], "22"));
        assert_eq!(
            b.add(p, Instant::now()),
            Err(StreamLimited {
                tenant: "t".into(),
                bytes: 2
            })
        );
        add(&mut b, entry(&[("job", "a")], "3"));
        let batch = b.batches().next().unwrap();
        assert_eq!(lines(batch), vec![(r#"{job="a"}"#.into(), vec!["1", "3"])]);
        assert_eq!(batch.bytes, 2, "the dropped entry is not counted");
    }

    #[test]
    fn lines_sharing_label_storage_join_their_stream_across_tenants_and_rounds() {
        let mut b = Batcher::new(limits(), LabelSet::new(), "", true);
        let source = LabelSet::from_pairs([("job", "app")]);
        let line = |text: &str| Entry {
            labels: source.clone(),
            ..entry(&[], text)
        };
        add(&mut b, line("1"));
        add(
            &mut b,
            entry(&[("job", "app"), (TENANT_LABEL, "t1")], "t1-a"),
        );
        add(&mut b, entry(&[("job", "other")], "x"));
        add(&mut b, line("2"));
        let tenants: Vec<_> = b.batches().map(|t| (t.tenant.clone(), lines(t))).collect();
        assert_eq!(
            tenants,
            vec![
                (
                    String::new(),
                    vec![
                        (r#"{job="app"}"#.to_string(), vec!["1", "2"]),
                        (r#"{job="other"}"#.to_string(), vec!["x"]),
                    ]
                ),
                (
                    "t1".to_string(),
                    vec![(r#"{job="app"}"#.to_string(), vec!["t1-a"])]
                ),
            ]
        );
        // A round with only t1 lets the idle default batch go, so t1's batch moves to the
        // front; the source's next line must still go to the default tenant, in a new batch.
        b.clear();
        add(
            &mut b,
            entry(&[("job", "app"), (TENANT_LABEL, "t1")], "t1-b"),
        );
        b.clear();
        add(&mut b, line("3"));
        let tenants: Vec<_> = b.batches().map(|t| (t.tenant.clone(), lines(t))).collect();
        assert_eq!(
            tenants,
            vec![(
                String::new(),
                vec![(r#"{job="app"}"#.to_string(), vec!["3"])]
            )]
        );
        assert_eq!(b.entry_count(), 1);
    }

    #[test]
    fn clear_returns_tokens_in_order_and_empties_the_set() {
        let mut b = Batcher::new(limits(), LabelSet::new(), "", true);
        let token = |offset| AckToken::line(SourceId(1), offset);
        assert!(b.is_empty());
        let opened = Instant::now();
        b.hold_token(token(10), opened);
        add(&mut b, entry(&[("job", "a")], "1"));
        b.hold_token(token(20), Instant::now());
        assert_eq!(
            b.opened_at(),
            Some(opened),
            "age runs from the first arrival"
        );
        assert_eq!(b.clear(), vec![token(10), token(20)]);
        assert!(b.is_empty());
        assert_eq!(b.batches().count(), 0);
        assert_eq!(b.entry_count(), 0);
    }
}
