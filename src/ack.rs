//! The one narrow channel that flows backwards: from the clients to the positions store.
//!
//! A tailer stamps each line with an [`AckToken`] (its source and the byte offset just past
//! the line). A client sends the tokens of a batch back once the batch is settled (accepted by
//! Loki, or dropped on purpose and counted). The positions store is the only receiver.
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
    /// End offset of the first line covered.
    pub from: u64,
    /// End offset of the last line covered.
    pub offset: u64,
}

impl AckToken {
    /// The token of the single line of `source` ending at `offset`.
    pub fn line(source: SourceId, offset: u64) -> Self {
        Self {
            source,
            from: offset,
            offset,
        }
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
