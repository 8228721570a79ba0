//! Config reload: where requests come from (SIGHUP, `POST /reload`), re-reading and
//! validating the config file, and Promtail's reload counters
//! (`promtail_config_reload_success_total`, `promtail_config_reload_fail_total`).
//!
//! Owns deciding whether a new config may replace the running one: an invalid config is
//! refused with a log line naming what is wrong, and the running one carries on. It must not
//! reach into tailers or clients itself; [`crate::agent`] applies an accepted config.

use prometheus::IntCounter;
use tokio::sync::{mpsc, oneshot};

use crate::config::{self, Config, Overrides};
use crate::metrics::Metrics;

/// Where the running config came from, so it can be read again.
#[derive(Clone, Debug)]
pub struct Source {
    pub config_file: String,
    pub overrides: Overrides,
}

/// One reload request; `reply` (from `/reload`) learns whether it was accepted.
pub struct Request {
    pub reply: Option<oneshot::Sender<Result<(), String>>>,
}

/// Sender half handed to the HTTP server.
pub type Requests = mpsc::Sender<Request>;

#[derive(Clone)]
pub struct ReloadMetrics {
    success: IntCounter,
    fail: IntCounter,
}

impl ReloadMetrics {
    /// Counts a reload's outcome and logs a refused one.
    pub fn record(&self, result: &Result<(), String>, file: &str) {
        match result {
            Ok(()) => self.success.inc(),
            Err(e) => {
                self.fail.inc();
                tracing::error!(
                    error = %e,
                    file = %file,
                    "config reload failed; keeping the running config"
                );
            }
        }
    }

    pub fn register(metrics: &Metrics) -> Self {
        let counter = |name: &str, help: &str| {
            // Constant, valid names: this cannot fail.
            let c = IntCounter::new(name, help).expect("valid metric name");
            // A second registration (a second agent in one process, in tests) keeps the first.
            let _ = metrics.registry.register(Box::new(c.clone()));
            c
        };
        ReloadMetrics {
            success: counter(
                "promtail_config_reload_success_total",
                "Number of reload success times.",
            ),
            fail: counter(
                "promtail_config_reload_fail_total",
                "Number of reload fail times.",
            ),
        }
    }
}

/// Starts turning SIGHUP into reload requests; returns the channel to read them from and a
/// sender for other sources (the HTTP server).
pub fn listen() -> (Requests, mpsc::Receiver<Request>) {
    let (tx, rx) = mpsc::channel(4);
    let sighup = tx.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload only through /reload");
                return;
            }
        };
        while hup.recv().await.is_some() {
            if sighup.send(Request { reply: None }).await.is_err() {
                return;
            }
        }
    });
    (tx, rx)
}

/// Reads and validates the config again; `Err` says what is wrong with it.
pub fn read_new_config(source: &Source, running: &Config) -> Result<Config, String> {
    config::load(&source.config_file, &source.overrides)
        .map_err(|e| e.to_string())
        .and_then(|(new, _)| refuse_unreloadable(running, &new).map(|()| new))
}

/// Settings that only take effect at start: changing them through a reload would leave the
/// agent half in the old config, so such a reload is refused.
fn refuse_unreloadable(running: &Config, new: &Config) -> Result<(), String> {
    let s = (&running.server, &new.server);
    if s.0.http_listen_address != s.1.http_listen_address
        || s.0.http_listen_port != s.1.http_listen_port
        || s.0.disable != s.1.disable
    {
        return Err(
            "server listen address, port and disable cannot change on reload; restart instead"
                .into(),
        );
    }
    if running.positions.filename != new.positions.filename {
        return Err("positions.filename cannot change on reload; restart instead".into());
    }
    if running.target_config.stdin != new.target_config.stdin {
        return Err("target_config.stdin cannot change on reload; restart instead".into());
    }
    Ok(())
}

/// What a reload changes.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Running jobs to stop: removed, changed, or all of them when clients or tailing
    /// settings changed.
    pub stop: Vec<String>,
    /// Indexes of the new config's jobs to start.
    pub start: Vec<usize>,
    /// Jobs that keep running untouched.
    pub keep: Vec<String>,
    /// The clients differ: the old ones flush what they hold, then new ones take over.
    pub clients_changed: bool,
}

/// Compares configs as they serialize: any difference in a job's config restarts that job.
pub fn plan(running: &Config, new: &Config) -> Plan {
    let clients_changed =
        !same(&running.clients, &new.clients) || !same(&running.client, &new.client);
    // Settings every tailer reads at start.
    let tailing_changed = !same(&running.target_config, &new.target_config)
        || !same(&running.global, &new.global)
        || !same(&running.limits_config, &new.limits_config);
    let mut plan = Plan {
        clients_changed,
        ..Plan::default()
    };
    if clients_changed || tailing_changed {
        plan.stop = running
            .scrape_configs
            .iter()
            .map(|j| j.job_name.clone())
            .collect();
        plan.start = (0..new.scrape_configs.len()).collect();
        return plan;
    }
    for old in &running.scrape_configs {
        match new
            .scrape_configs
            .iter()
            .find(|j| j.job_name == old.job_name)
        {
            Some(now) if same(now, old) => plan.keep.push(old.job_name.clone()),
            _ => plan.stop.push(old.job_name.clone()),
        }
    }
    for (i, job) in new.scrape_configs.iter().enumerate() {
        if !plan.keep.contains(&job.job_name) {
            plan.start.push(i);
        }
    }
    plan
}

/// Equal as they serialize (the config types have no `PartialEq`).
fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(dir: &std::path::Path, yaml: &str) -> Source {
        let path = dir.join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        Source {
            config_file: path.display().to_string(),
            overrides: Overrides::default(),
        }
    }

    #[test]
    fn invalid_config_is_refused_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics::new();
        let rm = ReloadMetrics::register(&m);
        let running = Config::default();
        let bad = source(
            dir.path(),
            "scrape_configs:\n  - job_name: a\n    nonsense: 1\n",
        );
        let refused = read_new_config(&bad, &running).map(|_| ());
        assert!(refused.is_err());
        rm.record(&refused, "c.yaml");
        let good = source(
            dir.path(),
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - labels: {__path__: /tmp/x.log}\n",
        );
        let accepted = read_new_config(&good, &running).map(|_| ());
        assert!(accepted.is_ok(), "{accepted:?}");
        rm.record(&accepted, "c.yaml");
        let text = m.render();
        assert!(
            text.contains("promtail_config_reload_fail_total 1"),
            "{text}"
        );
        assert!(
            text.contains("promtail_config_reload_success_total 1"),
            "{text}"
        );
    }

    fn config(yaml: &str) -> Config {
        config::load_str(yaml, "test", &Overrides::default()).unwrap()
    }

    const BASE: &str = "clients:\n  - url: http://a/loki/api/v1/push\nscrape_configs:\n";

    fn job(name: &str, path: &str) -> String {
        format!("  - job_name: {name}\n    static_configs:\n      - labels: {{__path__: {path}}}\n")
    }

    #[test]
    fn plan_keeps_unchanged_jobs_and_restarts_changed_ones() {
        let running = config(&format!(
            "{BASE}{}{}{}",
            job("same", "/a"),
            job("changed", "/b"),
            job("removed", "/c")
        ));
        let new = config(&format!(
            "{BASE}{}{}{}",
            job("same", "/a"),
            job("changed", "/b2"),
            job("added", "/d")
        ));
        let p = plan(&running, &new);
        assert_eq!(p.keep, vec!["same".to_string()]);
        assert_eq!(p.stop, vec!["changed".to_string(), "removed".to_string()]);
        assert_eq!(p.start, vec![1, 2]);
        assert!(!p.clients_changed);
    }

    #[test]
    fn plan_restarts_every_job_when_clients_change() {
        let running = config(&format!("{BASE}{}", job("a", "/a")));
        let new = config(&format!(
            "{}{}",
            BASE.replace("http://a/", "http://b/"),
            job("a", "/a")
        ));
        let p = plan(&running, &new);
        assert!(p.clients_changed);
        assert_eq!(p.stop, vec!["a".to_string()]);
        assert_eq!(p.start, vec![0]);
        assert!(p.keep.is_empty());
    }

    #[test]
    fn changing_the_listen_port_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let running = Config::default();
        let moved = source(dir.path(), "server:\n  http_listen_port: 9999\n");
        let e = read_new_config(&moved, &running).unwrap_err();
        assert!(e.contains("restart"), "{e}");
    }
}
