//! One client connection after CONNECT: the read loop, packet handling, and write
//! batching. This is where the socket meets the codec and the session.
//!
//! The connection is one task driving one state machine: it reads as much as the
//! socket has into the shard's scratch buffer, decodes every complete packet, lets
//! the session and router act on them, appends all acknowledgements and deliveries
//! to one output buffer, and writes that with as few syscalls as the socket allows.
//! Deliveries from other connections arrive through the session queue and a wake-up.

use std::cell::RefMut;
use std::future::Future;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use hashbrown::HashMap;
use smallvec::SmallVec;
use tracing::Instrument;

use crate::auth::{refusal_reason, AuthRequest, AuthStep, Authenticated};
use crate::config::AliasPolicy;
use crate::message::Message;
use crate::metrics::DisconnectKind;
use crate::protocol::topic::parse_shared;
use crate::protocol::{
    Auth, ByteStr, ConnAck, Connect, Disconnect, Packet, Properties, Property, PropertyId,
    ProtocolVersion, PubAck, PubComp, PubRec, Publish, QoS, ReasonCode, ReasonContext,
    RetainHandling, SubAck, UnsubAck, Will,
};
use crate::session::{Delivery, Session};
use crate::shard::{client_key, harvest, ConnHandle, Shard};

use super::{auth_packet, flush_and_close, refuse_connect};

/// Output bytes buffered for one connection before it stops reading and filling:
/// a client that does not read cannot make the broker buffer without bound.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Buffer capacity an idle connection may keep...
const IDLE_BUFFER: usize = 4096;
/// ...but not a small one, such as what is left of a buffer that held CONNECT or
/// SUBSCRIBE: kept while the connection idles until it parks, thousands of those
/// would sit among the sessions' small allocations and leave the allocator's pages
/// full of holes once they are freed. A busy connection's buffers are larger.
const SMALL_BUFFER: usize = 512;
/// Read/handle/write rounds before the task yields to others.
const ROUNDS_PER_POLL: usize = 16;

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// DISCONNECT from the client: no will.
    Normal,
    /// DISCONNECT 0x04 from the client: publish the will.
    WithWill,
    /// The broker closes it (protocol error, keep alive, takeover): v5 clients are
    /// told the reason; the will is published.
    Server(ReasonCode),
    /// The socket closed or failed without DISCONNECT: publish the will.
    Lost,
}

struct Conn {
    shard: Rc<Shard>,
    stream: TcpStream,
    handle: Rc<ConnHandle>,
    version: ProtocolVersion,
    slot: u32,
    generation: u32,
    client_key: u64,
    will: Option<Box<Will>>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// A SUBACK (and the retained messages after it) held until new routes are
    /// confirmed by every shard.
    held: Option<Box<(BytesMut, Vec<Delivery>)>>,
    max_packet_size: u32,
    /// Topic aliases the client set (v5), up to `topic_alias_maximum`.
    aliases: HashMap<u16, ByteStr>,
    topic_alias_maximum: u16,
    /// Set when the client authenticated with an enhanced method (v5 4.12).
    auth: Option<Box<ConnAuth>>,
    /// Whether a v5 client wants reason strings (Request Problem Information).
    problem_information: bool,
    /// What went wrong, for the reason string of the DISCONNECT the broker sends.
    close_detail: Option<String>,
    /// Input was read since this task last yielded to woken subscribers.
    read_since_yield: bool,
    /// The park timer is to be armed when the task next runs (it resumed from
    /// parking, which cannot touch the shard's state).
    arm_idle: bool,
    /// Idle past the park delay with nothing left to do: the task parks it.
    park_now: bool,
    /// Keeps the shard's connection count while the connection lives.
    counted: Counted,
}

/// What a parked connection keeps (see [`super::park`]): its socket and the state
/// that outlives a task.
pub(crate) struct Parked {
    pub fd: OwnedFd,
    /// Which parking of this lot slot a watcher token is for.
    pub seq: u32,
    pub kept: Kept,
}

/// A connection's state that outlives its task. Buffers, the glommio stream and
/// the limits every connection shares are made anew for each task
/// ([`Conn::new`]).
pub(crate) struct Kept {
    pub handle: Rc<ConnHandle>,
    version: ProtocolVersion,
    problem_information: bool,
    slot: u32,
    generation: u32,
    client_key: u64,
    will: Option<Box<Will>>,
    aliases: Option<Box<HashMap<u16, ByteStr>>>,
    auth: Option<Box<ConnAuth>>,
}

/// What re-authentication (v5 4.12.1) needs of a connection that authenticated
/// with an enhanced method at CONNECT.
struct ConnAuth {
    method: ByteStr,
    client_id: ByteStr,
    username: Option<ByteStr>,
    /// A re-authentication in progress: its round and the authenticator's state.
    reauth: Option<(u32, Bytes)>,
}

/// Sets up a connection whose CONNECT was read and, once it is accepted, spawns
/// the task that serves it to the end. That task's future is [`Serving`]: the
/// connection state and nothing else. (An `async fn` chain would keep a copy of
/// every argument it was called with, the socket several times over, for the
/// connection's whole life: with a million idle clients that is most of the
/// broker's memory.)
pub(super) async fn run(
    shard: Rc<Shard>,
    stream: TcpStream,
    connect: Box<Connect>,
    rbuf: BytesMut,
    assigned_id: bool,
    auth: Option<Box<Authenticated>>,
) {
    // Everything logged about this connection carries its client id and shard. A
    // debug span costs nothing at the default level.
    let span = tracing::debug_span!("client", id = %connect.client_id, shard = shard.id);
    let established = establish(shard, stream, connect, rbuf, assigned_id, auth)
        .instrument(span.clone())
        .await;
    if let Some(conn) = established {
        glommio::spawn_local(Serving {
            conn: Some(conn),
            span: Some(span),
            closing: None,
        })
        .detach();
    }
}

/// The task serving one established connection: its read/write loop, then its
/// close, which runs in its own allocation. The task also ends when the
/// connection parks.
struct Serving {
    conn: Option<Conn>,
    /// The connection's span; made on the first poll of a resumed connection.
    span: Option<tracing::Span>,
    closing: Option<Pin<Box<dyn Future<Output = ()>>>>,
}

impl Future for Serving {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let span = this.span.get_or_insert_with(|| match &this.conn {
            Some(conn) => conn.span(),
            None => tracing::Span::none(),
        });
        let _entered = span.enter();
        loop {
            if let Some(closing) = &mut this.closing {
                return closing.as_mut().poll(cx);
            }
            let conn = this.conn.as_mut().expect("serving until closing");
            match conn.poll_run(cx) {
                Poll::Ready(close) => {
                    let conn = this.conn.take().expect("serving until closing");
                    this.closing = Some(Box::pin(conn.finish(close)));
                }
                Poll::Pending if conn.park_now => {
                    conn.park_now = false;
                    let conn = this.conn.take().expect("serving until closing");
                    match conn.park() {
                        None => return Poll::Ready(()),
                        Some(conn) => {
                            let (now, after) = (
                                conn.shard.tick(Instant::now()),
                                conn.shard.parking.after_ticks,
                            );
                            conn.shard
                                .state
                                .borrow_mut()
                                .watch_idle(&conn.handle, now, after);
                            this.conn = Some(conn);
                            return Poll::Pending;
                        }
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Resumes the connection parked under `key` in a new task (see [`super::park`]).
/// With `seq`, only if that parking is still the one under `key`. Never touches
/// the shard's state, so it may run wherever a connection is woken.
pub(crate) fn unpark(shard: &Rc<Shard>, key: u32, seq: Option<u32>) {
    let Some(p) = shard.parking.take(key, seq) else {
        return;
    };
    // SAFETY: the parked record owned this connected socket's descriptor.
    let stream = unsafe { TcpStream::from_raw_fd(p.fd.into_raw_fd()) };
    let mut conn = Conn::new(
        shard.clone(),
        stream,
        p.kept,
        BytesMut::new(),
        Counted::resumed(shard.clone()),
    );
    conn.arm_idle = true;
    let serving = Serving {
        conn: Some(conn),
        span: None,
        closing: None,
    };
    // Scheduled, not run on the spot as `spawn_local` would: the caller may be in
    // the middle of changing the shard's state.
    let queue = glommio::executor().current_task_queue();
    match glommio::spawn_local_into(serving, queue) {
        Ok(task) => {
            task.detach();
        }
        Err(e) => tracing::error!("cannot resume a parked connection: {e}"),
    };
}

/// Checks what CONNECT asks for, binds the session and writes CONNACK (and any
/// redelivery). `None` when the connection was refused.
async fn establish(
    shard: Rc<Shard>,
    mut stream: TcpStream,
    mut connect: Box<Connect>,
    rbuf: BytesMut,
    assigned_id: bool,
    auth: Option<Box<Authenticated>>,
) -> Option<Conn> {
    let now = Instant::now();
    let tick = shard.tick(now);
    let limits = shard.config().limits.clone();
    let version = connect.protocol;
    let v5 = version.is_v5();
    let mut wbuf = BytesMut::new();

    if shard.connections.get() >= limits.max_connections_per_shard {
        // v3 carries this as return code 3, "server unavailable".
        refuse_connect(&shard, &mut stream, version, ReasonCode::ServerBusy).await;
        return None;
    }
    let counted = Counted::new(shard.clone());

    let mut keep_alive = connect.keep_alive;
    let mut server_keep_alive = None;
    if keep_alive > limits.max_keepalive || (keep_alive == 0 && limits.max_keepalive < u16::MAX) {
        keep_alive = limits.max_keepalive;
        server_keep_alive = Some(keep_alive);
    }
    let expiry = if v5 {
        connect.properties.session_expiry_interval().unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        u32::MAX
    }
    .min(limits.max_session_expiry);
    let client_receive_max = connect.properties.receive_maximum().unwrap_or(u16::MAX);
    let client_max_packet = connect.properties.maximum_packet_size().unwrap_or(u32::MAX);
    // Aliases toward the client (3.3.2.3.4): up to its Topic Alias Maximum and ours.
    let outgoing_aliases = match shard.config().alias_policy {
        _ if !v5 => 0,
        AliasPolicy::Off => 0,
        AliasPolicy::Fill | AliasPolicy::Lru => connect
            .properties
            .topic_alias_maximum()
            .unwrap_or(0)
            .min(limits.outgoing_topic_aliases),
    };
    let key = client_key(connect.client_id.as_bytes());

    let handle = Rc::new(ConnHandle::new(&shard));
    handle.last_rx.set(tick);
    handle.active.set(tick);
    handle.keepalive_ticks.set(u64::from(keep_alive) * 15);

    let opened = {
        let mut st = shard.state.borrow_mut();
        let opened = st.open_session(
            &shard,
            crate::shard::SessionRequest {
                client_id: &connect.client_id,
                client_key: key,
                version,
                clean_start: connect.clean_start,
                expiry_interval: expiry,
            },
            handle.clone(),
        );
        let mut ack = ConnAck::new(ReasonCode::Success, opened.session_present);
        if v5 {
            let p = &mut ack.properties;
            if assigned_id {
                p.push(Property::AssignedClientIdentifier(
                    connect.client_id.clone(),
                ));
            }
            p.push(Property::ReceiveMaximum(limits.receive_maximum));
            p.push(Property::MaximumPacketSize(limits.max_packet_size));
            if limits.topic_alias_maximum > 0 {
                p.push(Property::TopicAliasMaximum(limits.topic_alias_maximum));
            }
            if connect.properties.request_response_information() == Some(1)
                && !shard.config().response_information.is_empty()
            {
                let info = format!(
                    "{}{}",
                    shard.config().response_information,
                    connect.client_id
                );
                p.push(Property::ResponseInformation(info.into()));
            }
            if let Some(k) = server_keep_alive {
                p.push(Property::ServerKeepAlive(k));
            }
            if let Some(auth) = &auth {
                // [MQTT-4.12.0-5]: the method of the exchange, with its final data.
                p.push(Property::AuthenticationMethod(auth.method.clone()));
                if let Some(data) = &auth.data {
                    p.push(Property::AuthenticationData(data.clone()));
                }
            }
            if expiry != connect.properties.session_expiry_interval().unwrap_or(0) {
                p.push(Property::SessionExpiryInterval(expiry));
            }
        }
        Packet::ConnAck(ack)
            .encode(version, &mut wbuf)
            .expect("CONNACK encodes");
        let session = st.session_mut(opened.slot);
        session.attach(
            version,
            client_receive_max,
            client_max_packet,
            now,
            &mut wbuf,
        );
        session.use_topic_aliases(
            outgoing_aliases,
            shard.config().alias_policy == AliasPolicy::Lru,
        );
        st.watch_keepalive(&handle, tick);
        st.watch_idle(&handle, tick, shard.parking.after_ticks);
        opened
    };
    tracing::debug!(?version, keep_alive, "connected");

    let kept = Kept {
        handle,
        version,
        problem_information: connect.properties.request_problem_information() != Some(0),
        slot: opened.slot,
        generation: opened.generation,
        client_key: key,
        will: connect.will.take().map(Box::new),
        aliases: None,
        auth: auth.map(|a| {
            Box::new(ConnAuth {
                method: a.method,
                client_id: connect.client_id.clone(),
                username: connect.username.clone(),
                reauth: None,
            })
        }),
    };
    let mut conn = Conn::new(shard, stream, kept, rbuf, counted);
    conn.wbuf = wbuf;
    Some(conn)
}

impl Conn {
    /// A connection served by a task, from the state it keeps.
    fn new(
        shard: Rc<Shard>,
        stream: TcpStream,
        kept: Kept,
        rbuf: BytesMut,
        counted: Counted,
    ) -> Conn {
        let limits = &shard.config().limits;
        let (max_packet_size, topic_alias_maximum) = (
            limits.max_packet_size,
            if kept.version.is_v5() {
                limits.topic_alias_maximum
            } else {
                0
            },
        );
        Conn {
            shard,
            stream,
            handle: kept.handle,
            version: kept.version,
            slot: kept.slot,
            generation: kept.generation,
            client_key: kept.client_key,
            will: kept.will,
            rbuf,
            wbuf: BytesMut::new(),
            held: None,
            max_packet_size,
            aliases: kept.aliases.map(|a| *a).unwrap_or_default(),
            topic_alias_maximum,
            auth: kept.auth,
            problem_information: kept.problem_information,
            close_detail: None,
            read_since_yield: false,
            arm_idle: false,
            park_now: false,
            counted,
        }
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Close> {
        self.handle.set_waker(cx.waker());
        {
            let mut st = self.shard.state.borrow_mut();
            self.handle.clear_pending(&st.ready_writers);
            if std::mem::take(&mut self.arm_idle) {
                let tick = self.shard.tick(Instant::now());
                self.handle.active.set(tick);
                st.watch_idle(&self.handle, tick, self.shard.parking.after_ticks);
            }
        }
        // Bytes that arrived with CONNECT (or a hand-off) are handled first.
        if !self.rbuf.is_empty() {
            if let Err(close) = self.process(Instant::now()) {
                return Poll::Ready(close);
            }
        }
        for _ in 0..ROUNDS_PER_POLL {
            if let Some(reason) = self.handle.take_close() {
                return Poll::Ready(Close::Server(reason));
            }
            let mut progress = false;
            let now = Instant::now();
            let waiting = self.handle.route_wait.get() > 0;
            if !waiting {
                if let Some(held) = self.held.take() {
                    let (suback, deliveries) = *held;
                    self.wbuf.extend_from_slice(&suback);
                    self.enqueue(deliveries);
                    progress = true;
                    // Packets that arrived behind the SUBSCRIBE waited for it.
                    if let Err(close) = self.process(now) {
                        return Poll::Ready(close);
                    }
                }
            }

            // Subscribers woken by what was just read run before more is read.
            let yield_now =
                self.read_since_yield && self.shard.state.borrow().ready_writers.get() > 0;
            if !waiting
                && !yield_now
                && !self.handle.paused.get()
                && self.wbuf.len() < WRITE_HIGH_WATER
                && !self.shard.mesh.congested(cx.waker())
            {
                let mut scratch = self.shard.scratch.borrow_mut();
                match Pin::new(&mut self.stream).poll_read(cx, &mut scratch[..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Close::Lost),
                    Poll::Ready(Ok(n)) => {
                        self.rbuf.extend_from_slice(&scratch[..n]);
                        drop(scratch);
                        self.shard.metrics().bytes_in.add(n as u64);
                        self.read_since_yield = true;
                        self.handle.last_rx.set(self.shard.tick(now));
                        if let Err(close) = self.process(now) {
                            return Poll::Ready(close);
                        }
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }

            if !waiting && self.wbuf.len() < WRITE_HIGH_WATER {
                let mut st = self.shard.state.borrow_mut();
                let session = st.session_mut(self.slot);
                if session.can_send() {
                    let sent = session.fill(&mut self.wbuf, now, WRITE_HIGH_WATER);
                    harvest(self.shard.metrics(), session);
                    st.sent_total += sent as u64;
                    st.drained(self.slot);
                }
            }

            while !self.wbuf.is_empty() {
                match Pin::new(&mut self.stream).poll_write(cx, &self.wbuf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Close::Lost),
                    Poll::Ready(Ok(n)) => {
                        self.wbuf.advance(n);
                        self.shard.metrics().bytes_out.add(n as u64);
                        progress = true;
                    }
                    Poll::Pending => break,
                }
            }
            if progress {
                self.handle.active.set(self.shard.tick(now));
            }
            if yield_now {
                self.read_since_yield = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if !progress {
                self.release_idle_buffers();
                if self.handle.park_due.take() {
                    self.park_now = self.may_park(now);
                    if !self.park_now {
                        let (since, after) =
                            (self.handle.active.get(), self.shard.parking.after_ticks);
                        self.shard
                            .state
                            .borrow_mut()
                            .watch_idle(&self.handle, since, after);
                    }
                }
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Whether the connection has been idle for the park delay with nothing in
    /// hand: no bytes buffered either way, no SUBACK held, no pause, no close
    /// asked for, and nothing its session could send now.
    fn may_park(&self, now: Instant) -> bool {
        let h = &self.handle;
        self.rbuf.is_empty()
            && self.wbuf.is_empty()
            && self.held.is_none()
            && h.route_wait.get() == 0
            && !h.paused.get()
            && h.close_requested().is_none()
            && h.active.get() + self.shard.parking.after_ticks <= self.shard.tick(now)
            && !session_of(&self.shard, self.slot).can_send()
    }

    /// Parks the connection (see [`super::park`]). Gives it back if it cannot be
    /// parked now.
    fn park(self) -> Option<Conn> {
        let registered = crate::shard::dup_fd(&self.stream)
            .and_then(|fd| Ok((self.shard.parking.register(&fd)?, fd)));
        let (seq, fd) = match registered {
            Ok(parking) => parking,
            Err(e) => {
                tracing::debug!("cannot park: {e}");
                return Some(self);
            }
        };
        let Conn {
            shard,
            stream,
            handle,
            version,
            slot,
            generation,
            client_key,
            will,
            aliases,
            auth,
            problem_information,
            counted,
            ..
        } = self;
        let kept = Kept {
            handle,
            version,
            problem_information,
            slot,
            generation,
            client_key,
            will,
            aliases: (!aliases.is_empty()).then(|| Box::new(aliases)),
            auth,
        };
        shard.parking.file(Parked { fd, seq, kept });
        tracing::debug!("parked");
        counted.park();
        drop(stream);
        None
    }

    /// The span everything logged about this connection runs in.
    fn span(&self) -> tracing::Span {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return tracing::Span::none();
        }
        let st = self.shard.state.borrow();
        let id = st.client_id(self.slot).unwrap_or_default().to_string();
        tracing::debug_span!("client", id = %id, shard = self.shard.id)
    }

    /// An idle connection keeps no buffer memory: what a burst allocated is returned
    /// once everything is handled and written.
    fn release_idle_buffers(&mut self) {
        let idle = |b: &BytesMut| {
            b.is_empty()
                && b.capacity() > 0
                && (b.capacity() > IDLE_BUFFER || b.capacity() <= SMALL_BUFFER)
        };
        if idle(&self.wbuf) {
            self.wbuf = BytesMut::new();
        }
        if idle(&self.rbuf) {
            self.rbuf = BytesMut::new();
        }
    }

    /// Handles every complete packet in the read buffer.
    fn process(&mut self, now: Instant) -> Result<(), Close> {
        while self.handle.route_wait.get() == 0 {
            // Once the shard asked this connection to close (a takeover may already
            // have given its session to another connection), it handles nothing more.
            if let Some(reason) = self.handle.close_requested() {
                return Err(Close::Server(reason));
            }
            // A subscriber fed by this connection is backlogged: the rest of what
            // was read waits in the buffer until it drains.
            if self.handle.paused.get() {
                break;
            }
            let packet = match Packet::decode(&mut self.rbuf, self.version, self.max_packet_size) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("malformed packet: {e}");
                    self.close_detail = Some(e.to_string());
                    return Err(Close::Server(e.reason_code()));
                }
            };
            self.handle_packet(packet, now)?;
        }
        Ok(())
    }

    fn handle_packet(&mut self, packet: Packet, now: Instant) -> Result<(), Close> {
        let v = self.version;
        match packet {
            Packet::Publish(p) => self.on_publish(p, now)?,
            Packet::PubAck(a) => session_of(&self.shard, self.slot).on_puback(a.pkid),
            Packet::PubRec(r) => {
                session_of(&self.shard, self.slot).on_pubrec(r.pkid, r.reason, &mut self.wbuf)
            }
            Packet::PubRel(r) => {
                let known = session_of(&self.shard, self.slot).on_pubrel(r.pkid);
                let mut comp = PubComp::new(r.pkid);
                if !known {
                    comp.reason = ReasonCode::PacketIdentifierNotFound;
                }
                encode(v, Packet::PubComp(comp), &mut self.wbuf);
            }
            Packet::PubComp(c) => session_of(&self.shard, self.slot).on_pubcomp(c.pkid),
            Packet::Subscribe(s) => self.on_subscribe(s, now),
            Packet::Unsubscribe(u) => {
                let mut st = self.shard.state.borrow_mut();
                let reasons = u
                    .filters
                    .iter()
                    .map(|f| {
                        if st.unsubscribe(&self.shard.mesh, self.slot, f) {
                            ReasonCode::Success
                        } else {
                            ReasonCode::NoSubscriptionExisted
                        }
                    })
                    .collect();
                encode(
                    v,
                    Packet::UnsubAck(UnsubAck::new(u.pkid, reasons)),
                    &mut self.wbuf,
                );
            }
            Packet::PingReq => encode(v, Packet::PingResp, &mut self.wbuf),
            Packet::Auth(a) => self.on_auth(a)?,
            Packet::Disconnect(d) => {
                if let Some(secs) = d.properties.session_expiry_interval() {
                    let mut session = session_of(&self.shard, self.slot);
                    // v5 3.14.2.2.2: a session that was to end with the connection
                    // cannot be given an expiry at DISCONNECT.
                    if session.expiry_interval == 0 && secs != 0 {
                        self.close_detail =
                            Some("session expiry set at DISCONNECT after 0 at CONNECT".into());
                        return Err(Close::Server(ReasonCode::ProtocolError));
                    }
                    session.expiry_interval =
                        secs.min(self.shard.config().limits.max_session_expiry);
                }
                return Err(if d.reason == ReasonCode::DisconnectWithWillMessage {
                    Close::WithWill
                } else {
                    Close::Normal
                });
            }
            // A second CONNECT, or a packet only a server sends.
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => {
                self.close_detail = Some(format!(
                    "{:?} is not accepted from a client here",
                    packet.packet_type()
                ));
                return Err(Close::Server(ReasonCode::ProtocolError));
            }
        }
        Ok(())
    }

    fn on_publish(&mut self, mut p: Publish, now: Instant) -> Result<(), Close> {
        if let Some(alias) = p.properties.topic_alias() {
            self.resolve_alias(alias, &mut p)?;
        }
        let (qos, pkid) = (p.qos, p.pkid);
        self.shard.metrics().published(qos, p.payload.len());
        let mut st = self.shard.state.borrow_mut();
        let route = match qos {
            QoS::ExactlyOnce => st
                .session_mut(self.slot)
                .on_incoming_qos2(pkid)
                .map_err(|_| Close::Server(ReasonCode::ReceiveMaximumExceeded))?,
            _ => true,
        };
        if route {
            let msg = Arc::new(Message::from_publish(p, self.client_key, now));
            st.publish(&self.shard, msg, now);
            st.hold_publisher(&self.handle, self.shard.tick(now));
        }
        drop(st);
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => encode(
                self.version,
                Packet::PubAck(PubAck::new(pkid)),
                &mut self.wbuf,
            ),
            QoS::ExactlyOnce => encode(
                self.version,
                Packet::PubRec(PubRec::new(pkid)),
                &mut self.wbuf,
            ),
        }
        Ok(())
    }

    /// Applies a v5 Topic Alias (3.3.2.3.4): a PUBLISH with a topic sets the alias,
    /// one with an empty topic uses it.
    fn resolve_alias(&mut self, alias: u16, p: &mut Publish) -> Result<(), Close> {
        if alias == 0 || alias > self.topic_alias_maximum {
            return Err(Close::Server(ReasonCode::TopicAliasInvalid));
        }
        if p.topic.is_empty() {
            match self.aliases.get(&alias) {
                Some(topic) => p.topic = topic.clone(),
                None => {
                    self.close_detail = Some(format!("topic alias {alias} was never set"));
                    return Err(Close::Server(ReasonCode::ProtocolError));
                }
            }
        } else {
            self.aliases.insert(alias, p.topic.clone());
        }
        Ok(())
    }

    /// AUTH after CONNACK: a re-authentication (v5 4.12.1) opened by AUTH 0x19 and
    /// continued by AUTH 0x18, with the method used at CONNECT. Success is answered
    /// with AUTH 0x00, a challenge with AUTH 0x18, failure with DISCONNECT.
    fn on_auth(&mut self, a: Auth) -> Result<(), Close> {
        let (Some(auth), Some(authenticator)) = (
            self.auth.as_deref_mut(),
            self.shard.shared.hooks.authenticator.as_deref(),
        ) else {
            // [MQTT-4.12.0-7]: no method at CONNECT, so no AUTH.
            self.close_detail = Some("AUTH without an authentication method at CONNECT".into());
            return Err(Close::Server(ReasonCode::ProtocolError));
        };
        if a.properties.authentication_method().as_deref() != Some(&*auth.method) {
            self.close_detail = Some("AUTH with another authentication method".into());
            return Err(Close::Server(ReasonCode::ProtocolError));
        }
        let (round, mut state) = match (a.reason, auth.reauth.take()) {
            (ReasonCode::ReAuthenticate, None) => (0, Bytes::new()),
            (ReasonCode::ContinueAuthentication, Some((round, state))) => (round + 1, state),
            (reason, _) => {
                self.close_detail = Some(format!("AUTH {reason:?} out of turn"));
                return Err(Close::Server(ReasonCode::ProtocolError));
            }
        };
        let data = a.properties.authentication_data();
        let request = AuthRequest {
            client_id: &auth.client_id,
            username: auth.username.as_deref(),
            method: &auth.method,
            data: data.as_deref(),
            reauthentication: true,
            round,
        };
        let reply = match authenticator.authenticate(&request, &mut state) {
            AuthStep::Continue(challenge) => {
                auth.reauth = Some((round, state));
                auth_packet(
                    ReasonCode::ContinueAuthentication,
                    &auth.method,
                    Some(challenge),
                )
            }
            AuthStep::Success(data) => auth_packet(ReasonCode::Success, &auth.method, data),
            AuthStep::Fail(reason) => {
                self.shard.metrics().auth_failures.inc();
                self.close_detail = Some("re-authentication failed".into());
                let reason = refusal_reason(reason, ReasonContext::Disconnect);
                return Err(Close::Server(reason));
            }
        };
        if Packet::Auth(reply)
            .encode(self.version, &mut self.wbuf)
            .is_err()
        {
            self.close_detail = Some("authentication data too long for AUTH".into());
            return Err(Close::Server(ReasonCode::ImplementationSpecificError));
        }
        Ok(())
    }

    fn on_subscribe(&mut self, s: crate::protocol::Subscribe, now: Instant) {
        let sub_id = s.properties.subscription_identifiers().next();
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        let mut st = self.shard.state.borrow_mut();
        for f in s.filters {
            let granted = f.options.qos;
            reasons.push(match granted {
                QoS::AtMostOnce => ReasonCode::GRANTED_QOS0,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            if parse_shared(&f.filter).is_some() {
                // Retained messages are not sent for a shared subscription (4.8.2).
                st.subscribe_shared(
                    &self.shard.mesh,
                    self.slot,
                    f.filter.clone(),
                    f.options,
                    sub_id,
                    &self.handle,
                );
                continue;
            }
            let is_new = st.subscribe(
                &self.shard.mesh,
                self.slot,
                f.filter.clone(),
                f.options,
                sub_id,
                &self.handle,
            );
            let send_retained = match f.options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendAtSubscribeIfNew => is_new,
                RetainHandling::DoNotSend => false,
            };
            if send_retained {
                let ids: SmallVec<[u32; 1]> = sub_id.into_iter().collect();
                st.retained.for_each_match(&f.filter, now, |m| {
                    retained.push(Delivery {
                        msg: m.clone(),
                        qos: m.qos.min(granted),
                        retain: true,
                        sub_ids: ids.clone(),
                        shared: None,
                    })
                });
            }
        }
        drop(st);
        let mut suback = BytesMut::new();
        encode(
            self.version,
            Packet::SubAck(SubAck::new(s.pkid, reasons)),
            &mut suback,
        );
        if self.handle.route_wait.get() > 0 {
            self.held = Some(Box::new((suback, retained)));
        } else {
            self.wbuf.extend_from_slice(&suback);
            self.enqueue(retained);
        }
    }

    fn enqueue(&mut self, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let mut session = session_of(&self.shard, self.slot);
        for d in deliveries {
            session.enqueue(d);
        }
    }

    /// Ends the connection: tells a v5 client why when the broker closes it,
    /// publishes the will unless the client disconnected normally, and detaches
    /// the session (or ends it).
    async fn finish(mut self, close: Close) {
        let now = Instant::now();
        self.handle
            .clear_pending(&self.shard.state.borrow().ready_writers);
        let owns = self.shard.state.borrow().owns(self.slot, self.generation);
        tracing::debug!(?close, "connection closing");
        self.shard.metrics().disconnected(match close {
            Close::Normal => DisconnectKind::Client(ReasonCode::NORMAL_DISCONNECTION),
            Close::WithWill => DisconnectKind::Client(ReasonCode::DisconnectWithWillMessage),
            Close::Server(reason) => DisconnectKind::Server(reason),
            Close::Lost => DisconnectKind::Lost,
        });
        let shutting_down = close == Close::Server(ReasonCode::ServerShuttingDown);
        if shutting_down && owns {
            // What is queued for the client goes out before the DISCONNECT, as far
            // as its inflight window allows.
            let mut st = self.shard.state.borrow_mut();
            let session = st.session_mut(self.slot);
            session.fill(&mut self.wbuf, now, usize::MAX);
            harvest(self.shard.metrics(), session);
        }
        if let Close::Server(reason) = close {
            if self.version.is_v5() {
                let mut d = Disconnect::new(reason);
                if self.problem_information {
                    let text = self
                        .close_detail
                        .take()
                        .unwrap_or_else(|| reason_text(reason).to_string());
                    d.properties.push(Property::ReasonString(text.into()));
                }
                encode(self.version, Packet::Disconnect(d), &mut self.wbuf);
            }
        }
        let will = match close {
            // The broker is going away: there is no one left to tell.
            Close::Normal => None,
            Close::Server(_) if shutting_down => None,
            Close::WithWill | Close::Server(_) | Close::Lost => self.will.take(),
        };
        {
            let mut st = self.shard.state.borrow_mut();
            let will = will.map(|w| {
                let w = *w;
                let delay = w.properties.will_delay_interval().unwrap_or(0);
                let msg = Arc::new(Message::from_publish(will_publish(w), self.client_key, now));
                (msg, delay)
            });
            let persists = owns && st.close_session(&self.shard, self.slot, self.generation, now);
            match will {
                Some((msg, 0)) => st.publish(&self.shard, msg, now),
                Some((msg, delay)) if persists => {
                    st.defer_will(&self.shard, self.slot, msg, delay, now)
                }
                // The session ended with this connection: the delay is over.
                Some((msg, _)) if owns => st.publish(&self.shard, msg, now),
                // Taken over: a new connection to this session came within the delay.
                Some(_) | None => {}
            }
        }
        if !self.wbuf.is_empty() && close != Close::Lost {
            flush_and_close(&mut self.stream, &self.wbuf).await;
        }
    }
}

/// The reason string for a DISCONNECT the broker sends.
fn reason_text(reason: ReasonCode) -> &'static str {
    match reason {
        ReasonCode::KeepAliveTimeout => "no packet within 1.5 times the keep alive",
        ReasonCode::SessionTakenOver => "another connection took over this client id",
        ReasonCode::TopicAliasInvalid => "topic alias 0 or above the topic alias maximum",
        ReasonCode::ReceiveMaximumExceeded => {
            "more unreleased QoS 2 messages than the receive maximum"
        }
        ReasonCode::ProtocolError => "packet not allowed here",
        ReasonCode::ServerShuttingDown => "the broker is shutting down",
        _ => "closed by the broker",
    }
}

/// Counts a live connection on its shard for as long as it exists, parked or not.
struct Counted(Option<Rc<Shard>>);

impl Counted {
    fn new(shard: Rc<Shard>) -> Counted {
        shard.connections.set(shard.connections.get() + 1);
        shard.metrics().connection_opened();
        Counted(Some(shard))
    }

    /// A parked connection resumes: it was counted all along.
    fn resumed(shard: Rc<Shard>) -> Counted {
        Counted(Some(shard))
    }

    /// The connection parks: it stays counted.
    fn park(mut self) {
        self.0 = None;
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(shard) = self.0.take() {
            shard.connections.set(shard.connections.get() - 1);
            shard.metrics().connection_closed();
        }
    }
}

fn will_publish(will: Will) -> Publish {
    let mut properties: Properties = will.properties;
    properties.remove(PropertyId::WillDelayInterval);
    Publish {
        dup: false,
        qos: will.qos,
        retain: will.retain,
        topic: will.topic,
        pkid: 0,
        properties,
        payload: will.payload,
    }
}

/// A connection's session, borrowed from its shard's state while held.
fn session_of(shard: &Shard, slot: u32) -> RefMut<'_, Session> {
    RefMut::map(shard.state.borrow_mut(), |st| st.session_mut(slot))
}

fn encode(version: ProtocolVersion, packet: Packet, out: &mut BytesMut) {
    packet
        .encode(version, out)
        .expect("packets the broker builds always encode");
}
