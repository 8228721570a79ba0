//! Shared helpers for end-to-end tests; each test binary uses only part of them.
#![allow(dead_code)]

pub mod agent_process;
pub mod numbered_lines;
pub mod receiver;
pub mod stdin_dry_run;
pub mod unprivileged_agent;
