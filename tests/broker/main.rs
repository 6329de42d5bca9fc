//! Black-box tests of the broker: a real broker with two shards on 127.0.0.1:0,
//! real sockets, clients placed on chosen shards by their client ids so that both
//! same-shard and cross-shard paths run. One test binary, one module per area.

mod alias;
mod auth;
mod common;
mod connect;
mod ops;
mod park;
mod properties;
mod pubsub;
mod retained;
mod session;
mod shared;
mod will;
