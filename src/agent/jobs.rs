//! The running jobs: one per scrape config, each a pipeline task fed by that job's
//! discovery and tailers (or its journal reader, syslog listener or push listener), with its own stop
//! signal so that a reload can keep, stop or start each job on its own.
//!
//! Owns starting a job from its config and stopping it with a full drain (tailers finish
//! their batch, the pipeline releases what it holds, acknowledgements settle). It must not
//! compare configs ([`crate::agent::reload`] does) nor own clients or positions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agent::build::BuiltJob;
use crate::client::queue::Fanout;
use crate::config::{Config, ScrapeConfig};
use crate::delivery::positions::Positions;
use crate::metrics::Metrics;
use crate::pipeline::liveness::Liveness;
use crate::pipeline::task::{self, EntryOutput};
use crate::sources::files::discovery;
use crate::sources::files::file_sd::FileSd;
use crate::sources::files::tailer::{Decompression, FileAccess, TailOptions, TailerSet};
use crate::sources::targets_view::TargetsView;

/// What every job shares.
#[derive(Clone)]
pub struct JobContext {
    pub positions: Positions,
    pub metrics: Arc<Metrics>,
    pub fanout: Fanout,
    pub liveness: Liveness,
    pub targets_view: TargetsView,
    /// One inotify watcher and one open-file bound for every job, kept across reloads.
    pub file_access: FileAccess,
    pub inspect: bool,
    /// `-dry-run.extracted`: pipelines hand their extracted values to the dry-run printer.
    pub dry_run_extracted: bool,
}

/// One running job.
pub struct RunningJob {
    pub config: ScrapeConfig,
    stop: watch::Sender<bool>,
    source: JoinHandle<()>,
    pipeline: JoinHandle<()>,
    targets: usize,
}

/// The jobs by name.
#[derive(Default)]
pub struct Jobs {
    pub running: BTreeMap<String, RunningJob>,
}

/// Starts `job`'s pipeline and a source that reads no files (journal, syslog, push, gelf,
/// docker): `run` gets the pipeline's input and the job's stop signal.
fn start_source<F, Fut>(
    ctx: &JobContext,
    job: &ScrapeConfig,
    pipeline: crate::pipeline::Pipeline,
    run: F,
) -> RunningJob
where
    F: FnOnce(
        tokio::sync::mpsc::Sender<crate::model::entry::LineBatch>,
        watch::Receiver<bool>,
    ) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (input, pipeline_task) = task::spawn(
        pipeline,
        ctx.fanout.clone(),
        ctx.liveness.register(&job.job_name),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    RunningJob {
        config: job.clone(),
        stop: stop_tx,
        source: tokio::spawn(run(input, stop_rx)),
        pipeline: pipeline_task,
        targets: 0,
    }
}

/// Starts `job` of `config` from its built pipeline and relabelers ([`crate::agent::build`]).
pub fn start(
    ctx: &JobContext,
    config: &Config,
    job: &ScrapeConfig,
    built: BuiltJob,
) -> Result<RunningJob, String> {
    let BuiltJob {
        pipeline,
        relabelers,
    } = built;
    let pipeline = if ctx.inspect {
        pipeline.with_inspector(crate::pipeline::inspect::Inspector::stderr())
    } else {
        pipeline
    };
    let pipeline = if ctx.dry_run_extracted {
        pipeline.with_extracted_shown()
    } else {
        pipeline
    };
    if let Some(journal) = &job.journal {
        let source = crate::sources::journal::JournalSource::new(job, journal, relabelers)
            .with_metrics(ctx.metrics.journal.clone());
        let positions = ctx.positions.view();
        return Ok(start_source(ctx, job, pipeline, |input, stop| {
            source.run(positions, input, stop)
        }));
    }
    // As Promtail routes a job: static_configs first, then journal, then syslog.
    if let Some(syslog) = job.syslog.as_ref().filter(|_| !job.tails_files()) {
        let source = crate::sources::syslog::SyslogSource::bind(
            job,
            syslog,
            relabelers,
            ctx.metrics.syslog.clone(),
        )?;
        ctx.targets_view
            .set_source_targets(&job.job_name, vec![source.target_view()]);
        return Ok(start_source(ctx, job, pipeline, |input, stop| {
            source.run(input, stop)
        }));
    }
    // Then, in Promtail's order (its targets manager's switch): the push API, GELF, Docker,
    // and last Heroku drains.
    let others_first = job.tails_files() || job.syslog.is_some();
    if let Some(push) = job.loki_push_api.as_ref().filter(|_| !others_first) {
        let source = crate::sources::push::PushSource::bind_loki(
            job,
            push,
            relabelers.clone(),
            ctx.metrics.push.clone(),
            &ctx.positions.view(),
        )?;
        ctx.targets_view
            .set_targets(&job.job_name, vec![source.target_view()], Vec::new());
        return Ok(start_source(ctx, job, pipeline, |input, stop| {
            source.run(input, stop)
        }));
    }
    let others_first = others_first || job.loki_push_api.is_some();
    if let Some(gelf) = job.gelf.as_ref().filter(|_| !others_first) {
        let source = crate::sources::gelf::GelfSource::bind(
            job,
            gelf,
            relabelers,
            ctx.metrics.gelf.clone(),
        )?;
        ctx.targets_view
            .set_source_targets(&job.job_name, vec![source.target_view()]);
        return Ok(start_source(ctx, job, pipeline, |input, stop| {
            source.run(input, stop)
        }));
    }
    let others_first = others_first || job.gelf.is_some();
    if !job.docker_sd_configs.is_empty() && !others_first {
        let source = crate::sources::docker::DockerSource::new(
            job,
            relabelers,
            ctx.metrics.docker.clone(),
            ctx.targets_view.clone(),
            config.limits_config.max_line_size.0 as usize,
        )?;
        let positions = ctx.positions.view();
        return Ok(start_source(ctx, job, pipeline, |input, stop| {
            source.run(positions, input, stop)
        }));
    }
    let others_first = others_first || !job.docker_sd_configs.is_empty();
    if let Some(heroku) = job.heroku_drain.as_ref().filter(|_| !others_first) {
        let source = crate::sources::push::PushSource::bind_heroku(
            job,
            heroku,
            relabelers.clone(),
            ctx.metrics.push.clone(),
            &ctx.positions.view(),
        )?;
        ctx.targets_view
            .set_targets(&job.job_name, vec![source.target_view()], Vec::new());
        return Ok(start_source(ctx, job, pipeline, |input, stop| {
            source.run(input, stop)
        }));
    }
    // file_sd_configs: the targets change as their files do, sent on by `file_sd`.
    let mut file_sd = None;
    let (targets, dropped) = if job.file_sd_configs.is_empty() {
        discovery::discover(job, &relabelers, &ctx.metrics)?
    } else {
        let mut sd = FileSd::new(
            job,
            relabelers.clone(),
            ctx.metrics.clone(),
            ctx.targets_view.clone(),
        );
        let found = sd.discover()?;
        file_sd = Some(sd);
        found
    };
    // Validated at load; an error here means the config did not come through it.
    let encoding = job
        .file_encoding()
        .map_err(|expected| format!("scrape config {:?}: encoding: {expected}", job.job_name))?;
    discovery::publish(&ctx.targets_view, &job.job_name, &targets, dropped);
    let target_count = targets.len();
    ctx.metrics.files.targets_active.add(target_count as f64);

    let (input, pipeline_task) = task::spawn(
        pipeline,
        ctx.fanout.clone(),
        ctx.liveness.register(&job.job_name),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let tailers = TailerSet::new(
        ctx.positions.view(),
        input,
        ctx.metrics.clone(),
        TailOptions {
            encoding,
            decompression: Decompression::of_job(job)?,
            ..TailOptions::from_config(config)
        },
        stop_rx.clone(),
        ctx.file_access.clone(),
    );
    let sync = config.target_config.sync_period.0;
    let report = discovery::Report {
        view: ctx.targets_view.clone(),
        job: job.job_name.clone(),
    };
    // A discovery mechanism (file_sd_configs or Kubernetes) republishes the job's targets as
    // they change; the file discovery below follows each new set.
    let (initial, updates, discovery_task) = if let Some(sd) = file_sd {
        let (tx, rx) = watch::channel(Vec::new());
        let task = tokio::spawn(sd.run(tx, stop_rx.clone()));
        let initial = targets.into_iter().map(Arc::new).collect();
        (initial, Some(rx), Some(task))
    } else if !job.kubernetes_sd_configs.is_empty() {
        let rx = crate::sources::kubernetes::prepare(
            job,
            relabelers,
            targets,
            ctx.metrics.clone(),
            ctx.targets_view.clone(),
            crate::sources::kubernetes::watcher::Backoff::default(),
        )
        .map_err(|e| format!("scrape config {:?}: {e}", job.job_name))?
        .spawn(stop_rx.clone());
        let initial = rx.borrow().clone();
        (initial, Some(rx), None)
    } else {
        (targets.into_iter().map(Arc::new).collect(), None, None)
    };
    let source = tokio::spawn(async move {
        let tailers =
            discovery::run_with_updates(initial, updates, sync, tailers, stop_rx, report).await;
        if let Some(task) = discovery_task {
            let _ = task.await;
        }
        tailers.join().await;
    });
    Ok(RunningJob {
        config: job.clone(),
        stop: stop_tx,
        source,
        pipeline: pipeline_task,
        targets: target_count,
    })
}

impl Jobs {
    /// Stops every job: first all reading stops, then every pipeline drains.
    pub async fn stop_all(&mut self, ctx: &JobContext) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        self.stop(ctx, &names, None).await;
    }

    /// Stops the named jobs and drains them. With `settle`, also waits (up to that long) for
    /// the clients to acknowledge everything the jobs read, so a successor job reading the
    /// same files starts where they stopped.
    pub async fn stop(&mut self, ctx: &JobContext, names: &[String], settle: Option<Duration>) {
        let mut stopping = Vec::new();
        for name in names {
            if let Some(job) = self.running.remove(name) {
                let _ = job.stop.send(true);
                stopping.push((name.clone(), job));
            }
        }
        for (_, job) in &mut stopping {
            let _ = (&mut job.source).await;
        }
        // What positions track for these jobs: their files, or a journal job's cursor. Taken
        // once their discovery has ended, so a file it started on its last round is waited for.
        let files: Vec<String> = {
            let view = ctx.targets_view.snapshot();
            stopping
                .iter()
                .filter_map(|(name, _)| view.get(name))
                .flat_map(|v| {
                    // A docker job's containers are tracked under cursor-<container ID>.
                    let containers = v.targets.iter().filter_map(|t| {
                        t.discovered
                            .get(crate::sources::docker::discovery::CONTAINER_ID)
                            .map(|id| crate::sources::docker::reader::cursor_key(id))
                    });
                    v.files
                        .keys()
                        .map(|p| p.display().to_string())
                        .chain(containers)
                        .collect::<Vec<_>>()
                })
                .chain(
                    stopping
                        .iter()
                        .filter(|(_, job)| job.config.journal.is_some())
                        .map(|(name, _)| crate::sources::journal::cursor_key(name)),
                )
                .collect()
        };
        for (name, job) in stopping {
            let _ = job.pipeline.await;
            ctx.metrics.files.targets_active.sub(job.targets as f64);
            ctx.targets_view.remove_job(&name);
        }
        if let Some(limit) = settle {
            let deadline = tokio::time::Instant::now() + limit;
            while !files.iter().all(|f| ctx.positions.settled(f)) {
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(
                        "entries of stopped jobs not acknowledged in time; their successors start before those are delivered"
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

impl EntryOutput for Fanout {
    async fn send(&self, items: Vec<crate::model::entry::Outgoing>) -> bool {
        Fanout::send(self, items).await
    }
}
