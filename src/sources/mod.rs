//! Where lines come from: log files ([`files`]), the systemd journal ([`journal`]) and
//! standard input ([`stdin`]).
//!
//! The source contract: a source sends [`LineBatch`](crate::model::entry::LineBatch)es, each
//! line stamped with an [`AckToken`](crate::model::ack::AckToken), into its job's pipeline
//! channel, waiting while the channel is full (that is back-pressure, not an error). Before
//! handing a batch on it issues the batch's lines to [`crate::delivery`], and learns what was
//! delivered only from there: when it reopens, it starts where delivery says. Labels come
//! from the scrape config through [`relabel`]. [`targets_view`] is what the HTTP pages show
//! of the targets. A source must not know stages or Loki.

pub mod files;
pub mod journal;
pub mod relabel;
pub mod stdin;
pub mod targets_view;
