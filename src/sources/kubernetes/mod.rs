//! Kubernetes service discovery (`kubernetes_sd_configs`): the API server's pods (or nodes,
//! services, endpoints, endpoint slices, ingresses) as targets with Prometheus'
//! `__meta_kubernetes_*` labels, relabeled into `__path__` globs that the job's file
//! discovery tails like any static target.
//!
//! Owns one watcher per resource and namespace ([`watcher`]), the objects they keep, and
//! turning those into the job's targets ([`roles`], relabeling, Promtail's node filter for
//! role `pod`), republished whenever they change. It must not open log files: it hands
//! targets to [`crate::sources::files::discovery`], so kubelet rotation, positions and
//! acknowledgements work as for any file.

pub mod api;
pub mod connection;
pub mod roles;
pub mod watcher;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ListableResource, Metadata};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use crate::config::ScrapeConfig;
use crate::config::kubernetes::{KubernetesSdConfig, SelectorConfig};
use crate::metrics::Metrics;
use crate::sources::files::discovery::{self, Target};
use crate::sources::relabel::Relabeler;
use crate::sources::targets_view::{DroppedView, TargetView, TargetsView};
use api::{ApiClient, Scope};
use roles::Labels;
use watcher::{Backoff, Change};

/// Promtail's `fulfillKubePodSelector`: every `role: pod` config only sees the pods of this
/// node (`spec.nodeName=$HOSTNAME`), added to each selector's field selector.
pub fn node_filtered_selectors(sd: &KubernetesSdConfig, hostname: &str) -> Vec<SelectorConfig> {
    if sd.role != "pod" {
        return sd.selectors.clone();
    }
    let filter = format!("spec.nodeName={hostname}");
    if sd.selectors.is_empty() {
        return vec![SelectorConfig {
            role: "pod".into(),
            label: String::new(),
            field: filter,
        }];
    }
    sd.selectors
        .iter()
        .map(|s| {
            let field = if s.field.is_empty() {
                filter.clone()
            } else if s.field.contains(&filter) {
                s.field.clone()
            } else {
                format!("{},{filter}", s.field)
            };
            SelectorConfig {
                role: "pod".into(),
                label: s.label.clone(),
                field,
            }
        })
        .collect()
}

/// A message from a watcher: which config, which namespace scope, what changed. Objects
/// are moved through, not boxed: one message per event.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Pod(usize, Option<String>, Change<Pod>),
    Node(usize, Option<String>, Change<Node>),
    Service(usize, Option<String>, Change<Service>),
    Endpoints(usize, Option<String>, Change<Endpoints>),
    EndpointSlice(usize, Option<String>, Change<EndpointSlice>),
    Ingress(usize, Option<String>, Change<Ingress>),
}

/// Starts one watcher, sending into the channel until the stop signal.
type StartWatcher = Box<dyn FnOnce(mpsc::Sender<Msg>, watch::Receiver<bool>) + Send>;

/// Objects by `namespace/name` (or `name` for nodes).
type Store<T> = BTreeMap<String, T>;

fn key_of(meta: &ObjectMeta) -> String {
    match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or("")),
        None => meta.name.clone().unwrap_or_default(),
    }
}

/// Applies a watcher's change to a store; returns the keys touched (`None`: all of them).
fn apply<T: Metadata<Ty = ObjectMeta>>(
    store: &mut Store<T>,
    scope: &Option<String>,
    change: Change<T>,
) -> Option<String> {
    match change {
        Change::Synced(items) => {
            match scope {
                Some(ns) => {
                    let prefix = format!("{ns}/");
                    store.retain(|k, _| !k.starts_with(&prefix));
                }
                None => store.clear(),
            }
            for o in items {
                store.insert(key_of(o.metadata()), o);
            }
            None
        }
        Change::Upsert(o) => {
            let k = key_of(o.metadata());
            store.insert(k.clone(), o);
            Some(k)
        }
        Change::Delete(o) => {
            let k = key_of(o.metadata());
            store.remove(&k);
            Some(k)
        }
    }
}

/// One `kubernetes_sd_configs` entry's objects and the targets built from them.
#[derive(Default)]
struct SdState {
    role: String,
    attach_node: bool,
    pods: Store<Pod>,
    nodes: Store<Node>,
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    endpointslices: Store<EndpointSlice>,
    ingresses: Store<Ingress>,
    /// Targets by object key.
    groups: BTreeMap<String, Group>,
    /// Targets of objects that went away, kept until the deadline (see [`LINGER`]).
    lingering: BTreeMap<String, (tokio::time::Instant, Group)>,
    /// Pods deleted since the last rebuild: one added and deleted within the same batch
    /// had no targets yet, and lingers from these.
    deleted_pods: BTreeMap<String, Pod>,
    /// Object keys whose targets must be rebuilt; `all` rebuilds every group.
    dirty: BTreeSet<String>,
    all: bool,
}

#[derive(Default)]
struct Group {
    targets: Vec<Arc<Target>>,
    dropped: Vec<DroppedView>,
}

impl SdState {
    fn mark(&mut self, touched: Option<String>, role_store: bool) {
        match touched {
            // A change of another kind (the services and pods an endpoints role joins, the
            // nodes of attach_metadata) can change any group.
            Some(k) if role_store => {
                self.dirty.insert(k);
            }
            _ => self.all = true,
        }
    }

    /// The label sets of the object at `key` of this config's role.
    fn labels_of(&self, key: &str) -> Option<Vec<Labels>> {
        let pods = |ns: &str, n: &str| self.pods.get(&format!("{ns}/{n}"));
        let services = |ns: &str, n: &str| self.services.get(&format!("{ns}/{n}"));
        let lookup = roles::Lookup {
            pods: &pods,
            services: &services,
        };
        Some(match self.role.as_str() {
            "pod" => {
                let pod = self.pods.get(key)?;
                let node = if self.attach_node {
                    pod.spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_ref())
                        .and_then(|n| self.nodes.get(n))
                } else {
                    None
                };
                roles::pod_targets(pod, node)
            }
            "node" => roles::node_targets(self.nodes.get(key)?),
            "service" => roles::service_targets(self.services.get(key)?),
            "endpoints" => roles::endpoints_targets(self.endpoints.get(key)?, &lookup),
            "endpointslice" => roles::endpointslice_targets(self.endpointslices.get(key)?, &lookup),
            "ingress" => roles::ingress_targets(self.ingresses.get(key)?),
            _ => return None,
        })
    }

    fn role_keys(&self) -> Vec<String> {
        match self.role.as_str() {
            "pod" => self.pods.keys().cloned().collect(),
            "node" => self.nodes.keys().cloned().collect(),
            "service" => self.services.keys().cloned().collect(),
            "endpoints" => self.endpoints.keys().cloned().collect(),
            "endpointslice" => self.endpointslices.keys().cloned().collect(),
            "ingress" => self.ingresses.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

/// How long the targets of a deleted pod (or any object) stay: a pod that lived for less
/// than a discovery round, or was deleted right after writing, still has its files found
/// and read to the end before its tailer stops. The kubelet keeps the files longer.
const LINGER: Duration = Duration::from_secs(5);

/// What building targets needs from the job.
struct TargetBuilder {
    job: String,
    relabelers: Vec<Relabeler>,
    hostname: String,
    metrics: Arc<Metrics>,
}

impl TargetBuilder {
    /// As static targets are built: relabel, Promtail's `__host__` check, `__path__`.
    fn build(&self, mut labels: Labels) -> Result<Target, DroppedView> {
        labels
            .entry("job".into())
            .or_insert_with(|| self.job.clone());
        let discovered = labels.clone();
        let drop = |reason: &'static str| {
            self.metrics
                .files
                .targets_failed
                .with_label_values(&[reason])
                .inc();
            DroppedView {
                discovered: discovered.clone(),
                reason,
            }
        };
        if !self.relabelers.iter().all(|r| r.apply(&mut labels)) {
            return Err(drop("dropped"));
        }
        if labels.get("__host__").is_some_and(|h| *h != self.hostname) {
            return Err(drop("wrong_host"));
        }
        let Some(path) = labels.get("__path__").filter(|p| !p.is_empty()).cloned() else {
            return Err(drop("no_path"));
        };
        let exclude = labels
            .get("__path_exclude__")
            .filter(|p| !p.is_empty())
            .cloned();
        let public = labels
            .into_iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .collect::<Vec<_>>();
        Target::new(
            &path,
            exclude.as_deref(),
            crate::model::labels::LabelSet::from_pairs(public),
            discovered.clone(),
        )
        .map_err(|e| {
            tracing::warn!(job = %self.job, error = %e, "kubernetes target has an unusable __path__");
            drop("error")
        })
    }
}

/// A job's Kubernetes discovery, ready to run.
pub struct KubernetesDiscovery {
    builder: TargetBuilder,
    states: Vec<SdState>,
    /// The job's static targets, published beside the discovered ones.
    fixed: Vec<Arc<Target>>,
    watchers: Vec<StartWatcher>,
    view: TargetsView,
}

/// Resolves `job`'s `kubernetes_sd_configs` (connection, credentials, selectors) so that a
/// bad setting stops the job now, with the config's key path.
pub fn prepare(
    job: &ScrapeConfig,
    relabelers: Vec<Relabeler>,
    fixed: Vec<Target>,
    metrics: Arc<Metrics>,
    view: TargetsView,
    backoff: Backoff,
) -> Result<KubernetesDiscovery, String> {
    let hostname = discovery::hostname();
    let mut states = Vec::new();
    let mut watchers: Vec<StartWatcher> = Vec::new();
    for (i, sd) in job.kubernetes_sd_configs.iter().enumerate() {
        let at = |e: String| format!("kubernetes_sd_configs[{i}]: {e}");
        let conn = connection::Connection::resolve(sd).map_err(at)?;
        let client = ApiClient::new(&conn).map_err(at)?;
        let namespaces: Vec<Option<String>> = if let Some(own) = &conn.own_namespace {
            vec![Some(own.clone())]
        } else if sd.namespaces.names.is_empty() {
            vec![None]
        } else {
            sd.namespaces.names.iter().cloned().map(Some).collect()
        };
        let selectors = node_filtered_selectors(sd, &hostname);
        let scope_of = |role: &str, ns: &Option<String>| {
            let s = selectors.iter().find(|s| s.role == role);
            Scope {
                namespace: ns.clone(),
                label_selector: s.map(|s| s.label.clone()).unwrap_or_default(),
                field_selector: s.map(|s| s.field.clone()).unwrap_or_default(),
            }
        };
        let kinds: &[&str] = match sd.role.as_str() {
            "pod" if sd.attach_metadata.node => &["pod", "node"],
            "endpoints" => &["endpoints", "service", "pod"],
            "endpointslice" => &["endpointslice", "service", "pod"],
            r => &[r][..],
        };
        for kind in kinds {
            // Nodes are cluster-scoped: one watch whatever the namespaces.
            let scopes: Vec<Option<String>> = if *kind == "node" {
                vec![None]
            } else {
                namespaces.clone()
            };
            for ns in scopes {
                let scope = scope_of(kind, &ns);
                let who = watcher::Labels {
                    job: job.job_name.clone(),
                    resource: resource_name(kind),
                    metrics: metrics.kubernetes.clone(),
                };
                let c = client.clone();
                let spawn: StartWatcher = match *kind {
                    "pod" => spawner::<Pod>(c, scope, who, backoff, i, ns, Msg::Pod),
                    "node" => spawner::<Node>(c, scope, who, backoff, i, ns, Msg::Node),
                    "service" => spawner::<Service>(c, scope, who, backoff, i, ns, Msg::Service),
                    "endpoints" => {
                        spawner::<Endpoints>(c, scope, who, backoff, i, ns, Msg::Endpoints)
                    }
                    "endpointslice" => {
                        spawner::<EndpointSlice>(c, scope, who, backoff, i, ns, Msg::EndpointSlice)
                    }
                    _ => spawner::<Ingress>(c, scope, who, backoff, i, ns, Msg::Ingress),
                };
                watchers.push(spawn);
            }
        }
        states.push(SdState {
            role: sd.role.clone(),
            attach_node: sd.attach_metadata.node,
            ..SdState::default()
        });
    }
    Ok(KubernetesDiscovery {
        builder: TargetBuilder {
            job: job.job_name.clone(),
            relabelers,
            hostname,
            metrics,
        },
        states,
        fixed: fixed.into_iter().map(Arc::new).collect(),
        watchers,
        view,
    })
}

fn resource_name(kind: &str) -> &'static str {
    match kind {
        "pod" => "pods",
        "node" => "nodes",
        "service" => "services",
        "endpoints" => "endpoints",
        "endpointslice" => "endpointslices",
        _ => "ingresses",
    }
}

fn spawner<T>(
    client: ApiClient,
    scope: Scope,
    who: watcher::Labels,
    backoff: Backoff,
    sd: usize,
    ns: Option<String>,
    wrap: fn(usize, Option<String>, Change<T>) -> Msg,
) -> StartWatcher
where
    T: ListableResource + Metadata<Ty = ObjectMeta> + DeserializeOwned + Send + 'static,
{
    Box::new(move |tx, stop| {
        tokio::spawn(watcher::run::<T, Msg>(
            client,
            scope,
            tx,
            move |c| wrap(sd, ns.clone(), c),
            who,
            backoff,
            stop,
        ));
    })
}

impl KubernetesDiscovery {
    /// Starts the watchers; returns the job's targets as they change. Runs until `stop`.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> watch::Receiver<Vec<Arc<Target>>> {
        let (targets_tx, targets_rx) = watch::channel(self.fixed.clone());
        tokio::spawn(self.run(targets_tx, stop));
        targets_rx
    }

    async fn run(
        mut self,
        targets: watch::Sender<Vec<Arc<Target>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let (tx, mut rx) = mpsc::channel::<Msg>(1024);
        for w in std::mem::take(&mut self.watchers) {
            w(tx.clone(), stop.clone());
        }
        drop(tx);
        let mut active = 0usize;
        loop {
            // The next lingering target to expire, if any, also wakes a republish.
            let expiry = self
                .states
                .iter()
                .flat_map(|st| st.lingering.values().map(|(d, _)| *d))
                .min();
            let first = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => Some(m),
                    None => break,
                },
                _ = stop.wait_for(|s| *s) => break,
                _ = async {
                    match expiry {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => None,
            };
            if let Some(first) = first {
                self.absorb(first);
                // A burst (a relist, many pods starting) becomes one republish.
                tokio::time::sleep(Duration::from_millis(50)).await;
                while let Ok(m) = rx.try_recv() {
                    self.absorb(m);
                }
            }
            let published = self.rebuild();
            let n = published.len();
            let gauge = &self.builder.metrics.files.targets_active;
            gauge.add(n as f64 - active as f64);
            active = n;
            if targets.send(published).is_err() {
                break;
            }
        }
        self.builder.metrics.files.targets_active.sub(active as f64);
    }

    fn absorb(&mut self, m: Msg) {
        macro_rules! on {
            ($sd:expr, $store:ident, $kind:literal, $scope:expr, $change:expr) => {{
                let Some(st) = self.states.get_mut($sd) else {
                    return;
                };
                let touched = apply(&mut st.$store, &$scope, $change);
                let role_store = st.role == $kind;
                st.mark(touched, role_store);
            }};
        }
        if let Msg::Pod(sd, _, Change::Delete(p)) = &m
            && let Some(st) = self.states.get_mut(*sd)
            && st.role == "pod"
        {
            st.deleted_pods.insert(key_of(&p.metadata), p.clone());
        }
        match m {
            Msg::Pod(sd, scope, c) => on!(sd, pods, "pod", scope, c),
            Msg::Node(sd, scope, c) => on!(sd, nodes, "node", scope, c),
            Msg::Service(sd, scope, c) => on!(sd, services, "service", scope, c),
            Msg::Endpoints(sd, scope, c) => on!(sd, endpoints, "endpoints", scope, c),
            Msg::EndpointSlice(sd, scope, c) => {
                on!(sd, endpointslices, "endpointslice", scope, c)
            }
            Msg::Ingress(sd, scope, c) => on!(sd, ingresses, "ingress", scope, c),
        }
    }

    /// Rebuilds the dirty groups; returns every target of the job, deduplicated as Promtail
    /// keys them (`__path__`, labels, `__path_exclude__`), and publishes them for `/targets`.
    fn rebuild(&mut self) -> Vec<Arc<Target>> {
        let now = tokio::time::Instant::now();
        for st in &mut self.states {
            let keys: Vec<String> = if st.all {
                // Objects gone from a relist linger like deleted ones.
                let current: BTreeSet<String> = st.role_keys().into_iter().collect();
                let gone: Vec<String> = st
                    .groups
                    .keys()
                    .filter(|k| !current.contains(*k))
                    .cloned()
                    .collect();
                current.into_iter().chain(gone).collect()
            } else {
                std::mem::take(&mut st.dirty).into_iter().collect()
            };
            st.all = false;
            st.dirty.clear();
            st.lingering.retain(|_, (deadline, _)| *deadline > now);
            for key in keys {
                let Some(sets) = st.labels_of(&key) else {
                    let last = st.groups.remove(&key).or_else(|| {
                        let pod = st.deleted_pods.get(&key)?;
                        let mut g = Group::default();
                        for labels in roles::pod_targets(pod, None) {
                            if let Ok(t) = self.builder.build(labels) {
                                g.targets.push(Arc::new(t));
                            }
                        }
                        Some(g)
                    });
                    if let Some(g) = last.filter(|g| !g.targets.is_empty()) {
                        st.lingering.insert(key, (now + LINGER, g));
                    }
                    continue;
                };
                st.lingering.remove(&key);
                let mut group = Group::default();
                for labels in sets {
                    match self.builder.build(labels) {
                        Ok(t) => group.targets.push(Arc::new(t)),
                        Err(d) => group.dropped.push(d),
                    }
                }
                st.groups.insert(key, group);
            }
            st.deleted_pods.clear();
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut dropped = Vec::new();
        let all = self.fixed.iter().chain(self.states.iter().flat_map(|st| {
            st.groups
                .values()
                .chain(st.lingering.values().map(|(_, g)| g))
                .flat_map(|g| g.targets.iter())
        }));
        for t in all {
            if seen.insert(t.dedup_key()) {
                out.push(t.clone());
            }
        }
        for st in &self.states {
            for g in st.groups.values() {
                dropped.extend(g.dropped.iter().cloned());
            }
        }
        let views = out
            .iter()
            .map(|t| TargetView {
                discovered: t.discovered.clone(),
                labels: t.labels.clone(),
                path_pattern: t.path_pattern.clone(),
            })
            .collect();
        self.view.set_targets(&self.builder.job, views, dropped);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd(role: &str, selectors: Vec<SelectorConfig>) -> KubernetesSdConfig {
        KubernetesSdConfig {
            role: role.into(),
            selectors,
            ..Default::default()
        }
    }

    #[test]
    fn pod_role_gets_promtails_node_filter() {
        let s = node_filtered_selectors(&sd("pod", vec![]), "node-a");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].field, "spec.nodeName=node-a");
        let s = node_filtered_selectors(
            &sd(
                "pod",
                vec![SelectorConfig {
                    role: "pod".into(),
                    label: "app=x".into(),
                    field: "status.phase=Running".into(),
                }],
            ),
            "node-a",
        );
        assert_eq!(s[0].field, "status.phase=Running,spec.nodeName=node-a");
        assert_eq!(s[0].label, "app=x");
        let already = SelectorConfig {
            role: "pod".into(),
            label: String::new(),
            field: "spec.nodeName=node-a".into(),
        };
        let s = node_filtered_selectors(&sd("pod", vec![already]), "node-a");
        assert_eq!(s[0].field, "spec.nodeName=node-a");
        // Other roles are left alone.
        assert!(node_filtered_selectors(&sd("service", vec![]), "node-a").is_empty());
    }
}
