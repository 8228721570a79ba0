//! A client's input queue, bounded by bytes rather than by chunks, and the fan-out that feeds
//! every client's queue from a pipeline.
//!
//! Each client has its own queue, so a client that cannot deliver only stops reading once
//! *its* queue is full: until then the other clients keep receiving everything. When a queue
//! is full the fan-out waits, which pauses the pipeline and then the tailers (back-pressure):
//! memory stays bounded by the queues plus one batch per client. A queue with a
//! [`DropPolicy`] waits only so long: once it has stayed full for the policy's bound it drops
//! what it cannot take, counts it, and settles its acknowledgements (a dropped line is
//! settled, as Promtail settles a batch it gives up on), so the other clients go on. Owns the
//! accounting and the queue gauges; it must not batch or push.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{Semaphore, mpsc};

use crate::model::ack::{AckSender, AckToken, push_coalesced};
use crate::model::entry::Outgoing;

/// What one queued item's slot in its chunk costs, beside the heap memory its entry owns
/// (labels are shared by every entry of a stream and not counted).
const ITEM_OVERHEAD: usize = std::mem::size_of::<Outgoing>();

/// The queue's gauges: entries and bytes waiting.
#[derive(Clone)]
pub struct QueueGauges {
    pub entries: IntGauge,
    pub bytes: IntGauge,
}

struct Chunk {
    items: Vec<Outgoing>,
    permits: u32,
    entries: i64,
    bytes: i64,
}

/// `queue.when_full: drop`: how long a full queue may hold the pipeline up, and where what
/// it drops is counted and settled.
#[derive(Clone)]
pub struct DropPolicy {
    pub after: Duration,
    /// `promtail_dropped_entries_total{reason="queue_full"}` of this client.
    pub dropped: IntCounter,
    pub acks: AckSender,
}

/// The sending half; cheap to clone.
#[derive(Clone)]
pub struct QueueSender {
    tx: mpsc::UnboundedSender<Chunk>,
    room: Arc<Semaphore>,
    capacity: u32,
    gauges: Option<QueueGauges>,
    drop: Option<DropPolicy>,
    /// Set once the queue has stayed full for the drop bound; cleared when it takes a chunk
    /// again, so a dead client costs one wait, not one per chunk.
    dropping: Arc<AtomicBool>,
}

pub struct QueueReceiver {
    rx: mpsc::UnboundedReceiver<Chunk>,
    room: Arc<Semaphore>,
    gauges: Option<QueueGauges>,
}

/// The receiver is gone (the client stopped).
#[derive(Debug)]
pub struct QueueClosed;

/// A queue holding at most `capacity_bytes` of memory (each chunk's slots plus the line and
/// structured metadata each entry owns; a single chunk larger than the queue is let in alone).
pub fn bounded(capacity_bytes: u64, gauges: Option<QueueGauges>) -> (QueueSender, QueueReceiver) {
    let capacity = u32::try_from(capacity_bytes)
        .unwrap_or(u32::MAX)
        .clamp(1, Semaphore::MAX_PERMITS as u32);
    let room = Arc::new(Semaphore::new(capacity as usize));
    let (tx, rx) = mpsc::unbounded_channel();
    (
        QueueSender {
            tx,
            room: room.clone(),
            capacity,
            gauges: gauges.clone(),
            drop: None,
            dropping: Arc::default(),
        },
        QueueReceiver { rx, room, gauges },
    )
}

impl QueueSender {
    /// This queue drops instead of waiting longer than `policy.after`.
    pub fn with_drop_policy(mut self, policy: DropPolicy) -> Self {
        self.drop = Some(policy);
        self
    }

    /// Waits until the queue has room for `items`, then queues them; with a drop policy,
    /// drops them instead once the queue has stayed full for its bound.
    pub async fn send(&self, items: Vec<Outgoing>) -> Result<(), QueueClosed> {
        let bytes = chunk_memory(&items, items.capacity());
        let permits = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity);
        let permit = match &self.drop {
            None => self
                .room
                .acquire_many(permits)
                .await
                .map_err(|_| QueueClosed)?,
            Some(policy) => match self.room.try_acquire_many(permits) {
                Ok(p) => {
                    self.dropping.store(false, Ordering::Relaxed);
                    p
                }
                Err(tokio::sync::TryAcquireError::Closed) => return Err(QueueClosed),
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    if self.dropping.load(Ordering::Relaxed) {
                        self.drop_items(policy, items);
                        return Ok(());
                    }
                    match tokio::time::timeout(policy.after, self.room.acquire_many(permits)).await
                    {
                        Ok(Ok(p)) => p,
                        Ok(Err(_)) => return Err(QueueClosed),
                        Err(_) => {
                            if !self.dropping.swap(true, Ordering::Relaxed) {
                                tracing::warn!(
                                    waited = ?policy.after,
                                    "client queue full: dropping this client's entries until it takes them again (queue.when_full: drop)"
                                );
                            }
                            self.drop_items(policy, items);
                            return Ok(());
                        }
                    }
                }
            },
        };
        // Returned by the receiver when it takes the chunk.
        permit.forget();
        let entries = items.len() as i64;
        if let Some(g) = &self.gauges {
            g.entries.add(entries);
            g.bytes.add(bytes as i64);
        }
        self.tx
            .send(Chunk {
                items,
                permits,
                entries,
                bytes: bytes as i64,
            })
            .map_err(|lost| {
                self.room.add_permits(lost.0.permits as usize);
                if let Some(g) = &self.gauges {
                    g.entries.sub(lost.0.entries);
                    g.bytes.sub(lost.0.bytes);
                }
                QueueClosed
            })
    }
}

impl QueueSender {
    fn drop_items(&self, policy: &DropPolicy, items: Vec<Outgoing>) {
        let mut tokens: Vec<AckToken> = Vec::new();
        let mut entries = 0;
        for item in items {
            let ack = match item {
                Outgoing::Entry { ack, .. } => {
                    entries += 1;
                    ack
                }
                Outgoing::Consumed { ack } => Some(ack),
            };
            if let Some(token) = ack {
                push_coalesced(&mut tokens, token);
            }
        }
        policy.dropped.inc_by(entries);
        policy.acks.settle(tokens);
    }
}

/// The memory a chunk holds: the bound is on memory, so spare capacity counts as well as the
/// bytes in use.
fn chunk_memory(items: &[Outgoing], capacity: usize) -> usize {
    let owned: usize = items
        .iter()
        .map(|o| match o {
            Outgoing::Entry { entry, .. } => {
                entry.line.capacity()
                    + entry.structured_metadata.capacity() * std::mem::size_of::<(String, String)>()
                    + entry
                        .structured_metadata
                        .iter()
                        .map(|(k, v)| k.capacity() + v.capacity())
                        .sum::<usize>()
            }
            Outgoing::Consumed { .. } => 0,
        })
        .sum();
    capacity * ITEM_OVERHEAD + owned
}

impl QueueReceiver {
    /// The next chunk, or `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Vec<Outgoing>> {
        let chunk = self.rx.recv().await?;
        self.room.add_permits(chunk.permits as usize);
        if let Some(g) = &self.gauges {
            g.entries.sub(chunk.entries);
            g.bytes.sub(chunk.bytes);
        }
        Some(chunk.items)
    }
}

impl Drop for QueueReceiver {
    fn drop(&mut self) {
        // Wakes senders waiting for room: they see the queue closed.
        self.room.close();
    }
}

/// Where a pipeline sends entries: every client's queue gets every entry.
#[derive(Clone)]
pub struct Fanout {
    queues: Vec<QueueSender>,
}

impl Fanout {
    pub fn new(queues: Vec<QueueSender>) -> Self {
        Self { queues }
    }

    /// Queues `items` for every client, waiting while a queue is full. Returns false once
    /// every client is gone.
    pub async fn send(&self, items: Vec<Outgoing>) -> bool {
        let Some((last, rest)) = self.queues.split_last() else {
            return false;
        };
        let mut any = false;
        for q in rest {
            any |= q.send(items.clone()).await.is_ok();
        }
        any |= last.send(items).await.is_ok();
        any
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::ack::{AckToken, SourceId};

    fn consumed(n: u64) -> Vec<Outgoing> {
        (1..=n)
            .map(|i| Outgoing::Consumed {
                ack: AckToken::line(SourceId(1), i),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_full_queue_makes_the_sender_wait_until_the_receiver_takes() {
        let gauges = QueueGauges {
            entries: IntGauge::new("e", "e").unwrap(),
            bytes: IntGauge::new("b", "b").unwrap(),
        };
        let (tx, mut rx) = bounded(3 * ITEM_OVERHEAD as u64, Some(gauges.clone()));
        tx.send(consumed(2)).await.unwrap();
        assert_eq!(gauges.entries.get(), 2);
        // One more fits; two more do not.
        tx.send(consumed(1)).await.unwrap();
        let blocked = tokio::time::timeout(Duration::from_millis(50), tx.send(consumed(1))).await;
        assert!(blocked.is_err(), "the queue is full");
        assert_eq!(rx.recv().await.map(|c| c.len()), Some(2));
        tokio::time::timeout(Duration::from_secs(5), tx.send(consumed(1)))
            .await
            .expect("room again")
            .unwrap();
        assert_eq!(gauges.entries.get(), 2);
        assert_eq!(gauges.bytes.get(), 2 * ITEM_OVERHEAD as i64);
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_queue_goes_in_alone_and_a_dropped_receiver_closes() {
        let (tx, mut rx) = bounded(10, None);
        tx.send(consumed(5)).await.unwrap();
        assert_eq!(rx.recv().await.map(|c| c.len()), Some(5));
        tx.send(consumed(5)).await.unwrap();
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(consumed(1)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        assert!(waiting.await.unwrap().is_err());
    }

    // Paused clock: the waits are measured in the runtime's virtual time, exactly.
    #[tokio::test(start_paused = true)]
    async fn a_queue_that_drops_waits_its_bound_once_then_drops_counts_and_settles_at_once() {
        let (factory, mut acks) = crate::model::ack::channel();
        let dropped = IntCounter::new("d", "d").unwrap();
        let (dead, _dead_rx) = bounded(2 * ITEM_OVERHEAD as u64, None);
        let dead = dead.with_drop_policy(DropPolicy {
            after: Duration::from_millis(200),
            dropped: dropped.clone(),
            acks: factory.for_client(1),
        });
        let (live, mut live_rx) = bounded(1 << 20, None);
        let fanout = Fanout::new(vec![dead, live]);
        // Fills the dead client's queue.
        assert!(fanout.send(consumed(2)).await);
        let started = tokio::time::Instant::now();
        for _ in 0..20 {
            assert!(fanout.send(consumed(1)).await);
        }
        // One wait of the bound, not one per chunk.
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        let mut got = 0;
        while let Ok(Some(c)) =
            tokio::time::timeout(Duration::from_millis(10), live_rx.recv()).await
        {
            got += c.len();
        }
        assert_eq!(got, 22, "the live client got everything");
        assert_eq!(
            dropped.get(),
            0,
            "consumed items are settled, not counted as entries"
        );
        let mut settled = 0;
        while let Ok(a) = acks.try_recv() {
            assert_eq!(a.client, 1);
            settled += a.tokens.iter().map(|t| t.offset - t.from + 1).sum::<u64>();
        }
        assert_eq!(
            settled, 20,
            "what the dead client dropped is settled for it"
        );
    }

    #[tokio::test]
    async fn fanout_keeps_feeding_a_client_while_another_queue_has_room() {
        let (a, _a_rx) = bounded(100 * ITEM_OVERHEAD as u64, None);
        let (b, mut b_rx) = bounded(100 * ITEM_OVERHEAD as u64, None);
        let fanout = Fanout::new(vec![a, b]);
        // Client a takes nothing (it is down); b still gets every chunk.
        for _ in 0..50 {
            assert!(fanout.send(consumed(1)).await);
        }
        for _ in 0..50 {
            assert_eq!(b_rx.recv().await.map(|c| c.len()), Some(1));
        }
    }
}
