//! Loki's push messages (`pkg/push/push.proto`, package `logproto`), declared by hand with
//! prost derive so no protoc runs at build time.
//!
//! Owns the wire schema only. The client writes this format directly from its batches (see
//! `encode`), so these types serve decoding: tests and test receivers read pushes with them.
//! Field numbers must stay exactly as in push.proto; nothing else belongs here.

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
