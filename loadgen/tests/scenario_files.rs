//! Every scenario shipped in loadgen/scenarios/ parses, validates, scales, and
//! plans; the EMQ ones keep their defining shape.

use std::path::Path;

use ringmq_loadgen::{Kind, Plan, Scenario};

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    Scenario::from_toml(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_shipped_scenario_is_valid_and_plans_at_small_scale() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".toml") {
            continue;
        }
        let s = load(&name).scaled(0.01).unwrap();
        let plan = Plan::new(s).unwrap();
        assert_eq!(
            plan.deaf_subscribers(),
            0,
            "{name}: a subscriber hears from no publisher"
        );
        n += 1;
    }
    assert!(n >= 9, "{n} scenario files");
}

#[test]
fn emq_scenarios_keep_their_shape_when_scaled() {
    let p2p = load("emq-p2p.toml").scaled(0.01).unwrap();
    assert_eq!(
        (
            p2p.pubs.as_ref().unwrap().count,
            p2p.subs.as_ref().unwrap().count
        ),
        (500, 500)
    );
    assert_eq!(p2p.rate_per_publisher(), Some(1.0));
    assert_eq!(Plan::new(p2p).unwrap().expected(|_| 1), 500);

    let fanout = load("emq-fanout.toml").scaled(0.01).unwrap();
    assert_eq!(
        fanout.pubs.as_ref().unwrap().count,
        5,
        "five publishers and topics at any scale"
    );
    assert_eq!(fanout.subs.as_ref().unwrap().count, 10);
    assert_eq!(
        Plan::new(fanout).unwrap().expected(|_| 1),
        50,
        "each subscriber hears all five"
    );

    let shared = load("emq-sharesub.toml").scaled(0.01).unwrap();
    assert_eq!((shared.kind, shared.protocol), (Kind::Shared, 5));
    let plan = Plan::new(shared).unwrap();
    assert_eq!(plan.groups.len(), 1);
    assert_eq!(plan.expected(|_| 1), 500, "each message once to the group");

    let conn = load("emq-conn.toml").scaled(0.01).unwrap();
    assert_eq!(conn.conns.as_ref().unwrap().count, 10_000);
    assert_eq!(conn.connect_rate, Some(5000.0));
}
