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
use tailward::delivery::positions::Positions;
use tailward::metrics::Metrics;
use tailward::model::ack;
use tailward::model::entry::LineBatch;
use tailward::model::labels::LabelSet;
use tailward::sources::files::tailer::{FileAccess, PollConfig, TailOptions, TailerSet};
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
    deliverable: BTreeMap<u64, ()>,
    /// Files, live file (`app.log`) first, then `app.log.1`, ...
    files: Vec<FileModel>,
    next_file: u64,
    /// Lines below this were delivered before the agent stopped.
    delivered_before_stop: u64,
    /// The file the agent last read under `app.log` before it stopped, while it still
    /// exists unchanged (perhaps renamed): a restart finds it, and every file rotated after
    /// it, by identity. Without it, only the file at `app.log` can be found.
    anchor: Option<u64>,
    /// The live file was created since the agent last caught up: rotating it away outside
    /// the glob before any tailer saw it hides it from everyone.
    fresh: bool,
    /// Started while no file was at the path: the restart search is still to come.
    awaiting_first_open: bool,
}

struct FileModel {
    /// Creation order.
    id: u64,
    lines: Vec<u64>,
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

    fn live_exists(&self) -> bool {
        self.path(0).exists()
    }

    fn new_file(&mut self) -> FileModel {
        self.next_file += 1;
        FileModel {
            id: self.next_file,
            lines: Vec::new(),
        }
    }

    fn write(&mut self, n: u8, running: bool) {
        let created = !self.live_exists();
        if created {
            let f = self.new_file();
            self.files.insert(0, f);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(0))
            .unwrap();
        for _ in 0..n {
            let id = self.next;
            self.next += 1;
            writeln!(f, "line {id:06} {}", "x".repeat((id % 7) as usize * 9)).unwrap();
            self.files[0].lines.push(id);
            self.deliverable.insert(id, ());
        }
        if created {
            // The file exists now: a restarted agent searches from it when it first opens it.
            if running && self.awaiting_first_open {
                self.first_open();
            }
            self.fresh = true;
        }
    }

    fn rotate(&mut self, running: bool) {
        if !self.live_exists() {
            return;
        }
        // The oldest rotated file falls off the end, as with backupCount.
        if self.files.len() > KEEP {
            let gone = self.files.pop().expect("more than KEEP files");
            std::fs::remove_file(self.path(KEEP)).unwrap();
            self.vanished(gone, running);
        }
        for i in (0..self.files.len()).rev() {
            std::fs::rename(self.path(i), self.path(i + 1)).unwrap();
        }
        let f = self.new_file();
        self.files.insert(0, f);
        std::fs::File::create(self.path(0)).unwrap();
    }

    fn truncate(&mut self, running: bool) {
        // Truncating an empty file changes nothing, not even its identity.
        if !self.live_exists() || self.files[0].lines.is_empty() {
            return;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.path(0))
            .unwrap();
        // Same inode, new content: a different file as far as identity goes.
        let old = std::mem::replace(
            &mut self.files[0],
            FileModel {
                id: 0,
                lines: Vec::new(),
            },
        );
        let fresh = self.new_file();
        let fresh_id = fresh.id;
        self.files[0] = fresh;
        // The anchor was empty when the agent stopped: its saved identity (inode, empty
        // head, offset 0) still fits the truncated and regrown file, so a restart finds that
        // file, and what was rotated after it, as it would the anchor.
        let empty_anchor = !running
            && self.anchor == Some(old.id)
            && old.lines.iter().all(|id| *id >= self.delivered_before_stop);
        self.vanished(old, running);
        if empty_anchor {
            self.anchor = Some(fresh_id);
        }
    }

    fn delete(&mut self, running: bool) {
        if !self.live_exists() {
            return;
        }
        std::fs::remove_file(self.path(0)).unwrap();
        let old = self.files.remove(0);
        self.vanished(old, running);
    }

    /// A file's content is gone. While running, the agent had caught up before; while
    /// stopped, its lines not read before the stop are lost, and if it was the anchor,
    /// the files rotated after it can no longer be found.
    fn vanished(&mut self, file: FileModel, running: bool) {
        if running {
            return;
        }
        if self.anchor == Some(file.id) {
            self.anchor = None;
        }
        self.lose(&file.lines);
    }

    fn lose(&mut self, ids: &[u64]) {
        for id in ids.iter().filter(|id| **id >= self.delivered_before_stop) {
            self.deliverable.remove(id);
        }
    }

    fn stopped(&mut self) {
        self.delivered_before_stop = self.next;
        if self.live_exists() {
            self.anchor = Some(self.files[0].id);
        } else if !self.awaiting_first_open {
            self.anchor = None;
        }
    }

    /// At start, files the agent cannot find lose their undelivered lines. The search for
    /// rotated files starts from the path: with no file at the path there is no tailer to
    /// search (a known limit: an application that deleted its log while the agent was down).
    fn starting(&mut self) {
        if !self.live_exists() {
            // The search happens when a file appears at the path again.
            self.awaiting_first_open = true;
            return;
        }
        self.first_open();
    }

    /// The run ends: if no file ever appeared at the path since the last start, nothing
    /// searched for rotated files, and their undelivered lines are lost.
    fn finish(&mut self) {
        if self.awaiting_first_open {
            let all: Vec<Vec<u64>> = self.files.iter().map(|f| f.lines.clone()).collect();
            for lines in all {
                self.lose(&lines);
            }
        }
    }

    fn first_open(&mut self) {
        self.awaiting_first_open = false;
        let live = self.live_exists().then(|| self.files[0].id);
        let anchor = self.anchor.take();
        let unreachable: Vec<Vec<u64>> = self
            .files
            .iter()
            .filter(|f| Some(f.id) != live && anchor.is_none_or(|a| f.id < a))
            .map(|f| f.lines.clone())
            .collect();
        for lines in unreachable {
            self.lose(&lines);
        }
        // Nobody has seen the live file yet: rotating it away before discovery hides it.
        self.fresh = live.is_some();
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
        encoding: None,
        per_file_metrics: true,
        decompression: None,
        follow_symlinks_outside: true,
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
    let metrics = Arc::new(Metrics::new());
    let mut set = TailerSet::new(
        positions.view(),
        tx,
        metrics.clone(),
        options(),
        shutdown_rx.clone(),
        FileAccess::new(true, 0, &metrics),
    );
    let path = dir.join("app.log");
    let mut stop = shutdown_rx;
    let sync = tokio::spawn(async move {
        loop {
            if path.exists() {
                set.start(&path, Arc::new(LabelSet::from_pairs([("job", "model")])));
            }
            // Discovery's re-glob, as the agent runs it every sync_period.
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
            next_file: 0,
            delivered_before_stop: 0,
            anchor: None,
            fresh: false,
            awaiting_first_open: false,
        };
        let mut agent = Some(start(dir.path(), shipped.clone()));
        for op in ops {
            let running = agent.is_some();
            if running && model.fresh && matches!(op, Op::Rotate | Op::Truncate | Op::Delete) {
                caught_up(&shipped, &model).await;
                model.fresh = false;
            }
            match op {
                Op::Write(n) => model.write(n, running),
                Op::Rotate => {
                    // The oldest backup is about to be deleted: a writer that rotates faster
                    // than anyone reads loses that file in every agent, so let this one catch up.
                    if running && model.files.len() > KEEP {
                        caught_up(&shipped, &model).await;
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    model.rotate(running)
                }
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
                        // An agent runs for more than a few polls between a rotation and a
                        // stop: it has moved on to the new file (a stop within one poll of a
                        // rotation leaves the rotated file's successors to the next start).
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        stop(a).await;
                        model.stopped();
                    }
                }
                Op::Start => {
                    if agent.is_none() {
                        model.starting();
                        agent = Some(start(dir.path(), shipped.clone()));
                    }
                }
            }
        }
        if agent.is_none() {
            model.starting();
            agent = Some(start(dir.path(), shipped.clone()));
        }
        model.finish();
        caught_up(&shipped, &model).await;
        // For duplicates: nothing marks the end of the ones that could still come.
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
fn file_empty_at_stop_truncated_regrown_and_rotated_while_stopped_is_found() {
    run(vec![
        Op::Write(1),
        Op::Rotate,
        Op::Stop,
        Op::Write(1),
        Op::Truncate,
        Op::Write(1),
        Op::Rotate,
        Op::Start,
    ])
    .unwrap();
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

#[test]
fn file_created_after_a_restart_with_no_files_is_read_before_its_rotation() {
    for _ in 0..5 {
        run(vec![Op::Stop, Op::Start, Op::Write(1), Op::Rotate]).unwrap();
    }
}

#[test]
fn file_rotated_twice_before_the_first_look_after_a_restart_is_read() {
    // The file was emptied while the agent was down, so nothing holds the test back after the
    // start: both rotations land before the restarted agent first looks at the path, and
    // the lines of the middle file (written after the start) are only in app.log.1.
    for _ in 0..3 {
        run(vec![
            Op::Stop,
            Op::Write(29),
            Op::Truncate,
            Op::Start,
            Op::Rotate,
            Op::Write(18),
            Op::Rotate,
        ])
        .unwrap();
    }
}
