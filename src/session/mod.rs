//! Session state, sans I/O: the per-client half of the protocol that outlives a
//! connection. It owns the subscription list, the outbound queue (bounded in
//! messages and bytes, QoS 0 dropped first), the inflight window of unacknowledged
//! QoS 1/2 deliveries, and the QoS 2 packet ids received but not yet released.
//!
//! Every method takes the packet (or delivery) and the time and writes whatever must
//! be sent into the caller's buffer; nothing here touches a socket, an executor or the
//! router, so it is tested directly.
//!
//! While a connection is attached the session also names topics for it: `alias`
//! holds the topic aliases the broker sets toward a v5 client (per connection, so
//! reset at every attach and detach).

mod alias;

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use hashbrown::HashSet;
use smallvec::SmallVec;

use self::alias::{AliasUse, TopicAliases};
use crate::message::Message;
use crate::protocol::{
    ByteStr, OutgoingPublish, Packet, Property, ProtocolVersion, PubRel, QoS, ReasonCode,
};

/// A message on its way to one client, with that client's view of it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<Message>,
    /// min(published QoS, granted QoS).
    pub qos: QoS,
    /// The RETAIN flag to send (retained-on-subscribe, or retain-as-published).
    pub retain: bool,
    /// Subscription identifiers of every matching subscription (v5).
    pub sub_ids: SmallVec<[u32; 1]>,
    /// The shared subscription group (`$share/...`) it was dispatched for: if this
    /// client goes away before acknowledging it, another member gets it.
    pub shared: Option<ByteStr>,
}

/// One subscription as the session sees it: what it needs to find and remove the
/// subscription. Its options and identifier live with the router's record (or the
/// shared group's member), which is what deliveries read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its own copy of the filter: a `ByteStr` would be twice the size inline and,
    /// once cloned, would add a shared header on the heap.
    pub filter: Box<str>,
    /// The router's handle (unused for shared subscriptions).
    pub key: u32,
    /// A `$share/{group}/{filter}` subscription.
    pub shared: bool,
}

/// Bounds on what one session may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub max_inflight: u16,
    pub max_queued_messages: usize,
    pub max_queued_bytes: usize,
    /// QoS 2 messages the client may have unreleased at once (our Receive Maximum).
    pub receive_maximum: u16,
}

/// What happened to a delivery offered to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// The queue was full and the message was QoS 0, or the client is offline and
    /// QoS 0 is not kept for offline clients.
    DroppedQoS0,
    /// The queue was full of QoS 1/2 messages.
    DroppedFull,
}

/// Counters a session keeps for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
///
/// The broker moves them into its metrics after every call that can change them,
/// so 32 bits are plenty and keep every session (there may be millions) smaller.
pub struct SessionStats {
    pub dropped_qos0: u32,
    pub dropped_full: u32,
    pub dropped_expired: u32,
    pub dropped_too_large: u32,
    /// PUBLISH packets written by `fill`, by QoS, and their payload bytes.
    pub sent: [u32; 3],
    pub sent_bytes: [u32; 3],
}

/// A protocol violation the session detected; the connection is closed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("client exceeded the receive maximum of unreleased QoS 2 messages")]
    ReceiveMaximumExceeded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// PUBREL sent; waiting for PUBCOMP.
    Released,
}

#[derive(Debug)]
struct Inflight {
    pkid: u16,
    stage: Stage,
    delivery: Delivery,
}

/// A client's session. A shard may hold millions, most of them idle, so what every
/// session needs is kept inline and small, and what only a session that messages
/// pass through needs is in `Flow`, allocated at the first message.
#[derive(Debug)]
pub struct Session {
    pub client_id: Box<str>,
    /// Hash of the client id; identifies this client's messages for no-local.
    pub client_key: u64,
    /// Messages this client has completed (QoS 0 sent, QoS 1/2 acknowledged): how
    /// the broker tells a slow subscriber from a stuck one.
    pub progress: u64,
    /// Nearly every client holds one or a few: one is kept inline.
    subscriptions: SmallVec<[Subscription; 1]>,
    /// The shard's limits, one copy for all its sessions.
    limits: Rc<SessionLimits>,
    /// Queue, inflight window, QoS 2 ids, topic aliases and counters; `None` until
    /// the first message, and again once an offline session holds none (`trim`).
    flow: Option<Box<Flow>>,
    /// Seconds the session outlives its connection: 0 ends it with the connection,
    /// `u32::MAX` never ends it.
    pub expiry_interval: u32,
    /// Largest packet the client accepts (v5 Maximum Packet Size).
    client_max_packet: u32,
    /// QoS 0 messages dropped because the client was offline, counted here rather
    /// than in `Flow` so that an offline session is not given one just to count.
    dropped_offline: u32,
    window: u16,
    next_pkid: u16,
    /// Topic aliases the broker may set toward the current connection (0: none),
    /// and whether a full table reassigns its least recently used alias.
    alias_max: u16,
    pub version: ProtocolVersion,
    alias_lru: bool,
    online: bool,
}

/// The part of a session that only messages passing through it need.
#[derive(Debug, Default)]
struct Flow {
    queue: VecDeque<Delivery>,
    queued_bytes: usize,
    inflight: VecDeque<Inflight>,
    incoming_qos2: HashSet<u16>,
    /// The current connection's aliases, allocated at the first one sent.
    aliases: Option<Box<TopicAliases>>,
    stats: SessionStats,
}

impl Flow {
    /// Whether dropping it loses nothing.
    fn is_idle(&self) -> bool {
        self.queue.is_empty()
            && self.inflight.is_empty()
            && self.incoming_qos2.is_empty()
            && self.aliases.is_none()
            && self.stats == SessionStats::default()
    }

    fn find_inflight(&self, pkid: u16) -> Option<usize> {
        // Acknowledgements nearly always arrive in order: the front is checked first.
        self.inflight.iter().position(|e| e.pkid == pkid)
    }
}

impl Session {
    pub fn new(
        client_id: Box<str>,
        client_key: u64,
        version: ProtocolVersion,
        limits: Rc<SessionLimits>,
    ) -> Session {
        Session {
            client_id,
            client_key,
            progress: 0,
            subscriptions: SmallVec::new(),
            window: limits.max_inflight,
            limits,
            flow: None,
            expiry_interval: 0,
            client_max_packet: u32::MAX,
            dropped_offline: 0,
            next_pkid: 1,
            alias_max: 0,
            version,
            alias_lru: false,
            online: false,
        }
    }

    /// The flow, allocated if the session has none yet.
    fn flow(&mut self) -> &mut Flow {
        self.flow.get_or_insert_with(Box::default)
    }

    /// Binds the session to a new connection: adopts the client's protocol version,
    /// Receive Maximum and Maximum Packet Size, and writes the redelivery of every
    /// unacknowledged message (PUBLISH with DUP set, or PUBREL) in original order.
    /// The new connection starts with no topic aliases (see `use_topic_aliases`):
    /// redeliveries carry their topics in full.
    pub fn attach(
        &mut self,
        version: ProtocolVersion,
        client_receive_maximum: u16,
        client_max_packet: u32,
        now: Instant,
        out: &mut BytesMut,
    ) {
        self.version = version;
        self.window = self.limits.max_inflight.min(client_receive_maximum).max(1);
        self.client_max_packet = client_max_packet;
        self.reset_topic_aliases();
        self.online = true;
        let Some(flow) = self.flow.as_deref() else {
            return;
        };
        for entry in &flow.inflight {
            match entry.stage {
                Stage::Published => {
                    encode_publish(self.version, &entry.delivery, entry.pkid, true, now, out)
                }
                Stage::Released => {
                    let rel = Packet::PubRel(PubRel::new(entry.pkid));
                    rel.encode(self.version, out)
                        .expect("PUBREL always encodes");
                }
            }
        }
    }

    /// Lets `fill` give topics aliases 1..=`max` toward the attached connection (a
    /// v5 client's Topic Alias Maximum, bounded by the broker's), reassigning the
    /// least recently used one when all are taken if `lru`, else sending further
    /// topics in full. 0 turns aliases off.
    pub fn use_topic_aliases(&mut self, max: u16, lru: bool) {
        self.reset_topic_aliases();
        self.alias_max = max;
        self.alias_lru = lru;
    }

    fn reset_topic_aliases(&mut self) {
        self.alias_max = 0;
        if let Some(flow) = self.flow.as_deref_mut() {
            flow.aliases = None;
        }
    }

    /// The connection is gone; the session (if it persists) queues for later.
    pub fn detach(&mut self) {
        self.online = false;
        self.reset_topic_aliases();
        let Some(flow) = self.flow.as_deref_mut() else {
            return;
        };
        // QoS 0 messages are not kept for a client that is not connected.
        let before = flow.queue.len();
        flow.queue.retain(|d| d.qos != QoS::AtMostOnce);
        let dropped = before - flow.queue.len();
        let dropped = u32::try_from(dropped).unwrap_or(u32::MAX);
        flow.stats.dropped_qos0 = flow.stats.dropped_qos0.saturating_add(dropped);
        flow.queued_bytes = flow.queue.iter().map(|d| d.msg.cost()).sum();
    }

    /// Frees the flow of an offline session that holds no message, no packet id and
    /// no uncollected count (call `take_stats` first), so that a stored session
    /// costs only its identity and subscriptions. Online sessions keep theirs: one
    /// that drains its queue after every message would otherwise allocate and free
    /// it every time.
    pub fn trim(&mut self) {
        if !self.online && self.flow.as_deref().is_some_and(Flow::is_idle) {
            self.flow = None;
        }
    }

    /// Takes the counters gathered since the last call.
    pub fn take_stats(&mut self) -> SessionStats {
        let mut stats = match self.flow.as_deref_mut() {
            Some(flow) => std::mem::take(&mut flow.stats),
            None => SessionStats::default(),
        };
        let offline = std::mem::take(&mut self.dropped_offline);
        stats.dropped_qos0 = stats.dropped_qos0.saturating_add(offline);
        stats
    }

    pub fn is_online(&self) -> bool {
        self.online
    }

    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    pub fn subscription(&self, filter: &str) -> Option<&Subscription> {
        self.subscriptions.iter().find(|s| *s.filter == *filter)
    }

    /// Adds or replaces a subscription; returns the one it replaced.
    pub fn add_subscription(&mut self, sub: Subscription) -> Option<Subscription> {
        match self
            .subscriptions
            .iter_mut()
            .find(|s| s.filter == sub.filter)
        {
            Some(slot) => Some(std::mem::replace(slot, sub)),
            None => {
                // Most clients hold one or a few subscriptions: grow one at a time
                // rather than by doubling, which would reserve four at once.
                if self.subscriptions.len() < 8 {
                    self.subscriptions.reserve_exact(1);
                }
                self.subscriptions.push(sub);
                None
            }
        }
    }

    pub fn remove_subscription(&mut self, filter: &str) -> Option<Subscription> {
        let pos = self
            .subscriptions
            .iter()
            .position(|s| *s.filter == *filter)?;
        Some(self.subscriptions.swap_remove(pos))
    }

    /// Takes every subscription out (session end).
    pub fn take_subscriptions(&mut self) -> SmallVec<[Subscription; 1]> {
        std::mem::take(&mut self.subscriptions)
    }

    /// Offers a delivery. A full queue evicts its oldest QoS 0 message to make room
    /// for QoS 1/2; QoS 0 is dropped when the queue is full or the client offline.
    pub fn enqueue(&mut self, d: Delivery) -> Enqueued {
        if d.qos == QoS::AtMostOnce && !self.online {
            self.dropped_offline += 1;
            return Enqueued::DroppedQoS0;
        }
        let cost = d.msg.cost();
        let (max_messages, max_bytes) = (
            self.limits.max_queued_messages,
            self.limits.max_queued_bytes,
        );
        let flow = self.flow();
        while flow.queue.len() >= max_messages || flow.queued_bytes + cost > max_bytes {
            if d.qos == QoS::AtMostOnce {
                flow.stats.dropped_qos0 += 1;
                return Enqueued::DroppedQoS0;
            }
            match flow.queue.iter().position(|q| q.qos == QoS::AtMostOnce) {
                Some(pos) => {
                    let evicted = flow.queue.remove(pos).expect("position is in range");
                    flow.queued_bytes -= evicted.msg.cost();
                    flow.stats.dropped_qos0 += 1;
                }
                None => {
                    flow.stats.dropped_full += 1;
                    return Enqueued::DroppedFull;
                }
            }
        }
        flow.queued_bytes += cost;
        flow.queue.push_back(d);
        Enqueued::Queued
    }

    pub fn queued(&self) -> usize {
        self.flow.as_ref().map_or(0, |f| f.queue.len())
    }

    pub fn inflight(&self) -> usize {
        self.flow.as_ref().map_or(0, |f| f.inflight.len())
    }

    /// Whether `fill` would write something now.
    pub fn can_send(&self) -> bool {
        let Some(flow) = self.flow.as_deref() else {
            return false;
        };
        match flow.queue.front() {
            None => false,
            Some(d) => d.qos == QoS::AtMostOnce || flow.inflight.len() < self.window as usize,
        }
    }

    /// Moves queued deliveries into `out` until the queue is empty, the inflight
    /// window is full (QoS 1/2 wait; order is kept, so QoS 0 behind them waits too)
    /// or `out` holds `budget` bytes. Expired messages are dropped, and messages
    /// larger than the client's Maximum Packet Size are dropped and counted (an
    /// alias that would make a packet too large is not assigned, so a topic sent in
    /// full with no alias may still fit). Returns how many PUBLISH packets were written.
    pub fn fill(&mut self, out: &mut BytesMut, now: Instant, budget: usize) -> usize {
        let Some(flow) = self.flow.as_deref_mut() else {
            return 0;
        };
        let mut sent = 0;
        while out.len() < budget {
            let Some(front) = flow.queue.front() else {
                break;
            };
            if front.qos != QoS::AtMostOnce && flow.inflight.len() >= self.window as usize {
                break;
            }
            let d = flow.queue.pop_front().expect("front exists");
            flow.queued_bytes -= d.msg.cost();
            if d.msg.is_expired(now) {
                flow.stats.dropped_expired += 1;
                continue;
            }
            let mut extra = extra_properties(self.version, &d, now);
            let mut alias = match self.alias_max {
                0 => None,
                max => {
                    let lru = self.alias_lru;
                    flow.aliases
                        .get_or_insert_with(|| Box::new(TopicAliases::new(max, lru)))
                        .plan(&d.msg.topic)
                }
            };
            if let Some(a) = alias {
                extra.push(Property::TopicAlias(a.alias()));
            }
            if self.client_max_packet != u32::MAX {
                let (version, max) = (self.version, self.client_max_packet as usize);
                // The packet id's value does not change the length, only its presence.
                let len = |extra: &[Property], alias| {
                    outgoing(&d, extra, alias_topic(&d, alias), 0, false).encoded_len(version)
                };
                if len(&extra, alias) > max {
                    if let Some(AliasUse::Assign(_)) = alias {
                        extra.pop();
                        alias = None;
                    }
                    if alias.is_some() || len(&extra, None) > max {
                        flow.stats.dropped_too_large += 1;
                        continue;
                    }
                }
            }
            if let (Some(a), Some(table)) = (alias, flow.aliases.as_deref_mut()) {
                table.commit(&d.msg.topic, a);
            }
            let mut packet = outgoing(&d, &extra, alias_topic(&d, alias), 0, false);
            if d.qos != QoS::AtMostOnce {
                packet.pkid = alloc_pkid(&mut self.next_pkid, &flow.inflight);
            }
            let pkid = packet.pkid;
            // A routed message was decoded from a valid packet, so it re-encodes.
            packet
                .encode(self.version, out)
                .expect("a routed message always encodes");
            flow.stats.sent[d.qos as usize] += 1;
            // A payload is below 256 MiB and `fill` writes at most `budget` bytes.
            let bytes = &mut flow.stats.sent_bytes[d.qos as usize];
            *bytes = bytes.saturating_add(d.msg.payload.len() as u32);
            if d.qos == QoS::AtMostOnce {
                self.progress += 1;
            } else {
                flow.inflight.push_back(Inflight {
                    pkid,
                    stage: Stage::Published,
                    delivery: d,
                });
            }
            sent += 1;
        }
        sent
    }

    /// PUBACK from the client. Unknown identifiers are ignored (a late duplicate).
    pub fn on_puback(&mut self, pkid: u16) {
        let Some(flow) = self.flow.as_deref_mut() else {
            return;
        };
        if let Some(i) = flow.find_inflight(pkid) {
            if flow.inflight[i].delivery.qos == QoS::AtLeastOnce {
                flow.inflight.remove(i);
                self.progress += 1;
            }
        }
    }

    /// PUBREC from the client: answer PUBREL (or end the exchange on an error code).
    pub fn on_pubrec(&mut self, pkid: u16, reason: ReasonCode, out: &mut BytesMut) {
        let flow = self.flow.as_deref_mut();
        match flow.and_then(|f| Some((f.find_inflight(pkid)?, f))) {
            Some((i, flow)) if flow.inflight[i].delivery.qos == QoS::ExactlyOnce => {
                if reason.is_error() {
                    flow.inflight.remove(i);
                    return;
                }
                flow.inflight[i].stage = Stage::Released;
                let rel = Packet::PubRel(PubRel::new(pkid));
                rel.encode(self.version, out)
                    .expect("PUBREL always encodes");
            }
            _ => {
                let mut rel = PubRel::new(pkid);
                rel.reason = ReasonCode::PacketIdentifierNotFound;
                Packet::PubRel(rel)
                    .encode(self.version, out)
                    .expect("PUBREL always encodes");
            }
        }
    }

    /// PUBCOMP from the client: the QoS 2 delivery is complete.
    pub fn on_pubcomp(&mut self, pkid: u16) {
        let Some(flow) = self.flow.as_deref_mut() else {
            return;
        };
        if let Some(i) = flow.find_inflight(pkid) {
            if flow.inflight[i].stage == Stage::Released {
                flow.inflight.remove(i);
                self.progress += 1;
            }
        }
    }

    /// A QoS 2 PUBLISH from the client. Returns whether it is new and must be routed;
    /// a resend before PUBREL is acknowledged again but not delivered twice.
    pub fn on_incoming_qos2(&mut self, pkid: u16) -> Result<bool, SessionError> {
        let held = self.flow.as_deref().map(|f| &f.incoming_qos2);
        if held.is_some_and(|ids| ids.contains(&pkid)) {
            return Ok(false);
        }
        if held.map_or(0, HashSet::len) >= self.limits.receive_maximum as usize {
            return Err(SessionError::ReceiveMaximumExceeded);
        }
        self.flow().incoming_qos2.insert(pkid);
        Ok(true)
    }

    /// PUBREL from the client: releases the packet id. Returns whether it was known.
    pub fn on_pubrel(&mut self, pkid: u16) -> bool {
        self.flow
            .as_deref_mut()
            .is_some_and(|f| f.incoming_qos2.remove(&pkid))
    }

    /// Takes out the deliveries made for shared subscriptions that this client has
    /// not completed (queued, or sent and unacknowledged), for another member.
    /// A QoS 2 message whose PUBREC arrived stays: the client has it.
    pub fn take_shared(&mut self) -> Vec<Delivery> {
        let mut out = Vec::new();
        let Some(flow) = self.flow.as_deref_mut() else {
            return out;
        };
        let mut i = 0;
        while i < flow.inflight.len() {
            let e = &flow.inflight[i];
            if e.stage == Stage::Published && e.delivery.shared.is_some() {
                let e = flow.inflight.remove(i).expect("index in range");
                out.push(e.delivery);
            } else {
                i += 1;
            }
        }
        let mut kept = VecDeque::with_capacity(flow.queue.len());
        for d in flow.queue.drain(..) {
            if d.shared.is_some() {
                flow.queued_bytes -= d.msg.cost();
                out.push(d);
            } else {
                kept.push_back(d);
            }
        }
        flow.queue = kept;
        out
    }

    /// Messages queued and in flight: the load least-loaded dispatch compares.
    pub fn load(&self) -> usize {
        self.queued() + self.inflight()
    }

    /// Drops everything queued and in flight (session replaced by a clean one).
    pub fn clear_messages(&mut self) {
        if let Some(flow) = self.flow.as_deref_mut() {
            flow.queue.clear();
            flow.queued_bytes = 0;
            flow.inflight.clear();
            flow.incoming_qos2.clear();
        }
    }
}

/// The next packet id not in flight, after `next`.
fn alloc_pkid(next: &mut u16, inflight: &VecDeque<Inflight>) -> u16 {
    loop {
        let id = *next;
        *next = next.checked_add(1).unwrap_or(1);
        if !inflight.iter().any(|e| e.pkid == id) {
            return id;
        }
    }
}

/// The per-subscriber properties added to a forwarded message (v5): the remaining
/// expiry and the matching subscription identifiers.
fn extra_properties(
    version: ProtocolVersion,
    d: &Delivery,
    now: Instant,
) -> SmallVec<[Property; 2]> {
    let mut extra = SmallVec::new();
    if version.is_v5() {
        if let Some(left) = d.msg.remaining_expiry(now) {
            extra.push(Property::MessageExpiryInterval(left));
        }
        extra.extend(
            d.sub_ids
                .iter()
                .map(|id| Property::SubscriptionIdentifier(*id)),
        );
    }
    extra
}

/// The topic name a PUBLISH carries: empty when the client already knows its alias.
fn alias_topic(d: &Delivery, alias: Option<AliasUse>) -> &[u8] {
    match alias {
        Some(AliasUse::Known(_)) => b"",
        _ => d.msg.topic.as_bytes(),
    }
}

fn outgoing<'a>(
    d: &'a Delivery,
    extra: &'a [Property],
    topic: &'a [u8],
    pkid: u16,
    dup: bool,
) -> OutgoingPublish<'a> {
    OutgoingPublish {
        dup,
        qos: d.qos,
        retain: d.retain,
        pkid,
        topic,
        properties: &d.msg.properties,
        extra,
        payload: &d.msg.payload,
    }
}

fn encode_publish(
    version: ProtocolVersion,
    d: &Delivery,
    pkid: u16,
    dup: bool,
    now: Instant,
    out: &mut BytesMut,
) {
    let extra = extra_properties(version, d, now);
    // A routed message was decoded from a valid packet, so it re-encodes.
    outgoing(d, &extra, d.msg.topic.as_bytes(), pkid, dup)
        .encode(version, out)
        .expect("a routed message always encodes");
}

#[cfg(test)]
mod tests;
