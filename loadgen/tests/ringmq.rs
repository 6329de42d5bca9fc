//! Real scenarios for about two seconds each against an in-process ringmq broker
//! (two shards on two distinct CPUs, 256 KiB of io_uring memory each), checking the
//! counts a user relies on, and the command line's files and exit codes.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use ringmq::config::{allowed_cpus, Config, Listener};
use ringmq::Broker;
use ringmq_loadgen::{run, Kind, Report, RunError, RunOptions, Scenario};

/// One run at a time: the machine has two cores.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn broker() -> Broker {
    let cpus = allowed_cpus();
    assert!(cpus.len() >= 2, "these tests need two CPUs, have {cpus:?}");
    Broker::start(Config {
        listeners: vec![Listener::new("127.0.0.1:0".parse().unwrap())],
        cores: vec![cpus[0], cpus[1]],
        io_memory: 256 * 1024,
        ..Config::default()
    })
    .expect("broker starts")
}

fn scenario(kind: Kind, pubs: u32, subs: u32, qos: u8, rate: f64) -> Scenario {
    let mut s = Scenario::preset(kind, Some(pubs), Some(subs));
    s.qos = qos;
    s.rate = Some(rate);
    s.duration = 2.0;
    s.warmup = 0.5;
    s.drain = 3.0;
    s
}

fn run_against(b: &Broker, s: Scenario) -> Report {
    let report = run(&RunOptions::new(s, b.local_addr())).expect("the run completes");
    eprint!("{}", report.summary());
    report
}

fn assert_exact(r: &Report) {
    assert!(r.published > 0);
    assert_eq!(r.expected, r.delivered, "every owed delivery arrived");
    assert_eq!(
        (r.lost, r.duplicates, r.reordered, r.unexpected),
        (0, 0, 0, 0)
    );
    assert_eq!(r.errors, 0, "{:?}", r.failures);
    assert!(r.ok, "{:?}", r.violations);
    assert!(
        r.latency_us.count > 0
            && r.latency_us.p50 <= r.latency_us.p99
            && r.latency_us.p99 <= r.latency_us.max
    );
    assert!(r.delivered_per_sec > 0.0);
    assert!(r.timeline.len() >= 2, "a sample every second");
}

#[test]
fn p2p_at_qos_1_loses_and_duplicates_nothing() {
    let _g = serial();
    let b = broker();
    let r = run_against(&b, scenario(Kind::P2p, 8, 8, 1, 4000.0));
    assert_exact(&r);
    assert_eq!(r.expected, r.published);
    assert_eq!(r.connections, 16);
}

#[test]
fn fanout_at_qos_1_reaches_every_subscriber_once() {
    let _g = serial();
    let b = broker();
    let r = run_against(&b, scenario(Kind::Fanout, 1, 8, 1, 1000.0));
    assert_exact(&r);
    assert_eq!(r.expected, 8 * r.published);
}

#[test]
fn fanin_on_a_wildcard_at_qos_1_over_mqtt_5() {
    let _g = serial();
    let b = broker();
    let mut s = scenario(Kind::Fanin, 8, 2, 1, 2000.0);
    s.protocol = 5;
    let r = run_against(&b, s);
    assert_exact(&r);
    assert_eq!(r.expected, 2 * r.published);
}

#[test]
fn qos_0_accounting_closes_even_when_the_broker_may_drop() {
    let _g = serial();
    let b = broker();
    // QoS 0 may be dropped by a busy broker; what arrives and what is lost must
    // still add up to what was owed, with nothing duplicated or out of order.
    let r = run_against(&b, scenario(Kind::Fanout, 2, 4, 0, 2000.0));
    assert!(r.delivered > 0);
    assert_eq!(r.delivered + r.lost, r.expected);
    assert_eq!(r.expected, 4 * r.published);
    assert_eq!(
        (r.duplicates, r.reordered, r.unexpected, r.errors),
        (0, 0, 0, 0)
    );
    assert!(r.ok, "{:?}", r.violations);
}

#[test]
fn qos_2_p2p_is_exactly_once() {
    let _g = serial();
    let b = broker();
    let r = run_against(&b, scenario(Kind::P2p, 4, 4, 2, 2000.0));
    assert_exact(&r);
}

#[test]
fn persistent_sessions_with_an_unpaced_qos_1_publisher() {
    let _g = serial();
    let b = broker();
    let mut s = scenario(Kind::P2p, 2, 2, 1, 1.0);
    s.rate = None;
    s.clean = false;
    s.protocol = 5;
    s.inflight = 16;
    let r = run_against(&b, s);
    assert_eq!(
        (r.duplicates, r.reordered, r.unexpected, r.errors),
        (0, 0, 0, 0)
    );
    assert!(
        r.published > 100,
        "an unpaced publisher keeps its window full"
    );
    assert!(r.delivered > 0);
}

#[test]
fn shared_subscriptions_are_counted_once_per_group_or_refused_clearly() {
    let _g = serial();
    let b = broker();
    match run(&RunOptions::new(
        scenario(Kind::Shared, 4, 3, 1, 2000.0),
        b.local_addr(),
    )) {
        // A broker with shared subscriptions: each message once to the group.
        Ok(r) => {
            eprint!("{}", r.summary());
            assert_eq!(r.expected, r.published);
            assert_eq!(r.delivered, r.expected);
            assert_eq!((r.lost, r.duplicates, r.unexpected, r.errors), (0, 0, 0, 0));
            assert!(r.ok, "{:?}", r.violations);
        }
        // A broker without them: the run stops at the SUBACK and says why.
        Err(RunError::Refused(msg)) => {
            assert!(msg.contains("SharedSubscriptionsNotSupported"), "{msg}");
            assert!(msg.contains("0x9e"), "{msg}");
            assert!(
                msg.contains("does not appear to support shared subscriptions"),
                "{msg}"
            );
        }
        Err(other) => panic!("expected a run or a SUBACK refusal, got {other}"),
    }
}

#[test]
fn conn_holds_connections_with_a_subscription_each() {
    let _g = serial();
    let b = broker();
    let mut s = Scenario::preset(Kind::Conn, None, Some(300));
    s.connect_rate = Some(600.0);
    s.duration = 1.0;
    s.conns.as_mut().unwrap().topic = Some("bench/conn/%i".into());
    let r = run_against(&b, s);
    assert_eq!((r.connections, r.connect_failed, r.errors), (300, 0, 0));
    assert!(r.connect_rate > 100.0, "{}", r.connect_rate);
    assert!(r.timeline.iter().any(|p| p.connections == 300));
    assert!(r.ok, "{:?}", r.violations);
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("loadgen-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_command_line_writes_the_json_and_html_it_promises() {
    let _g = serial();
    let b = broker();
    let dir = temp_dir("cli");
    let (json, html) = (dir.join("r.json"), dir.join("r.html"));
    // The broker runs in this process, so this process's PID is the broker's.
    let pid = std::process::id().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq-loadgen"))
        .args([
            "run",
            "--target",
            &b.local_addr().to_string(),
            "--scenario",
            "p2p",
        ])
        .args([
            "--pubs",
            "4",
            "--subs",
            "4",
            "--qos",
            "1",
            "--payload",
            "100",
            "--duration",
            "2",
        ])
        .args(["--rate", "2000", "--protocol", "4", "--broker-pid", &pid])
        .arg("--json")
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("delivered") && stdout.contains("result        OK"),
        "{stdout}"
    );
    assert!(
        stderr.contains("del") && stderr.contains("/s"),
        "a progress line: {stderr}"
    );

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in ["delivered", "lost", "duplicates"] {
        assert!(v[key].is_u64(), "{key}: {}", v[key]);
    }
    assert_eq!(v["lost"], 0);
    assert!(v["delivered_per_sec"].as_f64().unwrap() > 0.0);
    for p in ["p50", "p99", "max"] {
        assert!(v["latency_us"][p].is_u64(), "latency_us.{p}");
    }
    assert!(
        v["broker_cpu_us_per_msg"].as_f64().is_some(),
        "{}",
        v["broker_cpu_us_per_msg"]
    );
    assert!(v["broker_rss_bytes"].as_u64().unwrap() > 0);
    assert!(v["loadgen_cpu_us_per_msg"].as_f64().is_some());

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<svg") && page.contains("Throughput") && page.contains("Latency"));
    assert!(
        !page.contains("<script") && !page.contains("src=") && !page.contains("href="),
        "self-contained"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_command_line_reads_a_shipped_scenario_file() {
    let _g = serial();
    let b = broker();
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/emq-p2p.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq-loadgen"))
        .args([
            "run",
            "--target",
            &b.local_addr().to_string(),
            "--scenario-file",
            file,
        ])
        .args([
            "--scale",
            "0.001",
            "--duration",
            "2",
            "--warmup",
            "0",
            "--quiet",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("emq-p2p") && stdout.contains("50 pubs, 50 subs"),
        "{stdout}"
    );
}

#[test]
fn the_command_line_rejects_bad_input_with_exit_2() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq-loadgen"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["run", "--scenario", "fanin", "--payload", "8"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("20-byte header"), "{err}");
    let (code, err) = run(&["run", "--scenario", "nope"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("fanin, fanout, p2p, shared, conn"), "{err}");
    let (code, err) = run(&["run", "--scenario", "p2p", "--bogus", "1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown option '--bogus'"), "{err}");
}
