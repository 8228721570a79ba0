//! Reading, parsing and validating a config file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::expand_env::{Unset, expand_env_tracked};
use figment::Figment;
use figment::providers::Serialized;

use super::{ClientConfig, Config, yaml};
use crate::model::labels::is_valid_label_name;

/// Settings given on the command line; they win over the file, as in Promtail.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub expand_env: bool,
    /// Config-setting flags in Promtail's spelling without dashes, e.g.
    /// `("server.http-listen-port", "9080")`, applied in order after the file is read.
    pub flags: Vec<(String, String)>,
}

/// The Promtail flags that set config values, and the config key each sets (dskit's flag
/// for each `server` key, Promtail's for the rest). Every other flag of
/// [`super::cli::FLAGS`] is read by the command line itself or ignored.
pub const CONFIG_FLAGS: &[(&str, &str)] = &[
    ("server.http-listen-address", "server.http_listen_address"),
    ("server.http-listen-network", "server.http_listen_network"),
    ("server.http-listen-port", "server.http_listen_port"),
    ("server.http-conn-limit", "server.http_listen_conn_limit"),
    ("server.grpc-listen-address", "server.grpc_listen_address"),
    ("server.grpc-listen-network", "server.grpc_listen_network"),
    ("server.grpc-listen-port", "server.grpc_listen_port"),
    ("server.grpc-conn-limit", "server.grpc_listen_conn_limit"),
    ("server.tls-cipher-suites", "server.tls_cipher_suites"),
    ("server.tls-min-version", "server.tls_min_version"),
    (
        "server.http-tls-cert-path",
        "server.http_tls_config.cert_file",
    ),
    (
        "server.http-tls-key-path",
        "server.http_tls_config.key_file",
    ),
    (
        "server.http-tls-client-auth",
        "server.http_tls_config.client_auth_type",
    ),
    (
        "server.http-tls-ca-path",
        "server.http_tls_config.client_ca_file",
    ),
    (
        "server.grpc-tls-cert-path",
        "server.grpc_tls_config.cert_file",
    ),
    (
        "server.grpc-tls-key-path",
        "server.grpc_tls_config.key_file",
    ),
    (
        "server.grpc-tls-client-auth",
        "server.grpc_tls_config.client_auth_type",
    ),
    (
        "server.grpc-tls-ca-path",
        "server.grpc_tls_config.client_ca_file",
    ),
    (
        "server.graceful-shutdown-timeout",
        "server.graceful_shutdown_timeout",
    ),
    (
        "server.http-read-timeout",
        "server.http_server_read_timeout",
    ),
    (
        "server.http-read-header-timeout",
        "server.http_server_read_header_timeout",
    ),
    (
        "server.http-write-timeout",
        "server.http_server_write_timeout",
    ),
    (
        "server.http-idle-timeout",
        "server.http_server_idle_timeout",
    ),
    (
        "server.grpc-max-recv-msg-size-bytes",
        "server.grpc_server_max_recv_msg_size",
    ),
    (
        "server.grpc-max-send-msg-size-bytes",
        "server.grpc_server_max_send_msg_size",
    ),
    (
        "server.grpc-max-concurrent-streams",
        "server.grpc_server_max_concurrent_streams",
    ),
    (
        "server.register-instrumentation",
        "server.register_instrumentation",
    ),
    ("server.disable", "server.disable"),
    ("server.profiling_enabled", "server.profiling_enabled"),
    (
        "server.enable-runtime-reload",
        "server.enable_runtime_reload",
    ),
    ("server.path-prefix", "server.http_path_prefix"),
    (
        "server.log-source-ips-enabled",
        "server.log_source_ips_enabled",
    ),
    ("server.log-request-headers", "server.log_request_headers"),
    ("log.level", "server.log_level"),
    ("log.format", "server.log_format"),
    ("positions.file", "positions.filename"),
    ("positions.sync-period", "positions.sync_period"),
    (
        "positions.ignore-invalid-yaml",
        "positions.ignore_invalid_yaml",
    ),
    ("target.sync-period", "target_config.sync_period"),
    ("stdin", "target_config.stdin"),
    (
        "file-watch.min_poll_frequency",
        "global.file_watch_config.min_poll_frequency",
    ),
    (
        "file-watch.max_poll_frequency",
        "global.file_watch_config.max_poll_frequency",
    ),
    (
        "limit.readline-rate-enabled",
        "limits_config.readline_rate_enabled",
    ),
    ("limit.readline-rate", "limits_config.readline_rate"),
    ("limit.readline-burst", "limits_config.readline_burst"),
    (
        "limit.readline-rate-drop",
        "limits_config.readline_rate_drop",
    ),
    ("max-streams", "limits_config.max_streams"),
    ("max-line-size", "limits_config.max_line_size"),
    (
        "max-line-size-truncate",
        "limits_config.max_line_size_truncate",
    ),
    ("client.url", "client.url"),
    ("client.tenant-id", "client.tenant_id"),
    ("client.external-labels", "client.external_labels"),
    ("client.batch-wait", "client.batchwait"),
    ("client.batch-size-bytes", "client.batchsize"),
    ("client.timeout", "client.timeout"),
    ("client.min-backoff", "client.backoff_config.min_period"),
    ("client.max-backoff", "client.backoff_config.max_period"),
    ("client.max-retries", "client.backoff_config.max_retries"),
    (
        "client.drop-rate-limited-batches",
        "client.drop_rate_limited_batches",
    ),
    ("tracing.enabled", "tracing.enabled"),
];

/// A config that cannot be used: which file, where in it, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// Dotted path with list indices, e.g. `scrape_configs[1].pipeline_stages[0].json`;
    /// empty when the problem is the file as a whole.
    pub key_path: String,
    pub message: String,
    /// The line the problem is on, where known (the message already says it).
    pub line: Option<usize>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key_path.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key_path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn new(file: &str, key_path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            key_path: key_path.into(),
            message: message.into(),
            line: None,
        }
    }
}

/// Loads the first existing file of Promtail's comma-separated `-config.file` list.
pub fn load(file_list: &str, overrides: &Overrides) -> Result<(Config, PathBuf), ConfigError> {
    let candidates: Vec<&str> = file_list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if candidates.is_empty() {
        return Err(ConfigError::new(
            "-config.file",
            "",
            "no config file given: pass -config.file=/etc/tailward/config.yaml",
        ));
    }
    let Some(path) = candidates.iter().map(Path::new).find(|p| p.exists()) else {
        return Err(ConfigError::new(
            file_list,
            "",
            format!("none of the config files exist: {}", candidates.join(", ")),
        ));
    };
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&name, "", format!("cannot read: {e}")))?;
    let config = load_str(&text, &name, overrides)?;
    Ok((config, path.to_path_buf()))
}

/// Parses and validates config text; `name` is used in error messages.
pub fn load_str(text: &str, name: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
    let (text, unset) = if overrides.expand_env {
        expand_env_tracked(text, |v| std::env::var(v).ok())
            .map_err(|e| ConfigError::new(name, "", format!("-config.expand-env: {e}")))?
    } else {
        (text.to_string(), Vec::new())
    };
    let mut tree = yaml::parse(&text).map_err(|e| {
        let mut err = ConfigError::new(name, e.key_path(), e.message_with_line());
        mention_unset(&mut err, e.line.map(|l| (l, l)), &unset);
        err
    })?;
    let result = config_from_tree(&mut tree, name).and_then(|mut config| {
        apply_overrides(&mut config, overrides)?;
        validate(&config, name)?;
        Ok(config)
    });
    result.map_err(|mut err| {
        if err.file != name {
            return err;
        }
        let lines = err
            .line
            .map(|l| (l, l))
            .or_else(|| tree.at_path(&err.key_path).map(|n| (n.line, n.last_line())));
        mention_unset(&mut err, lines, &unset);
        err
    })
}

/// The typed config of a parsed file: stage lists checked, unsupported sources refused by
/// name, then deserialized with go-yaml v2's rules.
fn config_from_tree(tree: &mut yaml::Node, name: &str) -> Result<Config, ConfigError> {
    check_one_key_per_stage(tree, name)?;
    refuse_unsupported_sources(tree, name)?;
    yaml::from_node(tree).map_err(|e| {
        let mut err = ConfigError::new(name, e.key_path(), e.message_with_line());
        err.line = e.line;
        err
    })
}

/// An error about lines where `-config.expand-env` replaced an unset variable with nothing
/// says so: the empty value is what the error is about.
fn mention_unset(err: &mut ConfigError, lines: Option<(usize, usize)>, unset: &[Unset]) {
    let Some((first, last)) = lines else {
        return;
    };
    let names: Vec<String> = unset
        .iter()
        .filter(|u| (first..=last).contains(&u.line))
        .map(|u| format!("${{{}}}", u.name))
        .collect();
    if names.is_empty() {
        return;
    }
    let (verb, them) = if names.len() == 1 {
        ("is", "it")
    } else {
        ("are", "them")
    };
    err.message = format!(
        "{} (-config.expand-env: {} {verb} not set in the environment, so {them} expanded to nothing)",
        err.message,
        names.join(", ")
    );
}

/// Promtail requires each `pipeline_stages` item to name exactly one stage; serde would
/// silently take the first key. Stage lists nested in `match` are held to the same rule.
fn check_one_key_per_stage(tree: &yaml::Node, name: &str) -> Result<(), ConfigError> {
    let Some(jobs) = tree.get("scrape_configs").and_then(yaml::Node::as_seq) else {
        return Ok(());
    };
    for (j, job) in jobs.iter().enumerate() {
        if let Some(stages) = job.get("pipeline_stages").and_then(yaml::Node::as_seq) {
            check_stage_list(
                stages,
                &format!("scrape_configs[{j}].pipeline_stages"),
                name,
            )?;
        }
    }
    Ok(())
}

/// Checks one stage list located at `key_path`, and the lists nested in its `match` stages.
fn check_stage_list(stages: &[yaml::Node], key_path: &str, name: &str) -> Result<(), ConfigError> {
    for (s, stage) in stages.iter().enumerate() {
        let Some(entries) = stage.as_map() else {
            continue;
        };
        if entries.len() != 1 {
            let mut keys: Vec<&str> = entries
                .iter()
                .filter_map(|(k, _)| k.as_scalar().map(|s| s.text.as_str()))
                .collect();
            keys.sort_unstable();
            return Err(ConfigError::new(
                name,
                format!("{key_path}[{s}]"),
                format!(
                    "each pipeline stage must name exactly one stage, found {}: {}",
                    keys.len(),
                    keys.join(", ")
                ),
            ));
        }
        if let Some(nested) = stage
            .get("match")
            .and_then(|m| m.get("stages"))
            .and_then(yaml::Node::as_seq)
        {
            check_stage_list(nested, &format!("{key_path}[{s}].match.stages"), name)?;
        }
    }
    Ok(())
}

/// Promtail's scrape config keys for sources tailward does not implement (its
/// `scrapeconfig.Config` and the service discoveries inlined into it).
pub const UNSUPPORTED_SOURCES: &[&str] = &[
    "gcplog",
    "windows_events",
    "kafka",
    "azure_event_hubs",
    "cloudflare",
    "dns_sd_configs",
    "consul_sd_configs",
    "consulagent_sd_configs",
    "digitalocean_sd_configs",
    "dockerswarm_sd_configs",
    "serverset_sd_configs",
    "nerve_sd_configs",
    "marathon_sd_configs",
    "gce_sd_configs",
    "ec2_sd_configs",
    "openstack_sd_configs",
    "azure_sd_configs",
    "triton_sd_configs",
];

/// Where the README lists the sources and what each supports.
pub const SOURCES_README: &str = "see \"Sources\" in README.md (/usr/share/doc/tailward/README.md)";

/// A source tailward does not implement is refused by name rather than as an unknown key;
/// an empty one (`file_sd_configs: []`, a bare `gelf:`) configures nothing and is dropped.
fn refuse_unsupported_sources(tree: &mut yaml::Node, name: &str) -> Result<(), ConfigError> {
    let Some(jobs) = tree.get_mut("scrape_configs").and_then(yaml::Node::seq_mut) else {
        return Ok(());
    };
    for (j, job) in jobs.iter_mut().enumerate() {
        for key in UNSUPPORTED_SOURCES {
            let Some(value) = job.get(key) else {
                continue;
            };
            if !value.is_empty_value() {
                let what = if key.ends_with("_sd_configs") {
                    format!("the {key} service discovery")
                } else {
                    format!("the {key} source")
                };
                let mut err = ConfigError::new(
                    name,
                    format!("scrape_configs[{j}].{key}"),
                    format!(
                        "{what} is not supported by tailward; supported sources are \
                         static_configs, file_sd_configs and kubernetes_sd_configs (files, with __path__), journal, syslog, loki_push_api, gelf, docker_sd_configs and heroku_drain; {SOURCES_README}"
                    ),
                );
                err.line = Some(value.line);
                return Err(err);
            }
            job.remove_key(key);
        }
    }
    Ok(())
}

/// Applies command-line flags on top of the parsed file: figment layers the file's config
/// (already typed by go-yaml's rules) and each flag's value (typed as Go's `flag` package
/// types it: `-client.tenant-id=42` is text, `-server.http-listen-port=0x1F90` the number
/// 8080), the flags winning as in Promtail, and extracts the effective config. A flag value
/// that does not fit its key is an error naming the key.
fn apply_overrides(config: &mut Config, o: &Overrides) -> Result<(), ConfigError> {
    let mut file_and_flags = Figment::from(Serialized::defaults(&*config));
    let mut flag_client: Option<Figment> = None;
    let mut flag_labels: Vec<(String, String)> = Vec::new();
    for (flag, raw) in &o.flags {
        let Some((_, key)) = CONFIG_FLAGS.iter().find(|(f, _)| f == flag) else {
            return Err(ConfigError::new(
                &format!("-{flag}"),
                "",
                "not a config flag",
            ));
        };
        if *key == "client.external_labels" {
            for pair in raw.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    ConfigError::new(
                        &format!("-{flag}"),
                        "",
                        format!("expected name=value pairs separated by commas, got {pair:?}"),
                    )
                })?;
                flag_labels.push((k.trim().to_string(), v.trim().to_string()));
            }
            continue;
        }
        let value = flag_value(flag, raw)?;
        if let Some(sub) = key.strip_prefix("client.") {
            let client = flag_client
                .take()
                .unwrap_or_else(|| Figment::from(Serialized::defaults(ClientConfig::default())));
            flag_client = Some(client.merge(Serialized::default(sub, value)));
            continue;
        }
        file_and_flags = file_and_flags.merge(Serialized::default(key, value));
    }
    *config = file_and_flags
        .extract()
        .map_err(|e| layering_error(e, ""))?;
    // The deprecated singular `client` block and `-client.url` each add one client; other
    // `-client.*` flags configure that flag client.
    if let Some(c) = config.client.take()
        && !c.url.is_empty()
    {
        config.clients.push(c);
    }
    if let Some(c) = flag_client {
        let c: ClientConfig = c.extract().map_err(|e| layering_error(e, "client"))?;
        if !c.url.is_empty() {
            config.clients.push(c);
        } else if let Some(t) = o.flags.iter().find(|(f, _)| f == "client.tenant-id") {
            for client in &mut config.clients {
                if client.tenant_id.is_empty() {
                    client.tenant_id = t.1.clone();
                }
            }
        }
    }
    // Flag labels are merged into every client; labels from YAML win.
    for client in &mut config.clients {
        for (k, v) in &flag_labels {
            client
                .external_labels
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
    Ok(())
}

/// A flag's value as Go's `flag` package reads it for the flag's type (the command line
/// has already checked it parses).
fn flag_value(flag: &str, raw: &str) -> Result<figment::value::Value, ConfigError> {
    use super::cli::Kind;
    use figment::value::Value;
    let kind = super::cli::FLAGS
        .iter()
        .find(|f| f.name == flag)
        .map_or(Kind::Text, |f| f.kind);
    let bad = |what: &str| {
        ConfigError::new(
            &format!("-{flag}"),
            "",
            format!("expected {what}, got {raw:?}"),
        )
    };
    Ok(match kind {
        Kind::Int => Value::from(raw.trim().parse::<i64>().map_err(|_| bad("an integer"))?),
        Kind::Float => Value::from(raw.trim().parse::<f64>().map_err(|_| bad("a number"))?),
        Kind::Bool => Value::from(go_bool(raw).ok_or_else(|| bad("true or false"))?),
        Kind::Text | Kind::Duration | Kind::Bytes => Value::from(raw.to_string()),
    })
}

/// Go's `strconv.ParseBool`.
fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A value figment could not fit: its key path (under `within`) and what was expected, in
/// plain words. The file's layer is the typed config itself, so only a flag's value can
/// misfit.
fn layering_error(e: figment::Error, within: &str) -> ConfigError {
    use figment::error::Kind;
    let key: Vec<&str> = std::iter::once(within)
        .chain(e.path.iter().map(String::as_str))
        .filter(|k| !k.is_empty())
        .collect();
    let message = match &e.kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("expected {}, got {actual}", yaml::plain_type_name(expected))
        }
        other => other.to_string(),
    };
    ConfigError::new("command line", key.join("."), message)
}

/// Periods below this busy-loop for no gain (a sync of `1ns` costs several percent of a core
/// while idle); Promtail accepts them, tailward refuses them with this floor.
const MIN_SYNC_PERIOD: Duration = Duration::from_millis(100);

/// A push timeout below this cuts off requests Loki is still accepting, and each cut-off
/// batch is sent again: `timeout: 1ns` delivered every batch three times.
const MIN_CLIENT_TIMEOUT: Duration = Duration::from_secs(1);

fn validate(config: &Config, name: &str) -> Result<(), ConfigError> {
    for (key, period) in [
        ("positions.sync_period", config.positions.sync_period),
        (
            "target_config.sync_period",
            config.target_config.sync_period,
        ),
    ] {
        if period.0 < MIN_SYNC_PERIOD {
            return Err(ConfigError::new(
                name,
                key,
                format!(
                    "expected at least 100ms, got {}: a shorter period only spins (Promtail's default is 10s)",
                    crate::model::units::format_duration(period.0)
                ),
            ));
        }
    }
    let mut client_names = std::collections::HashSet::new();
    for (i, c) in config.clients.iter().enumerate() {
        let at = |key: &str| format!("clients[{i}].{key}");
        if !c.timeout.is_zero() && c.timeout.0 < MIN_CLIENT_TIMEOUT {
            return Err(ConfigError::new(
                name,
                at("timeout"),
                format!(
                    "expected at least 1s (or 0 for none), got {}: a shorter timeout cuts off pushes Loki is still accepting, and each is sent again",
                    crate::model::units::format_duration(c.timeout.0)
                ),
            ));
        }
        if c.url.is_empty() {
            return Err(ConfigError::new(
                name,
                at("url"),
                "expected the Loki push URL, e.g. http://localhost:3100/loki/api/v1/push",
            ));
        }
        match reqwest::Url::parse(&c.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(_) | Err(_) => {
                return Err(ConfigError::new(
                    name,
                    at("url"),
                    format!("expected an http or https URL, got {:?}", c.url),
                ));
            }
        }
        if !c.name.is_empty() && !client_names.insert(c.name.clone()) {
            return Err(ConfigError::new(
                name,
                at("name"),
                format!("duplicate client name {:?}", c.name),
            ));
        }
        for k in c.external_labels.keys() {
            if !is_valid_label_name(k) {
                return Err(ConfigError::new(
                    name,
                    at(&format!("external_labels.{k}")),
                    "invalid label name: expected [a-zA-Z_][a-zA-Z0-9_]*",
                ));
            }
        }
        if c.backoff_config.min_period.0 > c.backoff_config.max_period.0 {
            return Err(ConfigError::new(
                name,
                at("backoff_config.min_period"),
                "expected min_period <= max_period",
            ));
        }
        if c.batchsize.0 == 0 {
            return Err(ConfigError::new(
                name,
                at("batchsize"),
                "expected a batch size above 0 bytes",
            ));
        }
        if !c.bearer_token.is_empty() && !c.bearer_token_file.is_empty() {
            return Err(ConfigError::new(
                name,
                at("bearer_token_file"),
                "at most one of bearer_token and bearer_token_file",
            ));
        }
        if let Some(b) = &c.basic_auth
            && !b.password.is_empty()
            && !b.password_file.is_empty()
        {
            return Err(ConfigError::new(
                name,
                at("basic_auth.password_file"),
                "at most one of password and password_file",
            ));
        }
        if c.basic_auth.is_some() && (!c.bearer_token.is_empty() || !c.bearer_token_file.is_empty())
        {
            return Err(ConfigError::new(
                name,
                at("basic_auth"),
                "at most one of basic_auth and bearer_token may be configured",
            ));
        }
        if c.compression != super::PushCompression::None && c.format == super::PushFormat::Protobuf
        {
            return Err(ConfigError::new(
                name,
                at("compression"),
                "protobuf pushes are always snappy-compressed; compression applies to format: json",
            ));
        }
    }
    let mut job_names = std::collections::HashSet::new();
    for (i, sc) in config.scrape_configs.iter().enumerate() {
        let at = |key: &str| format!("scrape_configs[{i}].{key}");
        if sc.job_name.is_empty() {
            return Err(ConfigError::new(
                name,
                at("job_name"),
                "expected a job name",
            ));
        }
        if !job_names.insert(sc.job_name.clone()) {
            return Err(ConfigError::new(
                name,
                at("job_name"),
                format!(
                    "found multiple scrape configs with job name {:?}",
                    sc.job_name
                ),
            ));
        }
        if let Err(expected) = sc.file_encoding() {
            return Err(ConfigError::new(name, at("encoding"), expected));
        }
        if let Some(journal) = &sc.journal {
            if !sc.static_configs.is_empty() {
                return Err(ConfigError::new(
                    name,
                    at("static_configs"),
                    "a journal job reads no files: move static_configs to a job of their own",
                ));
            }
            for k in journal.labels.keys() {
                if !is_valid_label_name(k) {
                    return Err(ConfigError::new(
                        name,
                        at(&format!("journal.labels.{k}")),
                        "invalid label name: expected [a-zA-Z_][a-zA-Z0-9_]*",
                    ));
                }
            }
            for m in journal.matches.split_whitespace() {
                let field_ok = m.split_once('=').is_some_and(|(f, _)| {
                    !f.is_empty()
                        && f.bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                });
                if m != "+" && !field_ok {
                    return Err(ConfigError::new(
                        name,
                        at("journal.matches"),
                        format!(
                            "expected FIELD=value matches (FIELD in upper case) or +, found {m:?}"
                        ),
                    ));
                }
            }
        }
        let push_labels = [
            (
                "loki_push_api",
                sc.loki_push_api.as_ref().map(|p| &p.labels),
            ),
            ("heroku_drain", sc.heroku_drain.as_ref().map(|h| &h.labels)),
        ];
        for (key, labels) in push_labels {
            for k in labels.into_iter().flat_map(|l| l.keys()) {
                if !is_valid_label_name(k) {
                    return Err(ConfigError::new(
                        name,
                        at(&format!("{key}.labels.{k}")),
                        "invalid label name: expected [a-zA-Z_][a-zA-Z0-9_]*",
                    ));
                }
            }
        }
        for (d, docker) in sc.docker_sd_configs.iter().enumerate() {
            if let Err((key, expected)) = docker.check() {
                return Err(ConfigError::new(
                    name,
                    at(&format!("docker_sd_configs[{d}].{key}")),
                    expected,
                ));
            }
        }
        // Promtail merges a job's discovery mechanisms into one target set; tailward follows
        // one per job, and says so rather than reading only one of them.
        if !sc.kubernetes_sd_configs.is_empty() && !sc.file_sd_configs.is_empty() {
            return Err(ConfigError::new(
                name,
                at("kubernetes_sd_configs"),
                "a job with kubernetes_sd_configs cannot also have file_sd_configs in tailward: \
                 put each in a job of its own",
            ));
        }
        for (k, sd) in sc.kubernetes_sd_configs.iter().enumerate() {
            if let Err((key, expected)) = sd.validate() {
                return Err(ConfigError::new(
                    name,
                    at(&format!("kubernetes_sd_configs[{k}].{key}")),
                    expected,
                ));
            }
        }
        if let Some(Err(expected)) = sc.decompression.as_ref().map(|d| d.archive_format()) {
            return Err(ConfigError::new(name, at("decompression.format"), expected));
        }
        for (f, sd) in sc.file_sd_configs.iter().enumerate() {
            if let Err((key, expected)) = super::file_sd::check(sd) {
                return Err(ConfigError::new(
                    name,
                    at(&format!("file_sd_configs[{f}].{key}")),
                    expected,
                ));
            }
        }
        // Only stdin mode may run a job that names no files.
        if (!config.target_config.stdin || i > 0)
            && sc.static_configs.is_empty()
            && sc.file_sd_configs.is_empty()
            && sc.journal.is_none()
            && sc.syslog.is_none()
            && sc.loki_push_api.is_none()
            && sc.heroku_drain.is_none()
            && sc.docker_sd_configs.is_empty()
            && sc.gelf.is_none()
            && sc.kubernetes_sd_configs.is_empty()
        {
            return Err(ConfigError::new(
                name,
                at("static_configs"),
                "expected at least one static config with a __path__ label",
            ));
        }
        // A static config without `__path__` is not an error: as in Promtail, its target is
        // logged, counted as failed (`no_path`) and skipped when the job starts, so a split
        // `- targets: [...]` / `- labels: {...}` pair still runs its labelled half.
        for (s, st) in sc.static_configs.iter().enumerate() {
            let sat = |key: &str| at(&format!("static_configs[{s}].{key}"));
            for k in st.labels.keys() {
                if !is_valid_label_name(k) {
                    return Err(ConfigError::new(
                        name,
                        sat(&format!("labels.{k}")),
                        "invalid label name: expected [a-zA-Z_][a-zA-Z0-9_]*",
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(yaml: &str) -> ConfigError {
        load_str(yaml, "FILE", &Overrides::default()).unwrap_err()
    }

    #[test]
    fn numbers_and_yaml_1_1_booleans_read_as_promtail_reads_them() {
        let config = load_str(
            r#"server:
  http_listen_port: 9080
  enable_runtime_reload: yes
  register_instrumentation: off
clients:
  - url: https://logs-prod-eu-west-0.grafana.net/loki/api/v1/push
    tenant_id: 42
    basic_auth:
      username: 123456
      password: glc_secret
    external_labels: {port: 8080, dc: 01}
scrape_configs:
  - job_name: app
    static_configs:
      - targets: [localhost]
        labels: {job: app, port: 8080, canary: true, __path__: /var/log/app/*.log}
"#,
            "FILE",
            &Overrides::default(),
        )
        .unwrap();
        assert!(config.server.enable_runtime_reload);
        assert!(!config.server.register_instrumentation);
        let c = &config.clients[0];
        assert_eq!(c.tenant_id, "42");
        assert_eq!(c.basic_auth.as_ref().unwrap().username, "123456");
        assert_eq!(c.external_labels["dc"], "01", "the text as written");
        let labels = &config.scrape_configs[0].static_configs[0].labels;
        assert_eq!(labels["port"], "8080");
        assert_eq!(labels["canary"], "true");
    }

    #[test]
    fn a_negative_connection_limit_means_none_as_in_dskit() {
        let config = load_str(
            "server:\n  http_listen_conn_limit: -1\n  grpc_listen_conn_limit: 0x10\n",
            "FILE",
            &Overrides {
                flags: vec![("server.grpc-conn-limit".into(), "-5".into())],
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(config.server.http_listen_conn_limit, 0);
        assert_eq!(config.server.grpc_listen_conn_limit, 0, "the flag wins");
    }

    #[test]
    fn unset_variable_under_expand_env_is_named_in_the_error() {
        let overrides = Overrides {
            expand_env: true,
            ..Overrides::default()
        };
        // A name nothing sets.
        let err = load_str(
            "clients:\n  - url: ${TAILWARD_TEST_UNSET_LOKI_URL}\n",
            "FILE",
            &overrides,
        )
        .unwrap_err();
        assert_eq!(err.key_path, "clients[0].url");
        assert!(
            err.message
                .contains("${TAILWARD_TEST_UNSET_LOKI_URL} is not set in the environment"),
            "{err}"
        );
        let err = load_str(
            "server:\n  http_listen_port: ${TAILWARD_TEST_UNSET_LOKI_URL}x\n",
            "FILE",
            &overrides,
        )
        .unwrap_err();
        assert_eq!(err.key_path, "server.http_listen_port");
        assert!(err.message.contains("found \"x\""), "{err}");
        assert!(
            err.message
                .contains("${TAILWARD_TEST_UNSET_LOKI_URL} is not set"),
            "{err}"
        );
    }

    #[test]
    fn flag_values_follow_the_field_types_as_yaml_values_do() {
        let overrides = Overrides {
            flags: vec![
                (
                    "client.url".into(),
                    "http://loki:3100/loki/api/v1/push".into(),
                ),
                ("client.tenant-id".into(), "42".into()),
                ("server.http-listen-port".into(), "9080".into()),
                ("server.enable-runtime-reload".into(), "true".into()),
            ],
            ..Overrides::default()
        };
        let config = load_str("", "FILE", &overrides).unwrap();
        assert_eq!(config.clients[0].tenant_id, "42");
        assert_eq!(config.server.http_listen_port, 9080);
        assert!(config.server.enable_runtime_reload);
    }

    #[test]
    fn flags_win_over_the_file_and_leave_the_rest_of_it_alone() {
        let file = "server:\n  http_listen_port: 9080\n  log_level: debug\n\
                    positions:\n  filename: /var/lib/tailward/positions.yaml\n\
                    clients:\n  - url: http://loki:3100/loki/api/v1/push\n    tenant_id: 7\n";
        let overrides = Overrides {
            flags: vec![
                ("server.http-listen-port".into(), "3101".into()),
                ("positions.sync-period".into(), "30s".into()),
                ("limit.readline-rate".into(), "250.5".into()),
                ("positions.ignore-invalid-yaml".into(), "T".into()),
            ],
            ..Overrides::default()
        };
        let config = load_str(file, "FILE", &overrides).unwrap();
        assert_eq!(config.server.http_listen_port, 3101);
        assert_eq!(config.server.log_level, super::super::LogLevel::Debug);
        assert_eq!(
            config.positions.filename,
            std::path::PathBuf::from("/var/lib/tailward/positions.yaml")
        );
        assert_eq!(config.positions.sync_period.0, Duration::from_secs(30));
        assert!(config.positions.ignore_invalid_yaml);
        assert_eq!(config.limits_config.readline_rate, 250.5);
        assert_eq!(config.clients.len(), 1);
        assert_eq!(config.clients[0].tenant_id, "7");
    }

    #[test]
    fn a_flag_value_that_does_not_fit_its_key_names_the_key() {
        let overrides = Overrides {
            flags: vec![("server.http-listen-port".into(), "70000".into())],
            ..Overrides::default()
        };
        let err = load_str("", "FILE", &overrides).unwrap_err();
        assert_eq!(err.file, "command line");
        assert_eq!(err.key_path, "server.http_listen_port");
        assert_eq!(
            err.message,
            "expected a whole number from 0 to 65535, got signed int `70000`"
        );
    }

    #[test]
    fn unsupported_source_is_refused_by_name_and_empty_ones_are_dropped() {
        let err = refusal(
            "scrape_configs:\n  - job_name: k\n    kafka:\n      brokers: [k:9092]\n      topics: [t]\n",
        );
        assert_eq!(err.key_path, "scrape_configs[0].kafka");
        assert!(
            err.message.starts_with("the kafka source is not supported by tailward; supported sources are static_configs"),
            "{err}"
        );
        assert!(err.message.contains("README"), "{err}");
        let err = refusal(
            "scrape_configs:\n  - job_name: k\n    consul_sd_configs: [{server: 'c:8500'}]\n",
        );
        assert!(
            err.message
                .starts_with("the consul_sd_configs service discovery"),
            "{err}"
        );
        let config = load_str(
            "scrape_configs:\n  - job_name: a\n    file_sd_configs: []\n    gelf:\n    static_configs: [{labels: {__path__: /tmp/x.log}}]\n",
            "FILE",
            &Overrides::default(),
        );
        assert!(config.is_ok(), "{config:?}");
    }

    #[test]
    fn kubernetes_sd_configs_load_and_prometheus_rules_are_refused_with_their_key_path() {
        let config = load_str(
            "scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs: [{role: pod, namespaces: {names: [a]}}]\n",
            "FILE",
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            config.scrape_configs[0].kubernetes_sd_configs[0].role,
            "pod"
        );
        assert!(config.scrape_configs[0].kubernetes_sd_configs[0].follow_redirects);
        let err = refusal(
            "scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs: [{role: pods}]\n",
        );
        assert_eq!(
            err.key_path,
            "scrape_configs[0].kubernetes_sd_configs[0].role"
        );
        let err = refusal(
            "scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n      - role: pod\n        selectors: [{role: pod, label: 'a in b'}]\n",
        );
        assert_eq!(
            err.key_path,
            "scrape_configs[0].kubernetes_sd_configs[0].selectors[0].label"
        );
        let err = refusal(
            "scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs: [{role: pod, proxy_url: 'http://p'}]\n",
        );
        assert!(err.key_path.contains("kubernetes_sd_configs[0]"), "{err}");
    }

    #[test]
    fn two_stages_in_a_nested_match_item_are_refused_with_the_nested_path() {
        let err = refusal(
            r#"scrape_configs:
  - job_name: a
    static_configs: [{labels: {__path__: /tmp/none.log}}]
    pipeline_stages:
      - json: {expressions: {a: a}}
      - static_labels: {x: "1"}
      - match:
          selector: '{job="a"}'
          stages:
            - labels: {a: ""}
            - match:
                selector: '{a="1"}'
                stages:
                  - static_labels: {y: "2"}
                    output: {source: a}
"#,
        );
        assert_eq!(
            err.key_path,
            "scrape_configs[0].pipeline_stages[2].match.stages[1].match.stages[0]"
        );
        assert!(
            err.message
                .contains("exactly one stage, found 2: output, static_labels"),
            "{err}"
        );
    }

    #[test]
    fn journal_job_needs_no_files_and_bad_matches_are_refused() {
        let config = load_str(
            "scrape_configs:\n  - job_name: j\n    journal:\n      max_age: 12h\n      matches: _SYSTEMD_UNIT=ssh.service + _TRANSPORT=kernel\n      labels: {job: systemd-journal}\n",
            "FILE",
            &Overrides::default(),
        )
        .unwrap();
        let journal = config.scrape_configs[0].journal.as_ref().unwrap();
        assert_eq!(journal.max_age.0, std::time::Duration::from_secs(12 * 3600));
        let err =
            refusal("scrape_configs:\n  - job_name: j\n    journal:\n      matches: unit-ssh\n");
        assert!(
            err.to_string()
                .contains("scrape_configs[0].journal.matches"),
            "{err}"
        );
    }

    #[test]
    fn promtail_wal_keys_and_client_wal_blocks_are_read() {
        let config = load_str(
            r#"wal:
  enabled: true
  dir: /var/lib/tailward/wal
  cleanSegmentsOlderThan: 2h
  watchConfig:
    minReadFrequency: 100ms
    maxReadFrequency: 2s
clients:
  - url: http://loki:3100/loki/api/v1/push
    wal:
      enabled: true
      dir: /tmp/own
      max_size: 10MB
      when_full: drop_oldest
      fsync: always
"#,
            "FILE",
            &Overrides::default(),
        )
        .unwrap();
        let top = config.wal.unwrap();
        assert!(top.enabled);
        assert_eq!(top.clean_segments_older_than.0.as_secs(), 7200);
        assert_eq!(top.watch_config.max_read_frequency.0.as_secs(), 2);
        let own = config.clients[0].wal.clone().unwrap();
        assert_eq!(own.when_full, crate::config::WalWhenFull::DropOldest);
        assert_eq!(own.fsync, crate::config::WalFsync::Always);
        let err = refusal(
            "wal:
  enabled: true
  bogus: 1
",
        );
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn one_stage_per_nested_item_is_accepted() {
        let config = load_str(
            r#"scrape_configs:
  - job_name: a
    static_configs: [{labels: {__path__: /tmp/none.log}}]
    pipeline_stages:
      - match:
          selector: '{job="a"}'
          stages:
            - static_labels: {y: "2"}
"#,
            "FILE",
            &Overrides::default(),
        );
        assert!(config.is_ok(), "{config:?}");
    }

    #[test]
    fn unknown_encoding_is_refused_at_the_job_encoding_key() {
        let err = refusal(
            r#"scrape_configs:
  - job_name: a
    encoding: UTF-17
    static_configs: [{labels: {__path__: /tmp/none.log}}]
"#,
        );
        assert_eq!(err.key_path, "scrape_configs[0].encoding");
        assert!(
            err.message.contains("expected an IANA encoding name"),
            "{err}"
        );
        assert!(err.message.contains("\"UTF-17\""), "{err}");
    }

    #[test]
    fn iana_encoding_names_are_accepted_in_any_case() {
        for name in [
            "UTF-16LE",
            "utf-16be",
            "windows-1252",
            "ISO-8859-1",
            "Shift_JIS",
        ] {
            let config = load_str(
                &format!(
                    "scrape_configs:\n  - job_name: a\n    encoding: {name}\n    static_configs: [{{labels: {{__path__: /tmp/none.log}}}}]\n"
                ),
                "FILE",
                &Overrides::default(),
            );
            let config = config.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                config.scrape_configs[0]
                    .file_encoding()
                    .is_ok_and(|e| e.is_some()),
                "{name} resolves to a decoder"
            );
        }
    }

    #[test]
    fn unknown_decompression_format_is_refused_at_its_key_path() {
        for bad in ["gzip", "GZ", "zip", "xz", "tar.gz"] {
            let err = refusal(&format!(
                "scrape_configs:\n  - job_name: a\n    decompression: {{enabled: true, format: {bad:?}}}\n    static_configs: [{{labels: {{__path__: /tmp/none.gz}}}}]\n"
            ));
            assert_eq!(err.key_path, "scrape_configs[0].decompression.format");
            assert!(
                err.message.contains("expected gz, z (zlib) or bz2"),
                "{err}"
            );
            assert!(err.message.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn unknown_decompression_key_is_refused() {
        let err = refusal(
            "scrape_configs:\n  - job_name: a\n    decompression: {enabled: true, formt: gz}\n    static_configs: [{labels: {__path__: /tmp/none.gz}}]\n",
        );
        assert!(
            err.key_path.starts_with("scrape_configs[0].decompression"),
            "{err}"
        );
    }

    #[test]
    fn promtail_decompression_formats_are_accepted() {
        use crate::config::ArchiveFormat;
        for (name, want) in [
            ("gz", Some(ArchiveFormat::Gzip)),
            ("z", Some(ArchiveFormat::Zlib)),
            ("bz2", Some(ArchiveFormat::Bzip2)),
            ("", None),
        ] {
            let config = load_str(
                &format!(
                    "scrape_configs:\n  - job_name: a\n    decompression:\n      enabled: true\n      initial_delay: 10s\n      format: {name:?}\n    static_configs: [{{labels: {{__path__: /tmp/none.gz}}}}]\n"
                ),
                "FILE",
                &Overrides::default(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            let d = config.scrape_configs[0].decompression.as_ref().unwrap();
            assert!(d.enabled);
            assert_eq!(d.initial_delay.0, std::time::Duration::from_secs(10));
            assert_eq!(d.archive_format(), Ok(want), "{name}");
        }
    }
}
