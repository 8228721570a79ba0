//! The docker source: Promtail's `docker_sd_configs`. Containers are discovered through the
//! Docker Engine API ([`api`]) as Prometheus' moby discovery does ([`discovery`]), every
//! `refresh_interval` and at once when the daemon reports a container start; each kept
//! container's log is read through the API's logs endpoint by its own
//! [`reader::ContainerReader`], decoded by [`frames`].
//!
//! Owns the job's set of readers (one per container ID, the first target found for it
//! giving its labels, frozen as Promtail's are), the daemon's health (logged once per
//! change, every failed call counted, retried with backoff) and what `/targets` and
//! `/service-discovery` show of the job. Beyond Promtail: a container that starts and exits
//! between two refreshes is still read (the start event finds it), and one that stopped
//! while the agent was down has the rest of its log read once (its position is saved).
//! Back-pressure: a reader does not read its container's stream further while the job's
//! pipeline is full; the pipeline's input is fair, so a quiet container's lines wait behind
//! at most one batch of a noisy one's. It must not know stages or Loki.

pub mod api;
pub mod discovery;
pub mod frames;
pub mod reader;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::config::{DockerSdConfig, ScrapeConfig};
use crate::delivery::positions::PositionsView;
use crate::metrics::DockerMetrics;
use crate::model::entry::LineBatch;
use crate::sources::relabel::Relabeler;
use crate::sources::targets_view::{DroppedView, TargetView, TargetsView};
use api::{ApiError, DockerApi};
use discovery::{AddressRules, DiscoveredTarget};
use reader::{ContainerReader, ContainerSpec, ReaderSettings, cursor_key, stream_labels};

/// Promtail's line limit when `limits_config.max_line_size` is 0.
pub const DEFAULT_MAX_LINE: usize = 256 << 10;

const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// A docker job, ready to run.
pub struct DockerSource {
    discoveries: Vec<(DockerSdConfig, DockerApi)>,
    settings: Arc<ReaderSettings>,
    view: TargetsView,
}

/// What a discovery tells the job.
enum Found {
    /// Targets of listed containers: every listed one (`refresh`), or one that just started.
    Targets {
        api: DockerApi,
        targets: Vec<DiscoveredTarget>,
        running: Vec<String>,
        started: bool,
    },
    /// The container may have been removed.
    Wake(String),
}

struct Known {
    wake: Arc<Notify>,
    discovered: BTreeMap<String, String>,
}

impl DockerSource {
    /// Checks every `docker_sd_configs` entry of `job` (its TLS files are read now).
    pub fn new(
        job: &ScrapeConfig,
        relabelers: Vec<Relabeler>,
        metrics: DockerMetrics,
        view: TargetsView,
        max_line: usize,
    ) -> Result<Self, String> {
        let discoveries = job
            .docker_sd_configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                DockerApi::new(c)
                    .map(|api| (c.clone(), api))
                    .map_err(|e| format!("docker_sd_configs[{i}].{e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DockerSource {
            discoveries,
            settings: Arc::new(ReaderSettings {
                job: job.job_name.clone(),
                relabelers,
                metrics,
                max_line: if max_line == 0 {
                    DEFAULT_MAX_LINE
                } else {
                    max_line
                },
            }),
            view,
        })
    }

    /// Discovers and reads until `stop`; returns once every reader has handed on what it read.
    pub async fn run(
        mut self,
        positions: PositionsView,
        out: mpsc::Sender<LineBatch>,
        stop: watch::Receiver<bool>,
    ) {
        let job = self.settings.job.clone();
        let (found_tx, mut found) = mpsc::channel::<Found>(16);
        let mut discoveries = JoinSet::new();
        for (config, api) in std::mem::take(&mut self.discoveries) {
            discoveries.spawn(discover(
                job.clone(),
                config,
                api,
                found_tx.clone(),
                self.settings.metrics.clone(),
                stop.clone(),
            ));
        }
        drop(found_tx);
        let mut known: HashMap<String, Known> = HashMap::new();
        let mut readers = JoinSet::new();
        loop {
            tokio::select! {
                f = found.recv() => match f {
                    None => break,
                    Some(Found::Wake(id)) => {
                        if let Some(k) = known.get(&id) {
                            k.wake.notify_one();
                        }
                    }
                    Some(Found::Targets { api, targets, running, started }) => {
                        let listed: HashSet<String> =
                            targets.iter().map(|t| t.container_id.clone()).collect();
                        for t in targets {
                            let runs = running.contains(&t.container_id);
                            if let Some(k) = known.get(&t.container_id) {
                                // Restarted under the same ID: read on from its position.
                                if runs || started {
                                    k.wake.notify_one();
                                }
                                continue;
                            }
                            let saved = positions
                                .saved_cursor(&cursor_key(&t.container_id))
                                .is_some();
                            if !(runs || started || saved) {
                                continue;
                            }
                            // The first target of a container gives its labels.
                            let reader = self.spawn_reader(&t, &api, &positions, &out, &stop, &mut readers);
                            tracing::debug!(job = %job, container = %t.container_id, "reading a container's log");
                            known.insert(t.container_id, Known { wake: reader, discovered: t.labels });
                        }
                        if !started {
                            // Not listed any more: removed (its reader finds out and ends).
                            for (id, k) in &known {
                                if !listed.contains(id) {
                                    k.wake.notify_one();
                                }
                            }
                        }
                        self.publish(&job, &known);
                    }
                },
                Some(ended) = readers.join_next(), if !readers.is_empty() => {
                    if let Ok(id) = ended {
                        known.remove(&id);
                        self.publish(&job, &known);
                    }
                }
            }
        }
        while discoveries.join_next().await.is_some() {}
        while readers.join_next().await.is_some() {}
    }

    /// Starts the reader of `target`'s container; the handle that wakes it.
    fn spawn_reader(
        &self,
        target: &DiscoveredTarget,
        api: &DockerApi,
        positions: &PositionsView,
        out: &mpsc::Sender<LineBatch>,
        stop: &watch::Receiver<bool>,
        readers: &mut JoinSet<String>,
    ) -> Arc<Notify> {
        let wake = Arc::new(Notify::new());
        let spec = ContainerSpec {
            id: target.container_id.clone(),
            discovered: target.labels.clone(),
            api: api.clone(),
        };
        let reader = ContainerReader::open(spec, self.settings.clone(), positions, out.clone());
        let id = target.container_id.clone();
        let (w, s) = (wake.clone(), stop.clone());
        readers.spawn(async move {
            reader.run(w, s).await;
            id
        });
        wake
    }

    /// The job's containers on `/service-discovery` and `/targets`.
    fn publish(&self, job: &str, known: &HashMap<String, Known>) {
        let mut targets = Vec::new();
        let mut dropped = Vec::new();
        let mut ids: Vec<&String> = known.keys().collect();
        ids.sort();
        for id in ids {
            let k = &known[id];
            match stream_labels(&self.settings.relabelers, &k.discovered, None) {
                Some(labels) => targets.push(TargetView {
                    discovered: k.discovered.clone(),
                    labels,
                    path_pattern: String::new(),
                }),
                None => dropped.push(DroppedView {
                    discovered: k.discovered.clone(),
                    reason: "relabeling",
                }),
            }
        }
        self.view.set_targets(job, targets, dropped);
    }
}

/// The daemon's health as last seen by one discovery, logged only when it changes.
#[derive(PartialEq)]
enum Health {
    Unknown,
    Up,
    Down(&'static str),
}

impl Health {
    fn up(&mut self, job: &str, api: &DockerApi) {
        if *self != Health::Up {
            tracing::info!(job, daemon = %api.describe(), "docker daemon reachable; discovering containers");
        }
        *self = Health::Up;
    }

    fn down(&mut self, job: &str, api: &DockerApi, e: &ApiError, metrics: &DockerMetrics) {
        let reason = match e {
            ApiError::Unreachable(_) => "unreachable",
            ApiError::Status(..) => "status",
            ApiError::Protocol(_) => "protocol",
        };
        metrics.daemon_errors.with_label_values(&[reason]).inc();
        // One line per change of state: a daemon restarting fails the stream, then every
        // connection, and is said once.
        if *self != Health::Down(reason) {
            tracing::warn!(job, daemon = %api.describe(), error = %e, "docker discovery failed; retrying with backoff (other jobs keep running)");
        }
        *self = Health::Down(reason);
    }
}

/// One `docker_sd_configs` entry: lists containers every `refresh_interval` and follows the
/// daemon's events in between, until `stop`.
async fn discover(
    job: String,
    config: DockerSdConfig,
    api: DockerApi,
    found: mpsc::Sender<Found>,
    metrics: DockerMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let refresh_every = if config.refresh_interval.0.is_zero() {
        Duration::from_secs(60)
    } else {
        config.refresh_interval.0
    };
    let rules = AddressRules {
        port: config.port,
        host_networking_host: &config.host_networking_host,
        match_first_network: config.match_first_network,
    };
    let mut health = Health::Unknown;
    let mut retry = RETRY_MIN;
    // Events are asked for from just before the last stream ended (or the first list), so
    // a container that started and ended in between (while the daemon restarted, or
    // between a list and the next subscription) is still seen.
    let mut events_since: Option<i64> = None;
    loop {
        let list_started = unix_now();
        let listed = async {
            let nets = api.networks().await?;
            let containers = api.containers(&config.filters_json(&[]), true).await?;
            Ok::<_, ApiError>((nets, containers))
        };
        let listed = tokio::select! {
            l = listed => l,
            _ = stop.wait_for(|s| *s) => return,
        };
        let networks = match listed {
            Ok((nets, containers)) => {
                health.up(&job, &api);
                retry = RETRY_MIN;
                let networks = discovery::network_labels(&nets);
                let running = running_ids(&containers);
                let targets = discovery::targets(&containers, &containers, &networks, &rules);
                let message = Found::Targets {
                    api: api.clone(),
                    targets,
                    running,
                    started: false,
                };
                if found.send(message).await.is_err() {
                    return;
                }
                networks
            }
            Err(e) => {
                // Containers started from now until the daemon answers are asked for then.
                events_since.get_or_insert(list_started);
                health.down(&job, &api, &e, &metrics);
                if wait(&mut stop, retry).await {
                    return;
                }
                retry = (retry * 2).min(RETRY_MAX).min(refresh_every.max(RETRY_MIN));
                continue;
            }
        };
        let deadline = tokio::time::Instant::now() + refresh_every;
        let since = events_since.unwrap_or(list_started) - EVENTS_OVERLAP_SECS;
        let events = tokio::select! {
            e = api.events(since) => e,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut events = match events {
            Ok(body) => body,
            Err(e) => {
                events_since.get_or_insert(list_started);
                health.down(&job, &api, &e, &metrics);
                if wait(&mut stop, retry).await {
                    return;
                }
                retry = (retry * 2).min(RETRY_MAX).min(refresh_every.max(RETRY_MIN));
                continue;
            }
        };
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let chunk = tokio::select! {
                c = api::next_chunk(&mut events) => c,
                _ = tokio::time::sleep_until(deadline) => {
                    events_since = Some(unix_now());
                    break;
                }
                _ = stop.wait_for(|s| *s) => return,
            };
            let bytes = match chunk {
                Some(Ok(b)) => b,
                other => {
                    // The daemon stopped (or restarts): list again once it answers.
                    let e = match other {
                        Some(Err(e)) => ApiError::Unreachable(format!("event stream broke: {e}")),
                        _ => ApiError::Unreachable("event stream ended".into()),
                    };
                    events_since = Some(unix_now());
                    health.down(&job, &api, &e, &metrics);
                    if wait(&mut stop, retry).await {
                        return;
                    }
                    break;
                }
            };
            buffer.extend_from_slice(&bytes);
            while let Some(end) = memchr::memchr(b'\n', &buffer) {
                let event: Option<api::Event> = serde_json::from_slice(&buffer[..end]).ok();
                buffer.drain(..=end);
                let Some(event) = event else { continue };
                let message = match event.action.as_str() {
                    "start" => {
                        let filters = config.filters_json(&[("id", &event.actor.id)]);
                        match api.containers(&filters, true).await {
                            Ok(containers) => Found::Targets {
                                api: api.clone(),
                                targets: discovery::targets(
                                    &containers,
                                    &containers,
                                    &networks,
                                    &rules,
                                ),
                                running: running_ids(&containers),
                                started: true,
                            },
                            Err(e) => {
                                health.down(&job, &api, &e, &metrics);
                                continue;
                            }
                        }
                    }
                    "destroy" => Found::Wake(event.actor.id),
                    _ => continue,
                };
                if found.send(message).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Events asked for start this long before the last one known seen: the daemon's clock
/// and ours are the same host's, but whole seconds.
const EVENTS_OVERLAP_SECS: i64 = 2;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn running_ids(containers: &[api::ContainerSummary]) -> Vec<String> {
    containers
        .iter()
        .filter(|c| c.state == "running" || c.state == "restarting")
        .map(|c| c.id.clone())
        .collect()
}

/// Sleeps `d`; true when `stop` came first.
async fn wait(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}
