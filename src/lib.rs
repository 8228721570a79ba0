//! tailward: a host log agent that reads Promtail's configuration, tails log files, runs
//! Promtail-compatible pipelines and pushes to Grafana Loki.
//!
//! The flow runs one way: [`discovery`] finds files, [`tail`] reads their lines (woken by
//! [`watch`], within the open-file bound of [`open_files`]), [`pipeline`]
//! turns lines into entries, [`client`] batches and pushes them. The only way back is
//! [`ack`]: clients settle acknowledgements, and [`positions`] records how far each file has
//! been delivered. [`agent`] wires the parts together; [`config`] and [`cli`] read what the
//! user asked for; [`server`] and [`metrics`] show what is happening; [`systemd`] tells the
//! service manager. [`jobs`] runs one pipeline per scrape config (fed by files or by the
//! [`journal`]); [`reload`] decides what a new config changes. [`pipeline_cases`] runs
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
pub mod jobs;
pub mod journal;
pub mod labels;
pub mod logging;
pub mod metrics;
pub mod open_files;
pub mod pipeline;
pub mod pipeline_cases;
pub mod positions;
pub mod reload;
pub mod server;
pub mod systemd;
pub mod tail;
pub mod targets_view;
pub mod watch;
