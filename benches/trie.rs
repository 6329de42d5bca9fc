//! Subscription trie benchmarks: `ringmq::router::Trie` beside a linear scan over
//! every filter with the reference matcher `protocol::topic::matches`.
//!
//! The subscriptions are a device fleet: `TENANT_DEVICES` devices per tenant, and
//! of every hundred subscriptions ninety are exact device filters
//! (`tenant/{t}/device/{d}/telemetry`, each device once), five are
//! `tenant/{t}/device/+/telemetry`, three `tenant/{t}/device/{d}/#` and two
//! `tenant/{t}/#`; wildcard filters repeat across subscribers, as dashboards share
//! them. Topics are device telemetry topics of random tenants and devices, some of
//! devices nobody subscribed to exactly.
//!
//! Names read `trie_{op}/{structure}/{subscriptions}`. Insert benches build the
//! whole set from an empty structure and report subscriptions per second; the
//! built structure is dropped outside the timing. Match benches run `TOPICS`
//! topics against a structure built once, outside the timing, and report topics
//! per second. The linear baseline runs at 10k subscriptions only: it is linear
//! in the subscription count, about 100 times slower at 1M than at 10k, which
//! would take the run past its time budget for a figure that says nothing new.
//!
//! A counting global allocator prints, once per size, the bytes the built trie
//! holds per subscription: bytes requested from the allocator, spare `Vec`
//! capacity included, allocator overhead not.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use ringmq::protocol::topic::matches;
use ringmq::router::Trie;

/// Counts the bytes currently allocated, so the bench can report what a trie
/// holds. Relaxed atomics: one uncontended add per call, paid by every bench alike.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with this layout, via `alloc` or `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SIZES: [(usize, &str); 3] = [(10_000, "10k"), (100_000, "100k"), (1_000_000, "1M")];
const BASELINE_SIZE: usize = 10_000;
const TENANT_DEVICES: usize = 1_000;
/// Topics per match iteration.
const TOPICS: usize = 1_024;

/// A fixed-seed xorshift, so every run benches the same set.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn tenants(subscriptions: usize) -> usize {
    subscriptions.div_ceil(TENANT_DEVICES)
}

/// `subscriptions` (filter, subscriber id) pairs in the fleet mix.
fn fleet(subscriptions: usize) -> Vec<(String, u32)> {
    let tenants = tenants(subscriptions);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut exact = 0;
    (0..subscriptions)
        .map(|i| {
            let t = rng.below(tenants);
            let d = rng.below(TENANT_DEVICES);
            let filter = match i % 100 {
                0..=89 => {
                    // Each device once: walk tenants first, then devices.
                    let (t, d) = (exact % tenants, exact / tenants);
                    exact += 1;
                    format!("tenant/{t}/device/{d}/telemetry")
                }
                90..=94 => format!("tenant/{t}/device/+/telemetry"),
                95..=97 => format!("tenant/{t}/device/{d}/#"),
                _ => format!("tenant/{t}/#"),
            };
            (filter, i as u32)
        })
        .collect()
}

fn topics(subscriptions: usize) -> Vec<String> {
    let tenants = tenants(subscriptions);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    (0..TOPICS)
        .map(|_| {
            let t = rng.below(tenants);
            let d = rng.below(TENANT_DEVICES);
            format!("tenant/{t}/device/{d}/telemetry")
        })
        .collect()
}

fn build(filters: &[(String, u32)]) -> Trie<u32> {
    let mut trie = Trie::new();
    for (filter, id) in filters {
        trie.insert(filter, *id);
    }
    trie
}

fn trie_matches(trie: &Trie<u32>, topics: &[String]) -> usize {
    let mut n = 0;
    for topic in topics {
        trie.match_topic(topic, |id| {
            black_box(id);
            n += 1;
        });
    }
    n
}

fn linear_matches(filters: &[(String, u32)], topics: &[String]) -> usize {
    let mut n = 0;
    for topic in topics {
        for (filter, id) in filters {
            if matches(filter, topic) {
                black_box(id);
                n += 1;
            }
        }
    }
    n
}

fn insert(c: &mut Criterion) {
    let mut group = c.benchmark_group("trie_insert");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for (size, name) in SIZES {
        let filters = fleet(size);
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        let trie = build(&filters);
        let held = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before);
        println!(
            "trie/{name}: {} entries hold {} bytes, {:.0} bytes per subscription",
            trie.len(),
            held,
            held as f64 / size as f64
        );
        drop(trie);

        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::new("trie", name), |b| {
            b.iter_batched(|| (), |()| build(&filters), BatchSize::PerIteration)
        });
        if size == BASELINE_SIZE {
            group.bench_function(BenchmarkId::new("linear", name), |b| {
                b.iter_batched(
                    || (),
                    |()| {
                        let mut list: Vec<(Box<str>, u32)> = Vec::new();
                        for (filter, id) in &filters {
                            list.push((filter.as_str().into(), *id));
                        }
                        list
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

fn match_topic(c: &mut Criterion) {
    let mut group = c.benchmark_group("trie_match");
    group.throughput(Throughput::Elements(TOPICS as u64));
    for (size, name) in SIZES {
        let filters = fleet(size);
        let topics = topics(size);
        let trie = build(&filters);
        let found = trie_matches(&trie, &topics);
        if size == BASELINE_SIZE {
            assert_eq!(
                found,
                linear_matches(&filters, &topics),
                "trie and linear scan disagree"
            );
        }
        println!(
            "trie/{name}: {:.1} matches per topic",
            found as f64 / TOPICS as f64
        );

        group.bench_function(BenchmarkId::new("trie", name), |b| {
            b.iter(|| trie_matches(&trie, black_box(&topics)))
        });
        if size == BASELINE_SIZE {
            group.sample_size(10);
            group.bench_function(BenchmarkId::new("linear", name), |b| {
                b.iter(|| linear_matches(&filters, black_box(&topics)))
            });
            group.sample_size(100);
        }
    }
    group.finish();
}

criterion_group!(benches, insert, match_topic);
criterion_main!(benches);
