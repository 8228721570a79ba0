//! Promtail's `docker_sd_configs` block (Prometheus' moby `DockerSDConfig`): which Docker
//! daemon to ask for running containers, how to filter them and how to build their
//! `__address__`.
//!
//! Owns the schema and the checks that need no daemon. It must not connect to anything.

use serde::{Deserialize, Serialize};

use crate::config::TlsConfig;
use crate::model::units::GoDuration;

/// One `docker_sd_configs` entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerSdConfig {
    /// `unix:///var/run/docker.sock`, `tcp://host:2375`, `http://...` or `https://...`.
    pub host: String,
    /// `__address__` port of a container without a published TCP port.
    pub port: u16,
    /// `__address__` of a container in `network_mode: host`.
    pub host_networking_host: String,
    /// The Engine API's `/containers/json` filters, as `{name, values}` pairs.
    pub filters: Vec<DockerFilter>,
    pub refresh_interval: GoDuration,
    /// With several networks, only the alphabetically first makes targets.
    pub match_first_network: bool,
    /// TLS to a `tcp://` or `https://` daemon (Docker's TLS port, 2376).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    /// Accepted for Promtail's configs; a unix socket or a plain HTTP/1.1 daemon has no use
    /// for them.
    pub follow_redirects: bool,
    pub enable_http2: bool,
    /// Prometheus' HTTP client authentication and proxy keys: parsed so that a config using
    /// them is refused by name (see [`DockerSdConfig::check`]) instead of silently ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_from_environment: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_connect_header: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_headers: Option<serde_json::Value>,
}

/// One Engine API list filter, e.g. `{name: label, values: ["logging=promtail"]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerFilter {
    pub name: String,
    pub values: Vec<String>,
}

impl Default for DockerSdConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 80,
            host_networking_host: "localhost".into(),
            filters: Vec::new(),
            refresh_interval: GoDuration::from_secs(60),
            match_first_network: true,
            tls_config: None,
            follow_redirects: true,
            enable_http2: true,
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: None,
            bearer_token_file: None,
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: None,
            proxy_connect_header: None,
            http_headers: None,
        }
    }
}

/// How the daemon is reached, from `host`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerEndpoint {
    Unix(std::path::PathBuf),
    /// `host:port`, and whether TLS is spoken on it.
    Tcp {
        authority: String,
        tls: bool,
    },
}

impl DockerSdConfig {
    /// The endpoint `host` names, or what is wrong with it (the key path is the caller's).
    pub fn endpoint(&self) -> Result<DockerEndpoint, (&'static str, String)> {
        let host = self.host.trim();
        if host.is_empty() {
            return Err(("host", "host missing".into()));
        }
        let Some((scheme, rest)) = host.split_once("://") else {
            return Err((
                "host",
                format!(
                    "expected unix:///path, tcp://host:port, http:// or https://, found {host:?}"
                ),
            ));
        };
        match scheme {
            "unix" => {
                if !rest.starts_with('/') {
                    return Err((
                        "host",
                        format!("a unix socket needs an absolute path, found {host:?}"),
                    ));
                }
                Ok(DockerEndpoint::Unix(rest.into()))
            }
            "tcp" | "http" | "https" => {
                let authority = rest.trim_end_matches('/');
                if authority.is_empty() || authority.contains('/') {
                    return Err((
                        "host",
                        format!("expected {scheme}://host:port, found {host:?}"),
                    ));
                }
                let default_port =
                    if scheme == "https" || (scheme == "tcp" && self.tls_config.is_some()) {
                        2376
                    } else if scheme == "tcp" {
                        2375
                    } else if scheme == "https" {
                        443
                    } else {
                        80
                    };
                let authority = if has_port(authority) {
                    authority.to_string()
                } else {
                    format!("{authority}:{default_port}")
                };
                let tls = scheme == "https" || (scheme == "tcp" && self.tls_config.is_some());
                Ok(DockerEndpoint::Tcp { authority, tls })
            }
            other => Err(("host", format!("unsupported scheme {other:?} in {host:?}"))),
        }
    }

    /// What a loaded config must satisfy before the job starts: a usable `host`, `tls_config`
    /// only where TLS is spoken, no HTTP client key tailward would otherwise ignore.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let endpoint = self.endpoint()?;
        if self.tls_config.is_some() && matches!(endpoint, DockerEndpoint::Unix(_)) {
            return Err((
                "tls_config",
                "a unix socket speaks no TLS; tls_config applies to tcp:// and https:// hosts"
                    .into(),
            ));
        }
        if self.tls_config.is_some() && self.host.trim().starts_with("http://") {
            return Err((
                "tls_config",
                "an http:// host speaks no TLS; use https:// (or tcp:// with tls_config)".into(),
            ));
        }
        let refused = [
            ("basic_auth", self.basic_auth.is_some()),
            ("authorization", self.authorization.is_some()),
            ("oauth2", self.oauth2.is_some()),
            ("bearer_token", self.bearer_token.is_some()),
            ("bearer_token_file", self.bearer_token_file.is_some()),
            ("proxy_url", self.proxy_url.is_some()),
            ("no_proxy", self.no_proxy.is_some()),
            (
                "proxy_from_environment",
                self.proxy_from_environment.is_some(),
            ),
            ("proxy_connect_header", self.proxy_connect_header.is_some()),
            ("http_headers", self.http_headers.is_some()),
        ];
        if let Some((key, _)) = refused.iter().find(|(_, set)| *set) {
            return Err((
                key,
                "not supported by tailward's docker_sd_configs yet (the Docker daemon is \
                 reached over its socket or tcp/https with tls_config only); remove it"
                    .into(),
            ));
        }
        for f in &self.filters {
            if f.name.is_empty() {
                return Err(("filters", "a filter needs a name".into()));
            }
        }
        Ok(())
    }

    /// The filters as the Engine API's `filters` query parameter: a JSON map of name to values.
    pub fn filters_json(&self, extra: &[(&str, &str)]) -> String {
        let mut map: std::collections::BTreeMap<&str, Vec<&str>> =
            std::collections::BTreeMap::new();
        for f in &self.filters {
            map.entry(&f.name)
                .or_default()
                .extend(f.values.iter().map(String::as_str));
        }
        for (name, value) in extra {
            map.entry(name).or_default().push(value);
        }
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
    }
}

fn has_port(authority: &str) -> bool {
    match authority.rsplit_once(':') {
        // `[::1]` has colons but no port.
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(host: &str) -> DockerSdConfig {
        DockerSdConfig {
            host: host.into(),
            ..DockerSdConfig::default()
        }
    }

    #[test]
    fn hosts_name_a_socket_or_a_tcp_authority() {
        assert_eq!(
            with_host("unix:///var/run/docker.sock").endpoint(),
            Ok(DockerEndpoint::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            with_host("tcp://10.0.0.1:2375").endpoint(),
            Ok(DockerEndpoint::Tcp {
                authority: "10.0.0.1:2375".into(),
                tls: false
            })
        );
        assert_eq!(
            with_host("https://docker.example").endpoint(),
            Ok(DockerEndpoint::Tcp {
                authority: "docker.example:2376".into(),
                tls: true
            })
        );
        assert_eq!(with_host("").endpoint().unwrap_err().1, "host missing");
        assert!(with_host("/var/run/docker.sock").endpoint().is_err());
        assert!(with_host("ftp://x").endpoint().is_err());
    }

    #[test]
    fn tls_on_a_socket_and_auth_keys_are_refused_not_ignored() {
        let mut c = with_host("unix:///run/docker.sock");
        c.tls_config = Some(TlsConfig::default());
        assert_eq!(c.check().unwrap_err().0, "tls_config");
        let mut c = with_host("unix:///run/docker.sock");
        c.basic_auth = Some(serde_json::json!({"username": "u"}));
        assert_eq!(c.check().unwrap_err().0, "basic_auth");
        let mut c = with_host("tcp://h:2376");
        c.tls_config = Some(TlsConfig::default());
        assert!(c.check().is_ok());
    }

    #[test]
    fn filters_become_the_engine_apis_json_map() {
        let mut c = with_host("unix:///s");
        c.filters = vec![
            DockerFilter {
                name: "label".into(),
                values: vec!["a=b".into(), "c".into()],
            },
            DockerFilter {
                name: "name".into(),
                values: vec!["web".into()],
            },
        ];
        assert_eq!(
            c.filters_json(&[("id", "abc")]),
            r#"{"id":["abc"],"label":["a=b","c"],"name":["web"]}"#
        );
    }

    fn load(yaml: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        crate::config::load_str(yaml, "FILE", &crate::config::Overrides::default())
    }

    #[test]
    fn promtails_docker_config_loads_with_its_defaults() {
        let config = load(
            "clients: [{url: 'http://l/loki/api/v1/push'}]\n\
             scrape_configs:\n\
             - job_name: d\n  docker_sd_configs:\n  - host: unix:///var/run/docker.sock\n    \
             filters: [{name: label, values: [logging=promtail]}]\n",
        )
        .unwrap();
        let d = &config.scrape_configs[0].docker_sd_configs[0];
        assert_eq!(d.port, 80);
        assert_eq!(d.host_networking_host, "localhost");
        assert_eq!(d.refresh_interval.0, std::time::Duration::from_secs(60));
        assert!(d.match_first_network);
        assert_eq!(d.filters[0].values, ["logging=promtail"]);
    }

    #[test]
    fn a_bad_docker_config_names_its_key_path() {
        let err = load(
            "clients: [{url: 'http://l/loki/api/v1/push'}]\n\
             scrape_configs:\n- job_name: d\n  docker_sd_configs:\n  - refresh_interval: 5s\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("scrape_configs[0].docker_sd_configs[0].host"),
            "{err}"
        );
        assert!(err.to_string().contains("host missing"), "{err}");
        let err = load(
            "clients: [{url: 'http://l/loki/api/v1/push'}]\n\
             scrape_configs:\n- job_name: d\n  docker_sd_configs:\n  - host: unix:///s\n    \
             bearer_token: t\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("docker_sd_configs[0].bearer_token"),
            "{err}"
        );
    }
}
