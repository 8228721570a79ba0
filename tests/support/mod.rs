//! Shared helpers for the end-to-end tests.

pub mod agent_process;
pub mod mmdb_writer;
pub mod numbered_lines;
pub mod receiver;
pub mod stdin_dry_run;
pub mod unprivileged_agent;
