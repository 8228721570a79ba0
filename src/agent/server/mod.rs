//! The HTTP server: `/metrics` (Prometheus text format, or OpenMetrics when asked for), `/ready` with Promtail's meaning
//! (ready once at least one file is tailed, unless `health_check_target: false`), and the
//! pages Promtail serves: `/targets` (per job: files, positions, lag), `/service-discovery`
//! (targets before and after relabeling, dropped ones), `/config` (the effective config,
//! secrets redacted), and `/reload` when `server.enable_runtime_reload` is on. `/reload`
//! takes POST and PUT only (Promtail takes any method): a GET would let any page a browser
//! visits trigger a reload through an `<img src>`, which is why Prometheus' lifecycle
//! endpoints refuse it too.
//!
//! Owns the routes and page rendering; [`listener`] owns connections and their limits,
//! [`tls`] the certificate. It reads state through [`Metrics`],
//! [`TargetsView`], [`Positions`] and the current config. It must not change anything in the
//! agent: `/reload` only asks, through [`reload::Requests`].

pub use crate::http_listener as listener;
pub use crate::http_listener::tls;

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tokio::sync::{oneshot, watch};

use crate::agent::reload;
use crate::config::{self, Config};
use crate::delivery::positions::Positions;
use crate::metrics::Metrics;
use crate::sources::targets_view::TargetsView;

/// What the server reads from the running agent.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub health_check_target: bool,
    /// Stdin mode has no files but is ready.
    pub always_ready: bool,
    /// The config in force (replaced by a reload).
    pub config: watch::Receiver<Arc<Config>>,
    pub targets: TargetsView,
    pub positions: Option<Positions>,
    /// Set when `server.enable_runtime_reload` is on.
    pub reload: Option<reload::Requests>,
}

/// Binds the listener (with TLS when `server.http_tls_config` names a certificate); a
/// failure here (port in use, bad address, unreadable certificate) stops startup.
pub async fn bind(config: &config::ServerConfig) -> Result<listener::Listener, String> {
    let tls = tls::acceptor(config)?;
    listener::Listener::bind(config, tls).await
}

pub async fn serve(listener: listener::Listener, state: AppState, stop: watch::Receiver<bool>) {
    let mut app = Router::new()
        .route("/", get(|| async { Redirect::to("/targets") }))
        .route("/metrics", get(metrics_page))
        .route("/ready", get(ready))
        .route("/targets", get(targets_page))
        .route("/service-discovery", get(service_discovery_page))
        .route("/config", get(config_page));
    if state.reload.is_some() {
        app = app.route("/reload", post(reload_request).put(reload_request));
    }
    let app = app.with_state(state);
    if let Some(a) = listener.local_addr() {
        tracing::info!(address = %a, "server listening");
    }
    listener.serve(app, stop).await;
}

async fn metrics_page(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = crate::metrics::exposition::Format::negotiate(accept);
    (
        [(header::CONTENT_TYPE, format.content_type())],
        s.metrics.render_as(format),
    )
        .into_response()
}

async fn ready(State(s): State<AppState>) -> Response {
    if !s.health_check_target || s.always_ready || s.metrics.files.files_active.get() >= 1.0 {
        (StatusCode::OK, "Ready").into_response()
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not ready: Unable to find any logs to tail. Please verify permissions, volumes, scrape_config, etc.",
        )
            .into_response()
    }
}

async fn config_page(State(s): State<AppState>) -> Response {
    let config = s.config.borrow().clone();
    match config::redacted_yaml(&config) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the effective config: {e}"),
        )
            .into_response(),
    }
}

async fn reload_request(State(s): State<AppState>) -> Response {
    let Some(requests) = s.reload else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (tx, rx) = oneshot::channel();
    if requests
        .send(reload::Request { reply: Some(tx) })
        .await
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "agent is stopping").into_response();
    }
    match rx.await {
        Ok(Ok(())) => (StatusCode::OK, "config reloaded\n").into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("config reload failed, the running config is kept: {e}\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "agent is stopping").into_response(),
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tailward: {title}</title>\
         <style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}</style></head>\
         <body><p><a href=\"/targets\">Targets</a> | <a href=\"/service-discovery\">Service \
         Discovery</a> | <a href=\"/config\">Config</a> | <a href=\"/metrics\">Metrics</a></p>\
         <h1>{title}</h1>\n{body}</body></html>\n"
    ))
}

/// Per job: each tailed file with its labels, delivered position, size and lag (bytes on
/// disk not yet delivered), as Promtail's targets page shows them.
async fn targets_page(State(s): State<AppState>) -> Response {
    let mut body = String::new();
    for (job, view) in s.targets.snapshot() {
        if !view.sources.is_empty() {
            source_targets_table(&mut body, &job, &view.sources);
            if view.files.is_empty() {
                continue;
            }
        }
        let _ = write!(
            body,
            "<h2 id=\"job-{id}\">{job} ({n} files)</h2>\n<table>\n\
             <tr><th>Path</th><th>Labels</th><th>Position</th><th>Size</th><th>Lag</th></tr>\n",
            id = escape(&job),
            job = escape(&job),
            n = view.files.len()
        );
        for (path, labels) in &view.files {
            let shown = path.display().to_string();
            let position = s.positions.as_ref().map_or(0, |p| p.get(&shown));
            let size = std::fs::metadata(path).map(|m| m.len()).ok();
            let (size_text, lag_text) = match size {
                Some(size) => (size.to_string(), size.saturating_sub(position).to_string()),
                None => ("gone".to_string(), "-".to_string()),
            };
            let _ = writeln!(
                body,
                "<tr class=\"file\"><td>{path}</td><td>{labels}</td><td>{position}</td>\
                 <td>{size_text}</td><td>{lag_text}</td></tr>",
                path = escape(&shown),
                labels = escape(&labels.to_string()),
            );
        }
        body.push_str("</table>\n");
    }
    page("Targets", &body).into_response()
}

/// A job's listeners, containers or pods: what each is, its labels, whether it is ready.
fn source_targets_table(
    body: &mut String,
    job: &str,
    targets: &[crate::sources::targets_view::SourceTargetView],
) {
    let _ = write!(
        body,
        "<h2 id=\"job-{id}\">{job} ({n} targets)</h2>\n<table>\n\
         <tr><th>Type</th><th>Target</th><th>Labels</th><th>Ready</th></tr>\n",
        id = escape(job),
        job = escape(job),
        n = targets.len()
    );
    for t in targets {
        let _ = writeln!(
            body,
            "<tr class=\"source\"><td>{kind}</td><td>{what}</td><td>{labels}</td><td>{ready}</td></tr>",
            kind = t.kind,
            what = escape(&t.description),
            labels = escape(&t.labels.to_string()),
            ready = t.ready,
        );
    }
    body.push_str("</table>\n");
}

fn labels_text(labels: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{k}={v:?}");
    }
    out.push('}');
    out
}

/// Per job: every target before and after relabeling, and the dropped ones with the reason.
async fn service_discovery_page(State(s): State<AppState>) -> Response {
    let mut body = String::new();
    for (job, view) in s.targets.snapshot() {
        let _ = write!(
            body,
            "<h2>{job} ({active} active / {total} total)</h2>\n<table>\n\
             <tr><th>Discovered labels</th><th>Target labels</th></tr>\n",
            job = escape(&job),
            active = view.targets.len() + view.sources.len(),
            total = view.targets.len() + view.sources.len() + view.dropped.len(),
        );
        for t in &view.sources {
            let _ = writeln!(
                body,
                "<tr class=\"active\"><td>{}</td><td>{}</td></tr>",
                escape(&format!(
                    "{} {}: {}",
                    t.kind,
                    t.description,
                    labels_text(&t.discovered)
                )),
                escape(&t.labels.to_string())
            );
        }
        for t in &view.targets {
            let _ = writeln!(
                body,
                "<tr class=\"active\"><td>{}</td><td>{}</td></tr>",
                escape(&labels_text(&t.discovered)),
                escape(&t.labels.to_string())
            );
        }
        for d in &view.dropped {
            let _ = writeln!(
                body,
                "<tr class=\"dropped\"><td>{}</td><td>dropped ({})</td></tr>",
                escape(&labels_text(&d.discovered)),
                d.reason
            );
        }
        body.push_str("</table>\n");
    }
    page("Service Discovery", &body).into_response()
}
