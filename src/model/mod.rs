//! The vocabulary every part of the flow shares: the lines a source hands on and the entries
//! a pipeline makes of them ([`entry`]), their label sets ([`labels`]), the acknowledgement
//! token each line carries and the channel that brings tokens back ([`ack`]), the wall clock
//! as entries see it ([`clock`]), the units config values are written in ([`units`]), and
//! Loki's push wire messages ([`logproto`]: the client writes them, the push API source reads them).
//!
//! Everything else sits above this module; it must not import any other part of the crate,
//! and holds shapes and their small invariants only, no behaviour of a source, stage or client.

pub mod ack;
pub mod clock;
pub mod entry;
pub mod labels;
pub mod logproto;
pub mod units;
