//! A client's input queue, bounded by bytes rather than by chunks, and the fan-out that feeds
//! every client's queue from a pipeline.
//!
//! Each client has its own queue, so a client that cannot deliver only stops reading once
//! *its* queue is full: until then the other clients keep receiving everything. When a queue
//! is full the fan-out waits, which pauses the pipeline and then the tailers (back-pressure):
//! memory stays bounded by the queues plus one batch per client. Owns the accounting and the
//! queue gauges; it must not batch, push or settle acknowledgements.

use std::sync::Arc;

use prometheus::IntGauge;
use tokio::sync::{Semaphore, mpsc};

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

/// The sending half; cheap to clone.
#[derive(Clone)]
pub struct QueueSender {
    tx: mpsc::UnboundedSender<Chunk>,
    room: Arc<Semaphore>,
    capacity: u32,
    gauges: Option<QueueGauges>,
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
        },
        QueueReceiver { rx, room, gauges },
    )
}

impl QueueSender {
    /// Waits until the queue has room for `items`, then queues them.
    pub async fn send(&self, items: Vec<Outgoing>) -> Result<(), QueueClosed> {
        let bytes = chunk_memory(&items, items.capacity());
        let permits = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity);
        let permit = self
            .room
            .acquire_many(permits)
            .await
            .map_err(|_| QueueClosed)?;
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
