//! The running agent: wires discovery -> tailers -> pipelines -> clients, with
//! acknowledgements flowing back from the clients to the positions store, and the HTTP server
//! beside them. Owns startup order and graceful shutdown:
//! stop reading, let pipelines drain, let clients flush (or move their queue into their disk
//! buffer) within `server.graceful_shutdown_timeout`, then save positions. A second SIGTERM
//! or SIGINT stops waiting at once; positions are still saved, holding only what was
//! acknowledged.
//!
//! It must not contain the logic of any one part; each lives in its own module.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::ack;
use crate::client;
use crate::client::queue::Fanout;
use crate::config::Config;
use crate::discovery;
use crate::dry_run;
use crate::entry::LineBatch;
use crate::labels::LabelSet;
use crate::metrics::Metrics;
use crate::pipeline::{BuildContext, Pipeline};
use crate::positions::Positions;
use crate::server;
use crate::tail::{TailOptions, TailerSet};

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Print entries instead of pushing; positions are read but never written.
    pub dry_run: bool,
    /// Report each stage's changes to every entry on stderr (`-inspect`).
    pub inspect: bool,
}

#[derive(Debug)]
pub struct AgentError(pub String);

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AgentError {}

enum Sinks {
    DryRun(dry_run::DryRunHandle),
    Clients(Vec<client::ClientHandle>),
}

/// Runs until `shutdown` resolves (or, in stdin mode, stdin ends), then shuts down cleanly.
pub async fn run(
    config: Config,
    opts: RunOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let metrics = Arc::new(Metrics::new());
    let stdin_mode = config.target_config.stdin;
    let (stop_tx, stop_rx) = watch::channel(false);

    // Build every pipeline first: a bad stage config stops startup before anything runs.
    let mut pipelines = Vec::new();
    for (i, job) in config.scrape_configs.iter().enumerate() {
        let ctx = BuildContext::new(&job.job_name, metrics.clone());
        let p = Pipeline::build(
            &format!("scrape_configs[{i}].pipeline_stages"),
            &job.pipeline_stages,
            &ctx,
        )
        .map_err(|e| AgentError(e.to_string()))?;
        let p = if opts.inspect {
            p.with_inspector(crate::pipeline::inspect::Inspector::stderr())
        } else {
            p
        };
        pipelines.push(p);
    }

    let clients_count = if opts.dry_run {
        1
    } else {
        config.clients.len()
    };
    if !opts.dry_run && clients_count == 0 {
        return Err(AgentError(
            "no clients configured: add clients[].url (or -client.url), or use -dry-run".into(),
        ));
    }
    let positions = Positions::open(
        std::path::Path::new(&config.positions.filename),
        config.positions.ignore_invalid_yaml,
        clients_count,
        opts.dry_run || stdin_mode,
    )
    .map_err(|e| AgentError(e.to_string()))?
    .with_deletion_counter(metrics.client.positions_file_deleted.clone());

    let (ack_factory, ack_rx) = ack::channel();
    let sinks = if opts.dry_run {
        Sinks::DryRun(dry_run::spawn(ack_factory.for_client(0)))
    } else {
        let mut handles = Vec::new();
        for (i, c) in config.clients.iter().enumerate() {
            let h = client::spawn(
                i,
                c,
                &config.limits_config,
                metrics.clone(),
                ack_factory.for_client(i),
                client::wal::dir_for(i, c.wal.as_ref(), config.wal.as_ref()),
            )
            .map_err(|e| AgentError(format!("clients[{i}].{}: {}", e.key, e.message)))?;
            handles.push(h);
        }
        Sinks::Clients(handles)
    };
    drop(ack_factory);
    let fanout = Fanout::new(match &sinks {
        Sinks::DryRun(d) => vec![d.sender()],
        Sinks::Clients(cs) => cs.iter().map(|c| c.sender()).collect(),
    });
    let ack_task = tokio::spawn(positions.clone().run_acks(ack_rx));
    let age_gauge = tokio::spawn(positions.clone().run_age_gauge(
        metrics.client.oldest_unacknowledged_seconds.clone(),
        stop_rx.clone(),
    ));
    let saver = tokio::spawn(
        positions
            .clone()
            .run_saver(config.positions.sync_period.0, stop_rx.clone()),
    );

    let server_task = if config.server.disable {
        None
    } else {
        let listener = server::bind(
            &config.server.http_listen_address,
            config.server.http_listen_port,
        )
        .await
        .map_err(AgentError)?;
        Some(tokio::spawn(server::serve(
            listener,
            metrics.clone(),
            config.server.health_check_target,
            stdin_mode,
            stop_rx.clone(),
        )))
    };

    // Pipelines: one task per job, fed by that job's tailers (or stdin).
    let mut pipeline_tasks = JoinSet::new();
    let mut job_inputs = Vec::new();
    for pipeline in pipelines {
        job_inputs.push(spawn_pipeline(
            pipeline,
            fanout.clone(),
            positions.clone(),
            &mut pipeline_tasks,
        ));
    }

    let mut sources = JoinSet::new();
    let (stdin_done_tx, mut stdin_done_rx) = mpsc::channel::<()>(1);
    if stdin_mode {
        let labels = stdin_labels(&config);
        let input = match job_inputs.first() {
            Some(tx) => tx.clone(),
            // Promtail runs stdin with an empty pipeline when no scrape config exists.
            None => spawn_pipeline(
                Pipeline::build("", &[], &BuildContext::new("stdin", metrics.clone()))
                    .map_err(|e| AgentError(e.to_string()))?,
                fanout.clone(),
                positions.clone(),
                &mut pipeline_tasks,
            ),
        };
        sources.spawn(async move {
            read_stdin(input, Arc::new(labels)).await;
            let _ = stdin_done_tx.send(()).await;
        });
    } else {
        let tail_options = TailOptions::from_config(&config);
        for (job, input) in config.scrape_configs.iter().zip(job_inputs.iter()) {
            let targets = discovery::targets_of(job, &metrics).map_err(AgentError)?;
            metrics.files.targets_active.add(targets.len() as f64);
            // Validated at load; an error here means the config did not come through it.
            let encoding = job.file_encoding().map_err(|expected| {
                AgentError(format!(
                    "scrape config {:?}: encoding: {expected}",
                    job.job_name
                ))
            })?;
            let tailers = TailerSet::new(
                positions.clone(),
                input.clone(),
                metrics.clone(),
                TailOptions {
                    encoding,
                    ..tail_options
                },
                stop_rx.clone(),
            );
            let sync = config.target_config.sync_period.0;
            let stop = stop_rx.clone();
            sources.spawn(async move {
                let tailers = discovery::run(targets, sync, tailers, stop).await;
                tailers.join().await;
            });
        }
    }
    drop(job_inputs);
    drop(fanout);
    tracing::info!(
        jobs = config.scrape_configs.len(),
        clients = clients_count,
        dry_run = opts.dry_run,
        "tailward started"
    );

    tokio::select! {
        _ = shutdown => tracing::info!("shutting down"),
        _ = stdin_done_rx.recv(), if stdin_mode => tracing::debug!("stdin finished"),
    }
    // A second SIGTERM or SIGINT cuts the drain short; listening starts now so it is not
    // missed.
    let second = second_signal();
    let deadline = config.server.graceful_shutdown_timeout.0;
    let started = tokio::time::Instant::now();
    let graceful = async {
        // 1. Stop reading; tailers finish the batch in hand. 2. Pipelines drain what was
        // read. Both wait for room in the client queues, so a client that cannot deliver
        // could hold them up: they get the grace period, no more.
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(deadline, async {
            while sources.join_next().await.is_some() {}
            while pipeline_tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!(
                ?deadline,
                "reading did not stop within server.graceful_shutdown_timeout (a client's \
                 queue is full); abandoning undelivered entries, which are read again on the \
                 next start"
            );
        }
        // 3. Clients flush within what is left of the grace period.
        let left = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(100));
        match sinks {
            Sinks::DryRun(d) => d.finish().await,
            Sinks::Clients(cs) => {
                let mut set = JoinSet::new();
                for c in cs {
                    set.spawn(c.finish(left));
                }
                while set.join_next().await.is_some() {}
            }
        }
        // With the clients gone, anything still waiting on a queue gives up.
        while sources.join_next().await.is_some() {}
        while pipeline_tasks.join_next().await.is_some() {}
        // 4. Every acknowledgement is in once the clients are gone; save positions last.
        let _ = ack_task.await;
        let _ = saver.await;
        let _ = age_gauge.await;
    };
    let cut_short = tokio::select! {
        _ = graceful => false,
        _ = second => {
            tracing::warn!(
                "second shutdown signal: exiting now; positions keep only what was acknowledged"
            );
            true
        }
    };
    if let Err(e) = positions.save() {
        tracing::error!(error = %e, "saving positions at shutdown failed");
    }
    if let Some(t) = server_task
        && !cut_short
    {
        let _ = t.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on the next SIGTERM or SIGINT after it was called (never if they cannot be
/// watched).
fn second_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match streams {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
}

/// Starts a job's pipeline task; returns the sender its sources feed.
fn spawn_pipeline(
    mut pipeline: Pipeline,
    fanout: Fanout,
    positions: Positions,
    tasks: &mut JoinSet<()>,
) -> mpsc::Sender<LineBatch> {
    let (tx, mut rx) = mpsc::channel::<LineBatch>(64);
    tasks.spawn(async move {
        let mut out = Vec::new();
        loop {
            // Holding stages (multiline) release on their own deadlines too.
            let deadline = pipeline.next_deadline();
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => {
                        // Tailers issue their lines before sending; issuing again is a no-op
                        // and keeps a send path that forgot it from stalling the position.
                        positions.issue(&batch);
                        pipeline.run_batch(&batch, &mut out).await
                    }
                    None => break,
                },
                _ = sleep_until_deadline(deadline) => {
                    pipeline.release(std::time::Instant::now(), false, &mut out).await;
                }
            }
            if !out.is_empty() && !fanout.send(std::mem::take(&mut out)).await {
                return;
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
    tx
}

async fn sleep_until_deadline(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// Promtail's stdin target labels: the first job's static labels (without `__` ones), or
/// `job="stdin"` and `hostname` when no scrape config exists.
fn stdin_labels(config: &Config) -> LabelSet {
    match config.scrape_configs.first() {
        Some(job) => {
            let mut labels = LabelSet::new();
            for sc in &job.static_configs {
                for (k, v) in &sc.labels {
                    if !k.starts_with("__") {
                        labels.insert(k.clone(), v.clone());
                    }
                }
            }
            labels
        }
        None => LabelSet::from_pairs([
            ("job", "stdin".to_string()),
            ("hostname", discovery::hostname()),
        ]),
    }
}

async fn read_stdin(out: mpsc::Sender<LineBatch>, labels: Arc<LabelSet>) {
    let mut reader = tokio::io::BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) => return,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                let mut batch = LineBatch::new(labels.clone(), crate::clock::now());
                batch.push(&String::from_utf8_lossy(&buf), None);
                if out.send(batch).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reading stdin failed");
                return;
            }
        }
    }
}
