//! tailward: a host log agent that reads Promtail's configuration, tails log files, runs
//! Promtail-compatible pipelines and pushes to Grafana Loki.
//!
//! The flow runs one way, and the folders follow it:
//! [`sources`] (files, journal, stdin) read lines -> [`pipeline`] turns them into entries ->
//! [`client`] batches and pushes them to Loki. The only way back is the acknowledgement
//! channel of [`model::ack`]: clients settle what Loki accepted, and [`delivery`] records how
//! far each source has been delivered, which is where a source resumes.
//! [`model`] is the vocabulary they share, [`metrics`] the agent's own Prometheus series,
//! [`config`] what the user asked for (YAML and flags). [`agent`] wires the parts together
//! and runs beside them: jobs, reload, the HTTP server, systemd, dry-run and logging.
//! [`http_listener`] is the HTTP listener (limits, timeouts, TLS) that the agent's pages and
//! the push sources (`loki_push_api`, `heroku_drain`) both serve through.
//! [`pipeline_cases`] runs pipeline test cases (`tailward test`) beside the agent, not inside it.

pub mod agent;
pub mod client;
pub mod config;
pub mod delivery;
pub mod http_listener;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod pipeline_cases;
pub mod sources;
