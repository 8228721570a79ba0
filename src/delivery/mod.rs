//! Delivery bookkeeping: how far each source has been delivered, so a restart resumes where
//! Loki's acknowledgements stopped and nothing acknowledged is read again.
//!
//! Owns the positions store ([`positions`], Promtail's `positions.yaml`), the ordered
//! finalizer of each source (`finalizer`: a position moves only past lines every client has
//! settled) and the identity that ties a saved position to a file across renames
//! ([`file_identity`]). It receives acknowledgements through [`crate::model::ack`]'s channel
//! and hands nothing downstream. It must not read log lines, run pipelines or speak HTTP.
//!
//! Sources reach it one way only: a [`PositionsView`](positions::PositionsView) to look up
//! where to start, and one handle per opened source
//! ([`FilePosition`](positions::FilePosition), [`CursorPosition`](positions::CursorPosition),
//! or for a push source, which saves nothing, [`ReceiptPosition`](positions::ReceiptPosition):
//! how far its entries are settled, so a request is answered once they are) to issue
//! batches, report renames and close. The agent holds the store itself
//! ([`Positions`](positions::Positions)); the finalizer and the store's state are private.

pub mod file_identity;
mod finalizer;
pub mod positions;
