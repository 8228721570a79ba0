//! The pipeline task of one job: receives the line batches its sources send, runs them
//! through the [`Pipeline`]'s stages, and hands the entries to an [`EntryOutput`] (the
//! clients' queues, or the dry-run printer), waiting while the output is full.
//!
//! Owns the task loop: releasing what holding stages (multiline) keep when their deadline
//! passes, draining everything at the end of input, and beating its [`Heartbeat`]. It must
//! not know where lines come from nor how entries are delivered.

use std::future::Future;

use tokio::sync::mpsc;

use crate::model::entry::{LineBatch, Outgoing};
use crate::pipeline::Pipeline;
use crate::pipeline::liveness::Heartbeat;

/// Where a pipeline task sends its entries.
pub trait EntryOutput: Send + Sync + 'static {
    /// Queues `items`, waiting while the output is full. Returns false once nothing is left
    /// to receive them.
    fn send(&self, items: Vec<Outgoing>) -> impl Future<Output = bool> + Send;
}

/// Batches of read lines a job's pipeline input holds before its sources wait. Two keep the
/// pipeline busy while a tailer reads the next chunk (the benchmarks run as fast with 2 as
/// with 8); each more holds up to one more read chunk.
const PIPELINE_INPUT_BATCHES: usize = 2;

/// Starts a job's pipeline task; returns the sender its sources feed and the task.
/// The task beats `heartbeat` on every turn, and while idle or waiting on a full client,
/// so the systemd watchdog is fed only while the task is really being run.
pub fn spawn(
    mut pipeline: Pipeline,
    fanout: impl EntryOutput,
    heartbeat: Heartbeat,
) -> (mpsc::Sender<LineBatch>, tokio::task::JoinHandle<()>) {
    // Each batch is up to one read chunk of a file: a few in flight keep the pipeline busy
    // while the tailers read; more only hold memory.
    let (tx, mut rx) = mpsc::channel::<LineBatch>(PIPELINE_INPUT_BATCHES);
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut beat = heartbeat.interval();
        loop {
            heartbeat.beat();
            // Holding stages (multiline) release on their own deadlines too.
            let deadline = pipeline.next_deadline();
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => pipeline.run_batch(&batch, &mut out).await,
                    None => break,
                },
                _ = sleep_until_deadline(deadline) => {
                    pipeline.release(std::time::Instant::now(), false, &mut out).await;
                }
                _ = next_beat(&mut beat) => continue,
            }
            if !out.is_empty() {
                // Left empty: the pipeline reserves each batch's length in it, so the chunk
                // the queue holds carries no spare capacity from growing by doubling, and a
                // longer next batch is a fresh allocation rather than a reallocation that
                // copies the whole old one.
                let send = fanout.send(std::mem::take(&mut out));
                tokio::pin!(send);
                let delivered = loop {
                    tokio::select! {
                        ok = &mut send => break ok,
                        _ = next_beat(&mut beat) => heartbeat.beat(),
                    }
                };
                if !delivered {
                    return;
                }
            }
        }
        // Input ended (shutdown, or end of stdin): everything held goes out.
        pipeline
            .release(std::time::Instant::now(), true, &mut out)
            .await;
        if !out.is_empty() {
            fanout.send(out).await;
        }
    });
    (tx, task)
}

async fn next_beat(beat: &mut Option<tokio::time::Interval>) {
    match beat {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_deadline(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
