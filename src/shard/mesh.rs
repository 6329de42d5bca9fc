//! The cross-shard mesh: one bounded lock-free SPSC channel per ordered pair of
//! shards (glommio's `shared_channel`), carrying batches of typed messages.
//!
//! Producers on a shard append to a per-peer batch; a flusher task per peer sends
//! the batch when it runs, after the connections that were ready before it, so one
//! channel operation and at most one cross-core wake-up carry many messages. A full
//! channel suspends only the flusher; the batches left behind are bounded, and when
//! they grow past the limit, connections stop reading until the flusher catches up.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

use bytes::BytesMut;
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};

use crate::message::Message;
use crate::protocol::{ByteStr, Connect};

use super::Shard;

/// How long a backlog may make no progress before messages are delivered anyway.
const STUCK_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Messages pending across all peers above which connections stop reading.
const CONGESTION_LIMIT: usize = 64 * 1024;

/// What travels between shards.
pub(crate) enum ShardMsg {
    /// A message published on the sending shard. `deliver`: the receiver has
    /// matching subscribers; `retain_seq`: the message also updates the retained
    /// store (a delete when its payload is empty).
    Publish {
        msg: Arc<Message>,
        deliver: bool,
        retain_seq: Option<u64>,
    },
    /// The sender gained its first subscriber on `filter`; acknowledge with `token`.
    RouteAdd {
        filter: ByteStr,
        from: u16,
        token: u64,
    },
    RouteAck {
        token: u64,
    },
    /// The sender lost its last subscriber on `filter`.
    RouteRemove {
        filter: ByteStr,
        from: u16,
    },
    /// The sender's member count for a shared subscription group; acknowledge
    /// with `token` when present (the group's first member there).
    SharedMembers {
        key: ByteStr,
        filter: ByteStr,
        from: u16,
        count: u32,
        token: Option<u64>,
    },
    /// A message for one member of a shared subscription group on this shard.
    SharedDeliver {
        key: ByteStr,
        msg: Arc<Message>,
        hops: u8,
    },
    /// A connection whose client id this shard owns.
    Handoff(Box<Handoff>),
}

/// A connection moving to the shard that owns its client id.
pub(crate) struct Handoff {
    pub fd: OwnedFd,
    pub connect: Box<Connect>,
    /// Bytes received after the CONNECT packet (and any AUTH exchange).
    pub rest: BytesMut,
    /// The enhanced authentication the client completed, if it used one.
    pub auth: Option<Box<crate::auth::Authenticated>>,
}

/// This shard's outgoing side of the mesh.
pub(crate) struct Mesh {
    id: usize,
    pending: RefCell<Vec<Vec<ShardMsg>>>,
    flushers: Vec<Cell<Option<Waker>>>,
    queued: Cell<usize>,
    /// Connections waiting for congestion to clear.
    blocked: RefCell<Vec<Waker>>,
}

impl Mesh {
    pub fn new(id: usize, shards: usize) -> Mesh {
        Mesh {
            id,
            pending: RefCell::new((0..shards).map(|_| Vec::new()).collect()),
            flushers: (0..shards).map(|_| Cell::new(None)).collect(),
            queued: Cell::new(0),
            blocked: RefCell::new(Vec::new()),
        }
    }

    /// Queues a message for `peer`; it leaves with the next batch.
    pub fn send(&self, peer: usize, msg: ShardMsg) {
        debug_assert_ne!(peer, self.id);
        self.pending.borrow_mut()[peer].push(msg);
        self.queued.set(self.queued.get() + 1);
        if let Some(w) = self.flushers[peer].take() {
            w.wake();
        }
    }

    /// Whether producers should pause. `waker` is woken when they may go on.
    pub fn congested(&self, waker: &Waker) -> bool {
        if self.queued.get() < CONGESTION_LIMIT {
            return false;
        }
        let mut blocked = self.blocked.borrow_mut();
        if !blocked.iter().any(|w| w.will_wake(waker)) {
            blocked.push(waker.clone());
        }
        true
    }

    fn take_batch(&self, peer: usize, waker: &Waker) -> Option<Vec<ShardMsg>> {
        let mut pending = self.pending.borrow_mut();
        if pending[peer].is_empty() {
            self.flushers[peer].set(Some(waker.clone()));
            return None;
        }
        let batch = std::mem::take(&mut pending[peer]);
        self.queued.set(self.queued.get() - batch.len());
        Some(batch)
    }

    fn release_blocked(&self) {
        if self.queued.get() < CONGESTION_LIMIT / 2 {
            for w in self.blocked.borrow_mut().drain(..) {
                w.wake();
            }
        }
    }
}

/// Sends this shard's batches for `peer`, waiting (only here) when the channel is full.
pub(crate) async fn flusher(shard: Rc<Shard>, peer: usize, tx: SharedSender<Vec<ShardMsg>>) {
    let tx = tx.connect().await;
    loop {
        let batch = poll_fn(|cx| match shard.mesh.take_batch(peer, cx.waker()) {
            Some(b) => Poll::Ready(b),
            None => Poll::Pending,
        })
        .await;
        if tx.send(batch).await.is_err() {
            // The peer shard has stopped; nothing more can be delivered there.
            return;
        }
        shard.mesh.release_blocked();
    }
}

/// Applies batches arriving from one peer.
pub(crate) async fn receiver(shard: Rc<Shard>, rx: SharedReceiver<Vec<ShardMsg>>) {
    let rx = rx.connect().await;
    while let Some(batch) = rx.recv().await {
        for msg in batch {
            wait_for_room(&shard, &msg).await;
            super::state::on_mesh_message(&shard, msg);
        }
    }
}

/// Holds a QoS 1/2 message from another shard while a subscriber (or shared group
/// member) it goes to is backlogged, so it is not dropped at a full queue. The wait
/// stops the batches behind it, fills the channel, and so pauses the publishing
/// shard's readers.
/// While this shard still delivers something every second the wait goes on; a
/// subscriber that is stuck does not hold the mesh for longer than that.
async fn wait_for_room(shard: &Shard, msg: &ShardMsg) {
    loop {
        let sent_before = {
            let st = shard.state.borrow();
            if st.has_room(msg) {
                return;
            }
            st.sent_total
        };
        let room = poll_fn(|cx| {
            let mut st = shard.state.borrow_mut();
            if st.has_room(msg) {
                Poll::Ready(true)
            } else {
                st.wait_for_room(cx.waker());
                Poll::Pending
            }
        });
        let timeout = async {
            glommio::timer::sleep(STUCK_AFTER).await;
            false
        };
        if !futures_lite::future::or(room, timeout).await
            && shard.state.borrow().sent_total == sent_before
        {
            return;
        }
    }
}
