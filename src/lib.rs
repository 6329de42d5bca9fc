//! # ringmq
//!
//! A sharded, thread-per-core MQTT 3.1 / 3.1.1 / 5.0 broker.
//!
//! # Layout
//!
//! - [`protocol`]: the pure MQTT codec. Every packet of every version, decoded
//!   zero-copy from a `BytesMut` and encoded into one; properties, reason codes,
//!   topic validation. Imports `bytes` and `thiserror`, nothing of ours.
//! - [`router`]: the subscription trie, mapping topic filters to opaque subscriber
//!   ids and matching topic names against them (spec 4.7). Knows nothing of sessions.
//! - [`router::retained`]: the retained message store (one replica per shard).
//! - [`message`]: a routed message, shared by every subscriber and shard it reaches.
//! - [`session`]: per-client session state, sans I/O: queue, inflight window,
//!   QoS 2 bookkeeping. Takes packets and time, writes what to send.
//! - [`shard`]: the executors, one per core; shard state, the cross-shard mesh,
//!   client-id ownership and the timer wheel. [`shard::Broker`] starts it all.
//! - `transport`: listeners, accept, the CONNECT phase and hand-off, and `conn`,
//!   the one place where a socket meets the codec.
//! - [`metrics`]: per-shard counters written without locks, their totals, the
//!   Prometheus endpoint; `shard::sys` publishes them under `$SYS/broker/`.
//! - [`config`]: configuration as plain data, with validation; the TOML file
//!   (`config::file`), sizes and durations (`config::units`) and the host checks
//!   of `ringmq doctor` (`config::doctor`).
//! - [`auth`]: the hooks a broker is started with beside its config: the
//!   enhanced-authentication [`auth::Authenticator`] trait.
//! - `src/bin/ringmq.rs`: the command line.
//!
//! Tests in `tests/` are black-box; benches in `benches/` put each figure beside a
//! baseline; the decoder's fuzz target lives in `fuzz/`, outside the workspace.

pub mod alloc;
pub mod auth;
pub mod config;
pub mod message;
pub mod metrics;
pub mod protocol;
pub mod router;
pub mod session;
pub mod shard;
mod transport;

pub use auth::Hooks;
pub use config::Config;
pub use shard::Broker;
