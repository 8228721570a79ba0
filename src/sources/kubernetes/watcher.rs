//! One resource kind in one scope, kept current: list, then watch from the list's resource
//! version, resuming each watch from the last version seen (events and bookmarks); relist
//! on 410 Gone; back off on every other failure.
//!
//! Owns the loop and its failure states: each change of state (working, or failing for a
//! given reason) is logged once, and every failure is counted. It must not build targets:
//! it hands objects to [`super::Discovery`] through a channel.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent;
use k8s_openapi::{ListableResource, Metadata};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use super::api::{ApiClient, ApiError, Scope};
use crate::metrics::kubernetes::KubernetesMetrics;

/// What a watcher tells discovery.
pub enum Change<T> {
    /// A (re)list: these are all the objects of the scope now.
    Synced(Vec<T>),
    Upsert(T),
    Delete(T),
}

/// Backoff between failed calls (client-go's reflector: 800 ms doubling to 30 s).
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(800),
            max: Duration::from_secs(30),
        }
    }
}

/// Where a watcher reports, and as what.
#[derive(Clone)]
pub struct Labels {
    pub job: String,
    pub resource: &'static str,
    pub metrics: KubernetesMetrics,
}

/// How long each watch asks the server to keep it open (client-go: 5 to 10 minutes).
fn watch_timeout() -> Duration {
    Duration::from_secs(300 + rand::random_range(0..300))
}

/// Runs until `stop` turns true or the receiver is gone.
pub async fn run<T, M>(
    client: ApiClient,
    scope: Scope,
    out: mpsc::Sender<M>,
    wrap: impl Fn(Change<T>) -> M + Send + 'static,
    who: Labels,
    backoff: Backoff,
    mut stop: watch::Receiver<bool>,
) where
    T: ListableResource + Metadata<Ty = ObjectMeta> + DeserializeOwned + Send + 'static,
    M: Send + 'static,
{
    let mut state = State::new(&who, &scope);
    let mut delay = backoff.initial;
    let pause = |d: Duration, stop: &mut watch::Receiver<bool>| {
        let mut stop = stop.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => false,
                _ = stop.wait_for(|s| *s) => true,
            }
        }
    };
    'relist: loop {
        if *stop.borrow() {
            return;
        }
        let listed = tokio::select! {
            r = client.list::<T>(&scope) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut rv = match listed {
            Ok((items, rv)) => {
                state.ok();
                delay = backoff.initial;
                if out.send(wrap(Change::Synced(items))).await.is_err() {
                    return;
                }
                rv
            }
            Err(e) => {
                state.failed(&e);
                if pause(delay, &mut stop).await {
                    return;
                }
                delay = (delay * 2).min(backoff.max);
                continue 'relist;
            }
        };
        loop {
            let started = tokio::select! {
                r = client.watch::<T>(&scope, &rv, watch_timeout()) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            let mut stream = match started {
                Ok(s) => {
                    state.ok();
                    delay = backoff.initial;
                    s
                }
                Err(e @ ApiError::Gone(_)) => {
                    state.relisting(&e);
                    continue 'relist;
                }
                Err(e) => {
                    state.failed(&e);
                    if pause(delay, &mut stop).await {
                        return;
                    }
                    delay = (delay * 2).min(backoff.max);
                    continue;
                }
            };
            loop {
                let ev = tokio::select! {
                    ev = stream.next() => ev,
                    _ = stop.wait_for(|s| *s) => return,
                };
                let change = match ev {
                    // The server ended the watch (timeoutSeconds): watch again from `rv`.
                    None => break,
                    Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                        state.ok();
                        delay = backoff.initial;
                        who.metrics.event(&who.job, who.resource, "update");
                        rv = o.metadata().resource_version.clone().unwrap_or(rv);
                        Change::Upsert(o)
                    }
                    Some(Ok(WatchEvent::Deleted(o))) => {
                        state.ok();
                        who.metrics.event(&who.job, who.resource, "delete");
                        rv = o.metadata().resource_version.clone().unwrap_or(rv);
                        Change::Delete(o)
                    }
                    Some(Ok(WatchEvent::Bookmark {
                        resource_version, ..
                    })) => {
                        who.metrics.event(&who.job, who.resource, "bookmark");
                        rv = resource_version;
                        continue;
                    }
                    Some(Ok(WatchEvent::ErrorStatus(_) | WatchEvent::ErrorOther(_))) => continue,
                    Some(Err(e @ ApiError::Gone(_))) => {
                        state.relisting(&e);
                        continue 'relist;
                    }
                    Some(Err(e)) => {
                        state.failed(&e);
                        if pause(delay, &mut stop).await {
                            return;
                        }
                        delay = (delay * 2).min(backoff.max);
                        break;
                    }
                };
                if out.send(wrap(change)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The watcher's health, logged when it changes.
struct State {
    what: String,
    job: String,
    resource: &'static str,
    metrics: KubernetesMetrics,
    /// `None`: working (or not yet started); `Some(reason)`: failing for that reason.
    failing: Option<&'static str>,
    started: bool,
}

impl State {
    fn new(who: &Labels, scope: &Scope) -> State {
        let ns = scope.namespace.as_deref().unwrap_or("all namespaces");
        State {
            what: format!("{} in {ns}", who.resource),
            job: who.job.clone(),
            resource: who.resource,
            metrics: who.metrics.clone(),
            failing: None,
            started: false,
        }
    }

    fn ok(&mut self) {
        if let Some(reason) = self.failing.take() {
            tracing::info!(job = %self.job, watching = %self.what, previous = reason, "kubernetes discovery recovered");
        } else if !self.started {
            tracing::debug!(job = %self.job, watching = %self.what, "kubernetes discovery listed");
        }
        self.started = true;
        self.metrics.set_up(&self.job, self.resource, true);
    }

    fn failed(&mut self, e: &ApiError) {
        let reason = e.reason();
        self.metrics.failure(&self.job, self.resource, reason);
        self.metrics.set_up(&self.job, self.resource, false);
        if self.failing != Some(reason) {
            tracing::warn!(job = %self.job, watching = %self.what, error = %e, "kubernetes discovery failing; retrying with backoff");
            self.failing = Some(reason);
        }
    }

    fn relisting(&mut self, e: &ApiError) {
        self.metrics.failure(&self.job, self.resource, e.reason());
        tracing::info!(job = %self.job, watching = %self.what, error = %e, "watch expired; listing again");
    }
}
