//! Transport: the listening sockets (one SO_REUSEPORT socket per shard), the accept
//! loop, and the first phase of every connection: reading CONNECT and handing the
//! connection to the shard that owns its client id. `conn` is the one place where
//! the socket meets the codec.

mod conn;
mod park;

pub(crate) use conn::unpark;
pub(crate) use park::{reader as park_reader, Parking};

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncReadExt;
use glommio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};

use crate::auth::{refusal_reason, AuthRequest, AuthStep, Authenticated, Authenticator};
use crate::protocol::{
    Auth, ByteStr, ConnAck, Connect, DecodeError, Packet, Properties, Property, ProtocolVersion,
    ReasonCode, ReasonContext,
};
use crate::shard::{owner_shard, Shard, ShardMsg};

/// How long the final writes (a refusal, DISCONNECT, pending acks) may take at close.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Bytes read from a socket at once.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// Binds `shards` listening sockets to the same address with SO_REUSEPORT, so the
/// kernel spreads incoming connections across shards. With port 0 the first bind
/// picks the port and the others join it.
pub(crate) fn bind_reuseport(
    addr: SocketAddr,
    shards: usize,
    backlog: u32,
) -> std::io::Result<Vec<OwnedFd>> {
    if addr.port() != 0 {
        // SO_REUSEPORT would let this broker share a port another process (another
        // ringmq, say) already listens on, silently splitting its clients. A probe
        // bound without it fails with "address in use" in that case.
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
    }
    let mut fds = Vec::with_capacity(shards);
    let mut bound = addr;
    for _ in 0..shards {
        let sock = Socket::new(
            Domain::for_address(bound),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        sock.set_reuse_address(true)?;
        sock.set_reuse_port(true)?;
        sock.set_nonblocking(true)?;
        sock.bind(&bound.into())?;
        sock.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        if bound.port() == 0 {
            bound = sock
                .local_addr()?
                .as_socket()
                .expect("an inet socket has an inet address");
        }
        // SAFETY: `into_raw_fd` hands over sole ownership of the descriptor.
        fds.push(unsafe { OwnedFd::from_raw_fd(sock.into_raw_fd()) });
    }
    Ok(fds)
}

/// The address a listening socket is bound to.
pub(crate) fn local_addr(fd: &OwnedFd) -> std::io::Result<SocketAddr> {
    Ok(socket2::SockRef::from(fd)
        .local_addr()?
        .as_socket()
        .expect("an inet socket has an inet address"))
}

pub(crate) async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(serve(shard.clone(), stream)).detach();
            }
            Err(e) => {
                // Out of descriptors or a transient error: back off briefly rather
                // than spin.
                tracing::warn!(shard = shard.id, "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A connection's first phase: read CONNECT (and run any enhanced authentication)
/// within the connect timeout, then either serve it here or hand it to the shard
/// that owns its client id.
async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    // The handshake runs in its own allocation, so the long-lived connection task
    // does not carry its buffers and timers.
    let Some(accepted) = Box::pin(handshake(&shard, stream)).await else {
        return;
    };
    let Accepted {
        stream,
        connect,
        rest,
        assigned,
        auth,
    } = accepted;
    let owner = owner_shard(connect.client_id.as_bytes(), shard.shared.shards);
    if assigned || owner == shard.id {
        conn::run(shard, stream, connect, rest, assigned, auth).await;
        return;
    }
    match crate::shard::dup_fd(&stream) {
        Ok(fd) => {
            shard.mesh.send(
                owner,
                ShardMsg::Handoff(Box::new(crate::shard::Handoff {
                    fd,
                    connect,
                    rest,
                    auth,
                })),
            );
        }
        Err(e) => tracing::warn!("cannot hand a connection to shard {owner}: {e}"),
    }
}

/// A connection past its CONNECT phase.
struct Accepted {
    stream: TcpStream,
    connect: Box<Connect>,
    /// Bytes read after CONNECT and any AUTH exchange.
    rest: BytesMut,
    /// The broker assigned the client id.
    assigned: bool,
    /// The enhanced authentication the client completed, if it asked for one.
    auth: Option<Box<Authenticated>>,
}

/// Reads CONNECT and runs any enhanced authentication, both within one connect
/// timeout, and answers what cannot be accepted.
async fn handshake(shard: &Shard, mut stream: TcpStream) -> Option<Accepted> {
    let _ = stream.set_nodelay(true);
    let limits = &shard.config().limits;
    let deadline = Instant::now() + limits.connect_timeout;
    let mut rbuf = BytesMut::new();
    let read = glommio::timer::timeout(limits.connect_timeout, async {
        Ok(read_connect(&mut stream, &mut rbuf, limits.max_packet_size).await)
    })
    .await;
    let mut connect = match read {
        Ok(Ok(c)) => c,
        Ok(Err(ConnectFailure::Decode(e, level))) => {
            refuse(shard, &mut stream, e, level).await;
            return None;
        }
        Ok(Err(ConnectFailure::Closed)) | Err(_) => return None,
    };
    let assigned = connect.client_id.is_empty();
    if assigned {
        // Both v3.1.1 (clean session only) and v5 allow an empty client id; the
        // broker picks one this shard owns, so the connection stays here.
        if !connect.clean_start && !connect.protocol.is_v5() {
            refuse_connect(
                shard,
                &mut stream,
                connect.protocol,
                ReasonCode::ClientIdentifierNotValid,
            )
            .await;
            return None;
        }
        let id = shard.state.borrow_mut().assign_client_id();
        connect.client_id = ByteStr::from(id);
    }
    let auth = if connect.protocol.is_v5() {
        authenticate(shard, &mut stream, &mut rbuf, &connect, deadline).await?
    } else {
        None
    };
    Some(Accepted {
        stream,
        connect,
        rest: rbuf,
        assigned,
        auth,
    })
}

/// Runs the enhanced authentication a v5 CONNECT asks for (see [`crate::auth`]) in
/// what is left of the connect timeout. `Some(None)`: none was asked for; `None`:
/// refused (the CONNACK is sent) or the client went away.
async fn authenticate(
    shard: &Shard,
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    connect: &Connect,
    deadline: Instant,
) -> Option<Option<Box<Authenticated>>> {
    let v5 = ProtocolVersion::V5;
    let Some(method) = connect.properties.authentication_method() else {
        if connect.properties.authentication_data().is_some() {
            // 3.1.2.11.10: Authentication Data without a method is a protocol error.
            refuse_connect(shard, stream, v5, ReasonCode::ProtocolError).await;
            return None;
        }
        return Some(None);
    };
    let Some(authenticator) = shard.shared.hooks.authenticator.clone() else {
        refuse_connect(shard, stream, v5, ReasonCode::BadAuthenticationMethod).await;
        return None;
    };
    let max_packet_size = shard.config().limits.max_packet_size;
    let left = deadline.saturating_duration_since(Instant::now());
    let outcome = glommio::timer::timeout(left, async {
        Ok(exchange(
            &*authenticator,
            stream,
            rbuf,
            connect,
            &method,
            max_packet_size,
        )
        .await)
    })
    .await;
    match outcome {
        Ok(Ok(data)) => Some(Some(Box::new(Authenticated { method, data }))),
        Ok(Err(Some(reason))) => {
            refuse_connect(shard, stream, v5, reason).await;
            None
        }
        // The client went away, or the connect timeout passed mid-exchange.
        Ok(Err(None)) | Err(_) => None,
    }
}

/// The AUTH exchange of the CONNECT phase (spec 4.12): each `Continue` goes to the
/// client as AUTH 0x18, whose AUTH 0x18 answer (same method) is the next step's
/// input. Returns the data for a successful CONNACK; `Err(Some(reason))` to refuse
/// with that CONNACK reason, `Err(None)` when the client disconnected.
async fn exchange(
    authenticator: &dyn Authenticator,
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    connect: &Connect,
    method: &ByteStr,
    max_packet_size: u32,
) -> Result<Option<Bytes>, Option<ReasonCode>> {
    use futures_lite::AsyncWriteExt;
    let v5 = ProtocolVersion::V5;
    let mut state = Bytes::new();
    let mut data = connect.properties.authentication_data();
    let mut round = 0;
    loop {
        let request = AuthRequest {
            client_id: &connect.client_id,
            username: connect.username.as_deref(),
            method,
            data: data.as_deref(),
            reauthentication: false,
            round,
        };
        let challenge = match authenticator.authenticate(&request, &mut state) {
            AuthStep::Success(data) => return Ok(data),
            AuthStep::Fail(reason) => {
                return Err(Some(refusal_reason(reason, ReasonContext::ConnAck)))
            }
            AuthStep::Continue(challenge) => challenge,
        };
        let mut out = BytesMut::new();
        Packet::Auth(auth_packet(
            ReasonCode::ContinueAuthentication,
            method,
            Some(challenge),
        ))
        .encode(v5, &mut out)
        // Authentication Data longer than a binary field can hold.
        .map_err(|_| Some(ReasonCode::ImplementationSpecificError))?;
        stream.write_all(&out).await.map_err(|_| None)?;
        // [MQTT-3.1.2-30]: until CONNACK the client sends only AUTH or DISCONNECT,
        // and [MQTT-4.12.0-3/5] an AUTH answering the broker's carries 0x18 and the
        // same method.
        data = match read_packet(stream, rbuf, v5, max_packet_size).await {
            Ok(Packet::Auth(a))
                if a.reason == ReasonCode::ContinueAuthentication
                    && a.properties.authentication_method().as_deref() == Some(&**method) =>
            {
                a.properties.authentication_data()
            }
            Ok(Packet::Disconnect(_)) | Err(ReadFailure::Closed) => return Err(None),
            Ok(_) => return Err(Some(ReasonCode::ProtocolError)),
            Err(ReadFailure::Decode(e)) => return Err(Some(e.reason_code())),
        };
        round += 1;
    }
}

/// An AUTH packet with the method and, if any, data.
pub(crate) fn auth_packet(reason: ReasonCode, method: &ByteStr, data: Option<Bytes>) -> Auth {
    let mut properties = Properties::new();
    properties.push(Property::AuthenticationMethod(method.clone()));
    if let Some(data) = data {
        properties.push(Property::AuthenticationData(data));
    }
    Auth::new(reason, properties)
}

/// The owner shard's side of a hand-off.
pub(crate) async fn serve_handoff(shard: Rc<Shard>, handoff: Box<crate::shard::Handoff>) {
    let crate::shard::Handoff {
        fd,
        connect,
        rest,
        auth,
    } = *handoff;
    // SAFETY: the descriptor is an owned, connected TCP socket duplicated for us.
    let stream = unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) };
    conn::run(shard, stream, connect, rest, false, auth).await;
}

enum ConnectFailure {
    /// The first packet was not a valid CONNECT; the level is known when it was
    /// read before the error.
    Decode(DecodeError, Option<u8>),
    Closed,
}

async fn read_connect(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    max_packet_size: u32,
) -> Result<Box<Connect>, ConnectFailure> {
    match read_packet(stream, rbuf, ProtocolVersion::V5, max_packet_size).await {
        Ok(Packet::Connect(c)) => Ok(c),
        // [MQTT-3.1.0-1]: the first packet must be CONNECT.
        Ok(_) | Err(ReadFailure::Closed) => Err(ConnectFailure::Closed),
        Err(ReadFailure::Decode(e)) => Err(ConnectFailure::Decode(e, connect_level(rbuf))),
    }
}

enum ReadFailure {
    Decode(DecodeError),
    Closed,
}

/// Reads the next packet of the CONNECT phase. On a decode error `rbuf` still
/// holds the offending bytes.
async fn read_packet(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Packet, ReadFailure> {
    // On the stack of a short-lived future: a connect storm's thousands of
    // handshakes in flight should not each hold a heap buffer. CONNECT is small;
    // a larger one takes a few reads.
    let mut chunk = [0u8; 512];
    loop {
        match Packet::decode(rbuf, version, max_packet_size) {
            Ok(Some(p)) => return Ok(p),
            Ok(None) => {}
            Err(e) => return Err(ReadFailure::Decode(e)),
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(ReadFailure::Closed),
            Ok(n) => rbuf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The protocol level byte of a CONNECT at the start of `buf`, if present.
fn connect_level(buf: &[u8]) -> Option<u8> {
    let header = crate::protocol::FixedHeader::parse(buf).ok()??;
    let body = buf.get(header.header_len..)?;
    let name_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    body.get(2 + name_len).copied()
}

/// Answers a CONNECT that could not be accepted, where the protocol lets us.
async fn refuse(shard: &Shard, stream: &mut TcpStream, err: DecodeError, level: Option<u8>) {
    match (err, level) {
        // 3.1.1 [MQTT-3.1.2-2]: answer an unsupported level with return code 1.
        (DecodeError::UnsupportedProtocolLevel(_), _) => {
            let reason = ReasonCode::UnsupportedProtocolVersion;
            refuse_connect(shard, stream, ProtocolVersion::V3_1_1, reason).await;
        }
        (_, Some(5)) => refuse_connect(shard, stream, ProtocolVersion::V5, err.reason_code()).await,
        // A 3.x client gets no CONNACK for a malformed CONNECT; it is still counted.
        _ => shard.metrics().refused(err.reason_code()),
    }
}

/// Refuses a connection: CONNACK with `reason` (as a v3 return code for 3.x), then
/// close. Counted in the shard's metrics.
pub(super) async fn refuse_connect(
    shard: &Shard,
    stream: &mut TcpStream,
    version: ProtocolVersion,
    reason: ReasonCode,
) {
    shard.metrics().refused(reason);
    let mut out = BytesMut::new();
    Packet::ConnAck(ConnAck::new(reason, false))
        .encode(version, &mut out)
        .expect("CONNACK encodes");
    flush_and_close(stream, &out).await;
}

/// Writes what is left for a closing connection, bounded in time, and closes it.
pub(super) async fn flush_and_close(stream: &mut TcpStream, bytes: &[u8]) {
    use futures_lite::AsyncWriteExt;
    let _ = glommio::timer::timeout(CLOSE_FLUSH, async {
        stream.write_all(bytes).await?;
        stream.close().await.map_err(Into::into)
    })
    .await;
}
