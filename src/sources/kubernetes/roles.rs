//! Prometheus' `__meta_kubernetes_*` labels for each role, built from the API objects as
//! `discovery/kubernetes/{pod,node,service,endpoints,endpointslice,ingress}.go` build them.
//!
//! Owns turning one object (and, for endpoints, the services and pods it refers to) into
//! label sets, one per target. It must not fetch anything: the objects come from the
//! watchers' stores.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One target's labels (the group's labels merged in).
pub type Labels = BTreeMap<String, String>;

const META: &str = "__meta_kubernetes_";

fn put(l: &mut Labels, name: &str, value: impl Into<String>) {
    l.insert(format!("{META}{name}"), value.into());
}

/// Prometheus' `strutil.SanitizeLabelName`: every code point outside `[a-zA-Z0-9_]` becomes
/// `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `addObjectMetaLabels`: the namespace (for namespaced objects) and the label and
/// annotation sets of `role`.
fn object_meta_labels(l: &mut Labels, meta: &ObjectMeta, role: &str, namespaced: bool) {
    if namespaced {
        put(l, "namespace", meta.namespace.clone().unwrap_or_default());
    }
    for (k, v) in meta.labels.iter().flatten() {
        let k = sanitize(k);
        put(l, &format!("{role}_label_{k}"), v.clone());
        put(l, &format!("{role}_labelpresent_{k}"), "true");
    }
    for (k, v) in meta.annotations.iter().flatten() {
        let k = sanitize(k);
        put(l, &format!("{role}_annotation_{k}"), v.clone());
        put(l, &format!("{role}_annotationpresent_{k}"), "true");
    }
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// `podLabels`: what every target of a pod carries.
pub fn pod_labels(pod: &Pod) -> Labels {
    let mut l = Labels::new();
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    put(&mut l, "pod_name", opt(&pod.metadata.name));
    put(
        &mut l,
        "pod_ip",
        status.map(|s| opt(&s.pod_ip)).unwrap_or_default(),
    );
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.to_lowercase())
        .unwrap_or_else(|| "unknown".into());
    put(&mut l, "pod_ready", ready);
    put(
        &mut l,
        "pod_phase",
        status.map(|s| opt(&s.phase)).unwrap_or_default(),
    );
    put(
        &mut l,
        "pod_node_name",
        spec.map(|s| opt(&s.node_name)).unwrap_or_default(),
    );
    put(
        &mut l,
        "pod_host_ip",
        status.map(|s| opt(&s.host_ip)).unwrap_or_default(),
    );
    put(&mut l, "pod_uid", opt(&pod.metadata.uid));
    if let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    {
        if !owner.kind.is_empty() {
            put(&mut l, "pod_controller_kind", owner.kind.clone());
        }
        if !owner.name.is_empty() {
            put(&mut l, "pod_controller_name", owner.name.clone());
        }
    }
    object_meta_labels(&mut l, &pod.metadata, "pod", true);
    l
}

/// Node meta labels for `attach_metadata.node`.
pub fn node_meta_labels(node: &Node) -> Labels {
    let mut l = Labels::new();
    put(&mut l, "node_name", opt(&node.metadata.name));
    object_meta_labels(&mut l, &node.metadata, "node", false);
    l
}

fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `buildPod`: one target per container port, or one per container without ports;
/// containers first, then init containers. A pod without an IP has no targets.
pub fn pod_targets(pod: &Pod, node: Option<&Node>) -> Vec<Labels> {
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    if ip.is_empty() {
        return Vec::new();
    }
    let mut group = pod_labels(pod);
    if let Some(n) = node {
        group.extend(node_meta_labels(n));
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let status = pod.status.as_ref();
    let container_id = |name: &str, init: bool| {
        let statuses = if init {
            status.and_then(|s| s.init_container_statuses.as_ref())
        } else {
            status.and_then(|s| s.container_statuses.as_ref())
        };
        statuses
            .and_then(|ss| ss.iter().find(|s| s.name == name))
            .and_then(|s| s.container_id.clone())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let all = spec
        .containers
        .iter()
        .map(|c| (c, false))
        .chain(spec.init_containers.iter().flatten().map(|c| (c, true)));
    for (c, init) in all {
        let mut base = group.clone();
        put(&mut base, "pod_container_name", c.name.clone());
        put(&mut base, "pod_container_id", container_id(&c.name, init));
        put(&mut base, "pod_container_image", opt(&c.image));
        put(&mut base, "pod_container_init", init.to_string());
        let ports = c.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            base.insert("__address__".into(), ip.clone());
            out.push(base);
            continue;
        }
        for p in ports {
            let mut t = base.clone();
            t.insert("__address__".into(), join_host_port(&ip, p.container_port));
            container_port_labels(&mut t, p);
            out.push(t);
        }
    }
    out
}

fn container_port_labels(t: &mut Labels, p: &k8s_openapi::api::core::v1::ContainerPort) {
    put(t, "pod_container_port_name", opt(&p.name));
    put(t, "pod_container_port_number", p.container_port.to_string());
    put(
        t,
        "pod_container_port_protocol",
        p.protocol.clone().unwrap_or_else(|| "TCP".into()),
    );
}

/// `buildNode`: one target at the preferred address and the kubelet port; a node without
/// addresses has none.
pub fn node_targets(node: &Node) -> Vec<Labels> {
    const PREFERENCE: &[&str] = &[
        "InternalIP",
        "InternalDNS",
        "ExternalIP",
        "ExternalDNS",
        "LegacyHostIP",
        "Hostname",
    ];
    let status = node.status.as_ref();
    let addresses = status
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    let Some(addr) = PREFERENCE
        .iter()
        .find_map(|t| addresses.iter().find(|a| a.type_ == *t))
        .map(|a| a.address.clone())
    else {
        return Vec::new();
    };
    let mut l = Labels::new();
    put(&mut l, "node_name", opt(&node.metadata.name));
    put(
        &mut l,
        "node_provider_id",
        node.spec
            .as_ref()
            .map(|s| opt(&s.provider_id))
            .unwrap_or_default(),
    );
    object_meta_labels(&mut l, &node.metadata, "node", false);
    for a in addresses {
        l.entry(format!("{META}node_address_{}", sanitize(&a.type_)))
            .or_insert_with(|| a.address.clone());
    }
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|k| k.port)
        .unwrap_or(0);
    l.insert("__address__".into(), join_host_port(&addr, port));
    l.insert("instance".into(), opt(&node.metadata.name));
    vec![l]
}

/// `serviceLabels`: the namespace, the name and the meta sets of a service.
fn service_labels(svc: &Service) -> Labels {
    let mut l = Labels::new();
    put(&mut l, "service_name", opt(&svc.metadata.name));
    object_meta_labels(&mut l, &svc.metadata, "service", true);
    l
}

/// `buildService`: one target per port at `<name>.<namespace>.svc:<port>`.
pub fn service_targets(svc: &Service) -> Vec<Labels> {
    let group = service_labels(svc);
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    let name = opt(&svc.metadata.name);
    let ns = opt(&svc.metadata.namespace);
    let kind = opt(&spec.type_);
    let mut out = Vec::new();
    for p in spec.ports.iter().flatten() {
        let mut t = group.clone();
        t.insert(
            "__address__".into(),
            join_host_port(&format!("{name}.{ns}.svc"), p.port),
        );
        put(&mut t, "service_port_name", opt(&p.name));
        put(&mut t, "service_port_number", p.port.to_string());
        put(
            &mut t,
            "service_port_protocol",
            p.protocol.clone().unwrap_or_else(|| "TCP".into()),
        );
        put(&mut t, "service_type", kind.clone());
        if kind == "ExternalName" {
            put(&mut t, "service_external_name", opt(&spec.external_name));
        } else {
            put(&mut t, "service_cluster_ip", opt(&spec.cluster_ip));
        }
        if kind == "LoadBalancer" {
            put(
                &mut t,
                "service_loadbalancer_ip",
                opt(&spec.load_balancer_ip),
            );
        }
        out.push(t);
    }
    out
}

/// The pods the addresses of one endpoints object pointed at, by `namespace/name`, with the
/// (container, port) pairs already covered.
type Covered = BTreeMap<String, (Pod, Vec<(String, i32)>)>;

/// What the endpoints roles look up by `namespace/name`.
pub struct Lookup<'a> {
    pub pods: &'a dyn Fn(&str, &str) -> Option<&'a Pod>,
    pub services: &'a dyn Fn(&str, &str) -> Option<&'a Service>,
}

/// The pod labels and the matching container's labels of an address that targets a pod;
/// records the container port as covered.
fn pod_of_address(t: &mut Labels, pod: &Pod, port: i32, protocol: &str, covered: &mut Covered) {
    t.extend(pod_labels(pod));
    let key = format!(
        "{}/{}",
        opt(&pod.metadata.namespace),
        opt(&pod.metadata.name)
    );
    let entry = covered
        .entry(key)
        .or_insert_with(|| (pod.clone(), Vec::new()));
    let containers = pod.spec.as_ref().map(|s| &s.containers[..]).unwrap_or(&[]);
    for c in containers {
        for p in c.ports.iter().flatten() {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            if p.container_port == port && proto == protocol {
                put(t, "pod_container_name", c.name.clone());
                put(t, "pod_container_image", opt(&c.image));
                container_port_labels(t, p);
                entry.1.push((c.name.clone(), port));
                return;
            }
        }
    }
}

/// Targets for the container ports of the referenced pods that no endpoint covered.
fn uncovered_ports(group: &Labels, covered: Covered) -> Vec<Labels> {
    let mut out = Vec::new();
    for (_, (pod, seen)) in covered {
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        let containers: &[Container] = pod.spec.as_ref().map(|s| &s.containers[..]).unwrap_or(&[]);
        for c in containers {
            for p in c.ports.iter().flatten() {
                if seen.contains(&(c.name.clone(), p.container_port)) {
                    continue;
                }
                let mut t = group.clone();
                t.extend(pod_labels(&pod));
                t.insert("__address__".into(), join_host_port(&ip, p.container_port));
                put(&mut t, "pod_container_name", c.name.clone());
                put(&mut t, "pod_container_image", opt(&c.image));
                container_port_labels(&mut t, p);
                out.push(t);
            }
        }
    }
    out
}

/// `buildEndpoints`: one target per port and address (ready and not ready), with the
/// service's labels and, for pod-backed addresses, the pod's.
pub fn endpoints_targets(ep: &Endpoints, lookup: &Lookup<'_>) -> Vec<Labels> {
    let ns = opt(&ep.metadata.namespace);
    let name = opt(&ep.metadata.name);
    let mut group = Labels::new();
    put(&mut group, "endpoints_name", name.clone());
    object_meta_labels(&mut group, &ep.metadata, "endpoints", true);
    if let Some(svc) = (lookup.services)(&ns, &name) {
        group.extend(service_labels(svc));
    }
    let mut covered = BTreeMap::new();
    let mut out = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        let ready = subset.addresses.iter().flatten().map(|a| (a, "true"));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, "false"));
        let addresses: Vec<_> = ready.chain(not_ready).collect();
        for port in subset.ports.iter().flatten() {
            let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
            for (addr, is_ready) in &addresses {
                let mut t = group.clone();
                t.insert("__address__".into(), join_host_port(&addr.ip, port.port));
                put(&mut t, "endpoint_port_name", opt(&port.name));
                put(&mut t, "endpoint_port_protocol", protocol.clone());
                put(&mut t, "endpoint_ready", *is_ready);
                if let Some(n) = &addr.node_name {
                    put(&mut t, "endpoint_node_name", n.clone());
                }
                if let Some(h) = &addr.hostname {
                    put(&mut t, "endpoint_hostname", h.clone());
                }
                if let Some(r) = &addr.target_ref {
                    put(&mut t, "endpoint_address_target_kind", opt(&r.kind));
                    put(&mut t, "endpoint_address_target_name", opt(&r.name));
                    if r.kind.as_deref() == Some("Pod")
                        && let Some(pod) =
                            (lookup.pods)(r.namespace.as_deref().unwrap_or(&ns), &opt(&r.name))
                    {
                        pod_of_address(&mut t, pod, port.port, &protocol, &mut covered);
                    }
                }
                out.push(t);
            }
        }
    }
    out.extend(uncovered_ports(&group, covered));
    out
}

/// `buildEndpointSlice`: one target per port and endpoint address, with conditions,
/// topology, and the service's and pod's labels.
pub fn endpointslice_targets(es: &EndpointSlice, lookup: &Lookup<'_>) -> Vec<Labels> {
    let ns = opt(&es.metadata.namespace);
    let mut group = Labels::new();
    put(&mut group, "endpointslice_name", opt(&es.metadata.name));
    put(
        &mut group,
        "endpointslice_address_type",
        es.address_type.clone(),
    );
    object_meta_labels(&mut group, &es.metadata, "endpointslice", true);
    let service = es
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/service-name"))
        .and_then(|svc| (lookup.services)(&ns, svc));
    if let Some(svc) = service {
        group.extend(service_labels(svc));
    }
    let mut covered = BTreeMap::new();
    let mut out = Vec::new();
    for port in es.ports.iter().flatten() {
        let number = port.port.unwrap_or(0);
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        for ep in &es.endpoints {
            for addr in &ep.addresses {
                let mut t = group.clone();
                t.insert("__address__".into(), join_host_port(addr, number));
                put(&mut t, "endpointslice_port", number.to_string());
                put(&mut t, "endpointslice_port_name", opt(&port.name));
                put(&mut t, "endpointslice_port_protocol", protocol.clone());
                if let Some(a) = &port.app_protocol {
                    put(&mut t, "endpointslice_port_app_protocol", a.clone());
                }
                if let Some(c) = &ep.conditions {
                    for (k, v) in [
                        ("ready", c.ready),
                        ("serving", c.serving),
                        ("terminating", c.terminating),
                    ] {
                        if let Some(v) = v {
                            put(
                                &mut t,
                                &format!("endpointslice_endpoint_conditions_{k}"),
                                v.to_string(),
                            );
                        }
                    }
                }
                if let Some(h) = &ep.hostname {
                    put(&mut t, "endpointslice_endpoint_hostname", h.clone());
                }
                if let Some(n) = &ep.node_name {
                    put(&mut t, "endpointslice_endpoint_node_name", n.clone());
                }
                if let Some(z) = &ep.zone {
                    put(&mut t, "endpointslice_endpoint_zone", z.clone());
                }
                for (k, v) in ep.deprecated_topology.iter().flatten() {
                    let k = sanitize(k);
                    put(
                        &mut t,
                        &format!("endpointslice_endpoint_topology_{k}"),
                        v.clone(),
                    );
                    put(
                        &mut t,
                        &format!("endpointslice_endpoint_topology_present_{k}"),
                        "true",
                    );
                }
                if let Some(r) = &ep.target_ref {
                    put(&mut t, "endpointslice_address_target_kind", opt(&r.kind));
                    put(&mut t, "endpointslice_address_target_name", opt(&r.name));
                    if r.kind.as_deref() == Some("Pod")
                        && let Some(pod) =
                            (lookup.pods)(r.namespace.as_deref().unwrap_or(&ns), &opt(&r.name))
                    {
                        pod_of_address(&mut t, pod, number, &protocol, &mut covered);
                    }
                }
                out.push(t);
            }
        }
    }
    out.extend(uncovered_ports(&group, covered));
    out
}

/// `buildIngress`: one target per rule host and path; `https` when a TLS entry names the
/// host (wildcards match one label).
pub fn ingress_targets(ing: &Ingress) -> Vec<Labels> {
    let mut group = Labels::new();
    put(&mut group, "ingress_name", opt(&ing.metadata.name));
    object_meta_labels(&mut group, &ing.metadata, "ingress", true);
    let Some(spec) = ing.spec.as_ref() else {
        return Vec::new();
    };
    let class = spec.ingress_class_name.clone().or_else(|| {
        ing.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/ingress.class").cloned())
    });
    if let Some(c) = class {
        put(&mut group, "ingress_class_name", c);
    }
    let tls_hosts: Vec<&str> = spec
        .tls
        .iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten().map(String::as_str))
        .collect();
    let mut out = Vec::new();
    for rule in spec.rules.iter().flatten() {
        let host = opt(&rule.host);
        let scheme = if tls_hosts.iter().any(|p| host_matches(p, &host)) {
            "https"
        } else {
            "http"
        };
        let mut paths: Vec<String> = rule
            .http
            .iter()
            .flat_map(|h| h.paths.iter())
            .map(|p| {
                p.path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".into())
            })
            .collect();
        if paths.is_empty() {
            paths.push("/".into());
        }
        for path in paths {
            let mut t = group.clone();
            t.insert("__address__".into(), host.clone());
            put(&mut t, "ingress_scheme", scheme);
            put(&mut t, "ingress_host", host.clone());
            put(&mut t, "ingress_path", path);
            out.push(t);
        }
    }
    out
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn get<'a>(l: &'a Labels, k: &str) -> &'a str {
        l.get(&format!("{META}{k}"))
            .or_else(|| l.get(k))
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no label {k} in {l:?}"))
    }

    fn web_pod() -> Pod {
        obj(serde_json::json!({
            "metadata": {"name": "web-7d4b9c-x2x", "namespace": "shop", "uid": "u-1",
                "labels": {"app.kubernetes.io/name": "web"},
                "annotations": {"kubernetes.io/config.hash": "h"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-7d4b9c", "uid": "r", "controller": true}]},
            "spec": {"nodeName": "node-a",
                "containers": [
                    {"name": "app", "image": "web:1", "ports": [
                        {"containerPort": 8080, "name": "http"},
                        {"containerPort": 9090, "protocol": "UDP"}]},
                    {"name": "sidecar", "image": "side:2"}],
                "initContainers": [{"name": "init", "image": "busybox"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "hostIP": "192.168.1.2",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "image": "web:1", "imageID": "",
                    "ready": true, "restartCount": 0, "containerID": "containerd://abc"}]}
        }))
    }

    #[test]
    fn pod_role_gives_one_target_per_port_or_container_with_prometheus_labels() {
        let t = pod_targets(&web_pod(), None);
        assert_eq!(t.len(), 4, "{t:#?}");
        assert_eq!(t[0]["__address__"], "10.0.0.5:8080");
        assert_eq!(get(&t[0], "pod_container_port_name"), "http");
        assert_eq!(get(&t[0], "pod_container_port_protocol"), "TCP");
        assert_eq!(get(&t[1], "pod_container_port_protocol"), "UDP");
        assert_eq!(get(&t[0], "pod_container_id"), "containerd://abc");
        assert_eq!(t[2]["__address__"], "10.0.0.5");
        assert_eq!(get(&t[2], "pod_container_name"), "sidecar");
        assert_eq!(get(&t[2], "pod_container_id"), "");
        assert_eq!(get(&t[3], "pod_container_init"), "true");
        for k in [
            ("namespace", "shop"),
            ("pod_name", "web-7d4b9c-x2x"),
            ("pod_uid", "u-1"),
            ("pod_node_name", "node-a"),
            ("pod_host_ip", "192.168.1.2"),
            ("pod_ready", "true"),
            ("pod_phase", "Running"),
            ("pod_controller_kind", "ReplicaSet"),
            ("pod_controller_name", "web-7d4b9c"),
            ("pod_label_app_kubernetes_io_name", "web"),
            ("pod_labelpresent_app_kubernetes_io_name", "true"),
            ("pod_annotation_kubernetes_io_config_hash", "h"),
            ("pod_annotationpresent_kubernetes_io_config_hash", "true"),
        ] {
            assert_eq!(get(&t[3], k.0), k.1, "{}", k.0);
        }
    }

    #[test]
    fn attach_metadata_node_adds_the_nodes_labels_to_pod_targets() {
        let node: Node = obj(serde_json::json!({
            "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "z1"},
                "annotations": {"a/b": "c"}}
        }));
        let t = pod_targets(&web_pod(), Some(&node));
        assert_eq!(get(&t[0], "node_name"), "node-a");
        assert_eq!(get(&t[0], "node_label_topology_kubernetes_io_zone"), "z1");
        assert_eq!(
            get(&t[0], "node_labelpresent_topology_kubernetes_io_zone"),
            "true"
        );
        assert_eq!(get(&t[0], "node_annotation_a_b"), "c");
        assert!(!pod_targets(&web_pod(), None)[0].contains_key(&format!("{META}node_name")));
    }

    #[test]
    fn pod_without_ip_has_no_targets_and_ready_defaults_to_unknown() {
        let mut p = web_pod();
        p.status.as_mut().unwrap().pod_ip = None;
        assert!(pod_targets(&p, None).is_empty());
        p.status.as_mut().unwrap().conditions = None;
        assert_eq!(get(&pod_labels(&p), "pod_ready"), "unknown");
    }

    #[test]
    fn node_role_prefers_internal_ip_and_sets_instance() {
        let n: Node = obj(serde_json::json!({
            "metadata": {"name": "node-a", "labels": {"kubernetes.io/os": "linux"}},
            "spec": {"providerID": "aws:///i-1"},
            "status": {"addresses": [
                {"type": "Hostname", "address": "node-a"},
                {"type": "InternalIP", "address": "192.168.1.2"},
                {"type": "InternalIP", "address": "192.168.1.3"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}
        }));
        let t = node_targets(&n);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0]["__address__"], "192.168.1.2:10250");
        assert_eq!(t[0]["instance"], "node-a");
        assert_eq!(get(&t[0], "node_address_InternalIP"), "192.168.1.2");
        assert_eq!(get(&t[0], "node_address_Hostname"), "node-a");
        assert_eq!(get(&t[0], "node_provider_id"), "aws:///i-1");
        assert_eq!(get(&t[0], "node_label_kubernetes_io_os"), "linux");
        assert!(!t[0].contains_key(&format!("{META}namespace")));
    }

    fn web_service() -> Service {
        obj(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "front"}},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                "loadBalancerIP": "1.2.3.4",
                "ports": [{"name": "http", "port": 80}, {"port": 53, "protocol": "UDP"}]}
        }))
    }

    #[test]
    fn service_role_gives_one_target_per_port() {
        let t = service_targets(&web_service());
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["__address__"], "web.shop.svc:80");
        assert_eq!(get(&t[0], "service_port_name"), "http");
        assert_eq!(get(&t[1], "service_port_protocol"), "UDP");
        assert_eq!(get(&t[0], "service_cluster_ip"), "10.96.0.10");
        assert_eq!(get(&t[0], "service_loadbalancer_ip"), "1.2.3.4");
        assert_eq!(get(&t[0], "service_type"), "LoadBalancer");
        assert_eq!(get(&t[0], "service_label_tier"), "front");
        assert_eq!(get(&t[0], "namespace"), "shop");
    }

    #[test]
    fn endpoints_role_joins_service_and_pod_and_adds_uncovered_ports() {
        let ep: Endpoints = obj(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "subsets": [{
                "addresses": [{"ip": "10.0.0.5", "nodeName": "node-a",
                    "targetRef": {"kind": "Pod", "name": "web-7d4b9c-x2x", "namespace": "shop"}}],
                "notReadyAddresses": [{"ip": "10.0.0.6"}],
                "ports": [{"name": "http", "port": 8080}]}]
        }));
        let pod = web_pod();
        let svc = web_service();
        let pods = |ns: &str, n: &str| (ns == "shop" && n == "web-7d4b9c-x2x").then_some(&pod);
        let services = |ns: &str, n: &str| (ns == "shop" && n == "web").then_some(&svc);
        let lookup = Lookup {
            pods: &pods,
            services: &services,
        };
        let t = endpoints_targets(&ep, &lookup);
        assert_eq!(t.len(), 3, "{t:#?}");
        assert_eq!(t[0]["__address__"], "10.0.0.5:8080");
        assert_eq!(get(&t[0], "endpoint_ready"), "true");
        assert_eq!(get(&t[0], "endpoint_node_name"), "node-a");
        assert_eq!(get(&t[0], "endpoint_address_target_kind"), "Pod");
        assert_eq!(get(&t[0], "pod_container_name"), "app");
        assert_eq!(get(&t[0], "pod_container_port_name"), "http");
        assert_eq!(get(&t[0], "service_name"), "web");
        assert_eq!(get(&t[0], "endpoints_name"), "web");
        assert_eq!(get(&t[1], "endpoint_ready"), "false");
        // The pod's UDP 9090 port is not behind the endpoints: a target of its own.
        assert_eq!(t[2]["__address__"], "10.0.0.5:9090");
        assert_eq!(get(&t[2], "pod_container_port_protocol"), "UDP");
    }

    #[test]
    fn endpointslice_role_sets_conditions_topology_and_service() {
        let es: EndpointSlice = obj(serde_json::json!({
            "metadata": {"name": "web-abc", "namespace": "shop",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.5"],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "node-a", "zone": "z1",
                "deprecatedTopology": {"topology.kubernetes.io/region": "r1"},
                "targetRef": {"kind": "Pod", "name": "web-7d4b9c-x2x", "namespace": "shop"}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]
        }));
        let pod = web_pod();
        let svc = web_service();
        let pods = |_: &str, n: &str| (n == "web-7d4b9c-x2x").then_some(&pod);
        let services = |_: &str, n: &str| (n == "web").then_some(&svc);
        let lookup = Lookup {
            pods: &pods,
            services: &services,
        };
        let t = endpointslice_targets(&es, &lookup);
        assert_eq!(t.len(), 2, "{t:#?}");
        assert_eq!(t[0]["__address__"], "10.0.0.5:8080");
        assert_eq!(get(&t[0], "endpointslice_address_type"), "IPv4");
        assert_eq!(get(&t[0], "endpointslice_port_app_protocol"), "http");
        assert_eq!(
            get(&t[0], "endpointslice_endpoint_conditions_ready"),
            "true"
        );
        assert_eq!(
            get(&t[0], "endpointslice_endpoint_conditions_terminating"),
            "false"
        );
        assert_eq!(get(&t[0], "endpointslice_endpoint_zone"), "z1");
        assert_eq!(
            get(
                &t[0],
                "endpointslice_endpoint_topology_topology_kubernetes_io_region"
            ),
            "r1"
        );
        assert_eq!(
            get(&t[0], "endpointslice_address_target_name"),
            "web-7d4b9c-x2x"
        );
        assert_eq!(get(&t[0], "service_name"), "web");
        assert_eq!(get(&t[0], "pod_name"), "web-7d4b9c-x2x");
    }

    #[test]
    fn ingress_role_gives_one_target_per_host_and_path() {
        let ing: Ingress = obj(serde_json::json!({
            "metadata": {"name": "shop", "namespace": "shop"},
            "spec": {"ingressClassName": "nginx",
                "tls": [{"hosts": ["*.example.com"]}],
                "rules": [
                    {"host": "shop.example.com", "http": {"paths": [
                        {"path": "/api", "pathType": "Prefix",
                         "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                        {"pathType": "Prefix",
                         "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
                    {"host": "plain.test"}]}
        }));
        let t = ingress_targets(&ing);
        assert_eq!(t.len(), 3, "{t:#?}");
        assert_eq!(t[0]["__address__"], "shop.example.com");
        assert_eq!(get(&t[0], "ingress_scheme"), "https");
        assert_eq!(get(&t[0], "ingress_path"), "/api");
        assert_eq!(get(&t[1], "ingress_path"), "/");
        assert_eq!(get(&t[2], "ingress_scheme"), "http");
        assert_eq!(get(&t[2], "ingress_class_name"), "nginx");
    }
}
