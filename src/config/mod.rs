//! Broker configuration as plain data: listeners, shard placement and limits, with
//! defaults, validation, and parsing of CPU lists such as `0-7,16-23`; the TOML file
//! form in [`file`], host inspection in [`doctor`].
//!
//! Only this module and the binary read the environment; everything else takes a
//! `Config` value, so any part of the broker can be started from a test.

pub mod doctor;
pub mod file;
pub mod units;

use std::net::SocketAddr;
use std::time::Duration;

pub use file::{ConfigFile, FileError};

/// The most shards one broker runs; shard sets are 128-bit masks.
pub const MAX_SHARDS: usize = 128;

/// Why a configuration is unusable. Each variant names the setting at fault by its
/// key in the configuration file (`runtime.cores`, `limits.max_inflight`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("runtime.cores: '{0}' is not a CPU list (expected e.g. \"0-3,8\" or \"all\")")]
    BadCpuList(String),
    #[error(
        "runtime.cores: CPU {0} does not exist or is not in this process's affinity mask (allowed: {1})"
    )]
    CpuNotAllowed(usize, String),
    #[error("runtime.cores: CPU {0} is listed twice")]
    DuplicateCpu(usize),
    #[error("runtime.cores: at least one core is needed")]
    NoCores,
    #[error("runtime.cores: at most {MAX_SHARDS} shards are supported, {0} were asked for")]
    TooManyShards(usize),
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

impl ConfigError {
    /// The configuration file key at fault, e.g. `runtime.cores` or
    /// `listener[1].backlog`.
    pub fn key(&self) -> &str {
        match self {
            ConfigError::Invalid { key, .. } => key,
            _ => "runtime.cores",
        }
    }

    /// What is wrong, without the key.
    pub fn problem(&self) -> String {
        let text = self.to_string();
        let prefix = format!("{}: ", self.key());
        text.strip_prefix(&prefix).unwrap_or(&text).to_string()
    }

    fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// How a shard picks among its own members of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedStrategy {
    /// Members in turn.
    #[default]
    RoundRobin,
    /// The member with the fewest messages queued and in flight (ties in turn).
    LeastLoaded,
}

/// Limits that protect the broker from clients and bound its memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest packet accepted from a client (bytes, fixed header included).
    pub max_packet_size: u32,
    /// Unacknowledged QoS 1/2 messages in flight to one client (further bounded by a
    /// v5 client's Receive Maximum).
    pub max_inflight: u16,
    /// Unacknowledged QoS 2 messages a client may have in flight to the broker; the
    /// Receive Maximum announced to v5 clients.
    pub receive_maximum: u16,
    /// Messages waiting to be sent to one client (online or offline).
    pub max_queued_messages: usize,
    /// Payload bytes waiting to be sent to one client.
    pub max_queued_bytes: usize,
    /// Time a new connection has to send CONNECT.
    pub connect_timeout: Duration,
    /// Upper bound for keep alive; v5 clients asking for more are told the server's.
    pub max_keepalive: u16,
    /// Upper bound on a session's expiry interval, in seconds (`u32::MAX`: never).
    pub max_session_expiry: u32,
    /// Concurrent client connections per shard.
    pub max_connections_per_shard: usize,
    /// Topic aliases a v5 client may set on one connection (0: none).
    pub topic_alias_maximum: u16,
    /// Topic aliases the broker may set toward one client, further bounded by the
    /// client's Topic Alias Maximum (used by `alias_policy`).
    pub outgoing_topic_aliases: u16,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_packet_size: 1024 * 1024,
            max_inflight: 32,
            receive_maximum: 64,
            max_queued_messages: 1000,
            max_queued_bytes: 4 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_keepalive: u16::MAX,
            max_session_expiry: u32::MAX,
            max_connections_per_shard: 1_000_000,
            topic_alias_maximum: 64,
            outgoing_topic_aliases: 64,
        }
    }
}

/// One MQTT listening address. Every shard accepts on its own SO_REUSEPORT socket
/// bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    /// Listen backlog per shard socket.
    pub backlog: u32,
}

impl Listener {
    pub fn new(address: SocketAddr) -> Listener {
        Listener {
            address,
            backlog: 1024,
        }
    }
}

/// Which topics the broker replaces by a Topic Alias when it sends to a v5 client
/// that allows aliases (Topic Alias Maximum in its CONNECT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AliasPolicy {
    /// Never: every PUBLISH carries its topic name.
    #[default]
    Off,
    /// The first topics sent get aliases until the client's (or our) maximum is
    /// reached; later topics are sent in full.
    Fill,
    /// Like `Fill`, but when the table is full the least recently used alias is
    /// reassigned to the new topic.
    Lru,
}

/// Where Prometheus metrics are served.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metrics {
    /// Address of the HTTP endpoint serving `/metrics` (None: not served).
    pub listen: Option<SocketAddr>,
}

/// Everything the broker needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// MQTT over TCP listeners (at least one).
    pub listeners: Vec<Listener>,
    /// CPU ids that run one shard each, in shard order.
    pub cores: Vec<usize>,
    /// Locked io_uring buffer memory per shard (bytes).
    pub io_memory: usize,
    /// io_uring submission queue depth per shard.
    pub ring_depth: usize,
    /// How long a connection stays idle before it is parked (zero: never).
    pub park_after: Duration,
    /// Let the kernel back the heap with transparent huge pages.
    pub transparent_huge_pages: bool,
    /// Sent as Response Information to v5 clients that request it, followed by the
    /// client id: the base of the client's response topics (empty: never sent).
    pub response_information: String,
    /// How a shard picks among its members of a shared subscription group.
    pub shared_strategy: SharedStrategy,
    /// Topic aliases the broker sets on messages it sends to v5 clients.
    pub alias_policy: AliasPolicy,
    pub limits: Limits,
    pub metrics: Metrics,
    /// How often `$SYS/broker/...` topics are published (zero: never).
    pub sys_interval: Duration,
    /// Longest a graceful stop may take: DISCONNECT sent and queues flushed.
    pub shutdown_timeout: Duration,
    /// Log filter, `tracing` env-filter syntax (e.g. `info`, `ringmq=debug`).
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listeners: vec![Listener::new(SocketAddr::from(([0, 0, 0, 0], 1883)))],
            cores: allowed_cpus(),
            io_memory: 1024 * 1024,
            ring_depth: 128,
            park_after: Duration::from_secs(10),
            transparent_huge_pages: false,
            response_information: "response/".to_string(),
            shared_strategy: SharedStrategy::default(),
            alias_policy: AliasPolicy::default(),
            limits: Limits::default(),
            metrics: Metrics::default(),
            sys_interval: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            log_level: "info".to_string(),
        }
    }
}

impl Config {
    /// Checks the configuration against itself and against this host.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cores.is_empty() {
            return Err(ConfigError::NoCores);
        }
        if self.cores.len() > MAX_SHARDS {
            return Err(ConfigError::TooManyShards(self.cores.len()));
        }
        let allowed = allowed_cpus();
        for (i, cpu) in self.cores.iter().enumerate() {
            if self.cores[..i].contains(cpu) {
                return Err(ConfigError::DuplicateCpu(*cpu));
            }
            if !allowed.contains(cpu) {
                return Err(ConfigError::CpuNotAllowed(*cpu, format_cpu_list(&allowed)));
            }
        }
        if self.listeners.is_empty() {
            return Err(ConfigError::invalid(
                "listener",
                "at least one [[listener]] is needed",
            ));
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if l.backlog == 0 {
                return Err(ConfigError::invalid(
                    format!("listener[{i}].backlog"),
                    "must be at least 1",
                ));
            }
            if let Some(j) = self.listeners[..i]
                .iter()
                .position(|o| o.address == l.address && l.address.port() != 0)
            {
                return Err(ConfigError::invalid(
                    format!("listener[{i}].address"),
                    format!("{} is already listener[{j}]", l.address),
                ));
            }
        }
        let invalid = |key: &str, problem: &str| Err(ConfigError::invalid(key, problem));
        if self.io_memory < 64 * 1024 {
            return invalid("runtime.io_memory", "must be at least 64KiB");
        }
        if !(16..=32768).contains(&self.ring_depth) {
            return invalid("runtime.ring_depth", "must be between 16 and 32768");
        }
        let l = &self.limits;
        if l.max_packet_size < 64 {
            return invalid("limits.max_packet_size", "must be at least 64 bytes");
        }
        if l.max_packet_size > MAX_PACKET_SIZE {
            return invalid(
                "limits.max_packet_size",
                "must be at most 268435460 bytes (256MiB + 4, the MQTT limit)",
            );
        }
        if l.max_inflight == 0 {
            return invalid("limits.max_inflight", "must be at least 1");
        }
        if l.receive_maximum == 0 {
            return invalid("limits.receive_maximum", "must be at least 1");
        }
        if l.max_queued_messages == 0 {
            return invalid("limits.max_queued_messages", "must be at least 1");
        }
        if l.max_connections_per_shard == 0 {
            return invalid("limits.max_connections_per_shard", "must be at least 1");
        }
        if l.max_keepalive == 0 {
            return invalid(
                "limits.max_keepalive",
                "must be at least 1s (65535s, the MQTT maximum, sets no bound)",
            );
        }
        if l.connect_timeout.is_zero() {
            return invalid("limits.connect_timeout", "must be more than 0s");
        }
        if self.shutdown_timeout.is_zero() {
            return invalid("shutdown.timeout", "must be more than 0s");
        }
        check_log_filter(&self.log_level)
            .map_err(|problem| ConfigError::invalid("log.level", problem))
    }

    /// Connections the configuration allows in total (every shard at its limit).
    pub fn max_connections(&self) -> usize {
        self.limits
            .max_connections_per_shard
            .saturating_mul(self.cores.len())
    }
}

/// The largest packet MQTT can express: the largest remaining length (256 MiB - 1)
/// plus a 5-byte fixed header.
pub const MAX_PACKET_SIZE: u32 = 268_435_460;

/// Checks a log filter: a level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or
/// `tracing` env-filter directives such as `warn,ringmq=debug`. A lone word that is
/// not a level is refused: env-filter would read it as a target name and silently
/// log nothing of ringmq.
fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let hint = "use a level (trace, debug, info, warn, error, off) or directives such as \"warn,ringmq=debug\"";
    let word = filter.trim();
    if !word.contains(['=', ',', '[', ':']) && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word))
    {
        return Err(format!("'{filter}' is not a log level; {hint}"));
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(|_| ())
        .map_err(|e| format!("'{filter}' is not a log filter ({e}); {hint}"))
}

/// Parses a CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, ConfigError> {
    let bad = || ConfigError::BadCpuList(s.to_string());
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() {
        return Err(bad());
    }
    Ok(cpus)
}

/// Formats CPU ids compactly (`0-3,8`).
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        if sorted[i] == start {
            out.push(start.to_string());
        } else {
            out.push(format!("{start}-{}", sorted[i]));
        }
        i += 1;
    }
    out.join(",")
}

/// CPUs this process may run on (its affinity mask).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bit array that sched_getaffinity fills; we pass its
    // exact size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8").unwrap(), vec![0, 1, 2, 3, 8]);
        assert_eq!(parse_cpu_list(" 1 ").unwrap(), vec![1]);
        for bad in ["", "a", "3-1", "1-", "-", "1,,x"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_cpu_list(&[8, 0, 1, 2, 3, 10]), "0-3,8,10");
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = Config::default();
        c.limits.max_inflight = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("limits.max_inflight:"));
        let mut c = Config {
            cores: vec![100_000],
            ..Config::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::CpuNotAllowed(100_000, _))
        ));
        c.cores = vec![];
        assert_eq!(c.validate(), Err(ConfigError::NoCores));
        assert_eq!(Config::default().validate(), Ok(()));
    }
}
