//! Where lines come from: log files ([`files`], their targets also from
//! `file_sd_configs` and [`kubernetes`] discovery), the systemd journal ([`journal`]), syslog senders ([`syslog`]), GELF
//! senders ([`gelf`]), HTTP pushes from Loki clients and Heroku drains ([`push`]), Docker
//! containers ([`docker`]) and standard input ([`stdin`]).
//!
//! The source contract: a source sends [`LineBatch`](crate::model::entry::LineBatch)es, each
//! line stamped with an [`AckToken`](crate::model::ack::AckToken), into its job's pipeline
//! channel, waiting while the channel is full (that is back-pressure, not an error). Before
//! handing a batch on it issues the batch's lines to [`crate::delivery`], and learns what was
//! delivered only from there: when it reopens, it starts where delivery says. That is one
//! handle per source: a job's sources share a
//! [`PositionsView`](crate::delivery::positions::PositionsView) to look up where to start,
//! and each source they open gets its own [`FilePosition`](crate::delivery::positions::FilePosition),
//! [`CursorPosition`](crate::delivery::positions::CursorPosition) or (a push source, which
//! answers its senders once their entries are settled)
//! [`ReceiptPosition`](crate::delivery::positions::ReceiptPosition). Labels come
//! from the scrape config through [`relabel`]. [`targets_view`] is what the HTTP pages show
//! of the targets. A source must not know stages or Loki.

pub mod docker;
pub mod files;
pub mod gelf;
pub mod journal;
pub mod kubernetes;
pub mod push;
pub mod relabel;
pub mod stdin;
pub mod syslog;
pub mod targets_view;
