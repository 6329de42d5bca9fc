//! A tiny fake broker over real sockets that drops, duplicates and swaps messages
//! on purpose and counts what it did, and a lock so runs in one test binary do not
//! compete for the machine's two cores.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ringmq::protocol::{
    ConnAck, Packet, ProtocolVersion, PubAck, PubComp, PubRec, Publish, QoS, ReasonCode, SubAck,
};
use ringmq_loadgen::payload::Header;

/// One run at a time per test binary: the machine has two cores.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the fake broker did to the stream it forwarded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    pub received: u64,
    pub dropped: u64,
    pub duplicated: u64,
    /// Pairs sent in swapped order.
    pub swapped: u64,
    /// Messages with a publisher id no run uses, sent to each new subscriber.
    pub foreign: u64,
}

/// How the fake broker misbehaves. Each applies to sequence numbers by their last
/// decimal digit, so the effect is exact and countable.
#[derive(Debug, Clone, Copy)]
pub struct Misbehaviour {
    /// Drop seq % 10 == 3.
    pub drop: bool,
    /// Send seq % 10 == 5 twice.
    pub duplicate: bool,
    /// Send seq % 10 == 8 before seq % 10 == 7.
    pub swap: bool,
    /// Greet each subscriber with one message from a publisher id no run uses.
    pub foreign: bool,
    /// Refuse every SUBSCRIBE with this SUBACK code.
    pub refuse: Option<ReasonCode>,
}

impl Misbehaviour {
    pub fn none() -> Misbehaviour {
        Misbehaviour {
            drop: false,
            duplicate: false,
            swap: false,
            foreign: false,
            refuse: None,
        }
    }
}

/// A fake broker for one publisher: every PUBLISH is forwarded (at QoS 0) to every
/// subscriber, with the configured faults. It completes QoS 1 and 2 flows with the
/// publisher.
pub struct FakeBroker {
    pub addr: SocketAddr,
    pub faults: Arc<Mutex<Faults>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FakeBroker {
    pub fn start(how: Misbehaviour) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let subscribers: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s, st) = (faults.clone(), subscribers, stop.clone());
        let accept = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (f, s) = (f.clone(), s.clone());
                        std::thread::spawn(move || serve(conn, how, f, s));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => return,
                }
            }
        });
        FakeBroker {
            addr,
            faults,
            stop,
            accept: Some(accept),
        }
    }

    pub fn faults(&self) -> Faults {
        *self.faults.lock().unwrap()
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn send(to: &Mutex<Vec<TcpStream>>, version: ProtocolVersion, payload: &Bytes, topic: &str) {
    let mut out = BytesMut::new();
    Packet::Publish(Publish::new(topic, QoS::AtMostOnce, payload.clone()))
        .encode(version, &mut out)
        .unwrap();
    for s in to.lock().unwrap().iter_mut() {
        let _ = s.write_all(&out);
    }
}

fn serve(
    mut conn: TcpStream,
    how: Misbehaviour,
    faults: Arc<Mutex<Faults>>,
    subscribers: Arc<Mutex<Vec<TcpStream>>>,
) {
    conn.set_nodelay(true).unwrap();
    let mut buf = BytesMut::new();
    let mut version = ProtocolVersion::V3_1_1;
    // A message held back to be sent after its successor.
    let mut held: Option<(Bytes, String)> = None;
    let mut chunk = [0u8; 65536];
    loop {
        loop {
            let packet = match Packet::decode(&mut buf, version, u32::MAX) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(_) => return,
            };
            let mut out = BytesMut::new();
            match packet {
                Packet::Connect(c) => {
                    version = c.protocol;
                    Packet::ConnAck(ConnAck::new(ReasonCode::Success, false))
                        .encode(version, &mut out)
                        .unwrap();
                }
                Packet::Subscribe(s) => {
                    let code = how.refuse.unwrap_or(ReasonCode::Success);
                    let reasons = s.filters.iter().map(|_| code).collect();
                    Packet::SubAck(SubAck::new(s.pkid, reasons))
                        .encode(version, &mut out)
                        .unwrap();
                    let _ = conn.write_all(&out);
                    out.clear();
                    if how.refuse.is_none() {
                        if how.foreign {
                            let mut payload = vec![0u8; 20];
                            Header {
                                publisher: u32::MAX,
                                seq: 0,
                                sent_ns: 0,
                            }
                            .write(&mut payload);
                            Packet::Publish(Publish::new("stale", QoS::AtMostOnce, payload))
                                .encode(version, &mut out)
                                .unwrap();
                            faults.lock().unwrap().foreign += 1;
                        }
                        subscribers.lock().unwrap().push(conn.try_clone().unwrap());
                    }
                }
                Packet::Publish(p) => {
                    match p.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => Packet::PubAck(PubAck::new(p.pkid))
                            .encode(version, &mut out)
                            .unwrap(),
                        QoS::ExactlyOnce => Packet::PubRec(PubRec::new(p.pkid))
                            .encode(version, &mut out)
                            .unwrap(),
                    }
                    let seq = Header::read(&p.payload).map_or(0, |h| h.seq);
                    let topic = p.topic.as_str().to_string();
                    let mut f = faults.lock().unwrap();
                    f.received += 1;
                    match seq % 10 {
                        3 if how.drop => f.dropped += 1,
                        5 if how.duplicate => {
                            f.duplicated += 1;
                            send(&subscribers, version, &p.payload, &topic);
                            send(&subscribers, version, &p.payload, &topic);
                        }
                        7 if how.swap => held = Some((p.payload.clone(), topic)),
                        8 if how.swap && held.is_some() => {
                            send(&subscribers, version, &p.payload, &topic);
                            let (h, t) = held.take().unwrap();
                            send(&subscribers, version, &h, &t);
                            f.swapped += 1;
                        }
                        _ => {
                            if let Some((h, t)) = held.take() {
                                send(&subscribers, version, &h, &t);
                            }
                            send(&subscribers, version, &p.payload, &topic);
                        }
                    }
                }
                Packet::PubRel(r) => Packet::PubComp(PubComp::new(r.pkid))
                    .encode(version, &mut out)
                    .unwrap(),
                Packet::PingReq => Packet::PingResp.encode(version, &mut out).unwrap(),
                Packet::Disconnect(_) => return,
                _ => {}
            }
            if !out.is_empty() && conn.write_all(&out).is_err() {
                return;
            }
        }
        // A held message goes out once its successor is late.
        conn.set_read_timeout(Some(Duration::from_millis(if held.is_some() {
            20
        } else {
            500
        })))
        .unwrap();
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if let Some((h, t)) = held.take() {
                    send(&subscribers, version, &h, &t);
                }
            }
            Err(_) => return,
        }
    }
}
