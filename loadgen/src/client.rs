//! One MQTT client connection: its socket (bound to a source address before
//! connecting, when asked), the CONNECT and SUBSCRIBE handshakes, and its loop.
//!
//! The loop is one task driving one state machine, like the broker's: read as much
//! as the socket has into the worker's scratch buffer, decode every complete packet
//! with the zero-copy codec, account for and acknowledge what arrived, append every
//! due publish to one output buffer (a copy of a pre-encoded PUBLISH with its packet
//! id and payload header patched in: no allocation per message), and write that
//! buffer with as few sends as the socket allows.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use ringmq::protocol::{
    Connect, DecodeError, Disconnect, Packet, Property, ProtocolVersion, PubAck, PubComp, PubRec,
    PubRel, Publish, QoS, ReasonCode, Subscribe, SubscribeFilter,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::accounting::{Arrival, SubscriberBook, Tally};
use crate::clock;
use crate::payload::Header;
use crate::scenario::BookPlan;
use crate::shared::{Counters, LatencyRecorder};
use crate::worker::{ClientPlan, Worker};

/// Bytes read from a socket at once.
pub const READ_CHUNK: usize = 64 * 1024;
/// Output buffered before a connection stops producing and stops reading (so the
/// acknowledgements it owes cannot pile up without bound).
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Read/handle/write rounds before a connection yields to the others.
const ROUNDS_PER_POLL: usize = 8;
/// Granularity of paced publishing.
const PACE_TICK_NS: u64 = 5_000_000;
/// Largest packet accepted from the broker.
const MAX_PACKET: u32 = 32 * 1024 * 1024;
/// How long the final DISCONNECT may take to write.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Why a connection could not be set up or ended early.
#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    /// The broker closed the socket.
    Closed,
    Timeout,
    Decode(DecodeError),
    /// CONNACK with a failure reason.
    ConnectRefused(ReasonCode),
    /// SUBACK refused a filter: the run cannot measure what it was asked to.
    SubscribeRefused {
        filter: String,
        code: u8,
        reason: ReasonCode,
    },
    /// DISCONNECT from the broker.
    Disconnected(ReasonCode),
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Closed => f.write_str("the broker closed the connection"),
            ClientError::Timeout => f.write_str("timed out"),
            ClientError::Decode(e) => write!(f, "malformed packet from the broker: {e}"),
            ClientError::ConnectRefused(r) => write!(
                f,
                "CONNACK refused the connection: {r:?} ({:#04x})",
                r.value()
            ),
            ClientError::SubscribeRefused {
                filter,
                code,
                reason,
            } => {
                write!(f, "the broker refused the subscription to '{filter}': SUBACK {code:#04x} ({reason:?})")?;
                if filter.starts_with("$share/") {
                    f.write_str("; the broker does not appear to support shared subscriptions")?;
                }
                Ok(())
            }
            ClientError::Disconnected(r) => {
                write!(f, "the broker sent DISCONNECT: {r:?} ({:#04x})", r.value())
            }
            ClientError::Protocol(m) => f.write_str(m),
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

impl From<DecodeError> for ClientError {
    fn from(e: DecodeError) -> Self {
        ClientError::Decode(e)
    }
}

/// Opens a non-blocking TCP socket to `target`, bound to `source` first if given.
/// The connect completes in the background; the first write waits for it.
pub fn open_socket(target: SocketAddr, source: Option<IpAddr>) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    if let Some(ip) = source {
        if ip.is_ipv4() {
            // Choose the port at connect time, per destination, so one source
            // address is not limited to one ephemeral port range overall.
            let one: libc::c_int = 1;
            // SAFETY: a valid socket, a valid option value of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&socket),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(socket)
}

/// The client id for a role and index.
pub fn client_id(prefix: &str, plan: &ClientPlan) -> String {
    match plan {
        ClientPlan::Pub(p) => format!("{prefix}p{}", p.id),
        ClientPlan::Sub(s) => format!("{prefix}s{}", s.index),
        ClientPlan::Conn(c) => format!("{prefix}c{}", c.index),
    }
}

/// A connection after its handshakes.
struct Established {
    stream: TcpStream,
    rbuf: BytesMut,
    /// Packets that arrived during the handshakes after the one awaited.
    early: Vec<Packet>,
    /// The broker's Receive Maximum (v5), bounding our QoS 1/2 window.
    receive_max: u16,
}

async fn read_until<T>(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    version: ProtocolVersion,
    early: &mut Vec<Packet>,
    mut want: impl FnMut(Packet) -> Result<Option<T>, ClientError>,
) -> Result<T, ClientError> {
    loop {
        while let Some(p) = Packet::decode(rbuf, version, MAX_PACKET)? {
            if let Packet::Disconnect(d) = p {
                return Err(ClientError::Disconnected(d.reason));
            }
            if let Some(t) = want(p.clone())? {
                return Ok(t);
            }
            early.push(p);
        }
        // A small read: CONNACK and SUBACK are a few bytes, and whatever buffer
        // is left here stays with an idle connection.
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        rbuf.extend_from_slice(&chunk[..n]);
    }
}

async fn establish(
    w: &Worker,
    plan: &ClientPlan,
    ordinal: usize,
) -> Result<Established, ClientError> {
    let s = &w.settings;
    let source = (!s.sources.is_empty()).then(|| s.sources[ordinal % s.sources.len()]);
    let socket = open_socket(s.target, source).map_err(|e| match source {
        Some(src) => ClientError::Io(io::Error::new(e.kind(), format!("from {src}: {e}"))),
        None => ClientError::Io(e),
    })?;
    // SAFETY: `into_raw_fd` hands over sole ownership of a connected (or connecting)
    // TCP socket's descriptor.
    let mut stream = unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) };
    let version = s.version;

    let mut connect = Connect::new(version, client_id(&s.client_prefix, plan));
    connect.keep_alive = s.keepalive;
    connect.clean_start = s.clean;
    if version.is_v5() && !s.clean {
        connect
            .properties
            .push(Property::SessionExpiryInterval(s.session_expiry));
    }
    let mut out = BytesMut::new();
    Packet::Connect(Box::new(connect))
        .encode(version, &mut out)
        .map_err(|e| ClientError::Protocol(format!("cannot encode CONNECT: {e}")))?;
    stream.write_all(&out).await?;

    let mut rbuf = BytesMut::new();
    let mut early = Vec::new();
    let receive_max = read_until(&mut stream, &mut rbuf, version, &mut early, |p| match p {
        Packet::ConnAck(a) if a.reason == ReasonCode::Success => {
            Ok(Some(a.properties.receive_maximum().unwrap_or(u16::MAX)))
        }
        Packet::ConnAck(a) => Err(ClientError::ConnectRefused(a.reason)),
        other => Err(ClientError::Protocol(format!(
            "expected CONNACK, got {:?}",
            other.packet_type()
        ))),
    })
    .await?;

    let filters: Vec<String> = match plan {
        ClientPlan::Sub(sub) => sub.filters.clone(),
        ClientPlan::Conn(c) => c.filter.iter().cloned().collect(),
        ClientPlan::Pub(_) => Vec::new(),
    };
    if !filters.is_empty() {
        let sub = Subscribe::new(
            1,
            filters
                .iter()
                .map(|f| SubscribeFilter::new(f.as_str(), s.sub_qos))
                .collect(),
        );
        out.clear();
        Packet::Subscribe(sub)
            .encode(version, &mut out)
            .map_err(|e| ClientError::Protocol(format!("cannot encode SUBSCRIBE: {e}")))?;
        stream.write_all(&out).await?;
        read_until(&mut stream, &mut rbuf, version, &mut early, |p| match p {
            Packet::SubAck(a) if a.pkid == 1 => {
                for (f, r) in filters.iter().zip(&a.reasons) {
                    if r.is_error() {
                        let code = if version.is_v5() {
                            r.value()
                        } else {
                            r.to_v3_suback()
                        };
                        return Err(ClientError::SubscribeRefused {
                            filter: f.clone(),
                            code,
                            reason: *r,
                        });
                    }
                }
                Ok(Some(()))
            }
            _ => Ok(None),
        })
        .await?;
    }
    Ok(Established {
        stream,
        rbuf,
        early,
        receive_max,
    })
}

/// Runs one client from connect to disconnect.
pub async fn run(w: Rc<Worker>, plan: ClientPlan, ordinal: usize) {
    let established = {
        let handshake = async {
            let _permit = w.handshakes.acquire_permit(1).await.ok();
            let timeout = w.settings.connect_timeout;
            futures_lite::future::or(async { Some(establish(&w, &plan, ordinal).await) }, async {
                Timer::new(timeout).await;
                Some(Err(ClientError::Timeout))
            })
            .await
        };
        futures_lite::future::or(handshake, async {
            w.finish.wait().await;
            None
        })
        .await
    };
    let est = match established {
        None => {
            stopped_without_publishing(&w, &plan);
            return;
        }
        Some(Err(e)) => {
            Counters::add(&w.counters().connect_failed, 1);
            let fatal = matches!(e, ClientError::SubscribeRefused { .. });
            w.shared
                .fail(format!("connect {}: {e}", w.settings.target), fatal);
            stopped_without_publishing(&w, &plan);
            return;
        }
        Some(Ok(est)) => est,
    };
    let c = w.counters();
    Counters::add(&c.ready, 1);
    Counters::add(&c.open, 1);

    let role = match plan {
        // A publisher keeps its connection alive (pings, reads) until publishing starts.
        ClientPlan::Pub(p) => Role::Waiting(Box::new(Waiting {
            id: p.id,
            topic: p.topic,
            rate: p.rate,
            window: w.settings.inflight.min(est.receive_max),
        })),
        ClientPlan::Sub(s) => Role::Subscriber(Box::new(match s.book {
            BookPlan::Own(set) => Book::Own(SubscriberBook::new(set)),
            BookPlan::Group(g) => Book::Group(g, Tally::default()),
        })),
        ClientPlan::Conn(_) => Role::Idle,
    };
    let keepalive_ns = u64::from(w.settings.keepalive) * 1_000_000_000;
    let mut conn = Conn {
        w: w.clone(),
        stream: est.stream,
        version: w.settings.version,
        rbuf: est.rbuf,
        wbuf: BytesMut::new(),
        role,
        keepalive_ns,
        last_write_ns: clock::now_ns(),
        timer: None,
        registered: false,
    };
    let mut outcome = Ok(());
    if !est.early.is_empty() {
        let wc = w.clone();
        let mut lat = wc.latency.borrow_mut();
        let mut delta = Delta::default();
        let now = clock::now_ns();
        for p in est.early {
            if let Err(e) = conn.handle(p, now, &mut lat, &mut delta) {
                outcome = Err(e);
                break;
            }
        }
        drop(lat);
        delta.flush(w.counters());
    }
    if outcome.is_ok() {
        outcome = poll_fn(|cx| conn.poll_run(cx)).await;
    }
    match outcome {
        Ok(()) => conn.disconnect().await,
        Err(e) => {
            Counters::add(&w.counters().errors, 1);
            w.shared.fail(format!("connection error: {e}"), false);
        }
    }
    conn.finish();
    w.counters().open.fetch_sub(1, Ordering::Relaxed);
}

/// A publisher that never published still owes the coordinator its count.
fn stopped_without_publishing(w: &Worker, plan: &ClientPlan) {
    if let ClientPlan::Pub(p) = plan {
        w.shared.published[p.id as usize].store(0, Ordering::Release);
        Counters::add(&w.counters().pubs_done, 1);
    }
}

/// Counter increments gathered over one read or fill, added to the atomics once.
#[derive(Default)]
struct Delta {
    published: u64,
    acked: u64,
    delivered: u64,
    duplicates: u64,
    errors: u64,
    pubs_done: u64,
}

impl Delta {
    fn flush(&self, c: &Counters) {
        Counters::add(&c.published, self.published);
        Counters::add(&c.acked, self.acked);
        Counters::add(&c.delivered, self.delivered);
        Counters::add(&c.duplicates, self.duplicates);
        Counters::add(&c.errors, self.errors);
        Counters::add(&c.pubs_done, self.pubs_done);
    }
}

enum Book {
    Own(SubscriberBook),
    /// A member of shared group `n`, with its share of the group's tally.
    Group(usize, Tally),
}

/// A publisher before publishing starts.
struct Waiting {
    id: u32,
    topic: String,
    rate: Option<f64>,
    window: u16,
}

enum Role {
    Waiting(Box<Waiting>),
    Publisher(Box<Publisher>),
    Subscriber(Box<Book>),
    Idle,
}

/// Pacing for a publisher with a fixed rate, in exact integer arithmetic so the
/// time a message is due and the count due at that time always agree.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// When message 0 is due.
    first_ns: u64,
    /// Messages per 1000 seconds.
    per_ks: u128,
}

impl Pace {
    fn new(start_ns: u64, rate: f64, phase: f64) -> Pace {
        let per_ks = ((rate * 1000.0).round() as u128).max(1);
        let period_ns = 1e9 / rate;
        Pace {
            first_ns: start_ns + (period_ns * phase) as u64,
            per_ks,
        }
    }

    /// Messages due by `now_ns`.
    fn due(&self, now_ns: u64) -> u64 {
        if now_ns < self.first_ns {
            return 0;
        }
        (u128::from(now_ns - self.first_ns) * self.per_ks / 1_000_000_000_000) as u64 + 1
    }

    /// When message `seq` is due.
    fn at(&self, seq: u64) -> u64 {
        self.first_ns + (u128::from(seq) * 1_000_000_000_000).div_ceil(self.per_ks) as u64
    }

    /// When to wake for message `seq`: its due time rounded up to this publisher's
    /// [`PACE_TICK_NS`] grid, so a fast publisher sends a burst per tick instead of
    /// taking a timer wake-up per message. Send times are stamped when sent, so the
    /// rounding does not touch latency figures.
    fn wake_at(&self, seq: u64) -> u64 {
        let due = self.at(seq) - self.first_ns;
        self.first_ns + due.div_ceil(PACE_TICK_NS) * PACE_TICK_NS
    }
}

const FREE: u8 = 0;
const AWAIT_ACK: u8 = 1;
const AWAIT_REC: u8 = 2;
const AWAIT_COMP: u8 = 3;

/// Packet ids 1..=capacity and the state of each in flight.
struct Window {
    free: Vec<u16>,
    state: Vec<u8>,
}

impl Window {
    fn new(capacity: u16) -> Window {
        Window {
            free: (1..=capacity).rev().collect(),
            state: vec![FREE; usize::from(capacity)],
        }
    }

    fn inflight(&self) -> usize {
        self.state.len() - self.free.len()
    }

    fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    fn take(&mut self, state: u8) -> Option<u16> {
        let id = self.free.pop()?;
        self.state[usize::from(id) - 1] = state;
        Some(id)
    }

    /// Moves `id` from `from` to `to` (FREE releases it); false if it was not in `from`.
    fn advance(&mut self, id: u16, from: u8, to: u8) -> bool {
        match self.state.get_mut(usize::from(id).wrapping_sub(1)) {
            Some(s) if *s == from => {
                *s = to;
                if to == FREE {
                    self.free.push(id);
                }
                true
            }
            _ => false,
        }
    }
}

struct Publisher {
    id: u32,
    /// The id written into payloads: the run's id base plus `id`.
    wire_id: u32,
    /// The whole PUBLISH as encoded once; each message is a copy with the packet id
    /// and the payload header patched in.
    packet: Vec<u8>,
    pkid_at: usize,
    header_at: usize,
    qos: QoS,
    seq: u64,
    window: Window,
    pace: Option<Pace>,
    stop_ns: u64,
    stopped: bool,
    done: bool,
}

impl Publisher {
    fn new(
        w: &Worker,
        id: u32,
        topic: &str,
        rate: Option<f64>,
        window: u16,
        start_ns: u64,
        stop_ns: u64,
    ) -> Result<Publisher, String> {
        let s = &w.settings;
        let (packet, pkid_at, header_at) = publish_template(topic, s.qos, s.payload, s.version)?;
        // Spread publishers' phases over one period so paced publishers do not all
        // send in the same instant.
        let phase = (f64::from(id) * 0.618_033_988_749_895).fract();
        Ok(Publisher {
            id,
            wire_id: s.id_base.wrapping_add(id),
            packet,
            pkid_at,
            header_at,
            qos: s.qos,
            seq: 0,
            window: Window::new(window.max(1)),
            pace: rate.map(|r| Pace::new(start_ns, r, phase)),
            stop_ns,
            stopped: false,
            done: false,
        })
    }

    /// Appends every message due now to `out`. Returns whether anything changed.
    fn fill(
        &mut self,
        out: &mut BytesMut,
        now_ns: u64,
        shared_published: &std::sync::atomic::AtomicU64,
        d: &mut Delta,
    ) -> bool {
        if self.stopped {
            return false;
        }
        let due = self.pace.map_or(u64::MAX, |p| p.due(now_ns));
        let before = self.seq;
        let mut header = Header {
            publisher: self.wire_id,
            seq: 0,
            sent_ns: now_ns,
        };
        while out.len() < WRITE_HIGH_WATER {
            if now_ns >= self.stop_ns {
                self.stopped = true;
                shared_published.store(self.seq, Ordering::Release);
                break;
            }
            if self.seq >= due {
                break;
            }
            let pkid = match self.qos {
                QoS::AtMostOnce => 0,
                QoS::AtLeastOnce => match self.window.take(AWAIT_ACK) {
                    Some(id) => id,
                    None => break,
                },
                QoS::ExactlyOnce => match self.window.take(AWAIT_REC) {
                    Some(id) => id,
                    None => break,
                },
            };
            let at = out.len();
            out.extend_from_slice(&self.packet);
            if pkid != 0 {
                out[at + self.pkid_at..at + self.pkid_at + 2].copy_from_slice(&pkid.to_be_bytes());
            }
            header.seq = self.seq;
            header.write(&mut out[at + self.header_at..]);
            self.seq += 1;
        }
        d.published += self.seq - before;
        self.check_done(d);
        self.seq != before || self.stopped
    }

    fn check_done(&mut self, d: &mut Delta) {
        if self.stopped && !self.done && self.window.inflight() == 0 {
            self.done = true;
            d.pubs_done += 1;
        }
    }

    /// When this publisher next needs to act without any input.
    fn deadline(&self) -> Option<u64> {
        if self.stopped {
            return None;
        }
        let mut at = self.stop_ns;
        if let Some(p) = self.pace {
            if self.qos == QoS::AtMostOnce || !self.window.is_full() {
                at = at.min(p.wake_at(self.seq));
            }
        }
        Some(at)
    }
}

/// Encodes the PUBLISH every message of a publisher is copied from, and returns it
/// with the offsets of its packet id and of its payload.
pub fn publish_template(
    topic: &str,
    qos: QoS,
    payload: usize,
    version: ProtocolVersion,
) -> Result<(Vec<u8>, usize, usize), String> {
    let mut p = Publish::new(topic, qos, Bytes::from(vec![0u8; payload]));
    if qos != QoS::AtMostOnce {
        p.pkid = 1;
    }
    let mut out = BytesMut::new();
    Packet::Publish(p)
        .encode(version, &mut out)
        .map_err(|e| format!("cannot encode a PUBLISH to '{topic}': {e}"))?;
    let header_at = out.len() - payload;
    // v5: an empty property list (one zero byte) sits between packet id and payload.
    let pkid_at = header_at - 2 - usize::from(version.is_v5());
    Ok((out.to_vec(), pkid_at, header_at))
}

struct Conn {
    w: Rc<Worker>,
    stream: TcpStream,
    version: ProtocolVersion,
    rbuf: BytesMut,
    wbuf: BytesMut,
    role: Role,
    keepalive_ns: u64,
    last_write_ns: u64,
    /// The deadline the timer is armed for, and the timer.
    timer: Option<(u64, Timer)>,
    registered: bool,
}

impl Conn {
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        if !self.registered {
            self.w.finish.register(cx.waker());
            if matches!(self.role, Role::Waiting(_)) {
                self.w.start.register(cx.waker());
            }
            self.registered = true;
        }
        let w = self.w.clone();
        for _ in 0..ROUNDS_PER_POLL {
            if w.finish.fired() {
                return Poll::Ready(Ok(()));
            }
            if w.start.fired() {
                self.start_publishing();
            }
            let mut progress = false;
            let mut delta = Delta::default();

            if self.wbuf.len() < WRITE_HIGH_WATER {
                let mut scratch = w.scratch.borrow_mut();
                match Pin::new(&mut self.stream).poll_read(cx, &mut scratch[..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(ClientError::Closed)),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Ready(Ok(n)) => {
                        self.rbuf.extend_from_slice(&scratch[..n]);
                        drop(scratch);
                        let now = clock::now_ns();
                        let mut lat = w.latency.borrow_mut();
                        let r = self.handle_input(now, &mut lat, &mut delta);
                        drop(lat);
                        if let Err(e) = r {
                            delta.flush(w.counters());
                            return Poll::Ready(Err(e));
                        }
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }

            let now = clock::now_ns();
            if let Role::Publisher(p) = &mut self.role {
                let published = &w.shared.published[p.id as usize];
                progress |= p.fill(&mut self.wbuf, now, published, &mut delta);
            }
            if self.keepalive_ns > 0
                && self.wbuf.is_empty()
                && now.saturating_sub(self.last_write_ns) >= self.keepalive_ns / 2
            {
                self.wbuf.extend_from_slice(&[0xC0, 0]);
            }
            delta.flush(w.counters());

            while !self.wbuf.is_empty() {
                match Pin::new(&mut self.stream).poll_write(cx, &self.wbuf) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(ClientError::Closed)),
                    Poll::Ready(Ok(n)) => {
                        self.wbuf.advance(n);
                        self.last_write_ns = now;
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Pending => break,
                }
            }
            if self.wbuf.is_empty() && self.wbuf.capacity() > 4 * WRITE_HIGH_WATER {
                self.wbuf = BytesMut::new();
            }

            if self.arm_timer(cx, now) {
                progress = true;
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Arms the timer for the next deadline; true if it has already passed.
    fn arm_timer(&mut self, cx: &mut Context<'_>, now: u64) -> bool {
        // The keep-alive deadline moves with every write; rounded up to whole
        // seconds it changes at most once a second, so a busy connection does not
        // re-arm its timer (and the reactor its wake-up) on every write.
        let mut deadline = (self.keepalive_ns > 0)
            .then(|| (self.last_write_ns + self.keepalive_ns / 2).next_multiple_of(1_000_000_000));
        if let Role::Publisher(p) = &self.role {
            if let Some(at) = p.deadline() {
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
        }
        let Some(at) = deadline else {
            self.timer = None;
            return false;
        };
        if !matches!(&self.timer, Some((armed, _)) if *armed == at) {
            self.timer = Some((at, Timer::new(Duration::from_nanos(at.saturating_sub(now)))));
        }
        let Some((_, timer)) = self.timer.as_mut() else {
            return false;
        };
        if Pin::new(timer).poll(cx).is_ready() {
            self.timer = None;
            return true;
        }
        false
    }

    /// Handles every complete packet in the read buffer.
    fn handle_input(
        &mut self,
        now: u64,
        lat: &mut LatencyRecorder,
        d: &mut Delta,
    ) -> Result<(), ClientError> {
        while let Some(p) = Packet::decode(&mut self.rbuf, self.version, MAX_PACKET)? {
            self.handle(p, now, lat, d)?;
        }
        Ok(())
    }

    fn handle(
        &mut self,
        packet: Packet,
        now: u64,
        lat: &mut LatencyRecorder,
        d: &mut Delta,
    ) -> Result<(), ClientError> {
        let v = self.version;
        match packet {
            Packet::Publish(p) => {
                let s = &self.w.settings;
                let header = Header::read(&p.payload);
                let ours = header
                    .map(|h| h.publisher.wrapping_sub(s.id_base))
                    .filter(|id| *id < s.publishers);
                let arrival = match (&mut self.role, header, ours) {
                    (Role::Subscriber(book), Some(h), Some(id)) => {
                        let a = match book.as_mut() {
                            Book::Own(b) => b.record(id, h.seq),
                            Book::Group(g, t) => self.w.shared.groups[*g].record(id, h.seq, t),
                        };
                        if a.is_new() {
                            lat.record(h.sent_ns, now);
                        }
                        a
                    }
                    (_, Some(_), None) => {
                        self.w.tally.borrow_mut().count(Arrival::Foreign);
                        Arrival::Foreign
                    }
                    _ => {
                        self.w.tally.borrow_mut().count(Arrival::Unexpected);
                        Arrival::Unexpected
                    }
                };
                if arrival.is_new() {
                    d.delivered += 1;
                } else if arrival == Arrival::Duplicate {
                    d.duplicates += 1;
                }
                match p.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => {
                        encode(v, Packet::PubAck(PubAck::new(p.pkid)), &mut self.wbuf)
                    }
                    QoS::ExactlyOnce => {
                        encode(v, Packet::PubRec(PubRec::new(p.pkid)), &mut self.wbuf)
                    }
                }
            }
            Packet::PubRel(r) => encode(v, Packet::PubComp(PubComp::new(r.pkid)), &mut self.wbuf),
            Packet::PubAck(a) => self.on_ack(a.pkid, a.reason, AWAIT_ACK, FREE, d)?,
            Packet::PubRec(r) => {
                if r.reason.is_error() {
                    self.on_ack(r.pkid, r.reason, AWAIT_REC, FREE, d)?;
                } else {
                    self.on_ack(r.pkid, r.reason, AWAIT_REC, AWAIT_COMP, d)?;
                    encode(v, Packet::PubRel(PubRel::new(r.pkid)), &mut self.wbuf);
                }
            }
            Packet::PubComp(c) => self.on_ack(c.pkid, c.reason, AWAIT_COMP, FREE, d)?,
            Packet::PingResp | Packet::SubAck(_) | Packet::UnsubAck(_) => {}
            Packet::Disconnect(dis) => return Err(ClientError::Disconnected(dis.reason)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "the broker sent a {:?}, which only clients send",
                    other.packet_type()
                )))
            }
        }
        Ok(())
    }

    fn on_ack(
        &mut self,
        pkid: u16,
        reason: ReasonCode,
        from: u8,
        to: u8,
        d: &mut Delta,
    ) -> Result<(), ClientError> {
        let Role::Publisher(p) = &mut self.role else {
            return Err(ClientError::Protocol(format!(
                "an acknowledgement for packet {pkid} on a connection that never published"
            )));
        };
        if !p.window.advance(pkid, from, to) {
            return Err(ClientError::Protocol(format!(
                "an acknowledgement for packet {pkid}, which is not in flight"
            )));
        }
        if reason.is_error() {
            d.errors += 1;
            self.w.shared.fail(
                format!(
                    "publisher {}: the broker rejected a message: {reason:?} ({:#04x})",
                    p.id,
                    reason.value()
                ),
                false,
            );
        } else if to == FREE {
            d.acked += 1;
        }
        p.check_done(d);
        Ok(())
    }

    /// Sends DISCONNECT and closes, within [`CLOSE_FLUSH`].
    async fn disconnect(&mut self) {
        encode(
            self.version,
            Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
            &mut self.wbuf,
        );
        let stream = &mut self.stream;
        let wbuf = &self.wbuf;
        futures_lite::future::or(
            async {
                let _ = stream.write_all(wbuf).await;
                let _ = stream.close().await;
            },
            async {
                Timer::new(CLOSE_FLUSH).await;
            },
        )
        .await;
    }

    /// Turns a waiting publisher into a publishing one once the timeline is known.
    fn start_publishing(&mut self) {
        let Role::Waiting(wait) = &self.role else {
            return;
        };
        let Some((start, _, stop)) = self.w.shared.control.times() else {
            return;
        };
        let (id, window) = (wait.id, wait.window);
        match Publisher::new(&self.w, id, &wait.topic, wait.rate, window, start, stop) {
            Ok(p) => self.role = Role::Publisher(Box::new(p)),
            Err(e) => {
                self.w.shared.fail(e, true);
                self.w.shared.published[id as usize].store(0, Ordering::Release);
                Counters::add(&self.w.counters().pubs_done, 1);
                self.role = Role::Idle;
            }
        }
    }

    /// Hands this connection's accounting to the worker.
    fn finish(self) {
        match self.role {
            Role::Waiting(wait) => {
                self.w.shared.published[wait.id as usize].store(0, Ordering::Release);
                Counters::add(&self.w.counters().pubs_done, 1);
            }
            Role::Publisher(mut p) => {
                if !p.stopped {
                    self.w.shared.published[p.id as usize].store(p.seq, Ordering::Release);
                    p.stopped = true;
                }
                if !p.done {
                    Counters::add(&self.w.counters().pubs_done, 1);
                }
            }
            Role::Subscriber(book) => match *book {
                Book::Own(b) => self.w.books.borrow_mut().push(b),
                Book::Group(_, t) => self.w.tally.borrow_mut().merge(&t),
            },
            Role::Idle => {}
        }
    }
}

fn encode(version: ProtocolVersion, packet: Packet, out: &mut BytesMut) {
    packet
        .encode(version, out)
        .expect("acknowledgements and DISCONNECT always encode");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_offsets_patch_into_a_valid_publish() {
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let (mut pkt, pkid_at, header_at) =
                    publish_template("a/b", qos, 32, version).unwrap();
                if qos != QoS::AtMostOnce {
                    pkt[pkid_at..pkid_at + 2].copy_from_slice(&513u16.to_be_bytes());
                }
                let h = Header {
                    publisher: 3,
                    seq: 99,
                    sent_ns: 7,
                };
                h.write(&mut pkt[header_at..]);
                let mut buf = BytesMut::from(&pkt[..]);
                let Packet::Publish(p) = Packet::decode(&mut buf, version, u32::MAX)
                    .unwrap()
                    .unwrap()
                else {
                    panic!("a PUBLISH");
                };
                assert_eq!(p.topic.as_str(), "a/b");
                assert_eq!(p.payload.len(), 32);
                assert_eq!(Header::read(&p.payload), Some(h));
                if qos != QoS::AtMostOnce {
                    assert_eq!(p.pkid, 513);
                }
            }
        }
    }

    #[test]
    fn pacing_due_counts_and_due_times_agree() {
        for rate in [0.5, 1.0, 3.0, 1000.0, 123_456.7] {
            let pace = Pace::new(1_000, rate, 0.25);
            for seq in [0u64, 1, 2, 17, 1000] {
                let at = pace.at(seq);
                assert!(pace.due(at) > seq, "rate {rate} seq {seq}");
                assert!(
                    at == pace.first_ns || pace.due(at - 1) <= seq,
                    "rate {rate} seq {seq}"
                );
                let wake = pace.wake_at(seq);
                assert!(wake >= at && wake - at < PACE_TICK_NS && pace.due(wake) > seq);
            }
        }
    }

    #[test]
    fn window_hands_out_each_id_once_until_released() {
        let mut w = Window::new(2);
        let a = w.take(AWAIT_ACK).unwrap();
        let b = w.take(AWAIT_REC).unwrap();
        assert_ne!(a, b);
        assert!(w.take(AWAIT_ACK).is_none());
        assert!(!w.advance(a, AWAIT_REC, FREE));
        assert!(w.advance(b, AWAIT_REC, AWAIT_COMP));
        assert!(w.advance(a, AWAIT_ACK, FREE));
        assert_eq!(w.inflight(), 1);
        assert!(!w.advance(0, AWAIT_ACK, FREE));
    }
}
