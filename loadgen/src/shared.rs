//! State the coordinating thread and the worker executors share: the run's
//! timeline, one cache line of counters per worker (written only by that worker),
//! each publisher's final count, the shared-subscription group books, and failures.
//! Also the executor-local pieces every connection on a worker uses: a one-shot
//! signal and the latency recorder.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use hdrhistogram::Histogram;

use crate::accounting::GroupBook;

/// Failure messages kept (the count is kept in full).
const MAX_FAILURES: usize = 20;

/// The run's timeline, in ns on the process clock; 0 = not set yet.
#[derive(Debug, Default)]
pub struct Control {
    /// Publishers start.
    pub start_ns: AtomicU64,
    /// Warm-up ends; the measured window begins.
    pub warm_end_ns: AtomicU64,
    /// The measured window ends; publishers stop.
    pub stop_ns: AtomicU64,
    /// Every connection disconnects and reports.
    pub finish: AtomicBool,
}

impl Control {
    pub fn times(&self) -> Option<(u64, u64, u64)> {
        let start = self.start_ns.load(Ordering::Acquire);
        (start != 0).then(|| {
            (
                start,
                self.warm_end_ns.load(Ordering::Relaxed),
                self.stop_ns.load(Ordering::Relaxed),
            )
        })
    }
}

/// One worker's counters. Only that worker writes them; the coordinator reads.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Counters {
    /// Connections that completed CONNECT (and SUBSCRIBE, for subscribers).
    pub ready: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    pub connect_failed: AtomicU64,
    /// Messages written to the socket.
    pub published: AtomicU64,
    /// QoS 1/2 publishes acknowledged (PUBACK / PUBCOMP).
    pub acked: AtomicU64,
    /// First deliveries.
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    /// Errors after connecting: protocol errors, lost connections, refusals.
    pub errors: AtomicU64,
    /// Publishers that stopped and have nothing in flight.
    pub pubs_done: AtomicU64,
}

impl Counters {
    #[inline]
    pub fn add(field: &AtomicU64, n: u64) {
        if n != 0 {
            field.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Everything shared across threads for one run.
#[derive(Debug)]
pub struct Shared {
    pub control: Control,
    pub counters: Box<[Counters]>,
    /// Messages each publisher sent, stored when it stops.
    pub published: Box<[AtomicU64]>,
    pub groups: Box<[GroupBook]>,
    failures: Mutex<Vec<String>>,
    failure_count: AtomicU64,
    /// A failure that makes the run pointless (a refused subscription).
    pub fatal: AtomicBool,
}

impl Shared {
    pub fn new(workers: usize, publishers: usize, groups: Vec<GroupBook>) -> Shared {
        Shared {
            control: Control::default(),
            counters: (0..workers).map(|_| Counters::default()).collect(),
            published: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            groups: groups.into_boxed_slice(),
            failures: Mutex::new(Vec::new()),
            failure_count: AtomicU64::new(0),
            fatal: AtomicBool::new(false),
        }
    }

    /// Records a failure message (the first few are kept).
    pub fn fail(&self, msg: String, fatal: bool) {
        self.failure_count.fetch_add(1, Ordering::Relaxed);
        if fatal {
            self.fatal.store(true, Ordering::Release);
        }
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() < MAX_FAILURES && !f.contains(&msg) {
            f.push(msg);
        }
    }

    pub fn failures(&self) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A counter summed over workers.
    pub fn sum(&self, field: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.counters
            .iter()
            .map(|c| field(c).load(Ordering::Relaxed))
            .sum()
    }

    /// Final count of publisher `p`.
    pub fn published_by(&self, p: u32) -> u64 {
        self.published[p as usize].load(Ordering::Acquire)
    }
}

/// A one-shot, executor-local signal many tasks wait on.
#[derive(Debug, Default)]
pub struct Signal {
    fired: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Signal {
    pub fn fire(&self) {
        if !self.fired.replace(true) {
            for w in self.wakers.take() {
                w.wake();
            }
        }
    }

    #[inline]
    pub fn fired(&self) -> bool {
        self.fired.get()
    }

    /// Wakes `waker` when the signal fires (at once if it has).
    pub fn register(&self, waker: &Waker) {
        if self.fired.get() {
            waker.wake_by_ref();
        } else {
            self.wakers.borrow_mut().push(waker.clone());
        }
    }

    /// Resolves once the signal has fired.
    pub fn wait(&self) -> SignalWait<'_> {
        SignalWait {
            signal: self,
            registered: false,
        }
    }
}

pub struct SignalWait<'a> {
    signal: &'a Signal,
    registered: bool,
}

impl Future for SignalWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.fired() {
            return Poll::Ready(());
        }
        if !self.registered {
            self.signal.register(cx.waker());
            self.registered = true;
        }
        Poll::Pending
    }
}

/// Highest latency recorded (µs): one hour.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Latencies seen on one worker: one histogram over the measured window (by send
/// time, 3 significant digits) and one per second of the run (by receive time, 2
/// significant digits, for the time series).
#[derive(Debug)]
pub struct LatencyRecorder {
    start_ns: u64,
    window: (u64, u64),
    pub total: Histogram<u64>,
    pub per_second: Vec<Histogram<u64>>,
}

impl LatencyRecorder {
    pub fn new() -> LatencyRecorder {
        LatencyRecorder {
            start_ns: 0,
            window: (0, 0),
            total: total_histogram(),
            per_second: Vec::new(),
        }
    }

    /// Sets the timeline once publishing starts.
    pub fn set_times(&mut self, start_ns: u64, warm_end_ns: u64, stop_ns: u64) {
        self.start_ns = start_ns;
        self.window = (warm_end_ns, stop_ns);
    }

    #[inline]
    pub fn record(&mut self, sent_ns: u64, recv_ns: u64) {
        let us = recv_ns.saturating_sub(sent_ns) / 1000;
        if sent_ns >= self.window.0 && sent_ns < self.window.1 {
            self.total.saturating_record(us);
        }
        let sec = (recv_ns.saturating_sub(self.start_ns) / 1_000_000_000) as usize;
        if sec >= self.per_second.len() {
            self.per_second.resize_with(sec + 1, second_histogram);
        }
        self.per_second[sec].saturating_record(us);
    }
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder::new()
    }
}

/// The summary histogram: 1 µs to one hour, 3 significant digits.
pub fn total_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// A per-second histogram: 1 µs to one hour, 2 significant digits.
pub fn second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds")
}
