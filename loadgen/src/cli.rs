//! The command line: `run` and `compare`, their flags, and the exit codes. The only
//! place that reads files named on the command line and writes report files.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::compare::{self, BrokerSpec, CompareOptions};
use crate::report::html;
use crate::runner::{self, RunError, RunOptions};
use crate::scenario::{ConnRole, Kind, Scenario};

/// The run completed and every guarantee held.
pub const EXIT_OK: u8 = 0;
/// The run completed but the broker broke a guarantee.
pub const EXIT_VIOLATION: u8 = 1;
/// Bad command line or scenario.
pub const EXIT_USAGE: u8 = 2;
/// The run could not happen: no connection, a refused subscription, no executor.
pub const EXIT_FAILED: u8 = 3;

pub const USAGE: &str = "\
ringmq-loadgen: the MQTT load generator bundled with ringmq

Usage:
  ringmq-loadgen run [OPTIONS]       run one scenario against one broker
  ringmq-loadgen compare [OPTIONS]   run scenarios against several brokers in turn
  ringmq-loadgen --help | --version

run options:
  --target ADDR            broker address, IP:PORT [default: 127.0.0.1:1883]
  --scenario KIND          fanin | fanout | p2p | shared | conn
  --scenario-file FILE     a TOML scenario (see loadgen/scenarios/); flags override it
  --scale F                multiply client counts of scalable roles by F
  --pubs N                 publishers
  --subs M                 subscribers (for conn: connections)
  --conns N                held connections
  --qos Q                  publish QoS 0, 1 or 2 [default: 1]
  --sub-qos Q              subscription QoS [default: --qos]
  --protocol 3|4|5         MQTT 3.1, 3.1.1 or 5.0 [default: 4; shared: 5]
  --payload BYTES          payload size, at least 20 [default: 64]
  --duration SECS          measured time [default: 10]
  --warmup SECS            time before measuring [default: 0]
  --drain SECS             longest wait for in-flight messages at the end [default: 2]
  --rate R                 total messages/s over all publishers [default: as fast as possible]
  --pub-rate R             messages/s per publisher
  --topic TEMPLATE         publisher topic; %i = publisher index
  --filter TEMPLATE        subscriber filter (repeatable); %i = subscriber index
  --conn-topic TEMPLATE    one subscription per held connection
  --persistent | --clean   session kind [default: clean]
  --session-expiry SECS    v5 session expiry for persistent sessions [default: 300]
  --keepalive SECS         [default: 60]
  --inflight N             unacknowledged QoS 1/2 messages per publisher [default: 64]
  --connect-rate R         new connections per second [default: unlimited; conn: 1000]
  --connect-timeout SECS   per connection, handshakes included [default: 10]
  --source RANGES          bind source addresses, e.g. 127.0.0.1-127.0.0.50
  --cores LIST             CPUs for generator executors [default: the last allowed CPU]
  --io-memory BYTES        locked io_uring memory per executor [default: 262144]
  --broker-pid PID         sample the broker's CPU time and memory from /proc
  --broker-name NAME       the broker's name in reports
  --client-prefix P        client id prefix [default: unique per run]
  --json FILE              write the report as JSON
  --html FILE              write the report as a self-contained HTML page
  --quiet                  no progress line on stderr

compare options:
  --brokers LIST           built-in brokers: mosquitto,rumqttd,ringmq [default: all three]
  --broker NAME=COMMAND    another broker; {port} in COMMAND is replaced (repeatable)
  --scenario-file FILE     a scenario to run (repeatable) [default: every file in --scenario-dir]
  --scenario-dir DIR       [default: loadgen/scenarios]
  --scale F, --duration SECS, --warmup SECS   applied to every scenario
  --broker-cores LIST      CPUs the broker is pinned to with taskset [default: 0]
  --cores LIST             generator CPUs [default: the last allowed CPU]
  --port N                 first port to listen on [default: 18830]
  --out DIR                where reports and broker logs go [default: compare-out]
  --ringmq-bin PATH        [default: target/release/ringmq]
  --rumqttd-bin PATH       [default: ~/.cargo/bin/rumqttd]
  --mosquitto-bin PATH     [default: mosquitto]
  --quiet

Exit status: 0 ok, 1 the broker broke a guarantee, 2 bad usage, 3 the run could not
complete (no connection, refused subscription, ...).";

/// Flags as (name, value) pairs; `--flag=value` and `--flag value` both work.
struct Args {
    items: Vec<(String, Option<String>)>,
}

/// Flags that take no value.
const SWITCHES: [&str; 4] = ["--persistent", "--clean", "--quiet", "--help"];

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut items = Vec::new();
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            if !arg.starts_with("--") {
                return Err(format!("unexpected argument '{arg}'; see --help"));
            }
            if let Some((k, v)) = arg.split_once('=') {
                items.push((k.to_string(), Some(v.to_string())));
            } else if SWITCHES.contains(&arg.as_str()) {
                items.push((arg, None));
            } else {
                let v = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
                items.push((arg, Some(v)));
            }
        }
        Ok(Args { items })
    }

    fn has(&self, name: &str) -> bool {
        self.items.iter().any(|(k, _)| k == name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.items
            .iter()
            .filter(|(k, _)| k == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    fn num<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| format!("{name}: '{v}' is not a valid number"))
            })
            .transpose()
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        for (k, _) in &self.items {
            if !known.contains(&k.as_str()) {
                return Err(format!("unknown option '{k}'; see --help"));
            }
        }
        Ok(())
    }
}

const RUN_FLAGS: &[&str] = &[
    "--target",
    "--scenario",
    "--scenario-file",
    "--scale",
    "--pubs",
    "--subs",
    "--conns",
    "--qos",
    "--sub-qos",
    "--protocol",
    "--payload",
    "--duration",
    "--warmup",
    "--drain",
    "--rate",
    "--pub-rate",
    "--topic",
    "--filter",
    "--conn-topic",
    "--persistent",
    "--clean",
    "--session-expiry",
    "--keepalive",
    "--inflight",
    "--connect-rate",
    "--connect-timeout",
    "--source",
    "--cores",
    "--io-memory",
    "--broker-pid",
    "--broker-name",
    "--client-prefix",
    "--json",
    "--html",
    "--quiet",
    "--help",
];

const COMPARE_FLAGS: &[&str] = &[
    "--brokers",
    "--broker",
    "--scenario-file",
    "--scenario-dir",
    "--scale",
    "--duration",
    "--warmup",
    "--broker-cores",
    "--cores",
    "--port",
    "--out",
    "--ringmq-bin",
    "--rumqttd-bin",
    "--mosquitto-bin",
    "--io-memory",
    "--quiet",
    "--help",
];

/// Parses a broker address: `IP:PORT`, or `localhost:PORT`.
pub fn parse_target(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("--target: '{s}' has no valid port"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse()
        .map_err(|_| format!("--target: '{s}' is not IP:PORT (host names are not resolved)"))
}

/// Parses source address ranges: `A`, `A-B` (IPv4, inclusive), comma-separated.
pub fn parse_sources(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: Ipv4Addr = a
                    .trim()
                    .parse()
                    .map_err(|_| format!("--source: '{a}' is not an IPv4 address"))?;
                let b: Ipv4Addr = b
                    .trim()
                    .parse()
                    .map_err(|_| format!("--source: '{b}' is not an IPv4 address"))?;
                let (a, b) = (u32::from(a), u32::from(b));
                if b < a || b - a >= 65_536 {
                    return Err(format!(
                        "--source: '{part}' is not an ascending range of at most 65536 addresses"
                    ));
                }
                out.extend((a..=b).map(|v| IpAddr::V4(Ipv4Addr::from(v))));
            }
            None => out.push(
                part.parse()
                    .map_err(|_| format!("--source: '{part}' is not an IP address"))?,
            ),
        }
    }
    if out.is_empty() {
        return Err("--source: no addresses given".into());
    }
    Ok(out)
}

fn parse_cores(s: &str, flag: &str) -> Result<Vec<usize>, String> {
    ringmq::config::parse_cpu_list(s).map_err(|e| format!("{flag}: {e}"))
}

fn parse_qos(v: Option<u8>, flag: &str) -> Result<Option<u8>, String> {
    match v {
        Some(q) if q > 2 => Err(format!("{flag}: {q} is not 0, 1 or 2")),
        other => Ok(other),
    }
}

/// Reads a scenario file.
pub fn load_scenario(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Scenario::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Builds the scenario a `run` command line describes.
fn scenario_from(a: &Args) -> Result<Scenario, String> {
    let pubs: Option<u32> = a.num("--pubs")?;
    let subs: Option<u32> = a.num("--subs")?;
    let conns: Option<u32> = a.num("--conns")?;
    let mut s = match (a.get("--scenario"), a.get("--scenario-file")) {
        (Some(_), Some(_)) => return Err("give --scenario or --scenario-file, not both".into()),
        (None, None) => {
            return Err("a scenario is needed: --scenario KIND or --scenario-file FILE".into())
        }
        (Some(k), None) => {
            let kind = Kind::parse(k)
                .filter(|k| *k != Kind::Custom)
                .ok_or_else(|| {
                    format!("--scenario: '{k}' is not one of fanin, fanout, p2p, shared, conn")
                })?;
            if kind == Kind::P2p {
                if let (Some(p), Some(s)) = (pubs, subs) {
                    if p != s {
                        return Err(format!("--scenario p2p pairs publishers with subscribers: --pubs {p} and --subs {s} differ"));
                    }
                }
            }
            let second = if kind == Kind::Conn {
                conns.or(subs)
            } else {
                subs
            };
            Scenario::preset(kind, pubs, second)
        }
        (None, Some(f)) => load_scenario(Path::new(f))?,
    };
    if let Some(f) = a.num::<f64>("--scale")? {
        s = s.scaled(f).map_err(|e| e.to_string())?;
    }
    if a.get("--scenario-file").is_some() {
        if let Some(n) = pubs {
            s.pubs
                .as_mut()
                .ok_or("--pubs: the scenario file has no [pubs]")?
                .count = n;
        }
        if let Some(n) = subs {
            s.subs
                .as_mut()
                .ok_or("--subs: the scenario file has no [subs]")?
                .count = n;
        }
    }
    if let Some(n) = conns {
        match s.conns.as_mut() {
            Some(c) => c.count = n,
            None => {
                s.conns = Some(ConnRole {
                    count: n,
                    topic: None,
                    scale: true,
                })
            }
        }
    }
    if let Some(q) = parse_qos(a.num("--qos")?, "--qos")? {
        s.qos = q;
    }
    if let Some(q) = parse_qos(a.num("--sub-qos")?, "--sub-qos")? {
        s.subs
            .as_mut()
            .ok_or("--sub-qos: the scenario has no subscribers")?
            .qos = Some(q);
    }
    if let Some(p) = a.num("--protocol")? {
        s.protocol = p;
    }
    if let Some(p) = a.num("--payload")? {
        s.payload = p;
    }
    if let Some(d) = a.num("--duration")? {
        s.duration = d;
    }
    if let Some(d) = a.num("--warmup")? {
        s.warmup = d;
    }
    if let Some(d) = a.num("--drain")? {
        s.drain = d;
    }
    if let Some(r) = a.num("--rate")? {
        s.rate = Some(r);
        if let Some(p) = s.pubs.as_mut() {
            p.rate = None;
        }
    }
    if let Some(r) = a.num("--pub-rate")? {
        s.pubs
            .as_mut()
            .ok_or("--pub-rate: the scenario has no publishers")?
            .rate = Some(r);
        s.rate = None;
    }
    if let Some(t) = a.get("--topic") {
        s.pubs
            .as_mut()
            .ok_or("--topic: the scenario has no publishers")?
            .topic = t.to_string();
    }
    let filters = a.all("--filter");
    if !filters.is_empty() {
        s.subs
            .as_mut()
            .ok_or("--filter: the scenario has no subscribers")?
            .topics = filters.iter().map(|f| f.to_string()).collect();
    }
    if let Some(t) = a.get("--conn-topic") {
        s.conns
            .as_mut()
            .ok_or("--conn-topic: the scenario has no held connections")?
            .topic = Some(t.to_string());
    }
    if a.has("--persistent") {
        s.clean = false;
    }
    if a.has("--clean") {
        s.clean = true;
    }
    if let Some(e) = a.num("--session-expiry")? {
        s.session_expiry = e;
    }
    if let Some(k) = a.num("--keepalive")? {
        s.keepalive = k;
    }
    if let Some(n) = a.num("--inflight")? {
        s.inflight = n;
    }
    if let Some(r) = a.num("--connect-rate")? {
        s.connect_rate = Some(r);
    }
    s.validate()
        .map_err(|e| format!("scenario '{}': {e}", s.name))?;
    Ok(s)
}

fn secs(a: &Args, name: &str) -> Result<Option<Duration>, String> {
    match a.num::<f64>(name)? {
        Some(v) if v.is_finite() && v > 0.0 => Ok(Some(Duration::from_secs_f64(v))),
        Some(v) => Err(format!("{name}: {v} is not a positive number of seconds")),
        None => Ok(None),
    }
}

fn run_options(a: &Args) -> Result<(RunOptions, Option<PathBuf>, Option<PathBuf>), String> {
    let scenario = scenario_from(a)?;
    let target = parse_target(a.get("--target").unwrap_or("127.0.0.1:1883"))?;
    let mut o = RunOptions::new(scenario, target);
    if let Some(s) = a.get("--source") {
        o.sources = parse_sources(s)?;
        if target.ip().is_loopback() && o.sources.iter().any(|s| !s.is_loopback()) {
            return Err(
                "--source: a loopback target can only be reached from loopback source addresses"
                    .into(),
            );
        }
    }
    if let Some(c) = a.get("--cores") {
        o.cores = parse_cores(c, "--cores")?;
    }
    if let Some(m) = a.num("--io-memory")? {
        o.io_memory = m;
    }
    o.broker_pid = a.num("--broker-pid")?;
    o.broker_label = a.get("--broker-name").map(str::to_string);
    o.client_prefix = a.get("--client-prefix").map(str::to_string);
    if let Some(t) = secs(a, "--connect-timeout")? {
        o.connect_timeout = t;
    }
    o.progress = !a.has("--quiet");
    Ok((
        o,
        a.get("--json").map(PathBuf::from),
        a.get("--html").map(PathBuf::from),
    ))
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn cmd_run(a: &Args) -> u8 {
    let (opts, json, html_path) = match run_options(a) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("ringmq-loadgen: {e}");
            return EXIT_USAGE;
        }
    };
    let report = match runner::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ringmq-loadgen: {e}");
            return match e {
                RunError::Invalid(_) => EXIT_USAGE,
                _ => EXIT_FAILED,
            };
        }
    };
    print!("{}", report.summary());
    for (path, text) in [(json, report.to_json()), (html_path, html::render(&report))] {
        if let Some(p) = path {
            if let Err(e) = write_file(&p, &text) {
                eprintln!("ringmq-loadgen: {e}");
                return EXIT_FAILED;
            }
        }
    }
    if report.ok {
        EXIT_OK
    } else {
        eprintln!(
            "ringmq-loadgen: the broker broke a guarantee: {}",
            report.violations.join("; ")
        );
        EXIT_VIOLATION
    }
}

fn compare_options(a: &Args) -> Result<CompareOptions, String> {
    let mut brokers = Vec::new();
    let names = a.get("--brokers").map_or_else(
        || {
            if a.has("--broker") {
                Vec::new()
            } else {
                vec!["mosquitto", "rumqttd", "ringmq"]
            }
        },
        |l| {
            l.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        },
    );
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    for n in names {
        brokers.push(match n {
            "mosquitto" => BrokerSpec::Mosquitto { bin: a.get("--mosquitto-bin").unwrap_or("mosquitto").into() },
            "rumqttd" => BrokerSpec::Rumqttd {
                bin: a.get("--rumqttd-bin").map_or_else(|| format!("{home}/.cargo/bin/rumqttd"), str::to_string),
            },
            "ringmq" => BrokerSpec::Ringmq { bin: a.get("--ringmq-bin").unwrap_or("target/release/ringmq").into() },
            other => return Err(format!("--brokers: '{other}' is not built in (mosquitto, rumqttd, ringmq); use --broker NAME=COMMAND")),
        });
    }
    for b in a.all("--broker") {
        let (name, cmd) = b
            .split_once('=')
            .ok_or_else(|| format!("--broker: '{b}' is not NAME=COMMAND"))?;
        if !cmd.contains("{port}") {
            return Err(format!("--broker {name}: the command must contain {{port}} so it listens where the generator connects"));
        }
        brokers.push(BrokerSpec::Custom {
            name: name.into(),
            command: cmd.into(),
        });
    }
    if brokers.is_empty() {
        return Err("no brokers to compare".into());
    }
    let files: Vec<PathBuf> = if a.has("--scenario-file") {
        a.all("--scenario-file")
            .into_iter()
            .map(PathBuf::from)
            .collect()
    } else {
        let dir = PathBuf::from(a.get("--scenario-dir").unwrap_or("loadgen/scenarios"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| format!("--scenario-dir {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        files
    };
    let mut scenarios = Vec::new();
    for f in &files {
        let mut s = load_scenario(f)?;
        if let Some(x) = a.num::<f64>("--scale")? {
            s = s.scaled(x).map_err(|e| format!("{}: {e}", f.display()))?;
        }
        if let Some(d) = a.num("--duration")? {
            s.duration = d;
        }
        if let Some(d) = a.num("--warmup")? {
            s.warmup = d;
        }
        s.validate().map_err(|e| format!("{}: {e}", f.display()))?;
        scenarios.push(s);
    }
    if scenarios.is_empty() {
        return Err("no scenarios to run".into());
    }
    Ok(CompareOptions {
        brokers,
        scenarios,
        broker_cores: parse_cores(a.get("--broker-cores").unwrap_or("0"), "--broker-cores")?,
        cores: match a.get("--cores") {
            Some(c) => parse_cores(c, "--cores")?,
            None => runner::default_cores(),
        },
        port: a.num("--port")?.unwrap_or(18830),
        out: PathBuf::from(a.get("--out").unwrap_or("compare-out")),
        io_memory: a.num("--io-memory")?.unwrap_or(256 * 1024),
        progress: !a.has("--quiet"),
    })
}

fn cmd_compare(a: &Args) -> u8 {
    let opts = match compare_options(a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ringmq-loadgen compare: {e}");
            return EXIT_USAGE;
        }
    };
    match compare::compare(&opts) {
        Ok(summary) => {
            print!("{}", summary.markdown);
            eprintln!(
                "ringmq-loadgen compare: wrote {} and {}",
                summary.markdown_path.display(),
                summary.html_path.display()
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("ringmq-loadgen compare: {e}");
            EXIT_FAILED
        }
    }
}

/// Runs the command line; returns the exit status.
pub fn main(args: impl Iterator<Item = String>) -> u8 {
    let mut args = args.peekable();
    let cmd = args.next();
    let (known, f): (&[&str], fn(&Args) -> u8) = match cmd.as_deref() {
        None | Some("-h") | Some("--help") | Some("help") => {
            println!("{USAGE}");
            return EXIT_OK;
        }
        Some("-V") | Some("--version") => {
            println!("ringmq-loadgen {}", env!("CARGO_PKG_VERSION"));
            return EXIT_OK;
        }
        Some("run") => (RUN_FLAGS, cmd_run),
        Some("compare") => (COMPARE_FLAGS, cmd_compare),
        Some(other) => {
            eprintln!("ringmq-loadgen: unknown command '{other}'; see ringmq-loadgen --help");
            return EXIT_USAGE;
        }
    };
    let parsed = match Args::parse(args).and_then(|a| a.check_known(known).map(|()| a)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ringmq-loadgen: {e}");
            return EXIT_USAGE;
        }
    };
    if parsed.has("--help") {
        println!("{USAGE}");
        return EXIT_OK;
    }
    f(&parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args {
        Args::parse(v.iter().map(|s| s.to_string())).unwrap()
    }

    #[test]
    fn source_ranges_expand_inclusively() {
        let s = parse_sources("127.0.0.1-127.0.0.3,127.0.1.9").unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[3], "127.0.1.9".parse::<IpAddr>().unwrap());
        assert!(parse_sources("127.0.0.5-127.0.0.1").is_err());
    }

    #[test]
    fn flags_build_and_override_presets() {
        let a = args(&[
            "--scenario",
            "fanout",
            "--subs=7",
            "--qos",
            "2",
            "--rate",
            "500",
            "--payload",
            "100",
        ]);
        let s = scenario_from(&a).unwrap();
        assert_eq!(s.subs.as_ref().unwrap().count, 7);
        assert_eq!((s.qos, s.payload, s.rate), (2, 100, Some(500.0)));
        assert!(
            scenario_from(&args(&["--scenario", "p2p", "--pubs", "3", "--subs", "4"])).is_err()
        );
        assert!(
            scenario_from(&args(&["--scenario", "fanin", "--payload", "10"]))
                .unwrap_err()
                .contains("header")
        );
    }

    #[test]
    fn targets_are_addresses_not_names() {
        assert!(parse_target("127.0.0.1:1883").is_ok());
        assert_eq!(parse_target("localhost:9").unwrap().port(), 9);
        assert!(parse_target("example.com:1883").is_err());
    }
}
