//! The running agent: wires discovery -> tailers -> pipelines -> clients, with
//! acknowledgements flowing back from the clients to the positions store, and the HTTP server
//! beside them. Owns startup order and graceful shutdown:
//! stop reading, let pipelines drain, let clients flush (or move their queue into their disk
//! buffer) within `server.graceful_shutdown_timeout`, then save positions. A second SIGTERM
//! or SIGINT stops waiting at once; positions are still saved, holding only what was
//! acknowledged. Tells systemd (through
//! [`crate::agent::systemd`]) when it is ready, reloading and stopping.
//!
//! It must not contain the logic of any one part; each lives in its own module.

pub mod build;
pub mod dry_run;
pub mod jobs;
pub mod logging;
pub mod reload;
pub mod sandbox;
pub mod server;
pub mod systemd;

use std::sync::Arc;

use prometheus::core::Collector;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::client;
use crate::client::queue::Fanout;
use crate::config::Config;
use crate::delivery::positions::Positions;
use crate::metrics::Metrics;
use crate::model::ack;
use crate::pipeline::liveness::Liveness;
use crate::pipeline::task;
use crate::pipeline::{BuildContext, Pipeline};
use crate::sources::files::tailer::FileAccess;
use crate::sources::stdin;
use crate::sources::targets_view::TargetsView;
use systemd::Notifier;

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Print entries instead of pushing; positions are read but never written.
    pub dry_run: bool,
    /// Report each stage's changes to every entry on stderr (`-inspect`).
    pub inspect: bool,
    /// With `dry_run`: print each entry's structured metadata and extracted values
    /// (`-dry-run.extracted`).
    pub dry_run_extracted: bool,
    /// sd_notify to systemd (readiness, status, watchdog); disabled by default.
    pub notifier: Notifier,
    /// Where the config came from: when set, SIGHUP (and `/reload`) re-read it.
    pub reload_from: Option<reload::Source>,
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
    mut config: Config,
    opts: RunOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    if opts.dry_run_extracted && !opts.dry_run {
        return Err(AgentError(
            "-dry-run.extracted prints what -dry-run prints, and more: add -dry-run".into(),
        ));
    }
    let metrics = Arc::new(Metrics::new());
    let liveness = Liveness::new(opts.notifier.watchdog_interval());
    let stdin_mode = config.target_config.stdin;
    let (stop_tx, stop_rx) = watch::channel(false);

    // Build every job first: a bad stage config stops startup before anything runs.
    let built = build::build_jobs(&config, &config_name(&opts), &metrics)
        .map_err(|e| AgentError(format!("invalid config: {e}")))?;

    let clients_count = clients_needed(&config, &opts);
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
    .with_deletion_counter(metrics.client.positions_file_deleted.clone())
    .with_write_error_counter(metrics.client.positions_write_errors.clone());
    if !(opts.dry_run || stdin_mode)
        && let Some(warning) =
            sandbox::positions_warning(std::path::Path::new(&config.positions.filename))
    {
        tracing::warn!("{warning}");
    }

    let (mut sinks, fanout, ack_rx) = start_sinks(&config, &opts, &metrics)?;
    let mut ack_task = tokio::spawn(positions.clone().run_acks(ack_rx));
    let disk_buffers = DiskBuffers::default();
    disk_buffers.track(&sinks);
    let age_gauge = tokio::spawn(positions.clone().run_age_gauge(
        metrics.client.oldest_unacknowledged_seconds.clone(),
        stop_rx.clone(),
        disk_buffers.oldest(),
    ));
    let saver = tokio::spawn(
        positions
            .clone()
            .run_saver(config.positions.sync_period.0, stop_rx.clone()),
    );

    let targets_view = TargetsView::default();
    let (reload_tx, mut reload_rx) = reload::listen();
    let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
    let server_task = if config.server.disable {
        None
    } else {
        let listener = server::bind(&config.server).await.map_err(AgentError)?;
        let state = server::AppState {
            metrics: metrics.clone(),
            health_check_target: config.server.health_check_target,
            // A journal, syslog or docker job has no files to count but reads as soon as it
            // starts (Promtail's docker target group is always ready).
            always_ready: stdin_mode
                || config.scrape_configs.iter().any(|j| {
                    j.journal.is_some()
                        || j.syslog.is_some()
                        || j.gelf.is_some()
                        || j.loki_push_api.is_some()
                        || j.heroku_drain.is_some()
                        || !j.docker_sd_configs.is_empty()
                }),
            config: config_rx,
            targets: targets_view.clone(),
            positions: Some(positions.clone()),
            reload: (config.server.enable_runtime_reload && opts.reload_from.is_some())
                .then(|| reload_tx.clone()),
        };
        Some(tokio::spawn(server::serve(
            listener,
            state,
            stop_rx.clone(),
        )))
    };

    // Stdin: one pipeline fed by stdin. Files: one job per scrape config (crate::agent::jobs), each
    // with its own stop so a reload can keep, stop or start it alone.
    let mut stdin_tasks = Vec::new();
    let (stdin_done_tx, mut stdin_done_rx) = mpsc::channel::<()>(1);
    let mut job_ctx = jobs::JobContext {
        positions: positions.clone(),
        metrics: metrics.clone(),
        fanout,
        liveness: liveness.clone(),
        targets_view: targets_view.clone(),
        file_access: FileAccess::new(
            config.target_config.inotify,
            crate::sources::files::open_files::fit_to_descriptor_limit(
                config.target_config.max_open_files,
                if config.server.disable {
                    0
                } else {
                    server::listener::Limits::of(&config.server).conn_limit
                },
            ),
            &metrics,
        ),
        inspect: opts.inspect,
        dry_run_extracted: opts.dry_run_extracted,
    };
    let mut running_jobs = jobs::Jobs::default();
    if stdin_mode {
        let labels = stdin::labels(&config);
        // Promtail runs stdin with the first job's pipeline, or an empty one.
        let pipeline = match built.into_iter().next() {
            Some(job) if opts.inspect => job
                .pipeline
                .with_inspector(crate::pipeline::inspect::Inspector::stderr()),
            Some(job) => job.pipeline,
            None => Pipeline::build("", &[], &BuildContext::new("stdin", metrics.clone()))
                .map_err(|e| AgentError(e.to_string()))?,
        };
        let pipeline = if opts.dry_run_extracted {
            pipeline.with_extracted_shown()
        } else {
            pipeline
        };
        let (input, task) =
            task::spawn(pipeline, job_ctx.fanout.clone(), liveness.register("stdin"));
        stdin_tasks.push(task);
        let cap = stdin::LineCap::of(&config, metrics.files.long_lines.clone());
        stdin_tasks.push(tokio::spawn(async move {
            stdin::read(input, Arc::new(labels), cap).await;
            let _ = stdin_done_tx.send(()).await;
        }));
    } else {
        for (job, built) in config.scrape_configs.iter().zip(built) {
            let running = jobs::start(&job_ctx, &config, job, built).map_err(AgentError)?;
            running_jobs.running.insert(job.job_name.clone(), running);
        }
    }
    tracing::info!(
        jobs = config.scrape_configs.len(),
        clients = clients_count,
        dry_run = opts.dry_run,
        "tailward started"
    );

    opts.notifier.ready(&systemd::status_line(&metrics));
    // The watchdog is fed until the very end: draining at shutdown can take a while.
    let (notify_stop_tx, notify_stop_rx) = watch::channel(false);
    let notify_task = tokio::spawn(systemd::run(
        opts.notifier.clone(),
        liveness,
        metrics.clone(),
        notify_stop_rx,
    ));

    let reload_metrics = reload::ReloadMetrics::register(&metrics);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                break;
            }
            _ = stdin_done_rx.recv(), if stdin_mode => {
                tracing::debug!("stdin finished");
                break;
            }
            Some(request) = reload_rx.recv(), if opts.reload_from.is_some() && !stdin_mode => {
                let Some(source) = &opts.reload_from else { continue };
                opts.notifier.reloading();
                let result = reload::read_new_config(source, &config).and_then(|new| {
                    build::build_jobs(&new, &source.config_file, &metrics)
                        .map(|built| (new, built))
                        .map_err(|e| e.to_string())
                });
                let result = match result {
                    Ok((new, built)) => {
                        let mut live = Live {
                            sinks,
                            ack_task,
                            job_ctx: &mut job_ctx,
                            jobs: &mut running_jobs,
                        };
                        let applied = apply_reload(&mut live, &config, &new, built, &opts, &metrics).await;
                        (sinks, ack_task) = (live.sinks, live.ack_task);
                        disk_buffers.track(&sinks);
                        if applied.is_ok() {
                            config = new;
                            let _ = config_tx.send(Arc::new(config.clone()));
                        }
                        applied
                    }
                    Err(e) => Err(e),
                };
                reload_metrics.record(&result, &source.config_file);
                if let Some(reply) = request.reply {
                    let _ = reply.send(result);
                }
                opts.notifier.ready(&systemd::status_line(&metrics));
            }
        }
    }
    opts.notifier.stopping();
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
        // Owns the job context, so its fanout (the clients' senders) goes when reading has
        // stopped and the clients can finish.
        let mut stopping = std::pin::pin!(async move {
            running_jobs.stop_all(&job_ctx).await;
            for t in stdin_tasks {
                let _ = t.await;
            }
            drop(job_ctx);
        });
        let drained = tokio::time::timeout(deadline, &mut stopping).await.is_ok();
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
        finish_sinks(sinks, left).await;
        // With the clients gone, anything still waiting on a queue gives up.
        if !drained {
            stopping.await;
        }
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
    let _ = notify_stop_tx.send(true);
    let _ = notify_task.await;
    tracing::info!("stopped");
    if stdin_mode {
        return stdin_outcome(&metrics);
    }
    Ok(())
}

/// A pipe run must not look successful when entries were passed on by a stage that failed
/// on them: the job kept going, and a file job shows it in `/metrics`, but a pipe has only
/// its exit code.
fn stdin_outcome(metrics: &Metrics) -> Result<(), AgentError> {
    let panicked: u64 = metrics
        .pipeline
        .stage_panics
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum();
    if panicked > 0 {
        return Err(AgentError(format!(
            "{panicked} entries went on past a pipeline stage that panicked on them (tailward_stage_panics_total)"
        )));
    }
    Ok(())
}

/// The clients whose disk buffers hold lines that positions count as settled: the age of
/// the oldest unacknowledged line looks at them too. Follows the clients across reloads.
#[derive(Clone, Default)]
struct DiskBuffers(Arc<std::sync::Mutex<Vec<Arc<client::wal::Wal>>>>);

impl DiskBuffers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<client::wal::Wal>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn track(&self, sinks: &Sinks) {
        *self.lock() = match sinks {
            Sinks::Clients(cs) => cs.iter().filter_map(|c| c.disk_buffer()).collect(),
            Sinks::DryRun(_) => Vec::new(),
        };
    }

    fn oldest(&self) -> impl Fn() -> Option<std::time::Instant> + Send + 'static {
        let this = self.clone();
        move || {
            this.lock()
                .iter()
                .filter_map(|w| w.oldest_unacknowledged())
                .min()
        }
    }
}

/// What a reload may replace while the agent runs.
struct Live<'a> {
    sinks: Sinks,
    ack_task: tokio::task::JoinHandle<()>,
    job_ctx: &'a mut jobs::JobContext,
    jobs: &'a mut jobs::Jobs,
}

/// Applies a validated config (see [`reload::plan`]): unchanged jobs keep running; removed
/// and changed ones stop and drain, and their acknowledgements settle, before changed and
/// added ones start, so no file is read twice. New clients are built before anything stops,
/// so a client that cannot be built leaves everything as it was; the old clients flush what
/// they hold before the new ones take over.
async fn apply_reload(
    live: &mut Live<'_>,
    running: &Config,
    new: &Config,
    built: Vec<build::BuiltJob>,
    opts: &RunOptions,
    metrics: &Arc<Metrics>,
) -> Result<(), String> {
    let plan = reload::plan(running, new);
    tracing::info!(
        keep = plan.keep.len(),
        stop = plan.stop.len(),
        start = plan.start.len(),
        clients_changed = plan.clients_changed,
        "applying reloaded config"
    );
    let new_sinks = if plan.clients_changed {
        Some(start_sinks(new, opts, metrics).map_err(|e| e.0)?)
    } else {
        None
    };
    let grace = new.server.graceful_shutdown_timeout.0;
    live.jobs.stop(live.job_ctx, &plan.stop, Some(grace)).await;
    if let Some((sinks, fanout, ack_rx)) = new_sinks {
        let old = std::mem::replace(&mut live.sinks, sinks);
        finish_sinks(old, grace).await;
        let _ = (&mut live.ack_task).await;
        let positions = &live.job_ctx.positions;
        let forgotten = positions.reset_clients(clients_needed(new, opts));
        if forgotten > 0 {
            tracing::warn!(
                files = forgotten,
                "the old clients did not deliver everything; those files resume from their last acknowledged position"
            );
        }
        live.ack_task = tokio::spawn(positions.clone().run_acks(ack_rx));
        live.job_ctx.fanout = fanout;
    }
    let mut failed = Vec::new();
    let mut built: Vec<Option<build::BuiltJob>> = built.into_iter().map(Some).collect();
    for i in plan.start {
        let job = &new.scrape_configs[i];
        let Some(built) = built.get_mut(i).and_then(Option::take) else {
            continue;
        };
        match jobs::start(live.job_ctx, new, job, built) {
            Ok(running) => {
                live.jobs.running.insert(job.job_name.clone(), running);
            }
            Err(e) => failed.push(format!("job {:?}: {e}", job.job_name)),
        }
    }
    if failed.is_empty() {
        tracing::info!("config reloaded");
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// The config file's name for error messages.
fn config_name(opts: &RunOptions) -> String {
    opts.reload_from
        .as_ref()
        .map_or_else(|| "config".to_string(), |s| s.config_file.clone())
}

/// The clients (or the dry-run printer), their fanout, and the acknowledgements they send.
fn start_sinks(
    config: &Config,
    opts: &RunOptions,
    metrics: &Arc<Metrics>,
) -> Result<(Sinks, Fanout, ack::AckReceiver), AgentError> {
    let (ack_factory, ack_rx) = ack::channel();
    let sinks = if opts.dry_run {
        Sinks::DryRun(dry_run::spawn(
            ack_factory.for_client(0),
            opts.dry_run_extracted,
        ))
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
    Ok((sinks, fanout, ack_rx))
}

/// How many acknowledging clients positions track.
fn clients_needed(config: &Config, opts: &RunOptions) -> usize {
    if opts.dry_run {
        1
    } else {
        config.clients.len()
    }
}

/// Lets the clients flush within `left`.
async fn finish_sinks(sinks: Sinks, left: Duration) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_run_fails_when_a_stage_panicked_on_an_entry() {
        let metrics = Metrics::new();
        assert!(stdin_outcome(&metrics).is_ok());
        metrics
            .pipeline
            .stage_panics
            .with_label_values(&["stdin", "template"])
            .inc();
        let e = stdin_outcome(&metrics).unwrap_err();
        assert!(e.0.contains("1 entries"), "{e}");
    }
}
