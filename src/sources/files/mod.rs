//! Log files: [`discovery`] expands each job's `__path__` globs into targets and starts one
//! tailer per file, its targets from static configs or [`file_sd`] target files; [`tailer`]
//! reads complete lines from where delivery stopped, through rotation, truncation and
//! deletion; [`watch`] wakes tailers on inotify events;
//! [`open_files`] bounds how many files are held open at once.
//!
//! It must not know stages or Loki: what a tailer reads goes to the job's pipeline channel,
//! what was delivered comes back through [`crate::delivery`].

pub mod discovery;
pub mod file_sd;
pub mod open_files;
pub mod tailer;
pub mod watch;
