//! One worker: a glommio executor pinned to one core, owning the connections given
//! to it. It opens them (paced to the connect rate, a bounded number of handshakes
//! at once), follows the run's timeline through a supervisor task, and at the end
//! settles its subscribers' books and hands back its tallies and histograms.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::sync::Semaphore;
use glommio::timer::Timer;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

use crate::accounting::{SubscriberBook, Tally};
use crate::client;
use crate::clock;
use crate::scenario::{ConnPlan, PubPlan, SubPlan};
use crate::shared::{Counters, LatencyRecorder, Shared, Signal};

/// Handshakes in progress at once per worker.
const MAX_HANDSHAKES: u64 = 512;
/// How often the supervisor looks at the timeline (it wakes at the start itself).
const SUPERVISE_EVERY: Duration = Duration::from_millis(10);

/// Per-run settings every connection reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: SocketAddr,
    /// Source addresses to bind before connecting, used in turn; empty: any.
    pub sources: Vec<IpAddr>,
    pub version: ringmq::protocol::ProtocolVersion,
    pub qos: ringmq::protocol::QoS,
    pub sub_qos: ringmq::protocol::QoS,
    pub payload: usize,
    pub keepalive: u16,
    pub inflight: u16,
    pub clean: bool,
    pub session_expiry: u32,
    pub connect_timeout: Duration,
    /// Client ids are this prefix plus `p{i}`, `s{i}` or `c{i}`.
    pub client_prefix: String,
    /// New connections per second on this worker.
    pub connect_rate: Option<f64>,
    /// Publisher `i` writes `id_base + i` as its id, so messages from another run
    /// (which a lagging broker may still be delivering) are recognised as foreign.
    pub id_base: u32,
    /// Publishers in this run.
    pub publishers: u32,
}

/// A client's part, as handed to a worker.
#[derive(Debug, Clone)]
pub enum ClientPlan {
    Pub(PubPlan),
    Sub(SubPlan),
    Conn(ConnPlan),
}

/// The executor-local context every connection on a worker shares.
pub struct Worker {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub settings: Arc<Settings>,
    /// Publishing may begin.
    pub start: Signal,
    /// Disconnect and report.
    pub finish: Signal,
    pub latency: RefCell<LatencyRecorder>,
    /// The read buffer every connection reads into before copying what it got.
    pub scratch: RefCell<Box<[u8]>>,
    /// Books of subscribers whose connections ended, settled once publishers stop.
    pub books: RefCell<Vec<SubscriberBook>>,
    /// Tallies of shared-group members and of unexpected arrivals elsewhere.
    pub tally: RefCell<Tally>,
    pub handshakes: Semaphore,
}

impl Worker {
    pub fn counters(&self) -> &Counters {
        &self.shared.counters[self.index]
    }
}

/// What a worker hands back.
#[derive(Debug)]
pub struct WorkerResult {
    pub tally: Tally,
    pub latency: Histogram<u64>,
    pub latency_per_second: Vec<Histogram<u64>>,
}

/// Starts a worker on `cpu` with the given clients (each with its global ordinal,
/// which picks its source address).
pub fn spawn(
    index: usize,
    cpu: usize,
    io_memory: usize,
    shared: Arc<Shared>,
    settings: Arc<Settings>,
    clients: Vec<(usize, ClientPlan)>,
) -> Result<ExecutorJoinHandle<WorkerResult>, String> {
    LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(&format!("loadgen-{index}"))
        .io_memory(io_memory)
        .ring_depth(512)
        .spawn(move || async move {
            let worker = Rc::new(Worker {
                index,
                shared,
                settings,
                start: Signal::default(),
                finish: Signal::default(),
                latency: RefCell::new(LatencyRecorder::new()),
                scratch: RefCell::new(vec![0u8; client::READ_CHUNK].into_boxed_slice()),
                books: RefCell::new(Vec::new()),
                tally: RefCell::new(Tally::default()),
                handshakes: Semaphore::new(MAX_HANDSHAKES),
            });
            run(worker, clients).await
        })
        .map_err(|e| format!("cannot start a worker on CPU {cpu}: {e}"))
}

async fn run(w: Rc<Worker>, clients: Vec<(usize, ClientPlan)>) -> WorkerResult {
    let supervisor = glommio::spawn_local(supervise(w.clone()));
    let mut tasks = Vec::with_capacity(clients.len());
    let began = Instant::now();
    let per_sec = w.settings.connect_rate;
    let mut clients = clients.into_iter().enumerate().peekable();
    while clients.peek().is_some() {
        if w.finish.fired() {
            break;
        }
        // Open every connection due by now, then sleep until the next is due.
        let due = per_sec.map_or(usize::MAX, |r| {
            (began.elapsed().as_secs_f64() * r) as usize + 1
        });
        while let Some((_, (ordinal, plan))) = clients.next_if(|(k, _)| *k < due) {
            tasks.push(glommio::spawn_local(client::run(w.clone(), plan, ordinal)));
        }
        if let (Some(r), Some((k, _))) = (per_sec, clients.peek()) {
            let at = began + Duration::from_secs_f64(*k as f64 / r);
            Timer::new(at.saturating_duration_since(Instant::now())).await;
        }
    }
    for t in tasks {
        t.await;
    }
    supervisor.await;

    let mut tally = w.tally.take();
    for book in w.books.take() {
        tally.merge(&book.settle(|p| w.shared.published_by(p)));
    }
    let rec = w.latency.take();
    WorkerResult {
        tally,
        latency: rec.total,
        latency_per_second: rec.per_second,
    }
}

/// Follows the timeline the coordinator publishes: fires `start` when publishing
/// begins and `finish` when the run ends.
async fn supervise(w: Rc<Worker>) {
    let control = &w.shared.control;
    loop {
        if !w.start.fired() {
            if let Some((start, warm_end, stop)) = control.times() {
                if clock::now_ns() >= start {
                    w.latency.borrow_mut().set_times(start, warm_end, stop);
                    w.start.fire();
                }
            }
        }
        if control.finish.load(Ordering::Acquire) {
            w.start.fire();
            w.finish.fire();
            return;
        }
        // Wake at the start itself when it is near; otherwise look again later.
        let wait = match control.times() {
            Some((start, ..)) if !w.start.fired() => {
                Duration::from_nanos(start.saturating_sub(clock::now_ns())).min(SUPERVISE_EVERY)
            }
            _ => SUPERVISE_EVERY,
        };
        Timer::new(wait).await;
    }
}
