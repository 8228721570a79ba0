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

/// "Everything of `source` before `offset` may be forgotten" once acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckToken {
    pub source: SourceId,
    pub offset: u64,
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
