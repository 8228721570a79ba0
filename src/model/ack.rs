//! The one narrow channel that flows backwards: from the clients to the positions store.
//!
//! A tailer stamps each line with an [`AckToken`] (its source and the byte offset just past
//! the line). A client sends the tokens of a batch back once the batch is settled (accepted by
//! Loki, or dropped on purpose and counted). The positions store is the only receiver; a push
//! source learns there when its entries are settled, to answer its sender.
//! Nothing else may travel upstream; this module must not learn about files or HTTP.

use tokio::sync::mpsc;

/// Identifies one tailed source for the lifetime of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u64);

/// The lines of `source` ending at `from..=offset` (each line is known by the offset just past
/// it): one line, or the lines a holding stage joined into one entry. Settling a token
/// finalizes exactly those lines; the positions store moves past a line only once every line
/// before it is finalized too, so tokens may be settled in any order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckToken {
    pub source: SourceId,
    /// Lowest end offset a covered line may have: the first covered line's end, or anything
    /// after the end of the line before it.
    pub from: u64,
    /// End offset of the last line covered.
    pub offset: u64,
}

impl AckToken {
    /// The token of the single line of `source` ending at `offset`. Sources that number their
    /// lines (line counts, journal sequence numbers) give line `n` the offset `n`, so
    /// consecutive lines' tokens can be [merged](AckToken::merge_following).
    pub fn line(source: SourceId, offset: u64) -> Self {
        Self {
            source,
            from: offset,
            offset,
        }
    }

    /// The token of the single line of `source` that follows the line ending at `previous`
    /// and ends at `offset` (byte offsets). Knowing where the line starts lets the token of
    /// the next line merge into this one.
    pub fn line_after(source: SourceId, previous: u64, offset: u64) -> Self {
        Self {
            source,
            from: previous + 1,
            offset,
        }
    }

    /// Extends this token over `next` when `next`'s lines directly follow this token's in
    /// the same source, so that settling the one token settles exactly the lines of both.
    /// Returns false (and changes nothing) otherwise: a line between them may still be held
    /// or in flight elsewhere.
    ///
    /// A client holding the tokens of a whole batch keeps one token per run of consecutive
    /// lines instead of one per line, which is what keeps acknowledgement cheap per line.
    pub fn merge_following(&mut self, next: &AckToken) -> bool {
        if next.source != self.source || next.from != self.offset + 1 {
            return false;
        }
        self.offset = self.offset.max(next.offset);
        true
    }

    /// The token of an entry joined from `earlier`'s lines and then `later`'s. Lines of
    /// another source cannot be joined into one token: the earlier token is kept, and the
    /// later source's lines stay unsettled, so that file's position waits until a restart
    /// re-reads them. `multiline` sends a block out before joining another file's line;
    /// `cri` joins partial lines per label set, which holds `filename` unless a stage before
    /// it dropped that label.
    pub fn joined(earlier: Option<AckToken>, later: Option<AckToken>) -> Option<AckToken> {
        match (earlier, later) {
            (Some(e), Some(l)) if e.source == l.source => Some(AckToken {
                source: e.source,
                from: e.from.min(l.from),
                offset: e.offset.max(l.offset),
            }),
            (Some(e), _) => Some(e),
            (None, l) => l,
        }
    }
}

/// Appends `token` to `tokens`, merged into the last one when its lines directly follow that
/// one's (see [`AckToken::merge_following`]). Order is kept.
pub fn push_coalesced(tokens: &mut Vec<AckToken>, token: AckToken) {
    if !tokens
        .last_mut()
        .is_some_and(|last| last.merge_following(&token))
    {
        tokens.push(token);
    }
}

/// Acknowledgements settled by one client, in the order the client received them.
#[derive(Debug)]
pub struct Ack {
    pub client: usize,
    pub tokens: Vec<AckToken>,
}

#[derive(Clone, Debug)]
pub struct AckSender {
    client: usize,
    tx: mpsc::UnboundedSender<Ack>,
}

pub type AckReceiver = mpsc::UnboundedReceiver<Ack>;

/// Creates the channel; `senders(n)` hands one sender to each of `n` clients.
pub fn channel() -> (AckSenderFactory, AckReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (AckSenderFactory { tx }, rx)
}

#[derive(Clone, Debug)]
pub struct AckSenderFactory {
    tx: mpsc::UnboundedSender<Ack>,
}

impl AckSenderFactory {
    pub fn for_client(&self, client: usize) -> AckSender {
        AckSender {
            client,
            tx: self.tx.clone(),
        }
    }
}

impl AckSender {
    /// Sends the tokens back. A closed receiver means positions are read-only (dry run) or
    /// the agent is shutting down; neither is an error for the client.
    pub fn settle(&self, tokens: Vec<AckToken>) {
        if tokens.is_empty() {
            return;
        }
        let _ = self.tx.send(Ack {
            client: self.client,
            tokens,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_consecutive_lines_merge_into_one_range() {
        let s = SourceId(1);
        let mut t = AckToken::line_after(s, 0, 10);
        assert!(t.merge_following(&AckToken::line_after(s, 10, 25)));
        assert!(t.merge_following(&AckToken::line_after(s, 25, 31)));
        assert_eq!((t.from, t.offset), (1, 31));
        // Numbered lines (line counts, journal sequence numbers) follow on by one.
        let mut n = AckToken::line(s, 7);
        assert!(n.merge_following(&AckToken::line(s, 8)));
        assert_eq!((n.from, n.offset), (7, 8));
    }

    #[test]
    fn a_gap_or_another_source_keeps_tokens_apart() {
        let s = SourceId(1);
        let mut t = AckToken::line_after(s, 0, 10);
        // The line ending at 25 (after 10) is not covered by either token: it may be held.
        assert!(!t.merge_following(&AckToken::line_after(s, 25, 40)));
        assert!(!t.merge_following(&AckToken::line_after(SourceId(2), 10, 25)));
        // A repeat of the same line is not a following line.
        assert!(!t.merge_following(&AckToken::line_after(s, 0, 10)));
        assert_eq!(t, AckToken::line_after(s, 0, 10));
    }
}
