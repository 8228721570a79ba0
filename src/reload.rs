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

/// Reads and validates the config again. `Err` carries the reason, already logged.
pub fn read_new_config(
    source: &Source,
    running: &Config,
    metrics: &ReloadMetrics,
) -> Result<Config, String> {
    let result = config::load(&source.config_file, &source.overrides)
        .map_err(|e| e.to_string())
        .and_then(|(new, _)| refuse_unreloadable(running, &new).map(|()| new));
    match &result {
        Ok(_) => metrics.success.inc(),
        Err(e) => {
            metrics.fail.inc();
            tracing::error!(
                error = %e,
                file = %source.config_file,
                "config reload failed; keeping the running config"
            );
        }
    }
    result
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
        assert!(read_new_config(&bad, &running, &rm).is_err());
        let good = source(
            dir.path(),
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - labels: {__path__: /tmp/x.log}\n",
        );
        let accepted = read_new_config(&good, &running, &rm);
        assert!(accepted.is_ok(), "{accepted:?}");
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

    #[test]
    fn changing_the_listen_port_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics::new();
        let rm = ReloadMetrics::register(&m);
        let running = Config::default();
        let moved = source(dir.path(), "server:\n  http_listen_port: 9999\n");
        let e = read_new_config(&moved, &running, &rm).unwrap_err();
        assert!(e.contains("restart"), "{e}");
    }
}
