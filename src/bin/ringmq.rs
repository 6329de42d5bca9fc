//! The `ringmq` command line: arguments -> `Config` -> `Broker`. Nothing else.

use std::net::SocketAddr;
use std::process::ExitCode;

use ringmq::config::{parse_cpu_list, Config, Listener};
use ringmq::Broker;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
ringmq: a sharded, thread-per-core MQTT 3.1/3.1.1/5.0 broker

Usage: ringmq [OPTIONS]

Options:
      --listen ADDR       Address for MQTT over TCP [default: 0.0.0.0:1883]
      --cores LIST        CPUs that run one shard each, e.g. 0-3,8 [default: all allowed]
      --shards N          Run N shards on CPUs 0..N-1
      --io-memory BYTES   Locked io_uring memory per shard [default: 1048576]
  -h, --help              Print this help
  -V, --version           Print the version

Logging follows RUST_LOG (e.g. RUST_LOG=ringmq=debug); the default level is info.";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut config = Config::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("ringmq {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--listen" => {
                let v = value("--listen")?;
                let addr = v
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("--listen: '{v}' is not an address: {e}"))?;
                config.listeners = vec![Listener::new(addr)];
            }
            "--cores" => {
                config.cores = parse_cpu_list(&value("--cores")?).map_err(|e| e.to_string())?;
            }
            "--shards" => {
                let v = value("--shards")?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("--shards: '{v}' is not a number"))?;
                config.cores = (0..n).collect();
            }
            "--io-memory" => {
                let v = value("--io-memory")?;
                config.io_memory = v
                    .parse()
                    .map_err(|_| format!("--io-memory: '{v}' is not a number of bytes"))?;
            }
            other => return Err(format!("unknown argument '{other}'; see ringmq --help")),
        }
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(Some(config))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringmq: {e}");
            return ExitCode::from(2);
        }
    };
    // Block SIGINT and SIGTERM before the shards start, so every thread inherits the
    // mask and the main thread alone receives them with sigwait.
    let signals = termination_signals();
    match Broker::start(config) {
        Ok(broker) => {
            let sig = wait_for(&signals);
            tracing::info!("signal {sig} received, stopping");
            broker.shutdown();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ringmq: {e}");
            ExitCode::FAILURE
        }
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
