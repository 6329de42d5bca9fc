//! One run, coordinated from the calling thread: start the workers, wait for every
//! connection, publish the timeline (start, end of warm-up, stop), sample counters
//! and /proc once a second, drain, finish, then merge what the workers hand back
//! into a [`Report`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringmq::protocol::{ProtocolVersion, QoS};

use crate::accounting::{GroupBook, Tally};
use crate::clock;
use crate::procstat::{self, Sample, Target};
use crate::report::{Latency, Point, Report};
use crate::scenario::{Plan, Scenario};
use crate::shared::{second_histogram, total_histogram, Shared};
use crate::worker::{self, ClientPlan, Settings, WorkerResult};

/// Everything a run needs besides the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario: Scenario,
    pub target: SocketAddr,
    /// Source addresses bound before connecting, in turn; empty: the kernel's choice.
    pub sources: Vec<IpAddr>,
    /// CPUs for the worker executors, one worker each.
    pub cores: Vec<usize>,
    /// Locked io_uring memory per worker.
    pub io_memory: usize,
    pub broker_pid: Option<u32>,
    /// A name for the broker, shown in reports.
    pub broker_label: Option<String>,
    /// Print a progress line on stderr every second.
    pub progress: bool,
    /// Client id prefix; default: unique per run.
    pub client_prefix: Option<String>,
    /// Longest a connection may take to connect (and subscribe).
    pub connect_timeout: Duration,
}

impl RunOptions {
    pub fn new(scenario: Scenario, target: SocketAddr) -> RunOptions {
        RunOptions {
            scenario,
            target,
            sources: Vec::new(),
            cores: default_cores(),
            io_memory: 256 * 1024,
            broker_pid: None,
            broker_label: None,
            progress: false,
            client_prefix: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The last CPU this process may run on.
pub fn default_cores() -> Vec<usize> {
    ringmq::config::allowed_cpus()
        .last()
        .map_or_else(|| vec![0], |&c| vec![c])
}

/// Why a run did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The scenario or options cannot work.
    Invalid(String),
    /// The workers could not start.
    Start(String),
    /// Connections failed (or the broker refused a subscription) before publishing.
    Connect {
        failed: u64,
        total: u64,
        failures: Vec<String>,
    },
    /// The broker refused a subscription the scenario needs.
    Refused(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Invalid(m) | RunError::Start(m) => f.write_str(m),
            RunError::Connect {
                failed,
                total,
                failures,
            } => {
                write!(f, "{failed} of {total} connections failed")?;
                if let Some(first) = failures.first() {
                    write!(f, "; first: {first}")?;
                }
                Ok(())
            }
            RunError::Refused(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RunError {}

/// Counters and /proc at one instant.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    ns: u64,
    published: u64,
    delivered: u64,
    errors: u64,
    open: u64,
    broker: Option<Sample>,
    me: Sample,
}

struct Coordinator<'a> {
    opts: &'a RunOptions,
    shared: Arc<Shared>,
    broker_errors: u32,
}

impl Coordinator<'_> {
    fn snapshot(&mut self) -> Snapshot {
        let s = &self.shared;
        let broker =
            self.opts
                .broker_pid
                .and_then(|pid| match procstat::sample(Target::Pid(pid)) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        self.broker_errors += 1;
                        None
                    }
                });
        Snapshot {
            ns: clock::now_ns(),
            published: s.sum(|c| &c.published),
            delivered: s.sum(|c| &c.delivered),
            errors: s.sum(|c| &c.errors) + s.sum(|c| &c.connect_failed),
            open: s.sum(|c| &c.open),
            broker,
            me: procstat::sample(Target::Myself).unwrap_or_default(),
        }
    }

    fn progress(&self, label: &str, t: f64, from: &Snapshot, to: &Snapshot) {
        if !self.opts.progress {
            return;
        }
        let dt = (to.ns.saturating_sub(from.ns)) as f64 / 1e9;
        let rate = |a: u64, b: u64| {
            if dt > 0.0 {
                (b.saturating_sub(a)) as f64 / dt
            } else {
                0.0
            }
        };
        let mut line = format!(
            "[{t:>6.1}s {label:<7}] pub {:>9}/s  del {:>9}/s  conns {:>7}  errors {}",
            si(rate(from.published, to.published)),
            si(rate(from.delivered, to.delivered)),
            to.open,
            to.errors
        );
        if let (Some(a), Some(b)) = (from.broker, to.broker) {
            line += &format!(
                "  broker {:.0}% cpu {} rss",
                cpu_share(a.cpu, b.cpu, dt) * 100.0,
                bytes(b.rss_bytes as f64)
            );
        }
        line += &format!(
            "  loadgen {:.0}% cpu",
            cpu_share(from.me.cpu, to.me.cpu, dt) * 100.0
        );
        eprintln!("{line}");
    }
}

fn cpu_share(a: Duration, b: Duration, secs: f64) -> f64 {
    if secs > 0.0 {
        b.saturating_sub(a).as_secs_f64() / secs
    } else {
        0.0
    }
}

/// `12.3k`-style figures for the progress line.
pub fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// `12.3 MiB`-style sizes.
pub fn bytes(v: f64) -> String {
    if v >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", v / (1024.0 * 1024.0 * 1024.0))
    } else if v >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", v / (1024.0 * 1024.0))
    } else if v >= 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

/// Raises the open-file limit to what `needed` descriptors require, or says why not.
fn ensure_descriptors(needed: u64) -> Result<(), RunError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(());
    }
    if lim.rlim_cur >= needed {
        return Ok(());
    }
    if lim.rlim_max < needed {
        return Err(RunError::Invalid(format!(
            "the run needs about {needed} file descriptors but the hard limit is {} (raise `ulimit -Hn`, or run fewer connections per process)",
            lim.rlim_max
        )));
    }
    lim.rlim_cur = needed;
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(RunError::Invalid(format!(
            "cannot raise the open-file limit to {needed}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn version_of(level: u8) -> ProtocolVersion {
    match level {
        3 => ProtocolVersion::V3_1,
        5 => ProtocolVersion::V5,
        _ => ProtocolVersion::V3_1_1,
    }
}

fn qos_of(q: u8) -> QoS {
    QoS::from_u8(q).unwrap_or(QoS::AtLeastOnce)
}

fn sleep_until_ns(ns: u64) {
    let now = clock::now_ns();
    if ns > now {
        std::thread::sleep(Duration::from_nanos(ns - now));
    }
}

/// Runs one scenario to the end and reports on it.
pub fn run(opts: &RunOptions) -> Result<Report, RunError> {
    let scenario = &opts.scenario;
    let plan = Plan::new(scenario.clone())
        .map_err(|e| RunError::Invalid(format!("scenario '{}': {e}", scenario.name)))?;
    if opts.cores.is_empty() {
        return Err(RunError::Invalid(
            "--cores: at least one CPU is needed".into(),
        ));
    }
    let total_clients = scenario.clients();
    ensure_descriptors(total_clients + 256)?;
    let _ = clock::start();

    let pubs_total = plan.publishers.len() as u64;
    let capacity = scenario.rate_per_publisher().map_or(1 << 28, |r| {
        (r * (scenario.warmup + scenario.duration + 1.0) * 2.0) as u64 + 4096
    });
    let groups: Vec<GroupBook> = plan
        .groups
        .iter()
        .map(|g| GroupBook::new(g.publishers.clone(), capacity))
        .collect();
    let workers = opts.cores.len();
    let shared = Arc::new(Shared::new(workers, plan.publishers.len(), groups));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let prefix = opts
        .client_prefix
        .clone()
        .unwrap_or_else(|| format!("lg{:x}{:05x}-", std::process::id(), nanos & 0xfffff));
    let publishers = plan.publishers.len() as u32;
    // Publisher ids on the wire start at a per-run base, so a lagging broker's
    // backlog from an earlier run is recognised and ignored.
    let id_base = (nanos ^ std::process::id().rotate_left(16)).wrapping_mul(2_654_435_761)
        % (u32::MAX - publishers);
    let settings = Arc::new(Settings {
        target: opts.target,
        sources: opts.sources.clone(),
        version: version_of(scenario.protocol),
        qos: qos_of(scenario.qos),
        sub_qos: qos_of(scenario.sub_qos()),
        payload: scenario.payload,
        keepalive: scenario.keepalive,
        inflight: scenario.inflight,
        clean: scenario.clean,
        session_expiry: scenario.session_expiry,
        connect_timeout: opts.connect_timeout,
        client_prefix: prefix,
        connect_rate: scenario.connect_rate.map(|r| r / workers as f64),
        id_base,
        publishers,
    });

    // Subscribers first, so they are in place before anything is published; then
    // held connections, then publishers. Client k goes to worker k % workers.
    let mut per_worker: Vec<Vec<(usize, ClientPlan)>> = (0..workers).map(|_| Vec::new()).collect();
    let all = plan
        .subscribers
        .iter()
        .cloned()
        .map(ClientPlan::Sub)
        .chain(plan.conns.iter().cloned().map(ClientPlan::Conn))
        .chain(plan.publishers.iter().cloned().map(ClientPlan::Pub));
    for (k, c) in all.enumerate() {
        per_worker[k % workers].push((k, c));
    }

    let mut co = Coordinator {
        opts,
        shared: shared.clone(),
        broker_errors: 0,
    };
    if let Some(pid) = opts.broker_pid {
        procstat::sample(Target::Pid(pid)).map_err(|e| {
            RunError::Invalid(format!("--broker-pid {pid}: cannot read /proc/{pid}: {e}"))
        })?;
    }
    let baseline = co.snapshot();
    let began = Instant::now();
    let mut handles = Vec::with_capacity(workers);
    for (i, clients) in per_worker.into_iter().enumerate() {
        match worker::spawn(
            i,
            opts.cores[i],
            opts.io_memory,
            shared.clone(),
            settings.clone(),
            clients,
        ) {
            Ok(h) => handles.push(h),
            Err(e) => {
                shared.control.finish.store(true, Ordering::Release);
                for h in handles {
                    let _ = h.join();
                }
                return Err(RunError::Start(e));
            }
        }
    }
    let finish = |handles: Vec<glommio::ExecutorJoinHandle<WorkerResult>>| -> Result<Vec<WorkerResult>, RunError> {
        shared.control.finish.store(true, Ordering::Release);
        let mut results = Vec::new();
        for h in handles {
            results.push(h.join().map_err(|e| RunError::Start(format!("a worker failed: {e}")))?);
        }
        Ok(results)
    };

    // Connect phase.
    let connect_deadline = began
        + opts.connect_timeout
        + Duration::from_secs(5)
        + scenario.connect_rate.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(total_clients as f64 / r)
        });
    let mut last_tick = baseline;
    let mut next_tick = began + Duration::from_secs(1);
    let mut connect_ticks: Vec<(Snapshot, Snapshot)> = Vec::new();
    loop {
        let ready = shared.sum(|c| &c.ready);
        let failed = shared.sum(|c| &c.connect_failed);
        if ready + failed >= total_clients
            || shared.fatal.load(Ordering::Acquire)
            || Instant::now() >= connect_deadline
        {
            break;
        }
        if Instant::now() >= next_tick {
            let s = co.snapshot();
            co.progress("connect", began.elapsed().as_secs_f64(), &last_tick, &s);
            connect_ticks.push((last_tick, s));
            last_tick = s;
            next_tick += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let ready = shared.sum(|c| &c.ready);
    let failed = shared.sum(|c| &c.connect_failed);
    let connect_secs = began.elapsed().as_secs_f64();
    if shared.fatal.load(Ordering::Acquire) {
        let failures = shared.failures();
        finish(handles)?;
        return Err(RunError::Refused(
            failures
                .into_iter()
                .next()
                .unwrap_or_else(|| "the broker refused a subscription".into()),
        ));
    }
    let pubsub = !plan.publishers.is_empty() || !plan.subscribers.is_empty();
    if ready == 0 || (pubsub && ready < total_clients) {
        let failures = shared.failures();
        finish(handles)?;
        return Err(RunError::Connect {
            failed: total_clients - ready,
            total: total_clients,
            failures: if failures.is_empty() {
                vec![format!(
                    "connections to {} did not complete in time",
                    opts.target
                )]
            } else {
                failures
            },
        });
    }
    let after_connect = co.snapshot();

    // Timeline.
    let start = clock::now_ns() + 10_000_000;
    let warm_end = start + (scenario.warmup * 1e9) as u64;
    let stop = warm_end + (scenario.duration * 1e9) as u64;
    let c = &shared.control;
    c.warm_end_ns.store(warm_end, Ordering::Relaxed);
    c.stop_ns.store(stop, Ordering::Relaxed);
    c.start_ns.store(start, Ordering::Release);

    sleep_until_ns(start);
    let mut prev = co.snapshot();
    let mut ticks: Vec<(Snapshot, Snapshot)> = Vec::new();
    let mut at_warm = (warm_end == start).then_some(prev);
    let mut at_stop = None;
    let mut k: u64 = 1;
    let drain_end = stop + (scenario.drain * 1e9) as u64;
    let expected_now = |s: &Shared| plan.expected(|p| s.published_by(p));
    loop {
        let tick = start + k * 1_000_000_000;
        let mut next = tick;
        if at_warm.is_none() {
            next = next.min(warm_end);
        }
        if at_stop.is_none() {
            next = next.min(stop);
        }
        // In the drain, wake often to notice the end.
        let draining = at_stop.is_some();
        if draining {
            next = next.min(clock::now_ns() + 20_000_000).min(drain_end);
        }
        sleep_until_ns(next);
        let now = clock::now_ns();
        if at_warm.is_none() && now >= warm_end {
            at_warm = Some(co.snapshot());
        }
        if at_stop.is_none() && now >= stop {
            at_stop = Some(co.snapshot());
        }
        if now >= tick {
            let s = co.snapshot();
            let phase = phase_of(start + (k - 1) * 1_000_000_000, warm_end, stop);
            co.progress(phase, (s.ns - start) as f64 / 1e9, &prev, &s);
            ticks.push((prev, s));
            prev = s;
            k += 1;
        }
        if draining {
            let done = shared.sum(|c| &c.pubs_done) >= pubs_total
                && shared.sum(|c| &c.delivered) >= expected_now(&shared);
            if done || now >= drain_end {
                break;
            }
        }
    }
    let end = co.snapshot();
    if end.ns > prev.ns + 100_000_000 {
        ticks.push((prev, end));
    }
    let results = finish(handles)?;
    let at_warm = at_warm.unwrap_or(after_connect);
    let at_stop = at_stop.unwrap_or(end);

    // Merge.
    let mut tally = Tally::default();
    let mut latency = total_histogram();
    let mut per_second: Vec<Histogram<u64>> = Vec::new();
    for r in &results {
        tally.merge(&r.tally);
        let _ = latency.add(&r.latency);
        for (i, h) in r.latency_per_second.iter().enumerate() {
            if per_second.len() <= i {
                per_second.resize_with(i + 1, second_histogram);
            }
            let _ = per_second[i].add(h);
        }
    }
    for g in shared.groups.iter() {
        tally.merge(&g.settle(|p| shared.published_by(p)));
    }
    let published_total: u64 = (0..plan.publishers.len() as u32)
        .map(|p| shared.published_by(p))
        .sum();
    let expected = expected_now(&shared);

    let measured_secs = (at_stop.ns.saturating_sub(at_warm.ns)) as f64 / 1e9;
    let window_delivered = at_stop.delivered.saturating_sub(at_warm.delivered);
    let window_published = at_stop.published.saturating_sub(at_warm.published);
    let per_msg_base = if window_delivered > 0 {
        window_delivered
    } else {
        window_published
    };
    let us_per_msg = |a: Duration, b: Duration| {
        (per_msg_base > 0).then(|| b.saturating_sub(a).as_secs_f64() * 1e6 / per_msg_base as f64)
    };
    let broker_window = at_warm.broker.zip(at_stop.broker);
    let began_ns = baseline.ns;
    let connecting = connect_ticks.len();
    let timeline: Vec<Point> = connect_ticks
        .iter()
        .chain(&ticks)
        .enumerate()
        .map(|(i, (a, b))| {
            let dt = (b.ns.saturating_sub(a.ns)) as f64 / 1e9;
            let lat = i
                .checked_sub(connecting)
                .and_then(|k| per_second.get(k))
                .filter(|h| !h.is_empty());
            let phase = if i < connecting {
                "connect"
            } else {
                phase_of(a.ns, warm_end, stop)
            };
            Point {
                t: (b.ns.saturating_sub(began_ns)) as f64 / 1e9,
                phase: phase.to_string(),
                published_per_sec: (b.published - a.published) as f64 / dt,
                delivered_per_sec: (b.delivered - a.delivered) as f64 / dt,
                connections: b.open,
                errors: b.errors,
                p50_us: lat.map(|h| h.value_at_quantile(0.5)),
                p90_us: lat.map(|h| h.value_at_quantile(0.9)),
                p99_us: lat.map(|h| h.value_at_quantile(0.99)),
                max_us: lat.map(|h| h.max()),
                broker_cpu_percent: a
                    .broker
                    .zip(b.broker)
                    .map(|(x, y)| cpu_share(x.cpu, y.cpu, dt) * 100.0),
                broker_rss_bytes: b.broker.map(|s| s.rss_bytes),
                loadgen_cpu_percent: cpu_share(a.me.cpu, b.me.cpu, dt) * 100.0,
            }
        })
        .collect();
    let broker_peak = [baseline, after_connect, at_warm, at_stop, end]
        .iter()
        .filter_map(|s| s.broker.map(|b| b.rss_bytes))
        .chain(timeline.iter().filter_map(|p| p.broker_rss_bytes))
        .max();
    let connections = ready;
    let broker_per_conn = baseline
        .broker
        .zip(after_connect.broker)
        .map(|(a, b)| (b.rss_bytes as f64 - a.rss_bytes as f64) / connections.max(1) as f64);

    let mut report = Report {
        tool: format!("ringmq-loadgen {}", env!("CARGO_PKG_VERSION")),
        scenario: scenario.clone(),
        target: opts.target.to_string(),
        broker: opts.broker_label.clone(),
        cores: opts.cores.clone(),
        clients: total_clients,
        connections,
        connect_failed: failed,
        connect_secs,
        connect_rate: if connect_secs > 0.0 {
            connections as f64 / connect_secs
        } else {
            0.0
        },
        start_secs: (start.saturating_sub(began_ns)) as f64 / 1e9,
        measured_secs,
        published: published_total,
        published_per_sec: window_published as f64 / measured_secs.max(1e-9),
        expected,
        delivered: tally.delivered,
        delivered_per_sec: window_delivered as f64 / measured_secs.max(1e-9),
        lost: tally.lost,
        duplicates: tally.duplicates,
        reordered: tally.reordered,
        gaps: tally.gaps,
        late: tally.late,
        unexpected: tally.unexpected,
        untracked: tally.untracked,
        foreign: tally.foreign,
        errors: end.errors.saturating_sub(failed),
        failures: shared.failures(),
        latency_us: Latency::of(&latency),
        broker_pid: opts.broker_pid,
        broker_cpu_us_per_msg: broker_window.and_then(|(a, b)| us_per_msg(a.cpu, b.cpu)),
        broker_cpu_percent: broker_window
            .map(|(a, b)| cpu_share(a.cpu, b.cpu, measured_secs) * 100.0),
        broker_rss_bytes: broker_peak,
        broker_rss_per_conn_bytes: broker_per_conn,
        loadgen_cpu_us_per_msg: us_per_msg(at_warm.me.cpu, at_stop.me.cpu),
        loadgen_cpu_percent: cpu_share(at_warm.me.cpu, at_stop.me.cpu, measured_secs) * 100.0,
        loadgen_rss_bytes: end.me.rss_bytes,
        timeline,
        violations: Vec::new(),
        warnings: Vec::new(),
        ok: true,
    };
    if co.broker_errors > 0 {
        report.warnings.push(format!(
            "could not read /proc of the broker {} times (did it exit?)",
            co.broker_errors
        ));
    }
    let deaf = plan.deaf_subscribers();
    if deaf > 0 {
        report.warnings.push(format!(
            "{deaf} subscribers' filters match no publisher's topic"
        ));
    }
    report.judge(!plan.groups.is_empty());
    Ok(report)
}

fn phase_of(t: u64, warm_end: u64, stop: u64) -> &'static str {
    if t < warm_end {
        "warmup"
    } else if t < stop {
        "measure"
    } else {
        "drain"
    }
}
