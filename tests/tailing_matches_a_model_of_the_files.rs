//! Model-based test of tailing: random sequences of write, rotate (rename + create), copy-
//! truncate, delete, stop and start are applied to real files and to an in-memory model of
//! what must be delivered. Whatever the sequence, the tailers must deliver every line the
//! model says is deliverable exactly once, and nothing else.
//!
//! Lines written to a file that is deleted or truncated while the agent is stopped are lost
//! by definition (nobody can read them), and the model drops them; everything else counts.
//! While running, deletes and truncations happen after the agent caught up, as copytruncate
//! users arrange with logrotate's `delaycompress`/`rotate_wait` (a truncate racing a write
//! loses data in every tailer).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use tailward::ack;
use tailward::entry::LineBatch;
use tailward::labels::LabelSet;
use tailward::metrics::Metrics;
use tailward::positions::Positions;
use tailward::tail::{PollConfig, TailOptions, TailerSet};
use tokio::sync::{mpsc, watch};

#[derive(Clone, Debug)]
enum Op {
    Write(u8),
    Rotate,
    Truncate,
    Delete,
    Stop,
    Start,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..40).prop_map(Op::Write),
        2 => Just(Op::Rotate),
        1 => Just(Op::Truncate),
        1 => Just(Op::Delete),
        1 => Just(Op::Stop),
        1 => Just(Op::Start),
    ]
}

/// What exists on disk, line numbers by file, and which lines must arrive.
struct Model {
    dir: PathBuf,
    next: u64,
    /// Unread-by-design lines are removed from here when their file vanishes while stopped.
    deliverable: BTreeMap<u64, ()>,
    /// Line numbers in each file, live file first.
    files: Vec<Vec<u64>>,
}

const KEEP: usize = 3;

impl Model {
    fn path(&self, i: usize) -> PathBuf {
        if i == 0 {
            self.dir.join("app.log")
        } else {
            self.dir.join(format!("app.log.{i}"))
        }
    }

    fn write(&mut self, n: u8) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(0))
            .unwrap();
        if self.files.is_empty() {
            self.files.push(Vec::new());
        }
        for _ in 0..n {
            let id = self.next;
            self.next += 1;
            writeln!(f, "line {id:06} {}", "x".repeat((id % 7) as usize * 9)).unwrap();
            self.files[0].push(id);
            self.deliverable.insert(id, ());
        }
    }

    fn rotate(&mut self, running: bool) {
        if self.files.is_empty() || !self.path(0).exists() {
            return;
        }
        // The oldest rotated file falls off the end, as with backupCount.
        if self.files.len() > KEEP {
            let gone = self.files.pop().unwrap_or_default();
            std::fs::remove_file(self.path(KEEP)).unwrap();
            if !running {
                for id in gone {
                    self.deliverable.remove(&id);
                }
            }
        }
        for i in (0..self.files.len()).rev() {
            std::fs::rename(self.path(i), self.path(i + 1)).unwrap();
        }
        self.files.insert(0, Vec::new());
        std::fs::File::create(self.path(0)).unwrap();
    }

    fn truncate(&mut self, running: bool) {
        if self.files.is_empty() || !self.path(0).exists() {
            return;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.path(0))
            .unwrap();
        let lost = std::mem::take(&mut self.files[0]);
        if !running {
            for id in lost {
                self.deliverable.remove(&id);
            }
        }
    }

    fn delete(&mut self, running: bool) {
        if self.files.is_empty() || !self.path(0).exists() {
            return;
        }
        std::fs::remove_file(self.path(0)).unwrap();
        let lost = std::mem::take(&mut self.files[0]);
        if !running {
            for id in lost {
                self.deliverable.remove(&id);
            }
        }
    }
}

/// An agent's tailing half: a tailer set over `app.log`, a glob loop, and a collector that
/// records every line and acknowledges it at once.
struct Agent {
    shutdown: watch::Sender<bool>,
    sync: tokio::task::JoinHandle<TailerSet>,
    collector: tokio::task::JoinHandle<()>,
    acks: tokio::task::JoinHandle<()>,
    positions: Positions,
}

fn options() -> TailOptions {
    TailOptions {
        poll: PollConfig {
            min: Duration::from_millis(5),
            max: Duration::from_millis(20),
        },
        rotate_wait: Duration::from_millis(150),
        partial_line_wait: Duration::from_secs(30),
        max_line_bytes: 1 << 20,
        truncate_long_lines: true,
        tail_from_end: false,
        ignore_older_than: None,
    }
}

fn start(dir: &Path, shipped: Arc<Mutex<Vec<u64>>>) -> Agent {
    let positions = Positions::open(&dir.join("positions.yaml"), false, 1, false).unwrap();
    let (tx, mut rx) = mpsc::channel::<LineBatch>(16);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (factory, ack_rx) = ack::channel();
    let acks = tokio::spawn(positions.clone().run_acks(ack_rx));
    let settle = factory.for_client(0);
    let collector = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            let mut tokens = Vec::new();
            for (line, ack) in batch.iter() {
                let id: u64 = line[5..11].parse().expect("numbered line");
                shipped.lock().unwrap().push(id);
                tokens.extend(ack);
            }
            settle.settle(tokens);
        }
    });
    let mut set = TailerSet::new(
        positions.clone(),
        tx,
        Arc::new(Metrics::new()),
        options(),
        shutdown_rx.clone(),
    );
    let path = dir.join("app.log");
    let mut stop = shutdown_rx;
    let sync = tokio::spawn(async move {
        loop {
            if path.exists() {
                set.start(&path, Arc::new(LabelSet::from_pairs([("job", "model")])));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = stop.changed() => return set,
            }
        }
    });
    Agent {
        shutdown,
        sync,
        collector,
        acks,
        positions,
    }
}

async fn stop(agent: Agent) {
    let _ = agent.shutdown.send(true);
    let set = agent.sync.await.unwrap();
    set.join().await;
    // Every ack the collector settled is applied before positions are saved.
    agent.collector.await.unwrap();
    agent.acks.await.unwrap();
    agent.positions.save().unwrap();
}

/// Waits until every deliverable line arrived, or 5 s passed.
async fn caught_up(shipped: &Arc<Mutex<Vec<u64>>>, model: &Model) {
    for _ in 0..500 {
        let got = shipped.lock().unwrap().len();
        if got >= model.deliverable.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Arc::new(Mutex::new(Vec::new()));
        let mut model = Model {
            dir: dir.path().to_path_buf(),
            next: 0,
            deliverable: BTreeMap::new(),
            files: Vec::new(),
        };
        let mut agent = Some(start(dir.path(), shipped.clone()));
        for op in ops {
            let running = agent.is_some();
            match op {
                Op::Write(n) => model.write(n),
                Op::Rotate => model.rotate(running),
                Op::Truncate | Op::Delete => {
                    if running {
                        caught_up(&shipped, &model).await;
                        // Let a quiet tail end be seen before the file changes under it.
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    if matches!(op, Op::Truncate) {
                        model.truncate(running);
                    } else {
                        model.delete(running);
                    }
                }
                Op::Stop => {
                    if let Some(a) = agent.take() {
                        caught_up(&shipped, &model).await;
                        stop(a).await;
                    }
                }
                Op::Start => {
                    if agent.is_none() {
                        agent = Some(start(dir.path(), shipped.clone()));
                    }
                }
            }
        }
        if agent.is_none() {
            agent = Some(start(dir.path(), shipped.clone()));
        }
        caught_up(&shipped, &model).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Some(a) = agent.take() {
            stop(a).await;
        }
        let mut got = shipped.lock().unwrap().clone();
        got.sort_unstable();
        let expected: Vec<u64> = model.deliverable.keys().copied().collect();
        let mut dups = got.clone();
        dups.dedup();
        prop_assert_eq!(
            dups.len(),
            got.len(),
            "duplicates shipped: {:?}",
            duplicates(&got)
        );
        prop_assert_eq!(got, expected);
        Ok(())
    })
}

fn duplicates(sorted: &[u64]) -> Vec<u64> {
    sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tailing_delivers_exactly_what_the_model_says(ops in proptest::collection::vec(op(), 1..14)) {
        run(ops)?;
    }
}

#[test]
fn rotate_twice_while_stopped_then_restart_delivers_everything_once() {
    run(vec![
        Op::Write(5),
        Op::Stop,
        Op::Rotate,
        Op::Write(3),
        Op::Rotate,
        Op::Write(4),
        Op::Start,
        Op::Write(2),
    ])
    .unwrap();
}
