//! Kill trials: what three kill -9s cost, the scenario of issue 16 item 3. Each trial writes
//! numbered lines at 2,000 lines/s to a tailed file while the agent is killed with SIGKILL
//! three times in about 3 s (each agent lives 0.6 to 1.4 s and is restarted at once), then
//! lets the last agent deliver
//! everything and counts, at a local strict Loki stand-in, the lines lost and the lines
//! received more than once. Default settings throughout (batchwait 1s, batchsize 1 MiB,
//! positions.sync_period 10s), once without and once with a disk buffer (WAL).
//!
//! Run: `cargo bench --bench kill_trials -- [TRIALS] [wal|no-wal]` (default 20 trials, both).
//! The figure is a rate of duplicates per line written; nothing may be lost.

// The test support is shared with the integration tests; this bench uses part of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};
use support::agent_process::{AgentProcess, write_config};
use support::numbered_lines::{Tally, Writer, number_of, settled_lines};
use support::receiver::Receiver;

const LINES_PER_SECOND: usize = 2_000;
/// Long enough for three kills within 3 s and the restarts after them.
const WRITE_FOR: Duration = Duration::from_secs(5);
const KILLS: usize = 3;

struct Outcome {
    written: usize,
    received: usize,
    duplicates: usize,
    lost: usize,
}

fn config(dir: &std::path::Path, url: &str, wal: bool) -> std::path::PathBuf {
    let wal_block = if wal {
        format!(
            "    wal:\n      enabled: true\n      dir: {}\n",
            dir.join("wal").display()
        )
    } else {
        String::new()
    };
    // Everything else at its default, as an operator would run it.
    write_config(
        dir,
        &format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
             positions:\n  filename: {}\n\
             clients:\n  - url: {url}\n{wal_block}\
             scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [localhost]\n        labels:\n          job: app\n          __path__: {}\n",
            dir.join("positions.yaml").display(),
            dir.join("app.log").display(),
        ),
    )
}

fn trial(runtime: &tokio::runtime::Runtime, wal: bool, seed: u64) -> Outcome {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let receiver = runtime.block_on(Receiver::start());
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path(), &receiver.url(), wal);
    let lines = LINES_PER_SECOND * WRITE_FOR.as_secs() as usize;
    let mut writer = Writer::create(&dir.path().join("app.log"), false);
    let written = writer.written.clone();
    let writing = std::thread::spawn(move || writer.write_paced(0, lines, WRITE_FOR));
    let started = Instant::now();
    // Three kills within about 3 s: each agent lives 0.6 to 1.4 s, so most push a batch
    // (batchwait 1 s) before they die, and a kill can land anywhere around a push.
    for _ in 0..KILLS {
        let agent = AgentProcess::start(&cfg, &[]);
        std::thread::sleep(Duration::from_millis(rng.random_range(600..1400)));
        agent.kill_hard();
    }
    let kills_took = started.elapsed();
    let agent = AgentProcess::start(&cfg, &[]);
    writing.join().expect("writer");
    let got = runtime.block_on(settled_lines(
        &receiver,
        lines,
        Duration::from_secs(60),
        Duration::from_secs(3),
    ));
    drop(agent);
    assert!(
        kills_took < Duration::from_secs(5),
        "the kills took {kills_took:?}"
    );
    let tally = Tally::of(got.iter().map(String::as_str), 0..lines, number_of);
    Outcome {
        written: written.load(std::sync::atomic::Ordering::SeqCst),
        received: got.len(),
        duplicates: tally.repeated.values().map(|n| n - 1).sum(),
        lost: tally.missing.len(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trials: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(20);
    let modes: Vec<bool> = if args.iter().any(|a| a == "wal") {
        vec![true]
    } else if args.iter().any(|a| a == "no-wal") {
        vec![false]
    } else {
        vec![false, true]
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let seed: u64 = rand::rng().random();
    println!(
        "kill trials: {trials} x {KILLS} kill -9 (agents living 0.6-1.4 s), writing {LINES_PER_SECOND} lines/s for {WRITE_FOR:?}, default settings, seed {seed}"
    );
    for wal in modes {
        let mut total = Outcome {
            written: 0,
            received: 0,
            duplicates: 0,
            lost: 0,
        };
        for t in 0..trials {
            let o = trial(&runtime, wal, seed.wrapping_add(t as u64));
            println!(
                "  {} trial {t:2}: {} written, {} received, {} duplicates, {} lost",
                if wal { "wal   " } else { "no wal" },
                o.written,
                o.received,
                o.duplicates,
                o.lost
            );
            total.written += o.written;
            total.received += o.received;
            total.duplicates += o.duplicates;
            total.lost += o.lost;
        }
        println!(
            "{}: {} lines written, {} received, {} duplicates ({:.2}% of written), {} lost",
            if wal { "with WAL" } else { "without WAL" },
            total.written,
            total.received,
            total.duplicates,
            100.0 * total.duplicates as f64 / total.written.max(1) as f64,
            total.lost
        );
    }
}
