//! Prometheus' moby discovery (`discovery/moby/docker.go`), as Promtail runs it: each listed
//! container becomes one target per network and TCP port, labelled with every
//! `__meta_docker_*` label Prometheus sets and an `__address__`.
//!
//! Owns turning list answers into labelled targets. It must not call the daemon nor read logs.

use std::collections::{BTreeMap, HashMap};

use super::api::{ContainerSummary, EndpointSummary, NetworkSummary};

pub const CONTAINER_ID: &str = "__meta_docker_container_id";
pub const CONTAINER_NAME: &str = "__meta_docker_container_name";
pub const NETWORK_MODE: &str = "__meta_docker_container_network_mode";
pub const CONTAINER_LABEL: &str = "__meta_docker_container_label_";
pub const NETWORK_ID: &str = "__meta_docker_network_id";
pub const NETWORK_NAME: &str = "__meta_docker_network_name";
pub const NETWORK_SCOPE: &str = "__meta_docker_network_scope";
pub const NETWORK_INTERNAL: &str = "__meta_docker_network_internal";
pub const NETWORK_INGRESS: &str = "__meta_docker_network_ingress";
pub const NETWORK_LABEL: &str = "__meta_docker_network_label_";
pub const NETWORK_IP: &str = "__meta_docker_network_ip";
pub const PORT_PRIVATE: &str = "__meta_docker_port_private";
pub const PORT_PUBLIC: &str = "__meta_docker_port_public";
pub const PORT_PUBLIC_IP: &str = "__meta_docker_port_public_ip";
/// Added by Promtail per line: `stdout` or `stderr`.
pub const LOG_STREAM: &str = "__meta_docker_container_log_stream";

/// One discovered target: a container on one network (and port).
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoveredTarget {
    pub container_id: String,
    pub labels: BTreeMap<String, String>,
}

/// How `__address__` is made where the container publishes no TCP port.
pub struct AddressRules<'a> {
    pub port: u16,
    pub host_networking_host: &'a str,
    pub match_first_network: bool,
}

/// Every `network_id -> labels` map entry, as `getNetworksLabels` builds them.
pub fn network_labels(networks: &[NetworkSummary]) -> HashMap<String, BTreeMap<String, String>> {
    networks
        .iter()
        .map(|n| {
            let mut labels = BTreeMap::from([
                (NETWORK_ID.to_string(), n.id.clone()),
                (NETWORK_NAME.to_string(), n.name.clone()),
                (NETWORK_SCOPE.to_string(), n.scope.clone()),
                (NETWORK_INTERNAL.to_string(), n.internal.to_string()),
                (NETWORK_INGRESS.to_string(), n.ingress.to_string()),
            ]);
            for (k, v) in n.labels.iter().flatten() {
                labels.insert(format!("{NETWORK_LABEL}{}", sanitize(k)), v.clone());
            }
            (n.id.clone(), labels)
        })
        .collect()
}

/// The targets of `containers`, in list order. `all` are the containers a
/// `container:<id>` network mode may point to (the same list, as Prometheus uses it).
pub fn targets(
    containers: &[ContainerSummary],
    all: &[ContainerSummary],
    networks: &HashMap<String, BTreeMap<String, String>>,
    rules: &AddressRules<'_>,
) -> Vec<DiscoveredTarget> {
    let by_id: HashMap<&str, &ContainerSummary> = all.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut out = Vec::new();
    for c in containers {
        let Some(name) = c.names.first() else {
            continue;
        };
        let mut common = BTreeMap::from([
            (CONTAINER_ID.to_string(), c.id.clone()),
            (CONTAINER_NAME.to_string(), name.clone()),
            (NETWORK_MODE.to_string(), c.host_config.network_mode.clone()),
        ]);
        for (k, v) in c.labels.iter().flatten() {
            common.insert(format!("{CONTAINER_LABEL}{}", sanitize(k)), v.clone());
        }
        let mut endpoints = endpoints_of(c);
        if endpoints.is_empty() {
            // A `container:<id>` network mode shares another container's networks.
            let mut mode = c.host_config.network_mode.clone();
            let mut hops = 0;
            while let Some(other) = mode.strip_prefix("container:") {
                hops += 1;
                let Some(target) = by_id.get(other).filter(|_| hops <= all.len()) else {
                    break;
                };
                endpoints = endpoints_of(target);
                if !endpoints.is_empty() {
                    break;
                }
                mode = target.host_config.network_mode.clone();
            }
        }
        if rules.match_first_network && endpoints.len() > 1 {
            // The map is sorted by network name: keep the first.
            endpoints.truncate(1);
        }
        for endpoint in endpoints {
            let mut added = false;
            let base = |extra: &[(&str, String)]| {
                let mut labels =
                    BTreeMap::from([(NETWORK_IP.to_string(), endpoint.ip_address.clone())]);
                for (k, v) in extra {
                    labels.insert(k.to_string(), v.clone());
                }
                labels.extend(common.iter().map(|(k, v)| (k.clone(), v.clone())));
                if let Some(n) = networks.get(&endpoint.network_id) {
                    labels.extend(n.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                labels
            };
            for p in c.ports.iter().filter(|p| p.kind == "tcp") {
                let mut extra = vec![(PORT_PRIVATE, p.private_port.to_string())];
                if p.public_port > 0 {
                    extra.push((PORT_PUBLIC, p.public_port.to_string()));
                    extra.push((PORT_PUBLIC_IP, p.ip.clone()));
                }
                let mut labels = base(&extra);
                labels.insert(
                    "__address__".into(),
                    join_host_port(&endpoint.ip_address, p.private_port),
                );
                out.push(DiscoveredTarget {
                    container_id: c.id.clone(),
                    labels,
                });
                added = true;
            }
            if !added {
                let mut labels = base(&[]);
                let address = if c.host_config.network_mode != "host" {
                    join_host_port(&endpoint.ip_address, rules.port)
                } else {
                    rules.host_networking_host.to_string()
                };
                labels.insert("__address__".into(), address);
                out.push(DiscoveredTarget {
                    container_id: c.id.clone(),
                    labels,
                });
            }
        }
    }
    out
}

/// The container's network endpoints, by network name (null entries left out).
fn endpoints_of(c: &ContainerSummary) -> Vec<EndpointSummary> {
    c.network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .map(|n| n.values().flatten().cloned().collect())
        .unwrap_or_default()
}

/// Go's `net.JoinHostPort`: brackets around an IPv6 address.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Prometheus' `strutil.SanitizeLabelName`: every character outside `[a-zA-Z0-9_]` is `_`.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn list(json: &str) -> Vec<ContainerSummary> {
        serde_json::from_str(json).unwrap()
    }

    const RULES: AddressRules<'static> = AddressRules {
        port: 80,
        host_networking_host: "localhost",
        match_first_network: true,
    };

    #[test]
    fn a_container_gets_one_target_per_tcp_port_with_every_meta_label() {
        let containers = list(
            r#"[{"Id":"c1","Names":["/web"],"Labels":{"com.example.team":"a-b"},
                "Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
                         {"PrivatePort":443,"Type":"tcp"},{"PrivatePort":53,"Type":"udp"}],
                "HostConfig":{"NetworkMode":"bridge"},
                "NetworkSettings":{"Networks":{"bridge":{"NetworkID":"n1","IPAddress":"172.17.0.2"}}}}]"#,
        );
        let networks = network_labels(&[NetworkSummary {
            id: "n1".into(),
            name: "bridge".into(),
            scope: "local".into(),
            labels: Some(BTreeMap::from([("com.docker/x".into(), "y".into())])),
            ..NetworkSummary::default()
        }]);
        let t = targets(&containers, &containers, &networks, &RULES);
        assert_eq!(t.len(), 2, "two TCP ports; udp is not a target");
        let first = &t[0].labels;
        assert_eq!(first[CONTAINER_NAME], "/web", "Names[0] keeps its slash");
        assert_eq!(first[CONTAINER_ID], "c1");
        assert_eq!(first[NETWORK_MODE], "bridge");
        assert_eq!(
            first["__meta_docker_container_label_com_example_team"],
            "a-b"
        );
        assert_eq!(first[NETWORK_NAME], "bridge");
        assert_eq!(first[NETWORK_SCOPE], "local");
        assert_eq!(first[NETWORK_INTERNAL], "false");
        assert_eq!(first[NETWORK_INGRESS], "false");
        assert_eq!(first["__meta_docker_network_label_com_docker_x"], "y");
        assert_eq!(first[NETWORK_IP], "172.17.0.2");
        assert_eq!(first[PORT_PRIVATE], "80");
        assert_eq!(first[PORT_PUBLIC], "8080");
        assert_eq!(first[PORT_PUBLIC_IP], "0.0.0.0");
        assert_eq!(first["__address__"], "172.17.0.2:80");
        let second = &t[1].labels;
        assert_eq!(second[PORT_PRIVATE], "443");
        assert!(!second.contains_key(PORT_PUBLIC), "not published");
    }

    #[test]
    fn without_ports_the_configured_port_or_the_host_networking_host() {
        let containers = list(
            r#"[{"Id":"c1","Names":["/a"],"HostConfig":{"NetworkMode":"none"},
                 "NetworkSettings":{"Networks":{"none":{"NetworkID":"n0","IPAddress":""}}}},
                {"Id":"c2","Names":["/b"],"HostConfig":{"NetworkMode":"host"},
                 "NetworkSettings":{"Networks":{"host":{"NetworkID":"nh","IPAddress":""}}}},
                {"Id":"c3","Names":[],"HostConfig":{"NetworkMode":"none"},
                 "NetworkSettings":{"Networks":{"none":{"NetworkID":"n0"}}}}]"#,
        );
        let rules = AddressRules {
            port: 9000,
            host_networking_host: "myhost",
            match_first_network: true,
        };
        let t = targets(&containers, &containers, &HashMap::new(), &rules);
        assert_eq!(t.len(), 2, "a container without a name is skipped");
        assert_eq!(t[0].labels["__address__"], ":9000");
        assert_eq!(t[1].labels["__address__"], "myhost");
    }

    #[test]
    fn shared_network_modes_are_followed_and_only_the_first_network_kept() {
        let containers = list(
            r#"[{"Id":"side","Names":["/side"],"HostConfig":{"NetworkMode":"container:main"},
                 "NetworkSettings":{"Networks":{}}},
                {"Id":"main","Names":["/main"],"HostConfig":{"NetworkMode":"default"},
                 "NetworkSettings":{"Networks":{"zeta":{"NetworkID":"z","IPAddress":"10.0.0.9"},
                                                "alpha":{"NetworkID":"a","IPAddress":"10.0.0.1"}}}},
                {"Id":"lost","Names":["/lost"],"HostConfig":{"NetworkMode":"container:gone"},
                 "NetworkSettings":{"Networks":{}}}]"#,
        );
        let t = targets(&containers, &containers, &HashMap::new(), &RULES);
        let ips: Vec<(&str, &str)> = t
            .iter()
            .map(|t| (t.container_id.as_str(), t.labels[NETWORK_IP].as_str()))
            .collect();
        assert_eq!(
            ips,
            [("side", "10.0.0.1"), ("main", "10.0.0.1")],
            "no networks: no target"
        );
        let all = AddressRules {
            match_first_network: false,
            ..RULES
        };
        assert_eq!(
            targets(&containers[1..2], &containers, &HashMap::new(), &all).len(),
            2
        );
    }

    #[test]
    fn label_names_are_sanitized_as_prometheus_does() {
        assert_eq!(
            sanitize("com.docker.compose.project"),
            "com_docker_compose_project"
        );
        assert_eq!(sanitize("a-b/c d_é9"), "a_b_c_d__9");
    }
}
