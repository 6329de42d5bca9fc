//! # ringmq-loadgen
//!
//! The load generator bundled with ringmq: MQTT publishers, subscribers and idle
//! connections on thread-per-core glommio executors, with exact subscriber-side
//! accounting (lost, duplicated, reordered messages) and latency histograms.
//!
//! # Layout
//!
//! - [`scenario`]: scenarios as data (TOML or flags), validation, `--scale`, and the
//!   [`scenario::Plan`] of every client and who must hear from whom.
//! - [`runner`]: one run, coordinated from the calling thread: workers, timeline,
//!   per-second sampling, drain, and the merge into a [`report::Report`].
//! - [`worker`]: one pinned executor and the connections it owns.
//! - [`client`]: one connection: socket, handshakes, and the read/decode/account/
//!   write loop. The hot path.
//! - [`accounting`]: per-publisher sequence tracking and shared-group bitmaps.
//! - [`payload`]: the 20-byte header every message carries.
//! - [`shared`]: what threads share (timeline, counters, failures) and the
//!   executor-local signal and latency recorder.
//! - [`procstat`]: CPU time and resident memory from /proc.
//! - [`report`]: the report, its verdict, the summary table, JSON, HTML and SVG.
//! - [`compare`]: runs scenario sets against several brokers started one by one.
//! - [`cli`]: the command line; `src/main.rs` only calls it.

pub mod accounting;
pub mod cli;
pub mod client;
pub mod clock;
pub mod compare;
pub mod payload;
pub mod procstat;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod shared;
pub mod worker;

pub use report::Report;
pub use runner::{run, RunError, RunOptions};
pub use scenario::{Kind, Plan, Scenario};
