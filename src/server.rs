//! The HTTP server: `/metrics` (Prometheus text format) and `/ready` with Promtail's meaning
//! (ready once at least one file is tailed, unless `health_check_target: false`).
//!
//! Owns the listener and routes; reads state only through [`Metrics`]. It must not change
//! anything in the agent.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health_check_target: bool,
    /// Stdin mode has no files but is ready.
    always_ready: bool,
}

/// Binds the listener; a failure here (port in use, bad address) stops startup.
pub async fn bind(address: &str, port: u16) -> Result<TcpListener, String> {
    let host = if address.is_empty() {
        "0.0.0.0"
    } else {
        address
    };
    let addr = format!("{host}:{port}");
    TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health_check_target: bool,
    always_ready: bool,
    mut stop: watch::Receiver<bool>,
) {
    let state = AppState {
        metrics,
        health_check_target,
        always_ready,
    };
    let app = Router::new()
        .route("/", get(|| async { Redirect::to("/targets") }))
        .route("/metrics", get(metrics_page))
        .route("/ready", get(ready))
        .with_state(state);
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    if let Some(a) = addr {
        tracing::info!(address = %a, "server listening");
    }
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

async fn metrics_page(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
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
