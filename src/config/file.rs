//! The configuration file: TOML with `[[listener]]`, `[runtime]`, `[limits]`,
//! `[mqtt]`, `[log]`, `[metrics]`, `[sys]` and `[shutdown]` sections, parsed into a
//! [`Config`] and printed back from one. Every error names the file, the line, the
//! key and what is wrong with it; unknown keys are errors.
//!
//! Sizes are bytes or strings with a unit (`"4MiB"`), durations strings with a unit
//! (`"10s"`), counts plain integers. A key left out takes its default
//! ([`Config::default`]); `tuning/ringmq.toml` documents every key.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::units::{format_duration, format_size, parse_duration, parse_size};
use super::{
    allowed_cpus, format_cpu_list, parse_cpu_list, AliasPolicy, Config, ConfigError, Limits,
    Listener, Metrics, SharedStrategy,
};

/// A configuration file that could not be used: where, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line and column of the offending key or value, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key at fault (`limits.max_inflight`, `listener[0].address`), when known.
    pub key: Option<String>,
    pub problem: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// The text of a configuration file, kept so that errors found after parsing (by
/// [`Config::validate`], once command-line overrides are applied) can still be
/// pointed at a line.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    name: String,
    source: String,
}

impl ConfigFile {
    /// Reads a configuration file.
    pub fn read(path: &Path) -> Result<ConfigFile, FileError> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(source) => Ok(ConfigFile { name, source }),
            Err(e) => Err(FileError {
                file: name,
                line: None,
                column: None,
                key: None,
                problem: format!("cannot read the file: {e}"),
            }),
        }
    }

    /// A configuration given as text; `name` is what errors call it.
    pub fn from_source(name: impl Into<String>, source: impl Into<String>) -> ConfigFile {
        ConfigFile {
            name: name.into(),
            source: source.into(),
        }
    }

    /// The name errors use for this file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parses the file: syntax, types, units and unknown keys. Host-dependent and
    /// cross-field checks are left to [`Config::validate`], so that command-line
    /// overrides can be applied first; see [`ConfigFile::load`].
    pub fn parse(&self) -> Result<Config, FileError> {
        let de = toml::Deserializer::new(&self.source);
        let raw: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let (line, column) = match inner.span() {
                Some(span) => line_col(&self.source, span),
                None => (None, None),
            };
            FileError {
                file: self.name.clone(),
                line,
                column,
                key: (path != ".").then_some(path),
                problem: plain_message(inner.message()),
            }
        })?;
        raw.into_config().map_err(|e| self.locate(&e))
    }

    /// Parses and validates the file as it stands.
    pub fn load(&self) -> Result<Config, FileError> {
        let config = self.parse()?;
        config.validate().map_err(|e| self.locate(&e))?;
        Ok(config)
    }

    /// Turns a validation error into one that points at the key's line in this file
    /// (or at its section, when the key was left to its default).
    pub fn locate(&self, e: &ConfigError) -> FileError {
        let (line, column) = match find_key(&self.source, e.key()) {
            Some(span) => line_col(&self.source, span),
            None => (None, None),
        };
        FileError {
            file: self.name.clone(),
            line,
            column,
            key: Some(e.key().to_string()),
            problem: e.problem(),
        }
    }
}

/// Prints a configuration as a complete TOML file: every key, in the file's units,
/// ready to be diffed against another or used as it is.
pub fn to_toml(config: &Config) -> String {
    toml::to_string(&FileConfig::from(config)).expect("every configuration value has a TOML form")
}

/// 1-based line and column of the start of `span`.
fn line_col(source: &str, span: Range<usize>) -> (Option<usize>, Option<usize>) {
    let start = span.start.min(source.len());
    let before = &source[..start];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (Some(line), Some(column))
}

/// The span of `key` (`limits.max_inflight`, `listener[1].address`) in `source`,
/// or of the nearest enclosing table that is there.
fn find_key(source: &str, key: &str) -> Option<Range<usize>> {
    let doc = toml_edit::ImDocument::parse(source).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut found = None;
    for segment in key.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some((k, item)) = table.get_key_value(name) else {
            break;
        };
        found = k.span().or_else(|| item.span()).or(found);
        let next: Option<&dyn toml_edit::TableLike> = match (item, index) {
            (toml_edit::Item::ArrayOfTables(array), Some(i)) => match array.get(i) {
                Some(t) => {
                    found = t.span().or(found);
                    Some(t)
                }
                None => None,
            },
            (item, _) => item.as_table_like(),
        };
        match next {
            Some(t) => table = t,
            None => break,
        }
    }
    found
}

/// serde's messages, in this file's words: keys rather than fields, tables rather
/// than structs, on one line.
fn plain_message(message: &str) -> String {
    let mut out = message
        .trim()
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
        .replace('\n', "; ");
    for (rust, words) in [
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected u32", "expected an integer from 0 to 4294967295"),
        ("expected usize", "expected an integer of 0 or more"),
        ("unknown variant", "unknown value"),
        (
            "expected a sequence",
            "expected an array (write each listener as a [[listener]] table)",
        ),
    ] {
        out = out.replace(rust, words);
    }
    for name in [
        "FileConfig",
        "FileListener",
        "Runtime",
        "FileLimits",
        "Mqtt",
        "Log",
        "FileMetrics",
        "Sys",
        "Shutdown",
    ] {
        out = out.replace(&format!("struct {name}"), "a table");
    }
    out
}

/// The file as written: sections of optional keys.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    listener: Vec<FileListener>,
    runtime: Runtime,
    limits: FileLimits,
    mqtt: Mqtt,
    log: Log,
    metrics: FileMetrics,
    sys: Sys,
    shutdown: Shutdown,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListener {
    #[serde(deserialize_with = "socket_addr")]
    address: SocketAddr,
    #[serde(default = "default_backlog")]
    backlog: u32,
}

fn default_backlog() -> u32 {
    Listener::new(SocketAddr::from(([0, 0, 0, 0], 0))).backlog
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Runtime {
    cores: Cores,
    io_memory: Size,
    ring_depth: usize,
    park_after: Dur,
    transparent_huge_pages: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileLimits {
    max_connections_per_shard: usize,
    max_packet_size: Size,
    max_inflight: u16,
    receive_maximum: u16,
    max_queued_messages: usize,
    max_queued_bytes: Size,
    max_keepalive: Dur,
    connect_timeout: Dur,
    topic_alias_maximum: u16,
    outgoing_topic_aliases: u16,
    max_session_expiry: Expiry,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Mqtt {
    response_information: String,
    shared_strategy: SharedStrategy,
    alias_policy: AliasPolicy,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Log {
    level: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileMetrics {
    listen: MetricsListen,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Sys {
    interval: Dur,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Shutdown {
    timeout: Dur,
}

impl Default for FileConfig {
    fn default() -> FileConfig {
        let mut raw = FileConfig::from(&Config::default());
        raw.runtime.cores = Cores::All;
        raw
    }
}

macro_rules! section_default {
    ($($ty:ident => $field:ident),*) => {$(
        impl Default for $ty {
            fn default() -> $ty {
                FileConfig::default().$field
            }
        }
    )*};
}
section_default!(Runtime => runtime, FileLimits => limits, Mqtt => mqtt, Log => log,
    FileMetrics => metrics, Sys => sys, Shutdown => shutdown);

impl From<&Config> for FileConfig {
    fn from(c: &Config) -> FileConfig {
        let l = &c.limits;
        FileConfig {
            listener: c
                .listeners
                .iter()
                .map(|l| FileListener {
                    address: l.address,
                    backlog: l.backlog,
                })
                .collect(),
            runtime: Runtime {
                cores: Cores::List(c.cores.clone()),
                io_memory: Size(c.io_memory as u64),
                ring_depth: c.ring_depth,
                park_after: Dur(c.park_after),
                transparent_huge_pages: c.transparent_huge_pages,
            },
            limits: FileLimits {
                max_connections_per_shard: l.max_connections_per_shard,
                max_packet_size: Size(l.max_packet_size.into()),
                max_inflight: l.max_inflight,
                receive_maximum: l.receive_maximum,
                max_queued_messages: l.max_queued_messages,
                max_queued_bytes: Size(l.max_queued_bytes as u64),
                max_keepalive: Dur(Duration::from_secs(l.max_keepalive.into())),
                connect_timeout: Dur(l.connect_timeout),
                topic_alias_maximum: l.topic_alias_maximum,
                outgoing_topic_aliases: l.outgoing_topic_aliases,
                max_session_expiry: if l.max_session_expiry == u32::MAX {
                    Expiry::Never
                } else {
                    Expiry::After(Duration::from_secs(l.max_session_expiry.into()))
                },
            },
            mqtt: Mqtt {
                response_information: c.response_information.clone(),
                shared_strategy: c.shared_strategy,
                alias_policy: c.alias_policy,
            },
            log: Log {
                level: c.log_level.clone(),
            },
            metrics: FileMetrics {
                listen: MetricsListen(c.metrics.listen),
            },
            sys: Sys {
                interval: Dur(c.sys_interval),
            },
            shutdown: Shutdown {
                timeout: Dur(c.shutdown_timeout),
            },
        }
    }
}

impl FileConfig {
    /// Converts units to the broker's types; range errors name the key.
    fn into_config(self) -> Result<Config, ConfigError> {
        let l = self.limits;
        let whole_secs = |key: &str, d: Duration, max: u64| -> Result<u64, ConfigError> {
            if d.subsec_nanos() != 0 {
                return Err(ConfigError::invalid(
                    key,
                    format!("{} is not a whole number of seconds", format_duration(d)),
                ));
            }
            if d.as_secs() > max {
                return Err(ConfigError::invalid(
                    key,
                    format!("{} is more than the maximum, {max}s", format_duration(d)),
                ));
            }
            Ok(d.as_secs())
        };
        let usize_bytes = |key: &str, size: Size| {
            usize::try_from(size.0).map_err(|_| ConfigError::invalid(key, "is too large"))
        };
        let limits = Limits {
            max_packet_size: u32::try_from(l.max_packet_size.0).unwrap_or(u32::MAX),
            max_inflight: l.max_inflight,
            receive_maximum: l.receive_maximum,
            max_queued_messages: l.max_queued_messages,
            max_queued_bytes: usize_bytes("limits.max_queued_bytes", l.max_queued_bytes)?,
            connect_timeout: l.connect_timeout.0,
            max_keepalive: whole_secs("limits.max_keepalive", l.max_keepalive.0, u16::MAX.into())?
                as u16,
            max_session_expiry: match l.max_session_expiry {
                Expiry::Never => u32::MAX,
                Expiry::After(d) => {
                    whole_secs("limits.max_session_expiry", d, u64::from(u32::MAX) - 1)? as u32
                }
            },
            max_connections_per_shard: l.max_connections_per_shard,
            topic_alias_maximum: l.topic_alias_maximum,
            outgoing_topic_aliases: l.outgoing_topic_aliases,
        };
        Ok(Config {
            listeners: self
                .listener
                .into_iter()
                .map(|l| Listener {
                    address: l.address,
                    backlog: l.backlog,
                })
                .collect(),
            cores: match self.runtime.cores {
                Cores::All => allowed_cpus(),
                Cores::List(cpus) => cpus,
            },
            io_memory: usize_bytes("runtime.io_memory", self.runtime.io_memory)?,
            ring_depth: self.runtime.ring_depth,
            park_after: self.runtime.park_after.0,
            transparent_huge_pages: self.runtime.transparent_huge_pages,
            response_information: self.mqtt.response_information,
            shared_strategy: self.mqtt.shared_strategy,
            alias_policy: self.mqtt.alias_policy,
            limits,
            metrics: Metrics {
                listen: self.metrics.listen.0,
            },
            sys_interval: self.sys.interval.0,
            shutdown_timeout: self.shutdown.timeout.0,
            log_level: self.log.level,
        })
    }
}

/// `runtime.cores`: `"all"`, a CPU list string (`"0-7,16-23"`) or an array of CPU
/// ids (`[0, 1, 2]`), in shard order.
enum Cores {
    All,
    List(Vec<usize>),
}

impl Serialize for Cores {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cores::All => s.serialize_str("all"),
            // The compact form sorts, so it is used only when it keeps shard order.
            Cores::List(cpus) if cpus.windows(2).all(|w| w[0] < w[1]) => {
                s.serialize_str(&format_cpu_list(cpus))
            }
            Cores::List(cpus) => cpus.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Cores {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cores, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cores;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"all\", a CPU list such as \"0-7,16-23\", or an array of CPU ids")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cores, E> {
                if v.trim() == "all" {
                    return Ok(Cores::All);
                }
                parse_cpu_list(v).map(Cores::List).map_err(|_| {
                    E::custom(format!(
                        "'{v}' is not a CPU list (expected \"all\" or e.g. \"0-3,8\")"
                    ))
                })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Cores, A::Error> {
                let mut cpus = Vec::new();
                while let Some(cpu) = seq.next_element::<usize>()? {
                    cpus.push(cpu);
                }
                Ok(Cores::List(cpus))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes: an integer, or a string with a unit (`"4MiB"`).
struct Size(u64);

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(self.0))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size: bytes, or a string such as \"64KiB\" or \"4MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("{v} is negative; sizes are 0 or more")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration: a string with a unit (`"10s"`, `"250ms"`).
struct Dur(Duration);

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        d.deserialize_any(DurVisitor).map(Dur)
    }
}

struct DurVisitor;

impl Visitor<'_> for DurVisitor {
    type Value = Duration;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration with a unit, such as \"10s\" or \"250ms\"")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "{v} has no unit; write a duration as a string with one, e.g. \"{v}s\" or \"{v}ms\""
        )))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }
}

/// `limits.max_session_expiry`: `"never"` or a duration.
enum Expiry {
    Never,
    After(Duration),
}

impl Serialize for Expiry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Expiry::Never => s.serialize_str("never"),
            Expiry::After(d) => s.serialize_str(&format_duration(*d)),
        }
    }
}

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Expiry, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Expiry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"never\" or a duration such as \"1d\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Expiry, E> {
                DurVisitor.visit_i64(v).map(Expiry::After)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Expiry, E> {
                if v.trim() == "never" {
                    return Ok(Expiry::Never);
                }
                parse_duration(v).map(Expiry::After).map_err(|_| {
                    E::custom(format!(
                        "'{v}' is not \"never\" or a duration (e.g. \"1h\", \"7d\")"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `metrics.listen`: `"off"` or an address.
struct MetricsListen(Option<SocketAddr>);

impl Serialize for MetricsListen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_str("off"),
            Some(addr) => s.serialize_str(&addr.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for MetricsListen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MetricsListen, D::Error> {
        let v = String::deserialize(d)?;
        if v.trim() == "off" {
            return Ok(MetricsListen(None));
        }
        parse_addr(&v)
            .map(|a| MetricsListen(Some(a)))
            .map_err(|e| de::Error::custom(format!("{e}, or \"off\"")))
    }
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let v = String::deserialize(d)?;
    parse_addr(&v).map_err(de::Error::custom)
}

/// Parses `IP:port`; the message says what is expected.
pub fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    v.trim().parse().map_err(|_| {
        format!(
            "'{v}' is not an IP address and port (expected e.g. \"0.0.0.0:1883\" or \"[::]:1883\")"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Config, FileError> {
        ConfigFile::from_source("t.toml", src).parse()
    }

    fn load(src: &str) -> Result<Config, FileError> {
        ConfigFile::from_source("t.toml", src).load()
    }

    /// The error's file, line, key and a fragment of its problem.
    fn assert_error(e: FileError, line: usize, key: &str, problem: &str) {
        assert_eq!(e.file, "t.toml");
        assert_eq!(e.line, Some(line), "{e}");
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.problem.contains(problem), "{e}");
        let shown = e.to_string();
        assert!(shown.starts_with(&format!("t.toml:{line}:")), "{shown}");
        assert!(shown.contains(&format!(": {key}: ")), "{shown}");
    }

    #[test]
    fn the_documented_example_is_the_defaults() {
        let example = include_str!("../../tuning/ringmq.toml");
        assert_eq!(parse(example).unwrap(), Config::default());
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn profiles_parse() {
        for (name, src) in [
            (
                "small-host",
                include_str!("../../tuning/profiles/small-host.toml"),
            ),
            (
                "many-core",
                include_str!("../../tuning/profiles/many-core.toml"),
            ),
        ] {
            let c = parse(src).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_ne!(c, Config::default(), "{name} changes nothing");
        }
    }

    #[test]
    fn keys_left_out_keep_their_defaults() {
        let c = parse(
            "[limits]\nmax_inflight = 8\nmax_queued_bytes = \"64KiB\"\n\
             [runtime]\ncores = [1, 0]\nio_memory = 2097152\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\n\
             [mqtt]\nalias_policy = \"lru\"\nshared_strategy = \"least_loaded\"\n\
             [metrics]\nlisten = \"127.0.0.1:9100\"\n\
             [sys]\ninterval = \"1m30s\"\n",
        )
        .unwrap();
        let d = Config::default();
        assert_eq!(c.limits.max_inflight, 8);
        assert_eq!(c.limits.max_queued_bytes, 64 * 1024);
        assert_eq!(c.limits.receive_maximum, d.limits.receive_maximum);
        assert_eq!(c.cores, vec![1, 0]);
        assert_eq!(c.io_memory, 2 << 20);
        assert_eq!(c.ring_depth, d.ring_depth);
        assert_eq!(
            c.listeners,
            vec![Listener::new("127.0.0.1:0".parse().unwrap())]
        );
        assert_eq!(c.alias_policy, AliasPolicy::Lru);
        assert_eq!(c.shared_strategy, SharedStrategy::LeastLoaded);
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.sys_interval, Duration::from_secs(90));
        assert_eq!(c.shutdown_timeout, d.shutdown_timeout);
        assert_eq!(c.log_level, d.log_level);
    }

    #[test]
    fn printed_configuration_reads_back_the_same() {
        let mut c = Config {
            listeners: vec![
                Listener::new("127.0.0.1:1883".parse().unwrap()),
                Listener {
                    address: "[::1]:8883".parse().unwrap(),
                    backlog: 77,
                },
            ],
            ..Config::default()
        };
        c.cores = vec![1, 0];
        c.io_memory = 123_457;
        c.limits.max_session_expiry = 3600;
        c.limits.max_keepalive = 600;
        c.limits.connect_timeout = Duration::from_millis(1500);
        c.metrics.listen = Some("0.0.0.0:9100".parse().unwrap());
        c.response_information = String::new();
        c.log_level = "warn,ringmq=debug".into();
        c.alias_policy = AliasPolicy::Fill;
        let text = to_toml(&c);
        assert_eq!(parse(&text).unwrap(), c, "{text}");
        assert!(text.contains("cores = [1, 0]"), "{text}");
        assert!(text.contains("max_session_expiry = \"1h\""), "{text}");
        let d = Config::default();
        assert_eq!(parse(&to_toml(&d)).unwrap(), d);
    }

    #[test]
    fn every_key_is_printed() {
        let text = to_toml(&Config::default());
        let example = include_str!("../../tuning/ringmq.toml");
        let keys = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| l.split('=').next().unwrap().trim().to_string())
                .collect()
        };
        assert_eq!(keys(&text), keys(example));
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        assert_error(
            parse("[limits]\nmax_inflight = 3\nmax_infligt = 4\n").unwrap_err(),
            3,
            "limits.max_infligt",
            "unknown key `max_infligt`",
        );
        assert_error(
            parse("\n\nbogus = 1\n").unwrap_err(),
            3,
            "bogus",
            "unknown key",
        );
        assert_error(
            parse("[[listener]]\naddress = \"0.0.0.0:1\"\nport = 2\n").unwrap_err(),
            3,
            "listener[0].port",
            "unknown key",
        );
        assert_error(
            parse("[limits]\n[tls]\n").unwrap_err(),
            2,
            "tls",
            "unknown key",
        );
    }

    #[test]
    fn wrong_types_are_named_with_their_line() {
        assert_error(
            parse("[limits]\nmax_inflight = \"x\"\n").unwrap_err(),
            2,
            "limits.max_inflight",
            "expected an integer from 0 to 65535",
        );
        assert_error(
            parse("[limits]\nreceive_maximum = 70000\n").unwrap_err(),
            2,
            "limits.receive_maximum",
            "70000",
        );
        assert_error(
            parse("limits = 3\n").unwrap_err(),
            1,
            "limits",
            "expected a table",
        );
        assert_error(
            parse("[listener]\naddress = \"0.0.0.0:1883\"\n").unwrap_err(),
            1,
            "listener",
            "[[listener]]",
        );
        assert_error(
            parse("[[listener]]\nbacklog = 5\n").unwrap_err(),
            1,
            "listener[0]",
            "missing key `address`",
        );
    }

    #[test]
    fn bad_values_are_named_with_their_line() {
        for (src, line, key, problem) in [
            (
                "[runtime]\ncores = \"0-x\"\n",
                2,
                "runtime.cores",
                "not a CPU list",
            ),
            ("[runtime]\ncores = [0, -1]\n", 2, "runtime.cores[1]", "-1"),
            (
                "[runtime]\nio_memory = \"4 lots\"\n",
                2,
                "runtime.io_memory",
                "unknown size unit",
            ),
            (
                "[runtime]\nio_memory = -5\n",
                2,
                "runtime.io_memory",
                "negative",
            ),
            (
                "[limits]\nconnect_timeout = 10\n",
                2,
                "limits.connect_timeout",
                "no unit",
            ),
            (
                "[limits]\nconnect_timeout = \"soon\"\n",
                2,
                "limits.connect_timeout",
                "not a duration",
            ),
            (
                "[limits]\nmax_session_expiry = \"forever\"\n",
                2,
                "limits.max_session_expiry",
                "\"never\"",
            ),
            (
                "[mqtt]\nalias_policy = \"always\"\n",
                2,
                "mqtt.alias_policy",
                "unknown value `always`",
            ),
            (
                "[mqtt]\nshared_strategy = \"random\"\n",
                2,
                "mqtt.shared_strategy",
                "round_robin",
            ),
            (
                "[metrics]\nlisten = \"9100\"\n",
                2,
                "metrics.listen",
                "\"off\"",
            ),
            (
                "\n[[listener]]\naddress = \"localhost:1883\"\n",
                3,
                "listener[0].address",
                "not an IP address",
            ),
            // Found after parsing: the error still points at the key's line.
            (
                "[limits]\n\nmax_keepalive = \"1500ms\"\n",
                3,
                "limits.max_keepalive",
                "whole number of seconds",
            ),
            (
                "[limits]\nmax_keepalive = \"1d\"\n",
                2,
                "limits.max_keepalive",
                "65535s",
            ),
            (
                "[limits]\nmax_session_expiry = \"1000000d\"\n",
                2,
                "limits.max_session_expiry",
                "maximum",
            ),
        ] {
            assert_error(parse(src).unwrap_err(), line, key, problem);
        }
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let e = parse("[limits]\nmax_inflight = \n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert_eq!(e.key, None);
        let e = parse("[limits]\na = 1\na = 2\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.problem.contains("duplicate key"), "{e}");
        assert!(!e.problem.contains('\n'));
    }

    #[test]
    fn validation_errors_point_at_the_key() {
        for (src, line, key, problem) in [
            (
                "[runtime]\nring_depth = 128\ncores = [0, 100000]\n",
                3,
                "runtime.cores",
                "affinity mask",
            ),
            (
                "[runtime]\ncores = [0, 0]\n",
                2,
                "runtime.cores",
                "listed twice",
            ),
            (
                "[runtime]\ncores = []\n",
                2,
                "runtime.cores",
                "at least one",
            ),
            (
                "[runtime]\nio_memory = \"1KiB\"\n",
                2,
                "runtime.io_memory",
                "at least 64KiB",
            ),
            (
                "[limits]\nmax_packet_size = \"1GiB\"\n",
                2,
                "limits.max_packet_size",
                "268435460",
            ),
            (
                "[limits]\nmax_inflight = 0\n",
                2,
                "limits.max_inflight",
                "at least 1",
            ),
            (
                "[log]\nlevel = \"loud\"\n",
                2,
                "log.level",
                "not a log level",
            ),
            (
                "[shutdown]\ntimeout = \"0s\"\n",
                2,
                "shutdown.timeout",
                "more than 0s",
            ),
            (
                "[[listener]]\naddress = \"0.0.0.0:1\"\n[[listener]]\naddress = \"0.0.0.0:1\"\n",
                4,
                "listener[1].address",
                "already listener[0]",
            ),
            (
                "[[listener]]\naddress = \"0.0.0.0:1\"\nbacklog = 0\n",
                3,
                "listener[0].backlog",
                "at least 1",
            ),
            ("listener = []\n", 1, "listener", "at least one"),
        ] {
            assert!(parse(src).is_ok(), "{src}");
            assert_error(load(src).unwrap_err(), line, key, problem);
        }
        // A key left to its default: the error names it, and the section if present.
        let file = ConfigFile::from_source("t.toml", "\n[limits]\n");
        let e = file.locate(&ConfigError::invalid("limits.max_inflight", "x"));
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("limits.max_inflight"))
        );
        let e = file.locate(&ConfigError::invalid("runtime.cores", "x"));
        assert_eq!(e.line, None);
        assert_eq!(e.to_string(), "t.toml: runtime.cores: x");
    }

    #[test]
    fn unreadable_files_are_named() {
        let e = ConfigFile::read(Path::new("/nonexistent/ringmq.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/ringmq.toml: cannot read"),
            "{e}"
        );
    }
}
