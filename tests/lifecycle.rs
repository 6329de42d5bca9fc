//! The `ringmq` binary's life: it starts, serves, and on SIGTERM or SIGINT tells
//! v5 clients DISCONNECT 0x8B and exits 0 within the shutdown timeout; start-up
//! failures are one clear line and a non-zero exit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq::protocol::{Connect, Packet, ProtocolVersion, ReasonCode};

/// A port free a moment ago on 127.0.0.1.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn spawn(addr: SocketAddr) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["--listen", &addr.to_string(), "--shards", "1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringmq starts")
}

/// Connects (retrying while the broker starts) and completes a v5 CONNECT.
fn connect_v5(addr: SocketAddr, id: &str) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("broker did not listen on {addr}: {e}"),
        }
    };
    let mut out = BytesMut::new();
    Packet::Connect(Box::new(Connect::new(ProtocolVersion::V5, id)))
        .encode(ProtocolVersion::V5, &mut out)
        .unwrap();
    s.write_all(&out).unwrap();
    match read_packet(&mut s) {
        Some(Packet::ConnAck(a)) => assert_eq!(a.reason, ReasonCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    s
}

fn read_packet(s: &mut TcpStream) -> Option<Packet> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(p) = Packet::decode(&mut buf, ProtocolVersion::V5, u32::MAX).unwrap() {
            return Some(p);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("ringmq did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal_stops_gracefully(signal: libc::c_int) {
    let addr = free_port();
    let mut child = spawn(addr);
    let mut client = connect_v5(addr, "lifecycle");
    // SAFETY: kill sends a signal to the child process this test started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    match read_packet(&mut client) {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::ServerShuttingDown),
        other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
    }
    assert!(
        read_packet(&mut client).is_none(),
        "connection closed after DISCONNECT"
    );
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn sigterm_disconnects_clients_and_exits_zero() {
    signal_stops_gracefully(libc::SIGTERM);
}

#[test]
fn sigint_disconnects_clients_and_exits_zero() {
    signal_stops_gracefully(libc::SIGINT);
}

#[test]
fn a_taken_port_is_one_clear_line_and_a_failure_exit() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut child = spawn(addr);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    // Log lines (warnings about the host, say) may come first; the failure is one
    // line of its own.
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("ringmq: ")).collect();
    assert_eq!(lines.len(), 1, "stderr: {err}");
    assert!(
        lines[0].contains(&addr.to_string()) && lines[0].contains("in use"),
        "{err}"
    );
}
