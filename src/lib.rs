//! # ringmq
//!
//! A sharded, thread-per-core MQTT 3.1 / 3.1.1 / 5.0 broker.
//!
//! # Layout
//!
//! - [`protocol`]: the pure MQTT codec. Every packet of every version, decoded
//!   zero-copy from a `BytesMut` and encoded into one; properties, reason codes,
//!   topic validation. Imports `bytes` and `thiserror`, nothing of ours.
//! - `src/bin/ringmq.rs`: the command line.
//!
//! Tests in `tests/` are black-box; benches in `benches/` put each figure beside a
//! baseline; the decoder's fuzz target lives in `fuzz/`, outside the workspace.

pub mod protocol;
