//! What Loki's 400 says about which entries of a push it refused, so that a batch of which
//! Loki stored all but a few is not counted as dropped whole.
//!
//! Loki's distributor validates each entry, stores the valid ones, and answers 400 with the
//! refusals grouped by message (dskit's `GroupedErrors`: `N errors like: <message>` joined
//! by `; `, the prefix left out for a single refusal). The message says why (Loki's
//! `validation` package: `Max entry size ... exceeded` is `line_too_long`, `timestamp too
//! old` is `greater_than_max_sample_age`, ...); a refusal of a whole stream (labels that do
//! not parse) stands for every entry of that stream. An ingester's out-of-order refusal says
//! `total ignored: N out of M`. Owns reading those bodies only; it must not count or push.

use super::batch::TenantBatch;

/// Entries Loki refused, by Loki's reason name; `None` when the body does not read as
/// Loki's (then the whole batch counts as refused, as Promtail counts it).
pub(crate) fn refused(body: &str, batch: &TenantBatch) -> Option<Vec<(&'static str, u64)>> {
    let body = body.trim();
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    let mut add = |reason: &'static str, n: u64| match counts.iter_mut().find(|(r, _)| *r == reason)
    {
        Some((_, c)) => *c += n,
        None => counts.push((reason, n)),
    };
    for (n, message) in groups(body) {
        if let Some(ignored) = total_ignored(message) {
            let reason = if message.contains("out of order") {
                "out_of_order"
            } else {
                "too_far_behind"
            };
            add(reason, ignored);
            continue;
        }
        let (reason, whole_stream) = reason_of(message)?;
        let entries = if whole_stream {
            // One refusal per stream: every entry of that stream.
            stream_entries(message, batch).unwrap_or(1) * n
        } else {
            n
        };
        add(reason, entries);
    }
    let total: u64 = counts.iter().map(|(_, c)| c).sum();
    let in_batch = batch.entries() as u64;
    if counts.is_empty() || total > in_batch {
        // More refusals than entries: not a body we read right; count it whole.
        return None;
    }
    Some(counts)
}

/// `(count, message)` per group of `N errors like: <message>; ...`.
fn groups(body: &str) -> Vec<(u64, &str)> {
    let Some(first) = group_count(body) else {
        return vec![(1, body)];
    };
    let mut out = Vec::new();
    let mut rest = body;
    let mut count = first;
    loop {
        let (_, after_prefix) = rest.split_once(" errors like: ").unwrap_or(("", rest));
        // The next group starts at a "; " followed by its own count prefix; a "; " inside a
        // message (Loki's label-count message has one) is not a boundary.
        let mut end = None;
        let mut from = 0;
        while let Some(i) = after_prefix[from..].find("; ") {
            let at = from + i;
            if group_count(&after_prefix[at + 2..]).is_some() {
                end = Some(at);
                break;
            }
            from = at + 2;
        }
        match end {
            Some(at) => {
                out.push((count, &after_prefix[..at]));
                rest = &after_prefix[at + 2..];
                count = group_count(rest).unwrap_or(1);
            }
            None => {
                out.push((count, after_prefix));
                return out;
            }
        }
    }
}

/// `N` of a text that starts with `N errors like: `.
fn group_count(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || !text[digits..].starts_with(" errors like: ") {
        return None;
    }
    text[..digits].parse().ok()
}

/// The ingester's `total ignored: N out of M` (summed when it names several streams).
fn total_ignored(message: &str) -> Option<u64> {
    let mut total = None;
    for piece in message.split("total ignored: ").skip(1) {
        let digits: String = piece.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<u64>() {
            *total.get_or_insert(0) += n;
        }
    }
    total
}

/// Loki's reason for a refusal message, and whether it refuses a whole stream.
fn reason_of(message: &str) -> Option<(&'static str, bool)> {
    let per_entry = [
        ("Max entry size '", "line_too_long"),
        ("has timestamp too old", "greater_than_max_sample_age"),
        ("has timestamp too new", "too_far_in_future"),
        (" label names; limit ", "max_label_names_per_series"),
        ("has label name too long", "label_name_too_long"),
        ("has label value too long", "label_value_too_long"),
        ("has duplicate label name", "duplicate_label_names"),
        (
            "includes structured metadata, but this feature is disallowed",
            "disallowed_structured_metadata",
        ),
        (
            "has structured metadata too large",
            "structured_metadata_too_large",
        ),
        (
            "has too many structured metadata labels",
            "structured_metadata_too_many",
        ),
    ];
    if let Some((_, reason)) = per_entry.iter().find(|(m, _)| message.contains(m)) {
        return Some((reason, false));
    }
    if message.starts_with("Error parsing labels '")
        || message.starts_with("error at least one label pair is required per stream")
    {
        return Some(("invalid_labels", true));
    }
    if message.starts_with("missing required labels ") {
        return Some(("missing_enforced_labels", true));
    }
    None
}

/// The entries of the batch's stream that `message` names (`'{...}'`, or after `stream `).
fn stream_entries(message: &str, batch: &TenantBatch) -> Option<u64> {
    batch
        .streams
        .iter()
        .find(|s| message.contains(&format!("'{}'", s.rendered)) || message.ends_with(&s.rendered))
        .map(|s| s.entries.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::batch::tests_support::batch_of;

    #[test]
    fn a_single_refusal_has_no_count_prefix() {
        let batch = batch_of(&[("{job=\"a\"}", 10)]);
        let body = "Max entry size '256' bytes exceeded for stream '{job=\"a\"}' while adding an entry with length '300' bytes\n";
        assert_eq!(refused(body, &batch), Some(vec![("line_too_long", 1)]));
    }

    #[test]
    fn grouped_refusals_are_counted_by_reason_and_a_semicolon_inside_a_message_is_kept() {
        let batch = batch_of(&[("{job=\"a\"}", 10), ("{job=\"b\"}", 5)]);
        let body = "3 errors like: entry for stream '{job=\"a\"}' has timestamp too old: 2020-01-01 00:00:00 +0000 UTC, oldest acceptable timestamp is: 2024-01-01 00:00:00 +0000 UTC; \
                    1 errors like: entry for stream '{job=\"a\"}' has 31 label names; limit 30; \
                    2 errors like: entry for stream '{job=\"b\"}' has timestamp too new: 2030-01-01 00:00:00 +0000 UTC";
        assert_eq!(
            refused(body, &batch),
            Some(vec![
                ("greater_than_max_sample_age", 3),
                ("max_label_names_per_series", 1),
                ("too_far_in_future", 2),
            ])
        );
    }

    #[test]
    fn a_stream_whose_labels_do_not_parse_counts_all_its_entries() {
        let batch = batch_of(&[("{job=\"a\"}", 4), ("{bad}", 3)]);
        let body = "Error parsing labels '{bad}' with error: 1:2: parse error: unexpected \"}\" in label set, expected \"=\"";
        assert_eq!(refused(body, &batch), Some(vec![("invalid_labels", 3)]));
    }

    #[test]
    fn out_of_order_totals_and_unreadable_bodies() {
        let batch = batch_of(&[("{job=\"a\"}", 10)]);
        let body = "entry with timestamp 2024-01-01 00:00:00 +0000 UTC ignored, reason: 'entry too far behind, oldest acceptable timestamp is: 2024-02-01T00:00:00Z' for stream: {job=\"a\"},\ntotal ignored: 4 out of 10 for stream: {job=\"a\"}";
        assert_eq!(refused(body, &batch), Some(vec![("too_far_behind", 4)]));
        assert_eq!(refused("something else went wrong", &batch), None);
        // More refusals than entries: not read right, so counted whole.
        assert_eq!(
            refused(
                "11 errors like: entry for stream '{job=\"a\"}' has timestamp too new: x",
                &batch
            ),
            None
        );
    }
}
