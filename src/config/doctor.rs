//! `ringmq doctor`: what this host allows (kernel, io_uring, resource limits,
//! sysctls, CPUs, NIC interrupts) against what a configuration asks for. Gathering
//! the [`Facts`] reads `/proc`, `/sys` and `getrlimit`; the judgement, [`judge`], is a
//! pure function of the facts and the [`Plan`], so it is tested with made-up hosts.

use std::fmt::{self, Write as _};
use std::fs;

use super::units::{approx_size, format_size};
use super::{format_cpu_list, parse_cpu_list, Config};

/// Oldest kernel glommio runs on.
pub const MIN_KERNEL: (u32, u32) = (5, 8);

/// Descriptors a broker needs besides one per connection: listeners, io_uring
/// rings, eventfds and the mesh, per shard, plus the process's own.
const FDS_PER_SHARD: u64 = 16;
const FDS_BASE: u64 = 64;

/// TCP buffer memory to budget per connection: one page each way for a small
/// message in flight. Idle MQTT connections hold none; this is the floor for a
/// host where every connection is active at once (the arithmetic of
/// tuning/sysctl.d/90-ringmq.conf).
const TCP_BYTES_PER_CONNECTION: u64 = 2 * 4096;

/// Connection targets from which per-socket buffer sizes are worth a note, and the
/// default socket buffer size recommended for them.
const MANY_CONNECTIONS: u64 = 100_000;
const SMALL_SOCKET_BUFFER: u64 = 16 * 1024;

/// A resource limit: soft (in force) and hard (the most it can be raised to
/// without CAP_SYS_RESOURCE). `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// How creating an io_uring went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Ok,
    /// `io_uring_setup` failed with this errno.
    Failed(i32),
}

/// A NIC interrupt and the CPUs it may be delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicIrq {
    pub irq: u32,
    /// The interface it serves and the interrupt's name (e.g. `eth0: virtio2-input.0`).
    pub name: String,
    pub cpus: Vec<usize>,
}

/// What the host allows. `None`: could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// `uname -r`.
    pub kernel: Option<String>,
    /// `kernel.io_uring_disabled` (0 enabled, 1 only for the io_uring group, 2 off);
    /// absent on kernels before 6.6.
    pub io_uring_disabled: Option<u32>,
    pub io_uring_probe: Option<Probe>,
    pub nofile: Option<Rlimit>,
    pub memlock: Option<Rlimit>,
    /// Effective capabilities (bit mask, `CapEff` in /proc/self/status).
    pub capabilities: Option<u64>,
    pub somaxconn: Option<u64>,
    pub tcp_max_syn_backlog: Option<u64>,
    pub ip_local_port_range: Option<(u64, u64)>,
    pub file_max: Option<u64>,
    pub nr_open: Option<u64>,
    /// `fs.epoll.max_user_watches`: sockets one user may have in epoll sets.
    pub epoll_watches: Option<u64>,
    /// `net.ipv4.tcp_mem` in pages: low, pressure, high.
    pub tcp_mem: Option<[u64; 3]>,
    /// `net.ipv4.tcp_rmem` / `tcp_wmem` in bytes: min, default, max.
    pub tcp_rmem: Option<[u64; 3]>,
    pub tcp_wmem: Option<[u64; 3]>,
    pub page_size: u64,
    /// MemTotal in bytes.
    pub mem_total: Option<u64>,
    /// CPUs online on the host.
    pub online_cpus: Option<Vec<usize>>,
    /// CPUs this process may run on.
    pub allowed_cpus: Vec<usize>,
    /// For each allowed CPU, its SMT siblings (itself included).
    pub smt_siblings: Vec<(usize, Vec<usize>)>,
    /// Interrupts of physical network interfaces; `None` if none could be found.
    pub nic_irqs: Option<Vec<NicIrq>>,
}

/// Linux capability numbers used here.
pub const CAP_IPC_LOCK: u32 = 14;
pub const CAP_SYS_RESOURCE: u32 = 24;

impl Facts {
    fn has_capability(&self, cap: u32) -> Option<bool> {
        self.capabilities.map(|c| c & (1 << cap) != 0)
    }
}

/// What a configuration asks of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub cores: Vec<usize>,
    pub max_connections_per_shard: u64,
    pub io_memory: u64,
    pub backlog: u32,
    /// Idle connections are parked in epoll sets (`runtime.park_after` > 0).
    pub parks: bool,
}

impl Plan {
    pub fn from_config(config: &Config) -> Plan {
        Plan {
            cores: config.cores.clone(),
            max_connections_per_shard: config.limits.max_connections_per_shard as u64,
            io_memory: config.io_memory as u64,
            parks: !config.park_after.is_zero(),
            backlog: config
                .listeners
                .iter()
                .map(|l| l.backlog)
                .max()
                .unwrap_or(0),
        }
    }

    fn shards(&self) -> u64 {
        self.cores.len() as u64
    }

    /// Connections the configuration allows in total.
    pub fn connections(&self) -> u64 {
        self.max_connections_per_shard.saturating_mul(self.shards())
    }

    /// Descriptors the broker needs at its connection limit.
    pub fn descriptors(&self) -> u64 {
        self.connections()
            .saturating_add(FDS_BASE)
            .saturating_add(FDS_PER_SHARD * self.shards())
    }
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Fine for this configuration.
    Ok,
    /// Worth knowing; nothing needs to change.
    Note,
    /// Should change before production use.
    Change,
}

/// One check's outcome: what was found and, when something should change, how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub summary: String,
    pub advice: Vec<String>,
}

impl Finding {
    fn new(check: &'static str, status: Status, summary: String) -> Finding {
        Finding {
            check,
            status,
            summary,
            advice: Vec::new(),
        }
    }

    fn advise(mut self, advice: impl Into<String>) -> Finding {
        self.advice.push(advice.into());
        self
    }
}

/// The report: every finding, and whether anything should change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// True if some finding says to change something.
    pub fn needs_change(&self) -> bool {
        self.findings.iter().any(|f| f.status == Status::Change)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            let tag = match finding.status {
                Status::Ok => "OK",
                Status::Note => "NOTE",
                Status::Change => "CHANGE",
            };
            writeln!(f, "{tag:<7}{}: {}", finding.check, finding.summary)?;
            for advice in &finding.advice {
                writeln!(f, "{:7}-> {advice}", "")?;
            }
        }
        let changes = self
            .findings
            .iter()
            .filter(|f| f.status == Status::Change)
            .count();
        if changes == 0 {
            write!(f, "\nnothing needs to change for this configuration")
        } else {
            write!(
                f,
                "\n{changes} setting{} should change before this host runs this configuration (see tuning/)",
                if changes == 1 { "" } else { "s" }
            )
        }
    }
}

fn limit_str(v: Option<u64>) -> String {
    v.map_or("unlimited".to_string(), |v| v.to_string())
}

/// Judges the facts against the plan, one finding per check, in a fixed order.
pub fn judge(facts: &Facts, plan: &Plan) -> Report {
    let findings = vec![
        kernel(facts),
        io_uring(facts),
        nofile(facts, plan),
        nr_open(facts, plan),
        file_max(facts, plan),
        epoll_watches(facts, plan),
        memlock(facts, plan),
        somaxconn(facts, plan),
        syn_backlog(facts, plan),
        port_range(facts),
        tcp_mem(facts, plan),
        tcp_buffers(facts, plan),
        cpus(facts, plan),
        nic_irqs(facts, plan),
    ];
    Report { findings }
}

/// `major.minor` from a release string such as `6.1.0-18-amd64`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn kernel(facts: &Facts) -> Finding {
    const CHECK: &str = "kernel";
    let Some(release) = &facts.kernel else {
        return Finding::new(
            CHECK,
            Status::Note,
            "could not read the kernel release".into(),
        );
    };
    match kernel_version(release) {
        Some(v) if v >= MIN_KERNEL => Finding::new(CHECK, Status::Ok, format!("Linux {release}")),
        Some(_) => Finding::new(
            CHECK,
            Status::Change,
            format!(
                "Linux {release} is older than {}.{}, which glommio's io_uring use needs",
                MIN_KERNEL.0, MIN_KERNEL.1
            ),
        )
        .advise("run ringmq on a newer kernel (5.8 or later; 6.x recommended)"),
        None => Finding::new(
            CHECK,
            Status::Note,
            format!("cannot tell the version of kernel '{release}'"),
        ),
    }
}

fn io_uring(facts: &Facts) -> Finding {
    const CHECK: &str = "io_uring";
    let sysctl = match facts.io_uring_disabled {
        Some(v) => format!("kernel.io_uring_disabled = {v}"),
        None => "kernel.io_uring_disabled not present".to_string(),
    };
    match &facts.io_uring_probe {
        Some(Probe::Ok) => Finding::new(
            CHECK,
            Status::Ok,
            format!("a ring can be created ({sysctl})"),
        ),
        Some(Probe::Failed(errno)) => {
            let why = match *errno {
                libc::ENOSYS => "the kernel has no io_uring (ENOSYS)".to_string(),
                libc::EPERM | libc::EACCES => {
                    format!("io_uring is not permitted (errno {errno}; {sysctl}, or a seccomp filter such as a container's)")
                }
                libc::ENOMEM => "not enough locked memory for a ring (ENOMEM)".to_string(),
                e => format!("io_uring_setup failed with errno {e}"),
            };
            let finding = Finding::new(CHECK, Status::Change, format!("ringmq cannot run: {why}"));
            if facts.io_uring_disabled.is_some_and(|v| v > 0) {
                finding
                    .advise("sysctl -w kernel.io_uring_disabled=0 (and set it in /etc/sysctl.d/)")
            } else {
                finding.advise("allow io_uring: a kernel built with CONFIG_IO_URING, and in containers a seccomp profile that permits io_uring_setup/enter/register")
            }
        }
        None => Finding::new(CHECK, Status::Note, format!("not probed ({sysctl})")),
    }
}

fn nofile(facts: &Facts, plan: &Plan) -> Finding {
    const CHECK: &str = "open files (RLIMIT_NOFILE)";
    let Some(limit) = facts.nofile else {
        return Finding::new(CHECK, Status::Note, "could not read the limit".into());
    };
    let need = plan.descriptors();
    let target = format!(
        "the configuration allows {} connections (limits.max_connections_per_shard {} x {} shards), which needs about {need} descriptors",
        plan.connections(),
        plan.max_connections_per_shard,
        plan.shards()
    );
    let summary = format!(
        "soft {}, hard {}; {target}",
        limit_str(limit.soft),
        limit_str(limit.hard)
    );
    let hard_ok = limit.hard.map_or(true, |h| h >= need);
    if hard_ok {
        let mut f = Finding::new(CHECK, Status::Ok, summary);
        if limit.soft.is_some_and(|s| s < need) {
            f = f.advise("ringmq raises its soft limit to the hard limit at start");
        }
        return f;
    }
    let hard = limit.hard.unwrap_or(u64::MAX);
    let fits = hard.saturating_sub(FDS_BASE + FDS_PER_SHARD * plan.shards()) / plan.shards().max(1);
    let mut f = Finding::new(CHECK, Status::Change, summary).advise(format!(
        "raise it to at least {need}: LimitNOFILE={need} in the systemd unit (tuning/ringmq.service) or 'nofile' in /etc/security/limits.d/ (tuning/limits.d/ringmq.conf)"
    ));
    if facts.has_capability(CAP_SYS_RESOURCE) == Some(false) {
        f = f.advise(
            "this process lacks CAP_SYS_RESOURCE, so it cannot raise its hard limit itself; set it where the broker is started",
        );
    }
    f.advise(format!(
        "or, if fewer connections are planned, set limits.max_connections_per_shard to at most {fits} so the limit is reached before descriptors run out"
    ))
}

/// A sysctl that must be at least `need`: OK with `enough`, else CHANGE with
/// `short` and the line for tuning/sysctl.d/.
fn sysctl_at_least(
    check: &'static str,
    value: Option<u64>,
    need: u64,
    enough: impl FnOnce(u64) -> String,
    short: impl FnOnce(u64) -> String,
) -> Finding {
    let Some(value) = value else {
        return Finding::new(check, Status::Note, "could not read it".into());
    };
    if value >= need {
        Finding::new(check, Status::Ok, enough(value))
    } else {
        Finding::new(check, Status::Change, short(value)).advise(format!(
            "{check} = {} in /etc/sysctl.d/90-ringmq.conf (tuning/sysctl.d/)",
            need.next_power_of_two()
        ))
    }
}

fn nr_open(facts: &Facts, plan: &Plan) -> Finding {
    let need = plan.descriptors();
    sysctl_at_least(
        "fs.nr_open",
        facts.nr_open,
        need,
        |v| format!("{v}: the most RLIMIT_NOFILE can be set to, enough for {need}"),
        |v| format!("{v} caps RLIMIT_NOFILE below the {need} descriptors the configuration needs"),
    )
}

fn epoll_watches(facts: &Facts, plan: &Plan) -> Finding {
    const CHECK: &str = "fs.epoll.max_user_watches";
    if !plan.parks {
        return Finding::new(CHECK, Status::Ok, "not used: parking is off".into());
    }
    let need = plan.connections();
    sysctl_at_least(
        CHECK,
        facts.epoll_watches,
        need,
        |v| format!("{v}: room for {need} parked connections"),
        |v| {
            format!("{v}: fewer than the {need} connections that may be parked; a connection that cannot be parked stays served and holds about 1KiB more")
        },
    )
}

fn file_max(facts: &Facts, plan: &Plan) -> Finding {
    const CHECK: &str = "fs.file-max";
    let Some(max) = facts.file_max else {
        return Finding::new(CHECK, Status::Note, "could not read it".into());
    };
    // The whole host shares it: leave room for everything else.
    let need = plan.descriptors().saturating_add(65_536);
    if max >= need {
        Finding::new(
            CHECK,
            Status::Ok,
            format!("{max} open files system-wide, enough for {need}"),
        )
    } else {
        Finding::new(
            CHECK,
            Status::Change,
            format!(
                "{max} open files system-wide; the broker alone may need {}",
                plan.descriptors()
            ),
        )
        .advise(format!(
            "fs.file-max = {} in /etc/sysctl.d/90-ringmq.conf",
            need.next_power_of_two()
        ))
    }
}

fn memlock(facts: &Facts, plan: &Plan) -> Finding {
    const CHECK: &str = "locked memory (RLIMIT_MEMLOCK)";
    let Some(limit) = facts.memlock else {
        return Finding::new(CHECK, Status::Note, "could not read the limit".into());
    };
    let need = plan.io_memory.saturating_mul(plan.shards());
    let ipc_lock = facts.has_capability(CAP_IPC_LOCK) == Some(true);
    let summary = format!(
        "soft {}, hard {}; io_uring buffers need {} (runtime.io_memory {} x {} shards)",
        limit.soft.map_or("unlimited".into(), format_size),
        limit.hard.map_or("unlimited".into(), format_size),
        format_size(need),
        format_size(plan.io_memory),
        plan.shards()
    );
    if limit.soft.map_or(true, |s| s >= need) {
        let f = Finding::new(CHECK, Status::Ok, summary);
        return if ipc_lock {
            f.advise("this process also has CAP_IPC_LOCK, which exempts it; a service user without it needs the limit")
        } else {
            f
        };
    }
    if ipc_lock {
        return Finding::new(CHECK, Status::Note, summary).advise(
            "this process has CAP_IPC_LOCK, so io_uring does not charge the limit; a service user without it needs LimitMEMLOCK raised",
        );
    }
    Finding::new(CHECK, Status::Change, summary)
        .advise(format!(
            "raise it to at least {}: LimitMEMLOCK= in the systemd unit or 'memlock' in /etc/security/limits.d/",
            format_size(need.next_power_of_two())
        ))
        .advise("or lower runtime.io_memory or the number of shards")
}

fn somaxconn(facts: &Facts, plan: &Plan) -> Finding {
    at_least_backlog(
        "net.core.somaxconn",
        facts.somaxconn,
        plan,
        "the kernel cuts the listener backlog ({}) down to it, so a reconnect storm overflows the accept queue",
        ", or lower listener.backlog",
    )
}

fn syn_backlog(facts: &Facts, plan: &Plan) -> Finding {
    at_least_backlog(
        "net.ipv4.tcp_max_syn_backlog",
        facts.tcp_max_syn_backlog,
        plan,
        "fewer half-open connections than the listener backlog ({}); SYNs past it are dropped or answered with cookies",
        "",
    )
}

/// A sysctl that should be at least the listener backlog. `why` has one `{}` for
/// the backlog; `or` is appended to the advice.
fn at_least_backlog(
    check: &'static str,
    value: Option<u64>,
    plan: &Plan,
    why: &str,
    or: &str,
) -> Finding {
    let Some(v) = value else {
        return Finding::new(check, Status::Note, "could not read it".into());
    };
    let backlog = plan.backlog;
    if v >= u64::from(backlog) {
        return Finding::new(
            check,
            Status::Ok,
            format!("{v}, at least the listener backlog ({backlog})"),
        );
    }
    Finding::new(
        check,
        Status::Change,
        format!("{v}: {}", why.replace("{}", &backlog.to_string())),
    )
    .advise(format!(
        "{check} = {backlog} in /etc/sysctl.d/90-ringmq.conf{or}"
    ))
}

fn port_range(facts: &Facts) -> Finding {
    const CHECK: &str = "net.ipv4.ip_local_port_range";
    let Some((low, high)) = facts.ip_local_port_range else {
        return Finding::new(CHECK, Status::Note, "could not read it".into());
    };
    let ports = high.saturating_sub(low) + 1;
    let summary = format!("{low}-{high} ({ports} ports)");
    // Clients connecting to the broker use none of these; bridges and a load
    // generator on this host use one per outgoing connection to each address.
    if ports >= 28_000 {
        Finding::new(
            CHECK,
            Status::Ok,
            format!("{summary}: inbound connections use none; enough for bridges"),
        )
    } else {
        Finding::new(
            CHECK,
            Status::Note,
            format!("{summary}: limits outgoing connections (bridges, a load generator on this host) to {ports} per destination"),
        )
        .advise("net.ipv4.ip_local_port_range = 1024 65535 if this host opens many outgoing connections")
    }
}

fn tcp_mem(facts: &Facts, plan: &Plan) -> Finding {
    const CHECK: &str = "net.ipv4.tcp_mem";
    let Some([_, pressure, high]) = facts.tcp_mem else {
        return Finding::new(CHECK, Status::Note, "could not read it".into());
    };
    let page = facts.page_size.max(1);
    let need = plan.connections().saturating_mul(TCP_BYTES_PER_CONNECTION);
    let summary = format!(
        "pressure at {}, hard limit {} of TCP buffers for all sockets; {} connections with a page in flight each way need {}",
        approx_size(pressure * page),
        approx_size(high * page),
        plan.connections(),
        approx_size(need)
    );
    if high.saturating_mul(page) >= need {
        return Finding::new(CHECK, Status::Ok, summary);
    }
    let pages = need.div_ceil(page);
    let mut f = Finding::new(CHECK, Status::Change, summary).advise(format!(
        "net.ipv4.tcp_mem = {} {} {} (pages) in /etc/sysctl.d/90-ringmq.conf",
        pages / 2,
        pages * 3 / 4,
        pages
    ));
    if let Some(total) = facts.mem_total {
        if need > total / 2 {
            f = f.advise(format!(
                "that is more than half of this host's {} of memory: lower limits.max_connections_per_shard instead",
                approx_size(total)
            ));
        }
    }
    f
}

fn tcp_buffers(facts: &Facts, plan: &Plan) -> Finding {
    const CHECK: &str = "tcp_rmem / tcp_wmem";
    let (Some(r), Some(w)) = (facts.tcp_rmem, facts.tcp_wmem) else {
        return Finding::new(CHECK, Status::Note, "could not read them".into());
    };
    let summary = format!(
        "default buffers {} receive, {} send per socket",
        format_size(r[1]),
        format_size(w[1])
    );
    let all = plan.connections().saturating_mul(r[1] + w[1]);
    if plan.connections() >= MANY_CONNECTIONS && r[1].max(w[1]) > SMALL_SOCKET_BUFFER {
        Finding::new(
            CHECK,
            Status::Note,
            format!(
                "{summary}: {} connections filling them would take {}; idle MQTT connections hold no buffers, so this only matters under load",
                plan.connections(),
                approx_size(all)
            ),
        )
        .advise("for millions of connections, net.ipv4.tcp_rmem = 4096 16384 4194304 and net.ipv4.tcp_wmem = 4096 16384 4194304 keep each socket's share small while autotuning still grows busy ones")
    } else {
        Finding::new(CHECK, Status::Ok, summary)
    }
}

fn cpus(facts: &Facts, plan: &Plan) -> Finding {
    const CHECK: &str = "CPUs";
    let outside: Vec<usize> = plan
        .cores
        .iter()
        .copied()
        .filter(|c| !facts.allowed_cpus.contains(c))
        .collect();
    let online = facts.online_cpus.as_ref().map_or("?".to_string(), |c| {
        format!("{} ({})", c.len(), format_cpu_list(c))
    });
    let summary = format!(
        "{} shards on CPUs {}; online {online}, affinity mask {}",
        plan.cores.len(),
        format_cpu_list(&plan.cores),
        format_cpu_list(&facts.allowed_cpus)
    );
    if !outside.is_empty() {
        return Finding::new(CHECK, Status::Change, summary).advise(format!(
            "runtime.cores names CPUs {} that this process may not run on: pick from {}, or widen the mask (taskset, CPUAffinity= in the unit)",
            format_cpu_list(&outside),
            format_cpu_list(&facts.allowed_cpus)
        ));
    }
    let mut f = Finding::new(CHECK, Status::Ok, summary);
    let shared: Vec<String> = facts
        .smt_siblings
        .iter()
        .filter(|(cpu, _)| plan.cores.contains(cpu))
        .filter_map(|(cpu, siblings)| {
            let other: Vec<usize> = siblings
                .iter()
                .copied()
                .filter(|s| s > cpu && plan.cores.contains(s))
                .collect();
            (!other.is_empty()).then(|| format!("{cpu}+{}", format_cpu_list(&other)))
        })
        .collect();
    if !shared.is_empty() {
        f.status = Status::Note;
        f = f.advise(format!(
            "shards on SMT siblings share a physical core ({}): for throughput per shard, one shard per physical core is better",
            shared.join(", ")
        ));
    }
    let free = facts
        .allowed_cpus
        .iter()
        .filter(|c| !plan.cores.contains(c))
        .count();
    if free == 0 && facts.allowed_cpus.len() >= 8 {
        f.status = Status::Note;
        f = f.advise("every CPU runs a shard: on a many-core host leave one or two per NUMA node for NIC interrupts and the OS (tuning/profiles/many-core.toml)");
    }
    f
}

fn nic_irqs(facts: &Facts, plan: &Plan) -> Finding {
    const CHECK: &str = "NIC interrupts";
    let Some(irqs) = facts.nic_irqs.as_ref().filter(|i| !i.is_empty()) else {
        return Finding::new(
            CHECK,
            Status::Note,
            "could not find the network interfaces' interrupts in /proc/interrupts".into(),
        );
    };
    let on_shards: Vec<&NicIrq> = irqs
        .iter()
        .filter(|i| i.cpus.iter().any(|c| plan.cores.contains(c)))
        .collect();
    if on_shards.is_empty() {
        return Finding::new(
            CHECK,
            Status::Ok,
            format!("all {} go to CPUs without a shard", irqs.len()),
        );
    }
    let list = on_shards
        .iter()
        .map(|i| format!("{} ({}) -> {}", i.irq, i.name, format_cpu_list(&i.cpus)))
        .collect::<Vec<_>>()
        .join(", ");
    let free: Vec<usize> = facts
        .allowed_cpus
        .iter()
        .chain(facts.online_cpus.iter().flatten())
        .copied()
        .filter(|c| !plan.cores.contains(c))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if free.is_empty() {
        return Finding::new(
            CHECK,
            Status::Note,
            format!("{} of {} land on shard cores, since every CPU runs a shard: {list}", on_shards.len(), irqs.len()),
        )
        .advise("fine on a small host; on a larger one leave CPUs free of shards and steer interrupts there (tuning/README.md)");
    }
    Finding::new(
        CHECK,
        Status::Change,
        format!("{} of {} land on shard cores: {list}", on_shards.len(), irqs.len()),
    )
    .advise(format!(
        "steer them to the free CPUs {}: echo {} > /proc/irq/N/smp_affinity_list, and IRQBALANCE_BANNED_CPULIST={} for irqbalance (tuning/README.md)",
        format_cpu_list(&free),
        format_cpu_list(&free),
        format_cpu_list(&plan.cores)
    ))
}

/// Reads the facts of this host. Nothing here fails: what cannot be read is `None`.
pub fn gather() -> Facts {
    let allowed_cpus = super::allowed_cpus();
    let smt_siblings = allowed_cpus
        .iter()
        .filter_map(|&cpu| {
            let path = format!("/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list");
            let list = parse_cpu_list(fs::read_to_string(path).ok()?.trim()).ok()?;
            Some((cpu, list))
        })
        .collect();
    Facts {
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        io_uring_disabled: read_numbers("/proc/sys/kernel/io_uring_disabled")
            .and_then(|v| v.first().map(|&v| v as u32)),
        io_uring_probe: Some(probe_io_uring()),
        nofile: rlimit(libc::RLIMIT_NOFILE),
        memlock: rlimit(libc::RLIMIT_MEMLOCK),
        capabilities: read_trimmed("/proc/self/status").and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
        }),
        somaxconn: sysctl_one("net/core/somaxconn"),
        tcp_max_syn_backlog: sysctl_one("net/ipv4/tcp_max_syn_backlog"),
        ip_local_port_range: read_numbers("/proc/sys/net/ipv4/ip_local_port_range")
            .and_then(|v| Some((*v.first()?, *v.get(1)?))),
        file_max: sysctl_one("fs/file-max"),
        nr_open: sysctl_one("fs/nr_open"),
        epoll_watches: sysctl_one("fs/epoll/max_user_watches"),
        tcp_mem: sysctl_three("net/ipv4/tcp_mem"),
        tcp_rmem: sysctl_three("net/ipv4/tcp_rmem"),
        tcp_wmem: sysctl_three("net/ipv4/tcp_wmem"),
        // SAFETY: sysconf has no preconditions.
        page_size: u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096),
        mem_total: read_trimmed("/proc/meminfo").and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        }),
        online_cpus: read_trimmed("/sys/devices/system/cpu/online")
            .and_then(|s| parse_cpu_list(&s).ok()),
        allowed_cpus,
        smt_siblings,
        nic_irqs: nic_irqs_of_host(),
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn read_numbers(path: &str) -> Option<Vec<u64>> {
    let s = fs::read_to_string(path).ok()?;
    s.split_whitespace().map(|n| n.parse().ok()).collect()
}

fn sysctl_one(name: &str) -> Option<u64> {
    read_numbers(&format!("/proc/sys/{name}")).and_then(|v| v.first().copied())
}

fn sysctl_three(name: &str) -> Option<[u64; 3]> {
    let v = read_numbers(&format!("/proc/sys/{name}"))?;
    Some([*v.first()?, *v.get(1)?, *v.get(2)?])
}

fn rlimit(resource: libc::__rlimit_resource_t) -> Option<Rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 {
        return None;
    }
    let value = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Some(Rlimit {
        soft: value(r.rlim_cur),
        hard: value(r.rlim_max),
    })
}

/// Creates and closes a one-entry io_uring, as glommio will at start.
fn probe_io_uring() -> Probe {
    // struct io_uring_params is 120 bytes; the kernel fills everything but the flags.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes exactly one io_uring_params, which
    // `params` is large enough and zeroed to be.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Probe::Failed(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: `fd` is the ring descriptor just returned to us and not used again.
    unsafe { libc::close(fd as i32) };
    Probe::Ok
}

/// The interrupts of each physical network interface (one with a `device` in
/// /sys/class/net), found by its device's MSI vectors or by name in
/// /proc/interrupts, with the CPUs each may be delivered to.
fn nic_irqs_of_host() -> Option<Vec<NicIrq>> {
    let interrupts = fs::read_to_string("/proc/interrupts").ok()?;
    let names: Vec<(u32, String)> = interrupts
        .lines()
        .filter_map(|line| {
            let (irq, rest) = line.trim_start().split_once(':')?;
            let irq: u32 = irq.parse().ok()?;
            Some((irq, rest.split_whitespace().last()?.to_string()))
        })
        .collect();
    let mut found = Vec::new();
    for entry in fs::read_dir("/sys/class/net").ok()?.flatten() {
        let iface = entry.file_name().to_string_lossy().to_string();
        let Ok(device) = fs::canonicalize(entry.path().join("device")) else {
            continue;
        };
        // A virtio NIC's vectors belong to its parent PCI function.
        let msi: Vec<u32> = [device.clone(), device.join("..")]
            .iter()
            .filter_map(|d| fs::read_dir(d.join("msi_irqs")).ok())
            .flat_map(|dir| {
                dir.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
            })
            .collect();
        let device_name = device
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for (irq, name) in &names {
            let by_name = name.contains(&iface)
                || (device_name.starts_with("virtio")
                    && name.starts_with(&format!("{device_name}-")));
            if (msi.contains(irq) || by_name) && !name.ends_with("-config") {
                let cpus = ["effective_affinity_list", "smp_affinity_list"]
                    .iter()
                    .find_map(|f| {
                        let s = fs::read_to_string(format!("/proc/irq/{irq}/{f}")).ok()?;
                        parse_cpu_list(s.trim()).ok()
                    })
                    .unwrap_or_default();
                found.push(NicIrq {
                    irq: *irq,
                    name: format!("{iface}: {name}"),
                    cpus,
                });
            }
        }
    }
    Some(found)
}

/// The report for this host and configuration, with a header saying what it was
/// judged against.
pub fn run(config: &Config, source: &str) -> (String, Report) {
    let plan = Plan::from_config(config);
    let report = judge(&gather(), &plan);
    let mut header = String::new();
    let _ = writeln!(
        header,
        "ringmq doctor: this host against {source}: {} shards on CPUs {}, up to {} connections, io_memory {} per shard, listen backlog {}\n",
        plan.cores.len(),
        format_cpu_list(&plan.cores),
        plan.connections(),
        format_size(plan.io_memory),
        plan.backlog
    );
    (header, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    /// A 16-CPU host tuned as tuning/ recommends.
    fn tuned_host() -> Facts {
        Facts {
            kernel: Some("6.1.0-18-amd64".into()),
            io_uring_disabled: Some(0),
            io_uring_probe: Some(Probe::Ok),
            nofile: Some(Rlimit {
                soft: Some(1024),
                hard: Some(4_194_304),
            }),
            memlock: Some(Rlimit {
                soft: None,
                hard: None,
            }),
            capabilities: Some(0),
            somaxconn: Some(65_535),
            tcp_max_syn_backlog: Some(65_535),
            ip_local_port_range: Some((1024, 65_535)),
            file_max: Some(8_388_608),
            nr_open: Some(8_388_608),
            epoll_watches: Some(8_388_608),
            tcp_mem: Some([1_048_576, 2_097_152, 4_194_304]),
            tcp_rmem: Some([4096, 16_384, 4_194_304]),
            tcp_wmem: Some([4096, 16_384, 4_194_304]),
            page_size: 4096,
            mem_total: Some(128 * GIB),
            online_cpus: Some((0..16).collect()),
            allowed_cpus: (0..16).collect(),
            smt_siblings: (0..16).map(|c| (c, vec![c])).collect(),
            nic_irqs: Some(vec![
                NicIrq {
                    irq: 40,
                    name: "eth0: eth0-TxRx-0".into(),
                    cpus: vec![0],
                },
                NicIrq {
                    irq: 41,
                    name: "eth0: eth0-TxRx-1".into(),
                    cpus: vec![1],
                },
            ]),
        }
    }

    /// 14 shards on CPUs 2-15, a million connections in all.
    fn plan() -> Plan {
        Plan {
            cores: (2..16).collect(),
            max_connections_per_shard: 1_000_000 / 14,
            io_memory: 4 << 20,
            backlog: 4096,
            parks: true,
        }
    }

    fn finding<'a>(report: &'a Report, check: &str) -> &'a Finding {
        report
            .findings
            .iter()
            .find(|f| f.check.starts_with(check))
            .unwrap_or_else(|| panic!("no {check} finding in\n{report}"))
    }

    /// Judges `facts`, expects exactly `check` to ask for a change, and returns it.
    fn only_change(facts: &Facts, plan: &Plan, check: &str) -> Finding {
        let report = judge(facts, plan);
        let changes: Vec<&str> = report
            .findings
            .iter()
            .filter(|f| f.status == Status::Change)
            .map(|f| f.check)
            .collect();
        assert_eq!(changes.len(), 1, "{report}");
        assert!(changes[0].starts_with(check), "{report}");
        assert!(report.needs_change());
        finding(&report, check).clone()
    }

    #[test]
    fn a_tuned_host_needs_nothing() {
        let report = judge(&tuned_host(), &plan());
        assert!(!report.needs_change(), "{report}");
        assert!(
            report.findings.iter().all(|f| f.status == Status::Ok),
            "{report}"
        );
        assert!(report
            .to_string()
            .ends_with("nothing needs to change for this configuration"));
        // The soft limit is below the target but ringmq raises it to the hard one.
        let nofile = finding(&report, "open files");
        assert!(
            nofile.advice[0].contains("raises its soft limit"),
            "{report}"
        );
    }

    #[test]
    fn too_few_descriptors() {
        let mut facts = tuned_host();
        facts.nofile = Some(Rlimit {
            soft: Some(20_000),
            hard: Some(20_000),
        });
        let f = only_change(&facts, &plan(), "open files");
        assert!(f.summary.contains("soft 20000, hard 20000"), "{f:?}");
        assert!(f.advice[0].contains("LimitNOFILE="), "{f:?}");
        // Root without CAP_SYS_RESOURCE cannot raise its own hard limit: say so.
        assert!(
            f.advice.iter().any(|a| a.contains("CAP_SYS_RESOURCE")),
            "{f:?}"
        );
        // The alternative: a per-shard limit the descriptors cover.
        let fits = (20_000 - FDS_BASE - FDS_PER_SHARD * 14) / 14;
        assert!(
            f.advice
                .last()
                .unwrap()
                .contains(&format!("at most {fits}")),
            "{f:?}"
        );
        facts.capabilities = Some(1 << CAP_SYS_RESOURCE);
        let f = only_change(&facts, &plan(), "open files");
        assert!(
            !f.advice.iter().any(|a| a.contains("CAP_SYS_RESOURCE")),
            "{f:?}"
        );
    }

    #[test]
    fn system_wide_descriptor_caps() {
        let mut facts = tuned_host();
        facts.nr_open = Some(524_288);
        let f = only_change(&facts, &plan(), "fs.nr_open");
        assert!(f.advice[0].contains("fs.nr_open = 1048576"), "{f:?}");
        let mut facts = tuned_host();
        facts.file_max = Some(500_000);
        only_change(&facts, &plan(), "fs.file-max");
    }

    #[test]
    fn epoll_watches_cover_every_connection_that_may_park() {
        let mut facts = tuned_host();
        facts.epoll_watches = Some(100_000);
        let f = only_change(&facts, &plan(), "fs.epoll.max_user_watches");
        assert!(
            f.advice[0].contains("fs.epoll.max_user_watches = 1048576"),
            "{f:?}"
        );
        let report = judge(
            &facts,
            &Plan {
                parks: false,
                ..plan()
            },
        );
        assert_eq!(finding(&report, "fs.epoll").status, Status::Ok);
    }

    #[test]
    fn locked_memory() {
        let mut facts = tuned_host();
        facts.memlock = Some(Rlimit {
            soft: Some(8 << 20),
            hard: Some(8 << 20),
        });
        let f = only_change(&facts, &plan(), "locked memory");
        assert!(f.summary.contains("need 56MiB"), "{f:?}");
        assert!(f.advice[0].contains("64MiB"), "{f:?}");
        // CAP_IPC_LOCK exempts the process: worth a note, not a change.
        facts.capabilities = Some(1 << CAP_IPC_LOCK);
        let report = judge(&facts, &plan());
        assert!(!report.needs_change(), "{report}");
        assert_eq!(finding(&report, "locked memory").status, Status::Note);
        // Enough for two shards of 1MiB.
        let small = Plan {
            cores: vec![0, 1],
            io_memory: 1 << 20,
            ..plan()
        };
        assert_eq!(
            finding(&judge(&facts, &small), "locked memory").status,
            Status::Ok
        );
    }

    #[test]
    fn listen_backlog() {
        let mut facts = tuned_host();
        facts.somaxconn = Some(128);
        let f = only_change(&facts, &plan(), "net.core.somaxconn");
        assert!(f.advice[0].contains("net.core.somaxconn = 4096"), "{f:?}");
        let mut facts = tuned_host();
        facts.tcp_max_syn_backlog = Some(1024);
        only_change(&facts, &plan(), "net.ipv4.tcp_max_syn_backlog");
    }

    #[test]
    fn tcp_memory() {
        let mut facts = tuned_host();
        // 200MiB of TCP buffers for a million connections.
        facts.tcp_mem = Some([25_600, 38_400, 51_200]);
        let f = only_change(&facts, &plan(), "net.ipv4.tcp_mem");
        assert!(f.advice[0].starts_with("net.ipv4.tcp_mem = "), "{f:?}");
        assert_eq!(f.advice.len(), 1, "{f:?}");
        // More than half the host's memory: lower the target instead.
        facts.mem_total = Some(4 * GIB);
        let f = only_change(&facts, &plan(), "net.ipv4.tcp_mem");
        assert!(
            f.advice[1].contains("lower limits.max_connections_per_shard"),
            "{f:?}"
        );
        // Large default buffers: a note for many connections, nothing for few.
        let mut facts = tuned_host();
        facts.tcp_rmem = Some([4096, 131_072, 33_554_432]);
        let report = judge(&facts, &plan());
        assert!(!report.needs_change());
        assert_eq!(finding(&report, "tcp_rmem").status, Status::Note);
        let few = Plan {
            max_connections_per_shard: 1000,
            ..plan()
        };
        assert_eq!(finding(&judge(&facts, &few), "tcp_rmem").status, Status::Ok);
    }

    #[test]
    fn io_uring_and_kernel() {
        let mut facts = tuned_host();
        facts.io_uring_probe = Some(Probe::Failed(libc::EPERM));
        facts.io_uring_disabled = Some(2);
        let f = only_change(&facts, &plan(), "io_uring");
        assert!(f.summary.contains("not permitted"), "{f:?}");
        assert!(f.advice[0].contains("kernel.io_uring_disabled=0"), "{f:?}");
        let mut facts = tuned_host();
        facts.io_uring_probe = Some(Probe::Failed(libc::ENOSYS));
        only_change(&facts, &plan(), "io_uring");
        let mut facts = tuned_host();
        facts.kernel = Some("5.4.0-150-generic".into());
        only_change(&facts, &plan(), "kernel");
        assert_eq!(kernel_version("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(kernel_version("garbage"), None);
    }

    #[test]
    fn cores_outside_the_mask() {
        let mut facts = tuned_host();
        facts.allowed_cpus = (0..8).collect();
        let f = only_change(&facts, &plan(), "CPUs");
        assert!(
            f.advice[0].contains("runtime.cores names CPUs 8-15"),
            "{f:?}"
        );
    }

    #[test]
    fn cpu_layout_notes() {
        // Every CPU of a 16-CPU host runs a shard: leave some for interrupts.
        let all = Plan {
            cores: (0..16).collect(),
            ..plan()
        };
        let report = judge(&tuned_host(), &all);
        assert!(!report.needs_change(), "{report}");
        let cpus = finding(&report, "CPUs");
        assert_eq!(cpus.status, Status::Note);
        assert!(
            cpus.advice.iter().any(|a| a.contains("many-core")),
            "{report}"
        );
        // Interrupts necessarily share shard cores then: a note, not a change.
        assert_eq!(finding(&report, "NIC").status, Status::Note);
        // Two shards on SMT siblings.
        let mut facts = tuned_host();
        facts.smt_siblings = vec![(2, vec![2, 10]), (10, vec![2, 10])];
        let cpus = finding(&judge(&facts, &plan()), "CPUs").clone();
        assert_eq!(cpus.status, Status::Note);
        assert!(cpus.advice[0].contains("2+10"), "{cpus:?}");
    }

    #[test]
    fn nic_interrupts_on_shard_cores() {
        let mut facts = tuned_host();
        facts.nic_irqs.as_mut().unwrap()[1].cpus = vec![0, 5];
        let f = only_change(&facts, &plan(), "NIC");
        assert!(f.summary.contains("41 (eth0: eth0-TxRx-1) -> 0,5"), "{f:?}");
        assert!(f.advice[0].contains("free CPUs 0-1"), "{f:?}");
        assert!(
            f.advice[0].contains("IRQBALANCE_BANNED_CPULIST=2-15"),
            "{f:?}"
        );
        facts.nic_irqs = None;
        let report = judge(&facts, &plan());
        assert_eq!(finding(&report, "NIC").status, Status::Note);
    }

    #[test]
    fn unreadable_facts_are_notes() {
        let facts = Facts {
            allowed_cpus: (0..16).collect(),
            page_size: 4096,
            ..Facts::default()
        };
        let report = judge(&facts, &plan());
        assert!(!report.needs_change(), "{report}");
        assert!(report
            .findings
            .iter()
            .filter(|f| f.check != "CPUs")
            .all(|f| f.status == Status::Note));
    }

    #[test]
    fn report_lists_every_finding_and_the_verdict() {
        let mut facts = tuned_host();
        facts.somaxconn = Some(128);
        let text = judge(&facts, &plan()).to_string();
        assert!(text.contains("\nCHANGE net.core.somaxconn: 128:"), "{text}");
        assert!(
            text.contains("       -> net.core.somaxconn = 4096"),
            "{text}"
        );
        assert!(
            text.starts_with("OK     kernel: Linux 6.1.0-18-amd64"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "1 setting should change before this host runs this configuration (see tuning/)"
            ),
            "{text}"
        );
    }

    /// The shipped sysctl file and unit, on a host shaped as the many-core profile
    /// assumes, leave doctor nothing to change: the guidance and the checks agree.
    #[test]
    fn the_shipped_tuning_satisfies_the_many_core_profile() {
        let sysctl = include_str!("../../tuning/sysctl.d/90-ringmq.conf");
        let value = |key: &str| -> Vec<u64> {
            let line = sysctl
                .lines()
                .find(|l| l.starts_with(&format!("{key} =")))
                .unwrap_or_else(|| panic!("{key} not set"));
            line.split('=')
                .nth(1)
                .unwrap()
                .split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect()
        };
        let three = |key: &str| -> [u64; 3] { value(key).try_into().unwrap() };
        let unit = include_str!("../../tuning/ringmq.service");
        let nofile: u64 = unit
            .lines()
            .find_map(|l| l.strip_prefix("LimitNOFILE="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(unit.lines().any(|l| l == "LimitMEMLOCK=infinity"));
        let limits = include_str!("../../tuning/limits.d/ringmq.conf");
        assert!(limits.contains(&format!("hard  nofile   {nofile}")));

        let profile = include_str!("../../tuning/profiles/many-core.toml");
        let config = super::super::ConfigFile::from_source("many-core.toml", profile)
            .parse()
            .unwrap();
        let free = parse_cpu_list("0-1,16-17,32-33,48-49").unwrap();
        let facts = Facts {
            nofile: Some(Rlimit {
                soft: Some(nofile),
                hard: Some(nofile),
            }),
            memlock: Some(Rlimit {
                soft: None,
                hard: None,
            }),
            somaxconn: Some(value("net.core.somaxconn")[0]),
            tcp_max_syn_backlog: Some(value("net.ipv4.tcp_max_syn_backlog")[0]),
            ip_local_port_range: Some((value("net.ipv4.ip_local_port_range")[0], 65_535)),
            file_max: Some(value("fs.file-max")[0]),
            nr_open: Some(value("fs.nr_open")[0]),
            epoll_watches: Some(value("fs.epoll.max_user_watches")[0]),
            tcp_mem: Some(three("net.ipv4.tcp_mem")),
            tcp_rmem: Some(three("net.ipv4.tcp_rmem")),
            tcp_wmem: Some(three("net.ipv4.tcp_wmem")),
            mem_total: Some(256 * GIB),
            online_cpus: Some((0..64).collect()),
            allowed_cpus: (0..64).collect(),
            smt_siblings: Vec::new(),
            nic_irqs: Some(
                free.iter()
                    .map(|&cpu| NicIrq {
                        irq: 100 + cpu as u32,
                        name: format!("eth0: eth0-TxRx-{cpu}"),
                        cpus: vec![cpu],
                    })
                    .collect(),
            ),
            ..tuned_host()
        };
        let report = judge(&facts, &Plan::from_config(&config));
        assert!(!report.needs_change(), "{report}");
        assert!(
            report.findings.iter().all(|f| f.status == Status::Ok),
            "{report}"
        );
    }

    #[test]
    fn sizes_for_reading() {
        assert_eq!(approx_size(3_999_968 * 1024), "3.8GiB");
        assert_eq!(approx_size(16 << 30), "16GiB");
        assert_eq!(approx_size(700), "700B");
    }

    #[test]
    fn this_host_can_be_read() {
        let facts = gather();
        assert!(!facts.allowed_cpus.is_empty());
        assert!(facts.kernel.is_some());
        assert!(facts.nofile.is_some());
        assert!(facts.page_size >= 4096);
    }
}
