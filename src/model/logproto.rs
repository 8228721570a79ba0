//! Loki's push messages (`pkg/push/push.proto`, package `logproto`), declared by hand with
//! prost derive so no protoc runs at build time.
//!
//! Owns the wire schema only. The client writes this format directly from its batches (see
//! `client::encode`), so these types serve decoding: the push API source (`sources::push`),
//! tests and test receivers read pushes with them.
//! Field numbers must stay exactly as in push.proto; beside them only the encoded sizes that
//! batching needs before anything is encoded ([`label_pair_len`]).

use prost::encoding::{encoded_len_varint, key_len};

/// `logproto.PushRequest`: the body of `POST /loki/api/v1/push` (snappy block-compressed).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`: one stream, its labels in the `{a="1", b="2"}` form.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Set by Loki internally; clients leave it zero.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`: one structured-metadata pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Field numbers the encoder writes, kept beside the declarations above so both change together.
pub(crate) mod tags {
    pub const PUSH_REQUEST_STREAMS: u32 = 1;
    pub const STREAM_LABELS: u32 = 1;
    pub const STREAM_ENTRIES: u32 = 2;
    pub const ENTRY_TIMESTAMP: u32 = 1;
    pub const ENTRY_LINE: u32 = 2;
    pub const ENTRY_STRUCTURED_METADATA: u32 = 3;
    pub const LABEL_PAIR_NAME: u32 = 1;
    pub const LABEL_PAIR_VALUE: u32 = 2;
    pub const TIMESTAMP_SECONDS: u32 = 1;
    pub const TIMESTAMP_NANOS: u32 = 2;
}

/// The protobuf-encoded length of a `LabelPairAdapter`; Promtail sizes structured metadata
/// in batches by this (gogo's `LabelAdapter.Size()`).
pub(crate) fn label_pair_len(name: &str, value: &str) -> usize {
    string_field_len(tags::LABEL_PAIR_NAME, name.len())
        + string_field_len(tags::LABEL_PAIR_VALUE, value.len())
}

/// proto3 leaves empty strings out.
pub(crate) fn string_field_len(tag: u32, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(len as u64) + len
    }
}
