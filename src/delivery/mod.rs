//! Delivery bookkeeping: how far each source has been delivered, so a restart resumes where
//! Loki's acknowledgements stopped and nothing acknowledged is read again.
//!
//! Owns the positions store ([`positions`], Promtail's `positions.yaml`), the ordered
//! finalizer of each source ([`finalizer`]: a position moves only past lines every client has
//! settled) and the identity that ties a saved position to a file across renames
//! ([`file_identity`]). It receives acknowledgements through [`crate::model::ack`]'s channel
//! and hands nothing downstream. It must not read log lines, run pipelines or speak HTTP.

pub mod file_identity;
pub mod finalizer;
pub mod positions;
