//! tailward: a host log agent that reads Promtail's configuration, tails log files, runs
//! Promtail-compatible pipelines and pushes to Grafana Loki.
//!
//! The flow runs one way: [`discovery`] finds files, [`tail`] reads their lines, [`pipeline`]
//! turns lines into entries, [`client`] batches and pushes them. The only way back is
//! [`ack`]: clients settle acknowledgements, and [`positions`] records how far each file has
//! been delivered. [`agent`] wires the parts together; [`config`] and [`cli`] read what the
//! user asked for; [`server`] and [`metrics`] show what is happening. [`pipeline_cases`] runs
//! pipeline test cases (`tailward test`) beside the agent, not inside it.

pub mod ack;
pub mod agent;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod discovery;
pub mod dry_run;
pub mod entry;
pub mod file_identity;
pub mod finalizer;
pub mod labels;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod pipeline_cases;
pub mod positions;
pub mod server;
pub mod tail;
