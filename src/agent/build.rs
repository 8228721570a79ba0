//! Building a loaded config into what runs: each job's pipeline and relabelers, built once.
//!
//! [`crate::config`] only describes: it parses and checks what needs no building. Compiling
//! `__path__` globs and relabel regexes and building every stage happens here, once, with
//! errors located by file and key path; `-check-syntax`, start-up and reload all go through
//! [`build_jobs`], and the agent hands the built pieces to the jobs it starts. It must not
//! start anything.

use std::sync::Arc;

use crate::config::{Config, ConfigError, ScrapeConfig};
use crate::metrics::Metrics;
use crate::pipeline::stages::StageConfig;
use crate::pipeline::{BuildContext, Pipeline, load_warnings};
use crate::sources::files::discovery::compile_glob;
use crate::sources::relabel::Relabeler;

/// One scrape config, built.
pub struct BuiltJob {
    pub pipeline: Pipeline,
    pub relabelers: Vec<Relabeler>,
}

/// Builds every job of `config` (read from `file`), registering metrics-stage series in
/// `metrics`. The first error stops the build; nothing is started either way.
pub fn build_jobs(
    config: &Config,
    file: &str,
    metrics: &Arc<Metrics>,
) -> Result<Vec<BuiltJob>, ConfigError> {
    config
        .scrape_configs
        .iter()
        .enumerate()
        .map(|(i, job)| build_job(file, i, job, metrics))
        .collect()
}

/// The load-time warnings of every job's stage lists, nested `match` lists included (see
/// [`crate::pipeline::load_warnings`]), as `(key path, message)`. A run logs them as it
/// builds each list; `-check-syntax` prints these, as it runs before logging is set up.
pub fn stage_warnings(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (j, job) in config.scrape_configs.iter().enumerate() {
        let prefix = format!("scrape_configs[{j}].pipeline_stages");
        collect_stage_warnings(&prefix, &job.pipeline_stages, &mut out);
    }
    out
}

fn collect_stage_warnings(prefix: &str, configs: &[StageConfig], out: &mut Vec<(String, String)>) {
    for (i, message) in load_warnings::warnings(configs) {
        out.push((format!("{prefix}[{i}].{}", configs[i].name()), message));
    }
    for (i, cfg) in configs.iter().enumerate() {
        if let StageConfig::Match(m) = cfg {
            collect_stage_warnings(&format!("{prefix}[{i}].match.stages"), &m.stages, out);
        }
    }
}

/// Builds job `index`; see [`build_jobs`].
fn build_job(
    file: &str,
    index: usize,
    job: &ScrapeConfig,
    metrics: &Arc<Metrics>,
) -> Result<BuiltJob, ConfigError> {
    let at = |key: &str| format!("scrape_configs[{index}].{key}");
    for (s, st) in job.static_configs.iter().enumerate() {
        for k in ["__path__", "__path_exclude__"] {
            if let Some(v) = st.labels.get(k)
                && !v.is_empty()
                && let Err(e) = compile_glob(v)
            {
                return Err(ConfigError::new(
                    file,
                    at(&format!("static_configs[{s}].labels.{k}")),
                    e,
                ));
            }
        }
    }
    // The syslog listener's certificate files are read now, so -check-syntax finds them.
    if let Some(tls) = job.syslog.as_ref().and_then(|s| s.tls_config.as_ref())
        && let Err(e) = crate::sources::syslog::tls::acceptor(tls)
    {
        return Err(ConfigError::new(file, at("syslog.tls_config"), e));
    }
    // A push source's certificate files are read now too, and its refused keys refused.
    let push_servers = [
        (
            "loki_push_api",
            job.loki_push_api.as_ref().map(|p| &p.server),
        ),
        ("heroku_drain", job.heroku_drain.as_ref().map(|h| &h.server)),
    ];
    for (key, server) in push_servers {
        let Some(server) = server else { continue };
        if server.proxy_protocol_enabled {
            return Err(ConfigError::new(
                file,
                at(&format!("{key}.server.proxy_protocol_enabled")),
                "the PROXY protocol is not supported by tailward",
            ));
        }
        if let Err(e) = crate::http_listener::tls::acceptor(&server.as_listener_config()) {
            return Err(ConfigError::new(file, at(&format!("{key}.server")), e));
        }
    }
    // The docker daemon's TLS files are read now, so -check-syntax finds them.
    for (d, docker) in job.docker_sd_configs.iter().enumerate() {
        if let Err(e) = crate::sources::docker::api::DockerApi::new(docker) {
            return Err(ConfigError::new(
                file,
                at(&format!("docker_sd_configs[{d}]")),
                e,
            ));
        }
    }
    let relabelers = job
        .relabel_configs
        .iter()
        .enumerate()
        .map(|(r, rc)| {
            Relabeler::new(rc).map_err(|(key, msg)| {
                ConfigError::new(file, at(&format!("relabel_configs[{r}].{key}")), msg)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ctx = BuildContext::new(&job.job_name, metrics.clone());
    // The key path locates the stage; the job's name is what a reader searches for.
    let pipeline =
        Pipeline::build(&at("pipeline_stages"), &job.pipeline_stages, &ctx).map_err(|e| {
            let message = format!("{} (job {:?})", e.message, job.job_name);
            ConfigError::new(file, e.key_path, message)
        })?;
    Ok(BuiltJob {
        pipeline,
        relabelers,
    })
}
