//! Runs against a fake broker that drops, duplicates and swaps messages on purpose
//! over real sockets: the generator must count exactly what the fake did, judge
//! the run failed, and say why; and a refused subscription must stop the run with
//! the broker's reason.

mod fake;

use std::time::Duration;

use fake::{serial, FakeBroker, Misbehaviour};
use ringmq::protocol::ReasonCode;
use ringmq_loadgen::{run, Kind, RunError, RunOptions, Scenario};

fn scenario(kind: Kind, qos: u8, rate: f64) -> Scenario {
    let mut s = Scenario::preset(kind, Some(1), Some(1));
    s.qos = qos;
    s.rate = Some(rate);
    s.duration = 1.5;
    s.drain = 2.0;
    s.payload = 32;
    s
}

#[test]
fn counts_exactly_what_a_misbehaving_broker_dropped_duplicated_and_swapped() {
    let _g = serial();
    let fake = FakeBroker::start(Misbehaviour {
        drop: true,
        duplicate: true,
        swap: true,
        foreign: true,
        refuse: None,
    });
    let report = run(&RunOptions::new(scenario(Kind::P2p, 1, 2000.0), fake.addr))
        .expect("the run completes");
    let f = fake.faults();
    assert!(f.received > 1000, "{f:?}");
    assert!(
        f.dropped > 100 && f.duplicated > 100 && f.swapped > 100,
        "{f:?}"
    );
    assert_eq!(
        report.published, f.received,
        "every message published reached the fake"
    );
    assert_eq!(report.lost, f.dropped);
    assert_eq!(report.duplicates, f.duplicated);
    assert_eq!(report.reordered, f.swapped);
    assert_eq!(report.delivered, f.received - f.dropped);
    assert_eq!(report.foreign, f.foreign);
    assert_eq!(report.unexpected, 0);
    assert!(!report.ok);
    let v = report.violations.join("\n");
    assert!(v.contains("QoS 1") && v.contains("never delivered"), "{v}");
    assert!(v.contains("ordered"), "{v}");
    assert!(
        report.warnings.iter().any(|w| w.contains("earlier run")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn a_faithful_broker_passes_with_exact_counts() {
    let _g = serial();
    let fake = FakeBroker::start(Misbehaviour::none());
    let report = run(&RunOptions::new(
        scenario(Kind::Fanout, 0, 1000.0),
        fake.addr,
    ))
    .expect("the run completes");
    let f = fake.faults();
    assert_eq!(report.published, f.received);
    assert_eq!(report.delivered, f.received);
    assert_eq!(
        (report.lost, report.duplicates, report.reordered),
        (0, 0, 0)
    );
    assert!(report.ok, "{:?}", report.violations);
    assert!(report.latency_us.count > 0 && report.latency_us.max >= report.latency_us.p50);
}

#[test]
fn duplicates_are_a_warning_at_qos_0_and_a_broken_guarantee_at_qos_2() {
    let _g = serial();
    for qos in [0, 2] {
        let fake = FakeBroker::start(Misbehaviour {
            duplicate: true,
            ..Misbehaviour::none()
        });
        // The fake forwards at QoS 0 whatever it grants; the scenario's QoS sets
        // what the generator holds the broker to.
        let report = run(&RunOptions::new(
            scenario(Kind::P2p, qos, 1000.0),
            fake.addr,
        ))
        .unwrap();
        assert_eq!(report.duplicates, fake.faults().duplicated);
        assert!(report.duplicates > 0);
        if qos == 0 {
            assert!(report.ok, "{:?}", report.violations);
            assert!(report.warnings.iter().any(|w| w.contains("more than once")));
        } else {
            assert!(!report.ok);
            assert!(
                report
                    .violations
                    .iter()
                    .any(|v| v.contains("QoS 2") && v.contains("more than once")),
                "{:?}",
                report.violations
            );
        }
    }
}

#[test]
fn a_refused_subscription_stops_the_run_with_the_brokers_reason() {
    let _g = serial();
    let fake = FakeBroker::start(Misbehaviour {
        refuse: Some(ReasonCode::SharedSubscriptionsNotSupported),
        ..Misbehaviour::none()
    });
    let mut opts = RunOptions::new(scenario(Kind::Shared, 1, 100.0), fake.addr);
    opts.connect_timeout = Duration::from_secs(5);
    match run(&opts) {
        Err(RunError::Refused(msg)) => {
            assert!(msg.contains("0x9e"), "{msg}");
            assert!(msg.contains("$share/loadgen/bench/shared/+"), "{msg}");
            assert!(msg.contains("shared subscriptions"), "{msg}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_unreachable_broker_is_a_connect_error() {
    let _g = serial();
    // Bind and drop: nothing listens on this port now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut opts = RunOptions::new(
        scenario(Kind::P2p, 1, 100.0),
        format!("127.0.0.1:{port}").parse().unwrap(),
    );
    opts.connect_timeout = Duration::from_secs(2);
    match run(&opts) {
        Err(e @ RunError::Connect { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("2 of 2 connections failed"), "{msg}");
            assert!(msg.to_lowercase().contains("refused"), "{msg}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[test]
fn the_command_line_exits_1_and_says_why_when_a_guarantee_breaks() {
    let _g = serial();
    let fake = FakeBroker::start(Misbehaviour {
        drop: true,
        ..Misbehaviour::none()
    });
    let dir = std::env::temp_dir().join(format!("loadgen-cli-fake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq-loadgen"))
        .args([
            "run",
            "--scenario",
            "p2p",
            "--pubs",
            "1",
            "--qos",
            "1",
            "--rate",
            "1000",
        ])
        .args([
            "--duration",
            "1",
            "--drain",
            "1",
            "--quiet",
            "--target",
            &fake.addr.to_string(),
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("never delivered"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("VIOLATION") && stdout.contains("FAILED"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["lost"].as_u64(), Some(fake.faults().dropped));
    let _ = std::fs::remove_dir_all(&dir);
}
