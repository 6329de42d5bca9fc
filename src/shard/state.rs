//! A shard's state: sessions by client id, the local subscription trie, the route
//! trie of other shards' filters, the retained replica and the timer wheel. It is
//! `!Send` and touched only by the shard's own tasks, never across an await.

use std::cell::Cell;
use std::hash::BuildHasher;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use smallvec::SmallVec;

use crate::config::Config;
use crate::message::Message;
use crate::metrics::{DropCause, Registry, ShardMetrics};
use crate::protocol::{ByteStr, ProtocolVersion, QoS, ReasonCode, SubscriptionOptions};
use crate::router::retained::RetainedStore;
use crate::router::Trie;
use crate::session::{Delivery, Enqueued, Session, SessionLimits, SessionStats, Subscription};

use super::mesh::{Mesh, ShardMsg};
use super::shared::{Member, SharedGroups};
use super::slab::Slab;
use super::timer::TimerWheel;
use super::{Shard, TICK};

/// Ticks per second.
const TICKS_PER_SEC: u64 = 1000 / TICK.as_millis() as u64;
/// How long a retained-store tombstone is kept (no older update can still arrive).
const TOMBSTONE_AGE: Duration = Duration::from_secs(60);

/// The link between a connection and the shard: how the shard wakes the
/// connection's task, or resumes the connection if it is parked (new deliveries, a
/// takeover, a keep alive timeout), and what it tells it.
#[derive(Default)]
pub(crate) struct ConnHandle {
    waker: Cell<Option<Waker>>,
    /// The shard, to resume the connection while it is parked.
    shard: Weak<Shard>,
    /// While parked: its key in the shard's parking lot, plus one (0: not parked).
    parked: Cell<u32>,
    close: Cell<Option<ReasonCode>>,
    /// Tick of the last packet received.
    pub last_rx: Tick,
    /// Tick the connection last read, wrote or handled something.
    pub active: Tick,
    /// The park timer found the connection idle: it parks when it next has nothing to do.
    pub park_due: Cell<bool>,
    /// Keep alive times 1.5, in ticks (0: no keep alive).
    pub keepalive_ticks: Tick,
    /// New routes whose acknowledgement from every shard the held SUBACK awaits.
    pub route_wait: Cell<u32>,
    /// Woken for deliveries and not yet run (counted in `State::ready_writers`).
    pub deliveries_pending: Cell<bool>,
    /// Reading is paused: a subscriber this connection publishes to has a backlog
    /// of QoS 1/2 messages (released when it drains, or after a second).
    pub paused: Cell<bool>,
    /// The subscriber a pause waits for, and its progress when last checked (low
    /// 32 bits: only whether it changed matters).
    paused_on: Cell<(u32, u32)>,
}

/// A shard tick in 32 bits (13 years of 100 ms ticks): a million connection
/// handles are 12 MB smaller for their three tick fields.
#[derive(Default)]
pub(crate) struct Tick(Cell<u32>);

impl Tick {
    pub fn get(&self) -> u64 {
        u64::from(self.0.get())
    }

    pub fn set(&self, tick: u64) {
        self.0.set(u32::try_from(tick).unwrap_or(u32::MAX));
    }
}

impl ConnHandle {
    pub fn new(shard: &Rc<Shard>) -> ConnHandle {
        ConnHandle {
            shard: Rc::downgrade(shard),
            ..ConnHandle::default()
        }
    }

    /// The connection parked under `key`: a wake-up now resumes it.
    pub fn park(&self, key: u32) {
        self.waker.take();
        self.parked.set(key + 1);
    }

    /// The connection resumed: it runs in a task again.
    pub fn unpark(&self) {
        self.parked.set(0);
    }

    pub fn set_waker(&self, w: &Waker) {
        self.waker.set(Some(w.clone()));
    }

    pub fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
            return;
        }
        if let (Some(key), Some(shard)) = (self.parked.get().checked_sub(1), self.shard.upgrade()) {
            crate::transport::unpark(&shard, key, None);
        }
    }

    /// Wakes the connection for new deliveries, counting it among the shard's
    /// connections with output waiting to be written.
    pub fn wake_for_delivery(&self, ready_writers: &Cell<usize>) {
        if !self.deliveries_pending.replace(true) {
            ready_writers.set(ready_writers.get() + 1);
        }
        self.wake();
    }

    /// The connection runs: it no longer counts as waiting to write.
    pub fn clear_pending(&self, ready_writers: &Cell<usize>) {
        if self.deliveries_pending.replace(false) {
            ready_writers.set(ready_writers.get() - 1);
        }
    }

    /// Asks the connection to close with `reason` (sent as DISCONNECT to v5 clients).
    pub fn request_close(&self, reason: ReasonCode) {
        if self.close.get().is_none() {
            self.close.set(Some(reason));
        }
        self.wake();
    }

    pub fn take_close(&self) -> Option<ReasonCode> {
        self.close.take()
    }

    /// The close requested, if any, without consuming it.
    pub fn close_requested(&self) -> Option<ReasonCode> {
        self.close.get()
    }
}

struct SessionEntry {
    session: Session,
    conn: Option<Rc<ConnHandle>>,
    /// A will waiting out its Will Delay Interval (v5 3.1.3.2.2): published when the
    /// delay passes or the session ends, dropped if the client comes back first.
    pending_will: Option<Arc<Message>>,
    /// Which connection the session is bound to: a shard-wide counter taken at
    /// every bind, so neither a takeover nor a reused slot lets a replaced
    /// connection touch the session.
    generation: u32,
    /// Online with a QoS 1/2 backlog past the high-water mark: messages for it from
    /// other shards wait (see `has_room`) until it is under the low-water mark.
    backlogged: bool,
}

impl SessionEntry {
    /// Queues `d`, moves the session's drop counts into `metrics` and wakes the
    /// connection. The second value is `Some` when the session is online with a
    /// QoS 1/2 backlog past `high_water` (its publisher should pause): `Some(true)`
    /// if this delivery made it `backlogged`.
    fn offer(
        &mut self,
        d: Delivery,
        metrics: &ShardMetrics,
        ready_writers: &Cell<usize>,
        high_water: usize,
    ) -> (Enqueued, Option<bool>) {
        let qos = d.qos;
        let enqueued = self.session.enqueue(d);
        harvest(metrics, &mut self.session);
        let Some(conn) = self.conn.as_ref().filter(|_| enqueued == Enqueued::Queued) else {
            return (enqueued, None);
        };
        conn.wake_for_delivery(ready_writers);
        if qos == QoS::AtMostOnce || self.session.queued() < high_water {
            return (enqueued, None);
        }
        let newly = !self.backlogged;
        self.backlogged = true;
        (enqueued, Some(newly))
    }
}

struct SubRecord {
    session: u32,
    options: SubscriptionOptions,
    id: Option<u32>,
}

enum Timer {
    Keepalive(Weak<ConnHandle>),
    SessionExpiry {
        slot: u32,
        generation: u32,
    },
    WillDelay {
        slot: u32,
        generation: u32,
    },
    Unpause(Weak<ConnHandle>),
    /// A connection that may be idle long enough to park.
    Park(Weak<ConnHandle>),
}

/// What a CONNECT asks of the session store.
pub(crate) struct SessionRequest<'a> {
    pub client_id: &'a ByteStr,
    pub client_key: u64,
    pub version: ProtocolVersion,
    pub clean_start: bool,
    pub expiry_interval: u32,
}

/// The result of binding a connection to a session.
pub(crate) struct Opened {
    pub slot: u32,
    pub generation: u32,
    pub session_present: bool,
}

pub(crate) struct State {
    id: usize,
    shards: usize,
    limits: Rc<SessionLimits>,
    sessions: Slab<SessionEntry>,
    /// Session slots by client id. The id is the one the session holds, hashed
    /// with `client_hasher`: four bytes an entry, where a map keyed by its own copy
    /// of the id would take forty.
    clients: HashTable<u32>,
    client_hasher: DefaultHashBuilder,
    subs: Slab<SubRecord>,
    trie: Trie<u32>,
    shared: SharedGroups,
    routes: Trie<u16>,
    pub retained: RetainedStore,
    /// Connections woken for deliveries that have not run yet. While there are
    /// any, a connection that just read input yields before reading more, so
    /// subscribers drain their queues between publishers' bursts instead of
    /// publishers filling queues past their limits.
    pub ready_writers: Cell<usize>,
    /// Online sessions whose QoS 1/2 backlog passed the high-water mark during the
    /// publish being handled: its publisher pauses until they drain.
    pressured: SmallVec<[u32; 4]>,
    high_water: usize,
    low_water: usize,
    /// Sessions marked `backlogged`.
    backlogged: usize,
    /// Publishers paused because a session's queue passed its high-water mark, by
    /// the session's slot: kept here rather than in every session, as only
    /// backlogged ones have any.
    waiting_publishers: HashMap<u32, Vec<Rc<ConnHandle>>>,
    /// Mesh receivers waiting for a backlogged session to drain.
    room_waiters: Vec<Waker>,
    /// PUBLISH packets written to clients on this shard, to tell a slow shard from
    /// a stuck subscriber.
    pub sent_total: u64,
    wheel: TimerWheel<Timer>,
    route_tokens: HashMap<u64, (Weak<ConnHandle>, usize)>,
    next_token: u64,
    generations: u32,
    assigned_ids: u64,
    last_sweep: u64,
    metrics: Arc<Registry>,
}

impl State {
    pub fn new(id: usize, config: &Config, metrics: Arc<Registry>) -> State {
        let l = &config.limits;
        State {
            id,
            shards: config.cores.len(),
            limits: Rc::new(SessionLimits {
                max_inflight: l.max_inflight,
                max_queued_messages: l.max_queued_messages,
                max_queued_bytes: l.max_queued_bytes,
                receive_maximum: l.receive_maximum,
            }),
            sessions: Slab::default(),
            clients: HashTable::new(),
            client_hasher: DefaultHashBuilder::default(),
            subs: Slab::default(),
            trie: Trie::new(),
            shared: SharedGroups::new(id, config.cores.len(), config.shared_strategy),
            routes: Trie::new(),
            retained: RetainedStore::new(),
            ready_writers: Cell::new(0),
            pressured: SmallVec::new(),
            high_water: (l.max_queued_messages * 3 / 4).max(1),
            low_water: l.max_queued_messages / 4,
            backlogged: 0,
            waiting_publishers: HashMap::new(),
            room_waiters: Vec::new(),
            sent_total: 0,
            wheel: TimerWheel::new(4096, 0),
            route_tokens: HashMap::new(),
            next_token: 0,
            generations: 0,
            assigned_ids: 0,
            last_sweep: 0,
            metrics,
        }
    }

    /// This shard's counters.
    pub fn metrics(&self) -> &ShardMetrics {
        self.metrics.shard(self.id)
    }

    /// The connections of every online session.
    pub fn online_connections(&self) -> Vec<Rc<ConnHandle>> {
        self.sessions
            .iter()
            .filter_map(|(_, e)| e.conn.clone())
            .collect()
    }

    /// Recomputes the gauges that cost a walk over the sessions.
    pub fn refresh_gauges(&self, epoch: u64) {
        let (mut queued, mut inflight) = (0, 0);
        for (_, e) in self.sessions.iter() {
            queued += e.session.queued() as u64;
            inflight += e.session.inflight() as u64;
        }
        let m = self.metrics();
        m.sessions.set(self.sessions.count() as u64);
        m.queued.set(queued);
        m.inflight.set(inflight);
        m.subscriptions
            .set(self.subs.count() as u64 + self.shared.local_members() as u64);
        m.retained.set(self.retained.len() as u64);
        m.gauge_epoch.set(epoch);
    }

    /// A fresh client id owned by this shard, for clients that connect without one.
    pub fn assign_client_id(&mut self) -> String {
        loop {
            self.assigned_ids += 1;
            let id = format!("ringmq-{}-{:x}", self.id, self.assigned_ids);
            if super::owner_shard(id.as_bytes(), self.shards) == self.id {
                return id;
            }
        }
    }

    /// The client id of the session in `slot`.
    pub fn client_id(&self, slot: u32) -> Option<&str> {
        self.sessions.get(slot).map(|e| &*e.session.client_id)
    }

    pub fn session_mut(&mut self, slot: u32) -> &mut Session {
        &mut self
            .sessions
            .get_mut(slot)
            .expect("a bound session exists")
            .session
    }

    /// Whether `slot` still belongs to the connection that opened it as `generation`.
    pub fn owns(&self, slot: u32, generation: u32) -> bool {
        self.sessions
            .get(slot)
            .is_some_and(|e| e.generation == generation)
    }

    /// Binds a connection to the client's session: takes over a connected one
    /// (closing the old connection with 0x8E), resumes a stored one, or starts a new
    /// one (always, with clean start).
    pub fn open_session(
        &mut self,
        shard: &Shard,
        req: SessionRequest<'_>,
        handle: Rc<ConnHandle>,
    ) -> Opened {
        let SessionRequest {
            client_id,
            client_key,
            version,
            clean_start,
            expiry_interval,
        } = req;
        let hash = self.client_hasher.hash_one(client_id.as_str());
        let sessions = &self.sessions;
        let found = self.clients.find(hash, |&slot| {
            sessions
                .get(slot)
                .is_some_and(|e| *e.session.client_id == **client_id)
        });
        if let Some(&slot) = found {
            let entry = self
                .sessions
                .get_mut(slot)
                .expect("client map points at a session");
            if let Some(old) = entry.conn.take() {
                old.request_close(ReasonCode::SessionTakenOver);
            }
            if clean_start {
                self.end_session(shard, slot, Instant::now());
            } else {
                self.generations = self.generations.wrapping_add(1);
                entry.generation = self.generations;
                entry.conn = Some(handle);
                entry.pending_will = None;
                entry.session.expiry_interval = expiry_interval;
                return Opened {
                    slot,
                    generation: entry.generation,
                    session_present: true,
                };
            }
        }
        // Its own copy: a slice of the CONNECT frame would keep the whole frame
        // (will payload and password included) for as long as the session lives.
        let client_id = Box::from(client_id.as_str());
        let limits = self.limits.clone();
        let mut session = Session::new(client_id, client_key, version, limits);
        session.expiry_interval = expiry_interval;
        self.generations = self.generations.wrapping_add(1);
        let generation = self.generations;
        let slot = self.sessions.insert(SessionEntry {
            session,
            conn: Some(handle),
            pending_will: None,
            generation,
            backlogged: false,
        });
        let (sessions, hasher) = (&self.sessions, &self.client_hasher);
        self.clients.insert_unique(hash, slot, |&slot| {
            let entry = sessions
                .get(slot)
                .expect("client index points at a session");
            hasher.hash_one(&*entry.session.client_id)
        });
        Opened {
            slot,
            generation,
            session_present: false,
        }
    }

    /// The connection bound to `slot` as `generation` has closed. Returns whether
    /// the session outlives it.
    pub fn close_session(
        &mut self,
        shard: &Shard,
        slot: u32,
        generation: u32,
        now: Instant,
    ) -> bool {
        let now_tick = shard.tick(now);
        let Some(entry) = self.sessions.get_mut(slot) else {
            return false;
        };
        if entry.generation != generation {
            return false;
        }
        entry.conn = None;
        self.clear_backlog(slot);
        let entry = self.sessions.get_mut(slot).expect("session exists");
        match entry.session.expiry_interval {
            0 => {
                self.end_session(shard, slot, now);
                false
            }
            secs => {
                entry.session.detach();
                harvest(self.metrics.shard(self.id), &mut entry.session);
                let redo = entry.session.take_shared();
                entry.session.trim();
                for d in redo {
                    self.redispatch(shard, d, slot);
                }
                if secs != u32::MAX {
                    let deadline = now_tick + u64::from(secs) * TICKS_PER_SEC;
                    self.wheel
                        .schedule(deadline, Timer::SessionExpiry { slot, generation });
                }
                true
            }
        }
    }

    /// Holds a will for `delay` seconds (or until the session ends, if sooner).
    pub fn defer_will(
        &mut self,
        shard: &Shard,
        slot: u32,
        will: Arc<Message>,
        delay: u32,
        now: Instant,
    ) {
        let Some(entry) = self.sessions.get_mut(slot) else {
            return;
        };
        let generation = entry.generation;
        let secs = delay.min(entry.session.expiry_interval);
        entry.pending_will = Some(will);
        let deadline = shard.tick(now) + u64::from(secs) * TICKS_PER_SEC;
        self.wheel
            .schedule(deadline, Timer::WillDelay { slot, generation });
    }

    /// Ends a session: its subscriptions leave the tries and a will still waiting
    /// for its delay is published.
    fn end_session(&mut self, shard: &Shard, slot: u32, now: Instant) {
        self.clear_backlog(slot);
        let Some(mut entry) = self.sessions.remove(slot) else {
            return;
        };
        for sub in entry.session.take_subscriptions() {
            self.drop_subscription(&shard.mesh, slot, &sub);
        }
        let hash = self.client_hasher.hash_one(&*entry.session.client_id);
        if let Ok(indexed) = self.clients.find_entry(hash, |&s| s == slot) {
            indexed.remove();
        }
        for d in entry.session.take_shared() {
            self.redispatch(shard, d, slot);
        }
        if let Some(will) = entry.pending_will.take() {
            self.publish(shard, will, now);
        }
    }

    fn drop_subscription(&mut self, mesh: &Mesh, slot: u32, sub: &Subscription) {
        if sub.shared {
            if let Some(count) = self.shared.leave(&sub.filter, slot) {
                self.announce_members(mesh, &sub.filter, count, None);
            }
            return;
        }
        self.subs.remove(sub.key);
        if self.trie.remove(&sub.filter, sub.key) && self.shards > 1 {
            let filter = ByteStr::from(&*sub.filter);
            for peer in (0..self.shards).filter(|&p| p != self.id) {
                mesh.send(
                    peer,
                    ShardMsg::RouteRemove {
                        filter: filter.clone(),
                        from: self.id as u16,
                    },
                );
            }
        }
    }

    /// Adds or replaces a subscription. Returns whether it is new (as opposed to
    /// replacing one with the same filter). When the filter is new to this shard,
    /// other shards are told and `handle.route_wait` counts until they all confirm.
    pub fn subscribe(
        &mut self,
        mesh: &Mesh,
        slot: u32,
        filter: ByteStr,
        options: SubscriptionOptions,
        id: Option<u32>,
        handle: &Rc<ConnHandle>,
    ) -> bool {
        let entry = self.sessions.get_mut(slot).expect("a bound session exists");
        if let Some(existing) = entry.session.subscription(&filter) {
            let rec = self
                .subs
                .get_mut(existing.key)
                .expect("subscription record exists");
            rec.options = options;
            rec.id = id;
            return false;
        }
        let key = self.subs.insert(SubRecord {
            session: slot,
            options,
            id,
        });
        // Its own copy, not a slice that would keep the SUBSCRIBE frame alive.
        entry.session.add_subscription(Subscription {
            filter: Box::from(filter.as_str()),
            key,
            shared: false,
        });
        if self.trie.insert(&filter, key) && self.shards > 1 {
            // Its own copy, shared by the messages to every peer.
            let filter = ByteStr::from(filter.as_str());
            self.next_token += 1;
            let token = self.next_token;
            self.route_tokens
                .insert(token, (Rc::downgrade(handle), self.shards - 1));
            handle.route_wait.set(handle.route_wait.get() + 1);
            for peer in (0..self.shards).filter(|&p| p != self.id) {
                mesh.send(
                    peer,
                    ShardMsg::RouteAdd {
                        filter: filter.clone(),
                        from: self.id as u16,
                        token,
                    },
                );
            }
        }
        true
    }

    /// Removes a subscription; returns whether it existed.
    pub fn unsubscribe(&mut self, mesh: &Mesh, slot: u32, filter: &str) -> bool {
        let entry = self.sessions.get_mut(slot).expect("a bound session exists");
        match entry.session.remove_subscription(filter) {
            Some(sub) => {
                self.drop_subscription(mesh, slot, &sub);
                true
            }
            None => false,
        }
    }

    /// Routes a message published on this shard: retained store, local
    /// subscribers, and the shards whose routes match.
    pub fn publish(&mut self, shard: &Shard, msg: Arc<Message>, now: Instant) {
        self.pressured.clear();
        let retain_seq = if msg.retain {
            let seq = shard.next_retained_seq();
            self.apply_retained(&msg, seq, now);
            Some(seq)
        } else {
            None
        };
        let mut matched = self.deliver_local(&msg);
        let mut groups: SmallVec<[u32; 4]> = SmallVec::new();
        self.shared.matching(&msg.topic, |g| groups.push(g));
        matched |= !groups.is_empty();
        for gid in groups {
            self.dispatch_shared(shard, gid, &msg, 0, None, 0);
        }
        if self.shards > 1 {
            let mut mask: u128 = 0;
            self.routes.match_topic(&msg.topic, |s| mask |= 1u128 << s);
            matched |= mask != 0;
            for peer in (0..self.shards).filter(|&p| p != self.id) {
                let deliver = mask & (1u128 << peer) != 0;
                if deliver || retain_seq.is_some() {
                    self.metrics.shard(self.id).mesh_out.inc();
                    shard.mesh.send(
                        peer,
                        ShardMsg::Publish {
                            msg: msg.clone(),
                            deliver,
                            retain_seq,
                        },
                    );
                }
            }
        }
        if !matched {
            self.metrics().unmatched.inc();
        }
    }

    /// Updates this shard's retained replica: an empty payload deletes.
    fn apply_retained(&mut self, msg: &Arc<Message>, seq: u64, now: Instant) {
        let stored = (!msg.payload.is_empty()).then(|| msg.clone());
        self.retained.apply(&msg.topic, seq, stored, now);
    }

    /// Queues `msg` for every local session with a matching subscription: once per
    /// session, at the highest granted QoS among its matching subscriptions, with
    /// all their subscription identifiers (v5 3.3.4). Returns whether any local
    /// subscription matched.
    pub fn deliver_local(&mut self, msg: &Arc<Message>) -> bool {
        // Each hit with its subscription record's session, looked up once; sorted
        // by session so that one session's matching subscriptions are adjacent.
        let subs = &self.subs;
        let mut hits: SmallVec<[(u32, &SubRecord); 16]> = SmallVec::new();
        self.trie.match_topic(&msg.topic, |k| {
            if let Some(rec) = subs.get(k) {
                hits.push((rec.session, rec));
            }
        });
        if hits.is_empty() {
            return false;
        }
        if hits.len() > 1 {
            hits.sort_unstable_by_key(|h| h.0);
        }
        let mut i = 0;
        while i < hits.len() {
            let slot = hits[i].0;
            let mut j = i;
            let mut granted: Option<QoS> = None;
            let mut retain_as_published = false;
            let mut sub_ids: SmallVec<[u32; 1]> = SmallVec::new();
            let entry = self.sessions.get_mut(slot);
            while j < hits.len() && hits[j].0 == slot {
                if let (rec, Some(entry)) = (hits[j].1, entry.as_ref()) {
                    if !(rec.options.no_local && msg.publisher == entry.session.client_key) {
                        granted = granted.max(Some(rec.options.qos));
                        retain_as_published |= rec.options.retain_as_published;
                        if let Some(id) = rec.id {
                            sub_ids.push(id);
                        }
                    }
                }
                j += 1;
            }
            i = j;
            let (Some(qos), Some(entry)) = (granted, entry) else {
                continue;
            };
            let delivery = Delivery {
                msg: msg.clone(),
                qos: qos.min(msg.qos),
                retain: retain_as_published && msg.retain,
                sub_ids,
                shared: None,
            };
            let metrics = self.metrics.shard(self.id);
            let (_, over) = entry.offer(delivery, metrics, &self.ready_writers, self.high_water);
            if let Some(newly) = over {
                self.pressured.push(slot);
                self.backlogged += usize::from(newly);
            }
        }
        true
    }

    /// Adds a member to a shared subscription group. Returns whether the
    /// subscription is new. The group's first member on this shard is announced to
    /// every other shard and `handle.route_wait` counts until they all confirm.
    pub fn subscribe_shared(
        &mut self,
        mesh: &Mesh,
        slot: u32,
        key: ByteStr,
        options: SubscriptionOptions,
        id: Option<u32>,
        handle: &Rc<ConnHandle>,
    ) -> bool {
        let Some(filter) =
            crate::protocol::topic::parse_shared(&key).map(|s| ByteStr::from(s.filter))
        else {
            return false;
        };
        let entry = self.sessions.get_mut(slot).expect("a bound session exists");
        // Its own copies, not slices that would keep the SUBSCRIBE frame alive.
        let replaced = entry.session.add_subscription(Subscription {
            filter: Box::from(key.as_str()),
            key: u32::MAX,
            shared: true,
        });
        let key = ByteStr::from(key.as_str());
        let count = self
            .shared
            .join(&key, &filter, Member { slot, options, id });
        let token = (count == 1 && self.shards > 1).then(|| {
            self.next_token += 1;
            let token = self.next_token;
            self.route_tokens
                .insert(token, (Rc::downgrade(handle), self.shards - 1));
            handle.route_wait.set(handle.route_wait.get() + 1);
            token
        });
        self.announce_members(mesh, &key, count, token);
        replaced.is_none()
    }

    fn announce_members(&mut self, mesh: &Mesh, key: &str, count: u32, token: Option<u64>) {
        if self.shards == 1 {
            return;
        }
        let filter = match crate::protocol::topic::parse_shared(key) {
            Some(s) => ByteStr::from(s.filter),
            None => return,
        };
        let key = ByteStr::from(key);
        for peer in (0..self.shards).filter(|&p| p != self.id) {
            mesh.send(
                peer,
                ShardMsg::SharedMembers {
                    key: key.clone(),
                    filter: filter.clone(),
                    from: self.id as u16,
                    count,
                    token,
                },
            );
        }
    }

    /// Sends `msg` to one member of group `gid`: on this shard when the weighted
    /// turn falls here, else to the shard whose turn it is. `exclude` holds shards
    /// already tried; `skip` a member that must not get it (it is leaving).
    fn dispatch_shared(
        &mut self,
        shard: &Shard,
        gid: u32,
        msg: &Arc<Message>,
        mut exclude: u128,
        skip: Option<u32>,
        hops: u8,
    ) {
        while let Some(target) = self.shared.pick_shard(gid, exclude) {
            if target != self.id {
                let key = self.shared.key(gid).expect("group exists").clone();
                self.metrics().mesh_out.inc();
                shard.mesh.send(
                    target,
                    ShardMsg::SharedDeliver {
                        key,
                        msg: msg.clone(),
                        hops: hops + 1,
                    },
                );
                return;
            }
            if self.deliver_shared_local(gid, msg, skip) {
                return;
            }
            exclude |= 1u128 << self.id;
        }
        self.metrics().dropped(DropCause::NoSharedMember, 1);
    }

    /// Gives `msg` to one local member of group `gid`; false if none could take it.
    fn deliver_shared_local(
        &mut self,
        gid: u32,
        msg: &Arc<Message>,
        mut skip: Option<u32>,
    ) -> bool {
        let key = match self.shared.key(gid) {
            Some(k) => k.clone(),
            None => return false,
        };
        // A member whose queue is full is passed over for the next one.
        for _ in 0..4 {
            let sessions = &self.sessions;
            let online = |slot: u32| sessions.get(slot).is_some_and(|e| e.conn.is_some());
            let load = |slot: u32| sessions.get(slot).map_or(usize::MAX, |e| e.session.load());
            let Some(member) = self.shared.pick_member(gid, skip, online, load) else {
                return false;
            };
            let Some(entry) = self.sessions.get_mut(member.slot) else {
                return false;
            };
            let delivery = Delivery {
                msg: msg.clone(),
                qos: member.options.qos.min(msg.qos),
                retain: member.options.retain_as_published && msg.retain,
                sub_ids: member.id.into_iter().collect(),
                shared: Some(key.clone()),
            };
            // Backpressure as for ordinary subscribers (`deliver_local`): a local
            // publisher pauses, other shards' messages wait.
            let metrics = self.metrics.shard(self.id);
            let (enqueued, over) =
                entry.offer(delivery, metrics, &self.ready_writers, self.high_water);
            if let Some(newly) = over {
                self.pressured.push(member.slot);
                self.backlogged += usize::from(newly);
            }
            match enqueued {
                Enqueued::Queued | Enqueued::DroppedQoS0 => return true,
                Enqueued::DroppedFull => skip = Some(member.slot),
            }
        }
        false
    }

    /// A shared delivery the client `from` did not complete goes to another member.
    fn redispatch(&mut self, shard: &Shard, d: Delivery, from: u32) {
        let Some(gid) = d.shared.as_deref().and_then(|k| self.shared.gid(k)) else {
            return;
        };
        self.dispatch_shared(shard, gid, &d.msg, 0, Some(from), 0);
    }

    /// After a publish: if it left a subscriber with a QoS 1/2 backlog, the
    /// publishing connection pauses reading until that subscriber drains (or for
    /// at most a second, so a stuck subscriber cannot stall it for good). This is
    /// what keeps QoS 1/2 from being dropped at a full queue under load.
    pub fn hold_publisher(&mut self, publisher: &Rc<ConnHandle>, now_tick: u64) {
        if self.pressured.is_empty() {
            return;
        }
        for slot in std::mem::take(&mut self.pressured) {
            if let Some(entry) = self.sessions.get_mut(slot) {
                let same = entry
                    .conn
                    .as_ref()
                    .is_some_and(|c| Rc::ptr_eq(c, publisher));
                if !same {
                    let waiting = self.waiting_publishers.entry(slot).or_default();
                    // A publisher released by the stuck timer may still be listed.
                    if !waiting.iter().any(|p| Rc::ptr_eq(p, publisher)) {
                        waiting.push(publisher.clone());
                    }
                    publisher.paused.set(true);
                    publisher
                        .paused_on
                        .set((slot, entry.session.progress as u32));
                }
            }
        }
        if publisher.paused.get() {
            self.wheel.schedule(
                now_tick + TICKS_PER_SEC,
                Timer::Unpause(Rc::downgrade(publisher)),
            );
        }
    }

    /// After a session sent from its queue: releases paused publishers once the
    /// backlog is under the low-water mark.
    pub fn drained(&mut self, slot: u32) {
        let low = self.low_water;
        if self
            .sessions
            .get(slot)
            .is_some_and(|e| e.session.queued() <= low)
        {
            self.clear_backlog(slot);
        }
    }

    /// Forgets a session's backlog (drained, gone offline or ended).
    fn clear_backlog(&mut self, slot: u32) {
        if !self.waiting_publishers.is_empty() {
            if let Some(publishers) = self.waiting_publishers.remove(&slot) {
                release(publishers);
            }
        }
        if let Some(entry) = self.sessions.get_mut(slot) {
            if entry.backlogged {
                entry.backlogged = false;
                self.backlogged -= 1;
                self.room_waiters.drain(..).for_each(Waker::wake);
            }
        }
    }

    /// Whether a message from another shard can be applied here without adding a
    /// QoS 1/2 message to a backlogged subscriber's queue: one whose subscription
    /// matches a `Publish`, or any member here of a `SharedDeliver`'s group (round
    /// robin gives every member its turn, so one backlogged member holds the group;
    /// otherwise it would fill up, be passed over, and the shares drift).
    pub fn has_room(&self, msg: &ShardMsg) -> bool {
        if self.backlogged == 0 {
            return true;
        }
        let msg = match msg {
            ShardMsg::Publish {
                msg, deliver: true, ..
            } => msg,
            ShardMsg::SharedDeliver { key, msg, .. } => {
                let backlogged =
                    |m: &Member| self.sessions.get(m.slot).is_some_and(|e| e.backlogged);
                return msg.qos == QoS::AtMostOnce
                    || !self
                        .shared
                        .gid(key)
                        .is_some_and(|gid| self.shared.members(gid).iter().any(backlogged));
            }
            _ => return true,
        };
        if msg.qos == QoS::AtMostOnce {
            return true;
        }
        let mut room = true;
        self.trie.match_topic(&msg.topic, |k| {
            if let Some(rec) = self.subs.get(k) {
                if rec.options.qos != QoS::AtMostOnce
                    && self.sessions.get(rec.session).is_some_and(|e| e.backlogged)
                {
                    room = false;
                }
            }
        });
        room
    }

    /// Registers a mesh receiver to be woken when a backlog clears.
    pub fn wait_for_room(&mut self, waker: &Waker) {
        self.room_waiters.push(waker.clone());
    }

    /// Arms the keep alive check for a connection.
    pub fn watch_keepalive(&mut self, handle: &Rc<ConnHandle>, now_tick: u64) {
        let ticks = handle.keepalive_ticks.get();
        if ticks > 0 {
            self.wheel
                .schedule(now_tick + ticks, Timer::Keepalive(Rc::downgrade(handle)));
        }
    }

    /// Arms the park timer of a connection idle since tick `since`: `after` ticks
    /// later it parks if it has stayed idle (`after` 0: parking is off).
    pub fn watch_idle(&mut self, handle: &Rc<ConnHandle>, since: u64, after: u64) {
        if after > 0 {
            self.wheel
                .schedule(since + after, Timer::Park(Rc::downgrade(handle)));
        }
    }

    fn on_route_ack(&mut self, token: u64) {
        let Some((_, left)) = self.route_tokens.get_mut(&token) else {
            return;
        };
        *left -= 1;
        if *left == 0 {
            let (handle, _) = self.route_tokens.remove(&token).expect("token present");
            if let Some(h) = handle.upgrade() {
                h.route_wait.set(h.route_wait.get().saturating_sub(1));
                h.wake();
            }
        }
    }
}

/// Moves a session's drop and send counts into the shard's metrics.
pub(crate) fn harvest(m: &ShardMetrics, session: &mut Session) {
    let s = session.take_stats();
    if s == SessionStats::default() {
        return;
    }
    m.dropped(DropCause::QueueFullQoS0, s.dropped_qos0.into());
    m.dropped(DropCause::QueueFull, s.dropped_full.into());
    m.dropped(DropCause::Expired, s.dropped_expired.into());
    m.dropped(DropCause::TooLarge, s.dropped_too_large.into());
    for q in 0..3 {
        if s.sent[q] > 0 {
            m.publish_out[q].add(s.sent[q].into());
            m.publish_bytes_out[q].add(s.sent_bytes[q].into());
        }
    }
}

fn release(publishers: Vec<Rc<ConnHandle>>) {
    for p in publishers {
        p.paused.set(false);
        p.wake();
    }
}

/// Applies one message from another shard.
pub(crate) fn on_mesh_message(shard: &Rc<Shard>, msg: ShardMsg) {
    let now = Instant::now();
    match msg {
        ShardMsg::Publish {
            msg,
            deliver,
            retain_seq,
        } => {
            let mut st = shard.state.borrow_mut();
            st.metrics().mesh_in.inc();
            if let Some(seq) = retain_seq {
                st.apply_retained(&msg, seq, now);
            }
            if deliver {
                // Whether it matched was counted where it was published.
                let _ = st.deliver_local(&msg);
                // Publishers on other shards are paced by the mesh, not paused here.
                st.pressured.clear();
            }
        }
        ShardMsg::RouteAdd {
            filter,
            from,
            token,
        } => {
            shard.state.borrow_mut().routes.insert(&filter, from);
            shard
                .mesh
                .send(usize::from(from), ShardMsg::RouteAck { token });
        }
        ShardMsg::RouteAck { token } => shard.state.borrow_mut().on_route_ack(token),
        ShardMsg::RouteRemove { filter, from } => {
            shard.state.borrow_mut().routes.remove(&filter, from);
        }
        ShardMsg::SharedMembers {
            key,
            filter,
            from,
            count,
            token,
        } => {
            shard
                .state
                .borrow_mut()
                .shared
                .set_remote(&key, &filter, usize::from(from), count);
            if let Some(token) = token {
                shard
                    .mesh
                    .send(usize::from(from), ShardMsg::RouteAck { token });
            }
        }
        ShardMsg::SharedDeliver { key, msg, hops } => {
            let mut st = shard.state.borrow_mut();
            st.metrics().mesh_in.inc();
            if let Some(gid) = st.shared.gid(&key) {
                let delivered = st.deliver_shared_local(gid, &msg, None);
                // Publishers on other shards are paced by the mesh, not paused here.
                st.pressured.clear();
                if !delivered {
                    // Its members here left meanwhile: another shard's turn.
                    if usize::from(hops) < st.shards {
                        let exclude = 1u128 << st.id;
                        st.dispatch_shared(shard, gid, &msg, exclude, None, hops);
                    } else {
                        st.metrics().dropped(DropCause::NoSharedMember, 1);
                    }
                }
            }
        }
        ShardMsg::Handoff(handoff) => {
            glommio::spawn_local(crate::transport::serve_handoff(shard.clone(), handoff)).detach();
        }
    }
}

/// The shard's periodic work: keep alive and session expiry timers, and pruning
/// the retained store.
pub(crate) fn on_tick(shard: &Rc<Shard>, now: Instant) {
    let tick = shard.tick(now);
    let park_ticks = shard.parking.after_ticks;
    let mut st = shard.state.borrow_mut();
    let mut expired_sessions: SmallVec<[(u32, u32); 8]> = SmallVec::new();
    let mut due_wills: SmallVec<[(u32, u32); 8]> = SmallVec::new();
    let mut unpauses: SmallVec<[Weak<ConnHandle>; 8]> = SmallVec::new();
    st.wheel.advance(tick, |timer| match timer {
        Timer::Keepalive(weak) => {
            let handle = weak.upgrade()?;
            let deadline = handle.last_rx.get() + handle.keepalive_ticks.get();
            if deadline <= tick {
                handle.request_close(ReasonCode::KeepAliveTimeout);
                None
            } else {
                Some((deadline, Timer::Keepalive(weak)))
            }
        }
        Timer::SessionExpiry { slot, generation } => {
            expired_sessions.push((slot, generation));
            None
        }
        Timer::WillDelay { slot, generation } => {
            due_wills.push((slot, generation));
            None
        }
        Timer::Unpause(weak) => {
            unpauses.push(weak);
            None
        }
        Timer::Park(weak) => {
            let handle = weak.upgrade()?;
            let due = handle.active.get() + park_ticks;
            if due <= tick {
                handle.park_due.set(true);
                handle.wake();
                None
            } else {
                Some((due, Timer::Park(weak)))
            }
        }
    });
    // A pause lasts while the subscriber it waits for keeps making progress; one
    // that has completed nothing for a second is stuck, and publishers go on.
    for weak in unpauses {
        let Some(h) = weak.upgrade() else {
            continue;
        };
        if !h.paused.get() {
            continue;
        }
        let (slot, seen) = h.paused_on.get();
        let progress = st
            .sessions
            .get(slot)
            .filter(|e| e.conn.is_some())
            .map(|e| e.session.progress);
        match progress {
            Some(p) if p as u32 != seen => {
                h.paused_on.set((slot, p as u32));
                st.wheel
                    .schedule(tick + TICKS_PER_SEC, Timer::Unpause(weak));
            }
            _ => {
                h.paused.set(false);
                h.wake();
            }
        }
    }
    for (slot, generation) in due_wills {
        let will = st
            .sessions
            .get_mut(slot)
            .filter(|e| e.generation == generation && e.conn.is_none())
            .and_then(|e| e.pending_will.take());
        if let Some(will) = will {
            st.publish(shard, will, now);
        }
    }
    for (slot, generation) in expired_sessions {
        let offline = st
            .sessions
            .get(slot)
            .is_some_and(|e| e.generation == generation && e.conn.is_none());
        if offline {
            st.metrics().sessions_expired.inc();
            st.end_session(shard, slot, now);
        }
    }
    if tick >= st.last_sweep + 10 * TICKS_PER_SEC {
        st.last_sweep = tick;
        st.retained.sweep(now, TOMBSTONE_AGE);
    }
}
