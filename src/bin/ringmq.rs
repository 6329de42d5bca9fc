//! The `ringmq` command line: arguments and configuration file -> `Config` -> `Broker`,
//! plus `check-config` and `doctor`. Nothing else.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use ringmq::config::file::{parse_addr, to_toml};
use ringmq::config::units::parse_size;
use ringmq::config::{
    doctor, format_cpu_list, parse_cpu_list, Config, ConfigError, ConfigFile, Listener,
};
use ringmq::Broker;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
ringmq: a sharded, thread-per-core MQTT 3.1/3.1.1/5.0 broker

Usage:
  ringmq [OPTIONS]                     Run the broker
  ringmq check-config FILE [OPTIONS]   Check FILE and print the effective configuration
  ringmq doctor [OPTIONS]              Check this host against the configuration

Options:
  -c, --config FILE       TOML configuration file (every key: tuning/ringmq.toml)
      --listen ADDR       Address for MQTT over TCP; replaces the file's listeners
                          [default: 0.0.0.0:1883]
      --cores LIST        CPUs that run one shard each, e.g. 0-3,8 [default: all allowed]
      --shards N          Run N shards on CPUs 0..N-1
      --io-memory SIZE    Locked io_uring memory per shard, bytes or e.g. 4MiB
                          [default: 1MiB]
      --metrics ADDR      Serve Prometheus metrics on ADDR, or \"off\" [default: off]
      --log-level LEVEL   Log filter: trace, debug, info, warn, error, off, or
                          directives such as warn,ringmq=debug [default: info]
  -h, --help              Print this help
  -V, --version           Print the version

Settings come from the built-in defaults, then the --config file, then the flags
above, each overriding the one before. RUST_LOG, when set, overrides the log level.

Exit status: 0 success; 1 the broker could not start, or doctor found something to
change; 2 bad arguments or configuration.";

/// What the command line asks for.
#[derive(Debug, Default, PartialEq)]
struct Args {
    command: Command,
    config: Option<PathBuf>,
    overrides: Overrides,
}

#[derive(Debug, Default, PartialEq)]
enum Command {
    #[default]
    Run,
    CheckConfig,
    Doctor,
    Help,
    Version,
}

/// Settings given as flags, applied over the file.
#[derive(Debug, Default, PartialEq)]
struct Overrides {
    listen: Option<std::net::SocketAddr>,
    /// The CPUs, and the flag that chose them (`--cores` or `--shards`).
    cores: Option<(Vec<usize>, &'static str)>,
    io_memory: Option<usize>,
    metrics: Option<Option<std::net::SocketAddr>>,
    log_level: Option<String>,
}

impl Overrides {
    fn apply(&self, config: &mut Config) {
        if let Some(addr) = self.listen {
            config.listeners = vec![Listener::new(addr)];
        }
        if let Some((cores, _)) = &self.cores {
            config.cores = cores.clone();
        }
        if let Some(bytes) = self.io_memory {
            config.io_memory = bytes;
        }
        if let Some(listen) = self.metrics {
            config.metrics.listen = listen;
        }
        if let Some(level) = &self.log_level {
            config.log_level = level.clone();
        }
    }

    /// The flag that set a configuration key, if one did.
    fn flag_for(&self, key: &str) -> Option<&'static str> {
        let section = key.split(['.', '[']).next().unwrap_or(key);
        match (section, key) {
            ("listener", _) if self.listen.is_some() => Some("--listen"),
            (_, "runtime.cores") => self.cores.as_ref().map(|(_, flag)| *flag),
            (_, "runtime.io_memory") if self.io_memory.is_some() => Some("--io-memory"),
            (_, "log.level") if self.log_level.is_some() => Some("--log-level"),
            _ => None,
        }
    }
}

fn parse_args(args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut parsed = Args::default();
    let mut file_arg = None;
    let mut args = args.peekable();
    let mut first = true;
    while let Some(arg) = args.next() {
        let is_first = std::mem::replace(&mut first, false);
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| anyhow!("{name} needs a value"))
        };
        let o = &mut parsed.overrides;
        match flag.as_str() {
            "check-config" if is_first => parsed.command = Command::CheckConfig,
            "doctor" if is_first => parsed.command = Command::Doctor,
            "-h" | "--help" => parsed.command = Command::Help,
            "-V" | "--version" => parsed.command = Command::Version,
            "-c" | "--config" => parsed.config = Some(value("--config")?.into()),
            "--listen" => {
                o.listen =
                    Some(parse_addr(&value("--listen")?).map_err(|e| anyhow!("--listen: {e}"))?)
            }
            "--cores" => {
                let v = value("--cores")?;
                let cpus = parse_cpu_list(&v).map_err(|_| {
                    anyhow!("--cores: '{v}' is not a CPU list (expected e.g. 0-3,8)")
                })?;
                o.cores = Some((cpus, "--cores"));
            }
            "--shards" => {
                let v = value("--shards")?;
                let n: usize = v
                    .parse()
                    .map_err(|_| anyhow!("--shards: '{v}' is not a number"))?;
                o.cores = Some(((0..n).collect(), "--shards"));
            }
            "--io-memory" => {
                let v = value("--io-memory")?;
                let bytes = parse_size(&v).map_err(|e| anyhow!("--io-memory: {e}"))?;
                o.io_memory = Some(
                    usize::try_from(bytes)
                        .map_err(|_| anyhow!("--io-memory: '{v}' is too large"))?,
                );
            }
            "--metrics" => {
                let v = value("--metrics")?;
                o.metrics = Some(if v == "off" {
                    None
                } else {
                    Some(parse_addr(&v).map_err(|e| anyhow!("--metrics: {e}, or \"off\""))?)
                });
            }
            "--log-level" => o.log_level = Some(value("--log-level")?),
            "check-config" | "doctor" => {
                bail!("'{flag}' must come first: ringmq {flag} [OPTIONS]; see ringmq --help")
            }
            other if parsed.command == Command::CheckConfig && !other.starts_with('-') => {
                if file_arg.replace(PathBuf::from(other)).is_some() {
                    bail!("check-config takes one FILE; see ringmq --help");
                }
            }
            other => bail!("unknown argument '{other}'; see ringmq --help"),
        }
    }
    if parsed.command == Command::CheckConfig {
        match (file_arg, &parsed.config) {
            (Some(_), Some(_)) => bail!("check-config: give the FILE or --config, not both"),
            (Some(file), None) => parsed.config = Some(file),
            (None, Some(_)) => {}
            (None, None) => bail!("check-config needs a FILE; see ringmq --help"),
        }
    }
    Ok(parsed)
}

/// The configuration the arguments describe, not yet validated: defaults, then the
/// file, then the flags. The file is kept to point validation errors at its lines.
fn load(args: &Args) -> anyhow::Result<(Config, Option<ConfigFile>)> {
    let file = args.config.as_deref().map(ConfigFile::read).transpose()?;
    let mut config = match &file {
        Some(file) => file.parse()?,
        None => Config::default(),
    };
    args.overrides.apply(&mut config);
    Ok((config, file))
}

/// A validation error, blamed on the flag that set the key, or else on its line in
/// the file.
fn blame(args: &Args, file: Option<&ConfigFile>, e: ConfigError) -> anyhow::Error {
    match (args.overrides.flag_for(e.key()), file) {
        (Some(flag), _) => anyhow!("{flag}: {}", e.problem()),
        (None, Some(file)) => file.locate(&e).into(),
        (None, None) => e.into(),
    }
}

/// The validated configuration the arguments describe.
fn configuration(args: &Args) -> anyhow::Result<Config> {
    let (config, file) = load(args)?;
    config
        .validate()
        .map_err(|e| blame(args, file.as_ref(), e))?;
    Ok(config)
}

fn main() -> ExitCode {
    // Before the allocator has touched much memory; `run` applies the configured
    // choice (see `runtime.transparent_huge_pages`).
    ringmq::alloc::set_transparent_huge_pages(false);
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => return fail(e, 2),
    };
    match args.command {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("ringmq {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::CheckConfig => match configuration(&args) {
            Ok(config) => {
                let name = args.config.as_deref().unwrap_or(std::path::Path::new("-"));
                println!(
                    "# ringmq: effective configuration of {} (defaults and flags applied)\n",
                    name.display()
                );
                print!("{}", to_toml(&config));
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 2),
        },
        Command::Doctor => doctor_command(&args),
        Command::Run => match configuration(&args) {
            Ok(config) => run(config),
            Err(e) => fail(e, 2),
        },
    }
}

fn fail(e: anyhow::Error, code: u8) -> ExitCode {
    eprintln!("ringmq: {e:#}");
    ExitCode::from(code)
}

fn doctor_command(args: &Args) -> ExitCode {
    let (config, file) = match load(args) {
        Ok(loaded) => loaded,
        Err(e) => return fail(e, 2),
    };
    // Cores the process may not use are one of doctor's findings, not a reason to
    // stop before reporting the rest.
    match config.validate() {
        Err(e) if e.key() != "runtime.cores" => return fail(blame(args, file.as_ref(), e), 2),
        _ => {}
    }
    let source = match &args.config {
        Some(path) => path.display().to_string(),
        None => "the built-in defaults".to_string(),
    };
    let (header, report) = doctor::run(&config, &source);
    println!("{header}{report}");
    if report.needs_change() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn run(config: Config) -> ExitCode {
    ringmq::alloc::set_transparent_huge_pages(config.transparent_huge_pages);
    init_logging(&config.log_level);
    raise_nofile(config.max_connections());
    // Block SIGINT and SIGTERM before the shards start, so every thread inherits the
    // mask and the main thread alone receives them with sigwait.
    let signals = termination_signals();
    let placement: Vec<String> = config
        .cores
        .iter()
        .enumerate()
        .map(|(shard, cpu)| format!("shard {shard} -> CPU {cpu}"))
        .collect();
    let cores = config.cores.clone();
    match Broker::start(config) {
        Ok(broker) => {
            tracing::info!(
                cores = %format_cpu_list(&cores),
                "placement: {}",
                placement.join(", ")
            );
            let sig = wait_for(&signals);
            tracing::info!("signal {sig} received, stopping");
            broker.shutdown();
            ExitCode::SUCCESS
        }
        Err(e) => fail(anyhow::Error::new(e).context("cannot start"), 1),
    }
}

/// Logs through `tracing` to stderr with the configured filter; RUST_LOG, when set,
/// wins. Colours only on a terminal, so the journal gets plain text.
fn init_logging(level: &str) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let filter = from_env
        .as_deref()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match from_env {
        Some(v) if tracing_subscriber::EnvFilter::try_new(&v).is_err() => {
            tracing::warn!("RUST_LOG='{v}' is not a log filter; using log.level '{level}'")
        }
        Some(v) => tracing::debug!("RUST_LOG='{v}' overrides log.level '{level}'"),
        None => {}
    }
}

/// Raises the soft open-files limit to the hard limit: one descriptor per
/// connection, and the soft default (often 1024) is far below what a broker needs.
fn raise_nofile(connections: usize) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return;
    }
    if r.rlim_cur < r.rlim_max {
        let before = r.rlim_cur;
        r.rlim_cur = r.rlim_max;
        // SAFETY: `r` is a valid rlimit with soft <= hard.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } == 0 {
            tracing::info!("open files limit raised from {before} to {}", r.rlim_cur);
        }
    }
    if r.rlim_cur != libc::RLIM_INFINITY && (r.rlim_cur as usize) < connections {
        tracing::warn!(
            "open files limit {} is below the {connections} connections the configuration allows; connections past it are refused (ringmq doctor, tuning/)",
            r.rlim_cur
        );
    }
}

fn termination_signals() -> libc::sigset_t {
    // SAFETY: the set is initialised by sigemptyset before use, and
    // pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: `set` is an initialised signal set and `sig` a valid out pointer.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> anyhow::Result<Args> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn commands_and_flags() {
        let a = args("check-config ringmq.toml --cores 0").unwrap();
        assert_eq!(a.command, Command::CheckConfig);
        assert_eq!(a.config, Some(PathBuf::from("ringmq.toml")));
        assert_eq!(a.overrides.cores, Some((vec![0], "--cores")));
        let a = args("doctor --config x.toml --io-memory 4MiB --metrics=127.0.0.1:9100").unwrap();
        assert_eq!(a.command, Command::Doctor);
        assert_eq!(a.overrides.io_memory, Some(4 << 20));
        assert!(a.overrides.metrics.unwrap().is_some());
        let a = args("--log-level debug --shards 2 --metrics off").unwrap();
        assert_eq!(a.command, Command::Run);
        assert_eq!(a.overrides.log_level.as_deref(), Some("debug"));
        assert_eq!(a.overrides.cores, Some((vec![0, 1], "--shards")));
        assert_eq!(a.overrides.metrics, Some(None));
    }

    #[test]
    fn argument_errors_name_the_flag() {
        for (line, expected) in [
            ("--cores x", "--cores:"),
            ("--io-memory 4XB", "--io-memory:"),
            ("--listen nowhere", "--listen:"),
            ("--metrics 9100", "--metrics:"),
            ("--bogus", "'--bogus'"),
            ("check-config", "needs a FILE"),
            ("check-config a b", "one FILE"),
            ("check-config a --config b", "not both"),
            ("--config", "needs a value"),
            ("run-broker", "'run-broker'"),
            ("--cores 0 doctor", "must come first"),
        ] {
            let e = args(line).unwrap_err().to_string();
            assert!(e.contains(expected), "{line}: {e}");
        }
    }

    #[test]
    fn flags_override_and_are_blamed() {
        let a = args("--cores 0 --log-level warn --io-memory 2MiB").unwrap();
        let c = configuration(&a).unwrap();
        assert_eq!(c.cores, vec![0]);
        assert_eq!(c.log_level, "warn");
        assert_eq!(c.io_memory, 2 << 20);
        let e = configuration(&args("--shards 100000").unwrap()).unwrap_err();
        assert!(e.to_string().starts_with("--shards:"), "{e}");
        let e = configuration(&args("--log-level loud").unwrap()).unwrap_err();
        assert!(e.to_string().starts_with("--log-level:"), "{e}");
    }
}
