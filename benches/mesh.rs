//! Cross-shard channel throughput: the mesh's transport (a glommio shared channel
//! between two pinned executors, carrying batches) beside std's `sync_channel` and
//! crossbeam's bounded channel between two threads, each moving the same items:
//! a reference-counted message, as the mesh moves `Arc<Message>`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};

type Item = Arc<[u8; 64]>;

const CAPACITY: usize = 1024;

fn cpus() -> (usize, usize) {
    let all = ringmq::config::allowed_cpus();
    (all[0], all[all.len().min(2) - 1])
}

fn glommio_mesh(items: u64, batch: usize) -> Duration {
    let (tx, rx) = shared_channel::new_bounded::<Vec<Item>>(CAPACITY);
    let (a, b) = cpus();
    let item: Item = Arc::new([7u8; 64]);
    let consumer = LocalExecutorBuilder::new(Placement::Fixed(b))
        .io_memory(256 * 1024)
        .spawn(move || async move {
            let rx = rx.connect().await;
            let mut got = 0u64;
            while let Some(v) = rx.recv().await {
                got += v.len() as u64;
            }
            got
        })
        .unwrap();
    let producer = LocalExecutorBuilder::new(Placement::Fixed(a))
        .io_memory(256 * 1024)
        .spawn(move || async move {
            let tx = tx.connect().await;
            let start = Instant::now();
            let mut sent = 0u64;
            while sent < items {
                let n = (batch as u64).min(items - sent) as usize;
                let v: Vec<Item> = (0..n).map(|_| item.clone()).collect();
                assert!(tx.send(v).await.is_ok(), "consumer alive");
                sent += n as u64;
            }
            drop(tx);
            start
        })
        .unwrap();
    let start = producer.join().unwrap();
    let got = consumer.join().unwrap();
    assert_eq!(got, items);
    start.elapsed()
}

/// Moves `items` in batches from this thread to a consumer thread through a
/// channel given as its two ends.
fn between_threads<R>(items: u64, batch: usize, mut send: impl FnMut(Vec<Item>), rx: R) -> Duration
where
    R: IntoIterator<Item = Vec<Item>> + Send + 'static,
{
    let item: Item = Arc::new([7u8; 64]);
    let consumer = std::thread::spawn(move || rx.into_iter().map(|v| v.len() as u64).sum::<u64>());
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < items {
        let n = (batch as u64).min(items - sent) as usize;
        send((0..n).map(|_| item.clone()).collect());
        sent += n as u64;
    }
    // Dropping `send` drops the sender, which ends the consumer's iteration.
    drop(send);
    assert_eq!(consumer.join().unwrap(), items);
    start.elapsed()
}

fn std_channel(items: u64, batch: usize) -> Duration {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(CAPACITY);
    between_threads(items, batch, move |v| tx.send(v).unwrap(), rx)
}

fn crossbeam_channel(items: u64, batch: usize) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<Item>>(CAPACITY);
    between_threads(items, batch, move |v| tx.send(v).unwrap(), rx)
}

fn mesh(c: &mut Criterion) {
    for batch in [1usize, 64] {
        let mut g = c.benchmark_group(format!("cross_shard_channel/batch_{batch}"));
        g.throughput(Throughput::Elements(1));
        g.sample_size(10);
        g.warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(3));
        g.bench_function("glommio_shared_channel", |bench| {
            bench.iter_custom(|iters| glommio_mesh(iters, batch))
        });
        g.bench_function("std_sync_channel", |bench| {
            bench.iter_custom(|iters| std_channel(iters, batch))
        });
        g.bench_function("crossbeam_bounded", |bench| {
            bench.iter_custom(|iters| crossbeam_channel(iters, batch))
        });
        g.finish();
    }
}

criterion_group!(benches, mesh);
criterion_main!(benches);
