//! Shards: one pinned glommio executor per configured core, each owning its
//! connections, sessions, subscription trie and retained replica outright.
//!
//! # Where a session lives
//!
//! A client id has exactly one owner shard, `owner_shard(client_id)`, a stable hash.
//! Whichever shard accepts a connection reads its CONNECT; if another shard owns the
//! client id, the socket (a duplicated file descriptor), the bytes read past CONNECT
//! and the decoded CONNECT are handed to the owner over the mesh, and the connection
//! lives there from then on. So a session is always in one place, client-id takeover
//! is a local operation on the owner, and a persistent session's subscriptions and
//! offline queue stay where its next connection will arrive. The price is one
//! hand-off per connect for (n-1)/n of connections; nothing on the message path.
//!
//! # Routing
//!
//! Each shard's trie holds only its own subscribers. A route trie maps filters to the
//! other shards that have at least one subscriber on them, kept current by
//! `RouteAdd`/`RouteRemove` messages sent when a filter gains its first or loses its
//! last local subscriber. A publish is delivered locally through the trie and sent
//! only to shards whose routes match, as one shared `Arc<Message>`. A SUBACK is held
//! until every other shard has acknowledged a new route, so a message published
//! anywhere after the SUBACK reaches the subscriber.

mod mesh;
mod shared;
mod slab;
mod state;
mod sys;
pub mod timer;

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::Config;
use crate::metrics::{http, Registry, ShardMetrics};
use crate::protocol::ReasonCode;
use crate::transport;

pub(crate) use mesh::{Handoff, Mesh, ShardMsg};
pub(crate) use slab::Slab;
pub(crate) use state::{harvest, ConnHandle, SessionRequest, State};

/// The shard's timer resolution.
pub const TICK: Duration = Duration::from_millis(100);

/// Batches in flight per ordered shard pair before a sender waits.
const MESH_CHANNEL_BATCHES: usize = 1024;

/// FNV-1a from `seed`: stable across runs and builds, unlike std's hasher.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The shard that owns a client id.
pub fn owner_shard(client_id: &[u8], shards: usize) -> usize {
    (fnv1a(0xcbf2_9ce4_8422_2325, client_id) % shards as u64) as usize
}

/// A client's identity hash, used to recognise its own messages (no-local). A
/// different seed from `owner_shard`, so it does not repeat the shard choice.
pub fn client_key(client_id: &[u8]) -> u64 {
    fnv1a(0x8422_2325_cbf2_9ce4, client_id)
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start shard {shard} on CPU {cpu}: {reason}")]
    Executor {
        shard: usize,
        cpu: usize,
        reason: String,
    },
}

/// State every shard can read: configuration, the retained-update sequence and the
/// stop flag. Nothing here is on the per-message path except one atomic increment
/// per retained publish.
pub(crate) struct Shared {
    pub config: Config,
    pub metrics: Arc<Registry>,
    pub hooks: crate::auth::Hooks,
    pub shards: usize,
    pub retained_seq: AtomicU64,
    pub stop: AtomicBool,
}

/// One shard's runtime: its state and its ends of the mesh.
pub(crate) struct Shard {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub state: std::cell::RefCell<State>,
    pub mesh: Mesh,
    pub start: Instant,
    /// The read buffer every connection on this shard reads into before copying
    /// the bytes it got into its own buffer: idle connections hold no read buffer.
    pub scratch: std::cell::RefCell<Box<[u8]>>,
    /// Connections past CONNECT currently served by this shard, parked ones too.
    pub connections: std::cell::Cell<usize>,
    /// Idle connections parked without a task (see `transport::park`).
    pub parking: transport::Parking,
}

impl Shard {
    /// Ticks since the shard started.
    pub fn tick(&self, now: Instant) -> u64 {
        // Whole seconds and the rest apart: no 128-bit division on a path taken
        // for every batch a connection handles.
        const PER_SEC: u64 = 1_000_000_000 / TICK.as_nanos() as u64;
        let since = now.saturating_duration_since(self.start);
        since.as_secs() * PER_SEC + u64::from(since.subsec_nanos()) / TICK.as_nanos() as u64
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// This shard's counters.
    pub fn metrics(&self) -> &ShardMetrics {
        self.shared.metrics.shard(self.id)
    }

    pub fn next_retained_seq(&self) -> u64 {
        self.shared.retained_seq.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A running broker.
pub struct Broker {
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    metrics_server: Option<http::Server>,
    executors: Vec<glommio::ExecutorJoinHandle<()>>,
}

impl Broker {
    /// Binds the listener on every shard and starts the shards. Returns once every
    /// shard is accepting connections.
    pub fn start(config: Config) -> Result<Broker, StartError> {
        Broker::start_with(config, crate::auth::Hooks::default())
    }

    /// Like [`Broker::start`], with behaviour plugged in beside the configuration
    /// (an enhanced-authentication authenticator).
    pub fn start_with(config: Config, hooks: crate::auth::Hooks) -> Result<Broker, StartError> {
        config.validate()?;
        let shards = config.cores.len();
        // per_shard[shard]: that shard's socket for each listener, in config order.
        let mut per_shard: Vec<Vec<OwnedFd>> = (0..shards).map(|_| Vec::new()).collect();
        let mut addrs = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let listen_err = |source| StartError::Listen {
                addr: l.address,
                source,
            };
            let fds =
                transport::bind_reuseport(l.address, shards, l.backlog).map_err(listen_err)?;
            addrs.push(transport::local_addr(&fds[0]).map_err(listen_err)?);
            for (shard, fd) in fds.into_iter().enumerate() {
                per_shard[shard].push(fd);
            }
        }
        let metrics = Arc::new(Registry::new(shards));
        let shared = Arc::new(Shared {
            config: config.clone(),
            metrics: metrics.clone(),
            hooks,
            shards,
            retained_seq: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });

        let metrics_server = match config.metrics.listen {
            Some(addr) => match http::Server::start(addr, metrics.clone()) {
                Ok(server) => {
                    tracing::info!(addr = %server.local_addr(), "metrics served at /metrics");
                    Some(server)
                }
                Err(source) => return Err(StartError::Metrics { addr, source }),
            },
            None => None,
        };
        // senders[from][to] / receivers[to][from]: one SPSC channel per ordered pair.
        let mut senders: Vec<Vec<Option<shared_channel::SharedSender<Vec<ShardMsg>>>>> = (0
            ..shards)
            .map(|_| (0..shards).map(|_| None).collect())
            .collect();
        let mut receivers: Vec<Vec<Option<shared_channel::SharedReceiver<Vec<ShardMsg>>>>> = (0
            ..shards)
            .map(|_| (0..shards).map(|_| None).collect())
            .collect();
        for from in 0..shards {
            for to in 0..shards {
                if from != to {
                    let (tx, rx) = shared_channel::new_bounded(MESH_CHANNEL_BATCHES);
                    senders[from][to] = Some(tx);
                    receivers[to][from] = Some(rx);
                }
            }
        }

        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<usize, String>>();
        let mut executors = Vec::with_capacity(shards);
        let mut per_shard = per_shard.into_iter();
        for (id, &cpu) in config.cores.iter().enumerate() {
            let listeners = per_shard.next().expect("sockets for every shard");
            let txs: Vec<_> = senders[id].iter_mut().map(Option::take).collect();
            let rxs: Vec<_> = receivers[id].iter_mut().map(Option::take).collect();
            let shard_shared = shared.clone();
            let ready = ready_tx.clone();
            let spawned = LocalExecutorBuilder::new(Placement::Fixed(cpu))
                .name(&format!("ringmq-shard-{id}"))
                .io_memory(config.io_memory)
                .ring_depth(config.ring_depth)
                .spawn(move || async move {
                    run_shard(id, cpu, shard_shared, listeners, txs, rxs, ready).await;
                });
            match spawned {
                Ok(handle) => executors.push(handle),
                Err(e) => {
                    shared.stop.store(true, Ordering::SeqCst);
                    return Err(StartError::Executor {
                        shard: id,
                        cpu,
                        reason: e.to_string(),
                    });
                }
            }
        }
        drop(ready_tx);
        for _ in 0..shards {
            match ready_rx.recv() {
                Ok(Ok(_)) => {}
                Ok(Err(reason)) => {
                    shared.stop.store(true, Ordering::SeqCst);
                    return Err(StartError::Executor {
                        shard: 0,
                        cpu: config.cores[0],
                        reason,
                    });
                }
                Err(_) => {
                    shared.stop.store(true, Ordering::SeqCst);
                    return Err(StartError::Executor {
                        shard: 0,
                        cpu: config.cores[0],
                        reason: "a shard exited during start-up".into(),
                    });
                }
            }
        }
        tracing::info!(
            listeners = ?addrs,
            shards,
            cores = %crate::config::format_cpu_list(&config.cores),
            "ringmq listening"
        );
        Ok(Broker {
            addrs,
            shared,
            metrics_server,
            executors,
        })
    }

    /// The address the first listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The addresses of every listener, in configuration order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Where the Prometheus endpoint listens, if it was configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(http::Server::local_addr)
    }

    /// The broker's counters, as the metrics endpoint renders them.
    pub fn metrics(&self) -> &Registry {
        &self.shared.metrics
    }

    /// Number of shards running.
    pub fn shards(&self) -> usize {
        self.shared.shards
    }

    /// Asks every shard to stop.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Stops the broker and waits for every shard to exit.
    pub fn shutdown(mut self) {
        self.stop();
        self.join_all();
    }

    /// Waits until the shards exit (after `stop`, or forever).
    pub fn wait(mut self) {
        self.join_all();
    }

    fn join_all(&mut self) {
        for handle in self.executors.drain(..) {
            if let Err(e) = handle.join() {
                tracing::error!("shard exited with an error: {e}");
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if !self.executors.is_empty() {
            self.stop();
            self.join_all();
        }
    }
}

async fn run_shard(
    id: usize,
    cpu: usize,
    shared: Arc<Shared>,
    listeners: Vec<OwnedFd>,
    txs: Vec<Option<shared_channel::SharedSender<Vec<ShardMsg>>>>,
    rxs: Vec<Option<shared_channel::SharedReceiver<Vec<ShardMsg>>>>,
    ready: std::sync::mpsc::Sender<Result<usize, String>>,
) {
    let start = Instant::now();
    let shards = shared.shards;
    let parking = match transport::Parking::new(shared.config.park_after) {
        Ok(parking) => parking,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot create the epoll set for parking: {e}")));
            return;
        }
    };
    let shard = Rc::new(Shard {
        id,
        state: std::cell::RefCell::new(State::new(id, &shared.config, shared.metrics.clone())),
        mesh: Mesh::new(id, shards),
        shared,
        start,
        scratch: std::cell::RefCell::new(vec![0u8; transport::READ_CHUNK].into_boxed_slice()),
        connections: std::cell::Cell::new(0),
        parking,
    });
    let parked_reader = match shard.parking.start(id, cpu) {
        Ok(bell) => bell
            .map(|bell| glommio::spawn_local(transport::park_reader(shard.clone(), bell)).detach()),
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start the parking watcher: {e}")));
            return;
        }
    };
    // Each end connects in its own task: a connect waits for the peer's end.
    for (peer, tx) in txs.into_iter().enumerate() {
        if let Some(tx) = tx {
            glommio::spawn_local(mesh::flusher(shard.clone(), peer, tx)).detach();
        }
    }
    for rx in rxs.into_iter().flatten() {
        glommio::spawn_local(mesh::receiver(shard.clone(), rx)).detach();
    }
    let mut accepting = Vec::with_capacity(listeners.len());
    for fd in listeners {
        // SAFETY: the descriptor came from `bind_reuseport` as an owned listening
        // socket and is handed to exactly one shard.
        let listener = unsafe { glommio::net::TcpListener::from_raw_fd(fd.into_raw_fd()) };
        accepting
            .push(glommio::spawn_local(transport::accept_loop(shard.clone(), listener)).detach());
    }
    let sys = (id == 0).then(|| glommio::spawn_local(sys::publisher(shard.clone())).detach());
    let _ = ready.send(Ok(id));
    drop(ready);

    let mut parked_before = 0;
    let mut collect_until = 0;
    loop {
        glommio::timer::sleep(TICK).await;
        if shard.shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        state::on_tick(&shard, now);
        let tick = shard.tick(now);
        let parked = shard.parking.count();
        if parked > parked_before + 64 {
            collect_until = tick + 30;
        }
        parked_before = parked;
        if tick < collect_until && tick % 10 == 0 {
            // Connections parked in numbers: what their tasks held goes back to the
            // OS now, not whenever the allocator next runs short.
            let started = Instant::now();
            crate::alloc::release_free_memory();
            tracing::debug!(shard = id, took = ?started.elapsed(), "returned freed memory");
        }
        if let Some(epoch) = shard.shared.metrics.gauge_requested(id) {
            shard.metrics().parked.set(shard.parking.count() as u64);
            shard.state.borrow().refresh_gauges(epoch);
        }
    }

    // Graceful stop: no new connections, every client told (v5: DISCONNECT 0x8B)
    // after what is queued for it is written, all within the shutdown timeout.
    for task in accepting.into_iter().chain(sys) {
        task.cancel();
    }
    let deadline = Instant::now() + shard.config().shutdown_timeout;
    let mut round = 0u32;
    while shard.connections.get() > 0 && Instant::now() < deadline {
        // Asked again every tick: connections that finished CONNECT meanwhile too.
        if round % 10 == 0 {
            let online = shard.state.borrow().online_connections();
            for conn in online {
                conn.request_close(ReasonCode::ServerShuttingDown);
            }
        }
        round += 1;
        glommio::timer::sleep(TICK / 10).await;
    }
    if let Some(reader) = parked_reader {
        reader.cancel();
    }
    shard.parking.close_all();
    let m = shard.metrics();
    tracing::info!(
        shard = id,
        still_open = shard.connections.get(),
        received = m.publish_in.iter().map(|c| c.get()).sum::<u64>(),
        sent = m.publish_out.iter().map(|c| c.get()).sum::<u64>(),
        dropped = m.dropped.iter().map(|c| c.get()).sum::<u64>(),
        "shard stopped"
    );
}

/// Duplicates a connection's descriptor so the original can be dropped by the
/// executor that accepted it while the duplicate moves to the owner shard.
pub(crate) fn dup_fd(fd: &impl AsRawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: `fd` is a live descriptor borrowed for the duration of this call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) };
    borrowed.try_clone_to_owned()
}
