//! The retained message store: topic -> last retained message, looked up by topic
//! filter when a subscription is made.
//!
//! Every shard holds a full replica, so a subscribe is answered locally. Replicas
//! converge because each update carries a broker-wide sequence number and the
//! highest one wins (a deletion leaves a tombstone with its number until no older
//! update can still be in flight). The messages themselves are shared, not copied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use crate::message::Message;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    /// Sequence number of the last update and the message (`None`: a tombstone).
    entry: Option<(u64, Option<Arc<Message>>, Instant)>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.entry.is_none()
    }
}

/// One shard's replica of the retained messages.
#[derive(Debug, Default)]
pub struct RetainedStore {
    root: Node,
    messages: usize,
}

impl RetainedStore {
    pub fn new() -> RetainedStore {
        RetainedStore::default()
    }

    /// Number of retained messages (tombstones excluded).
    pub fn len(&self) -> usize {
        self.messages
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Applies an update: `Some` stores a message, `None` deletes (an empty retained
    /// payload). Ignored when a newer update (higher `seq`) was already applied.
    /// Returns whether it was applied.
    pub fn apply(
        &mut self,
        topic: &str,
        seq: u64,
        msg: Option<Arc<Message>>,
        now: Instant,
    ) -> bool {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(Box::from(level)).or_default();
        }
        if let Some((old_seq, old, _)) = &node.entry {
            if *old_seq > seq {
                return false;
            }
            if old.is_some() {
                self.messages -= 1;
            }
        }
        if msg.is_some() {
            self.messages += 1;
        }
        node.entry = Some((seq, msg, now));
        true
    }

    /// The retained message for exactly this topic.
    pub fn get(&self, topic: &str) -> Option<&Arc<Message>> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.entry.as_ref()?.1.as_ref()
    }

    /// Calls `f` for every unexpired retained message whose topic matches `filter`
    /// (MQTT 4.7 rules, `$` topics not matched by a leading wildcard).
    pub fn for_each_match(&self, filter: &str, now: Instant, mut f: impl FnMut(&Arc<Message>)) {
        let levels: Vec<&str> = filter.split('/').collect();
        walk(&self.root, &levels, true, now, &mut f);
    }

    /// Drops tombstones older than `age` and expired messages, and prunes empty
    /// nodes. Called from the shard's periodic tick.
    pub fn sweep(&mut self, now: Instant, age: Duration) {
        let mut removed = 0;
        sweep_node(&mut self.root, now, age, &mut removed);
        self.messages -= removed;
    }
}

fn walk(node: &Node, levels: &[&str], root: bool, now: Instant, f: &mut impl FnMut(&Arc<Message>)) {
    let Some((&level, rest)) = levels.split_first() else {
        if let Some((_, Some(msg), _)) = &node.entry {
            if !msg.is_expired(now) {
                f(msg);
            }
        }
        return;
    };
    match level {
        "#" => {
            // "a/#" matches "a" itself as well as everything below it.
            if !root {
                walk(node, &[], false, now, f);
            }
            for (name, child) in &node.children {
                if root && name.starts_with('$') {
                    continue;
                }
                walk_all(child, now, f);
            }
        }
        "+" => {
            for (name, child) in &node.children {
                if root && name.starts_with('$') {
                    continue;
                }
                walk(child, rest, false, now, f);
            }
        }
        literal => {
            if let Some(child) = node.children.get(literal) {
                walk(child, rest, false, now, f);
            }
        }
    }
}

fn walk_all(node: &Node, now: Instant, f: &mut impl FnMut(&Arc<Message>)) {
    if let Some((_, Some(msg), _)) = &node.entry {
        if !msg.is_expired(now) {
            f(msg);
        }
    }
    for child in node.children.values() {
        walk_all(child, now, f);
    }
}

fn sweep_node(node: &mut Node, now: Instant, age: Duration, removed: &mut usize) {
    if let Some((_, msg, at)) = &node.entry {
        match msg {
            None if now.saturating_duration_since(*at) >= age => node.entry = None,
            Some(m) if m.is_expired(now) => {
                node.entry = None;
                *removed += 1;
            }
            _ => {}
        }
    }
    node.children.retain(|_, child| {
        sweep_node(child, now, age, removed);
        !child.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Properties, QoS};

    fn msg(topic: &str) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: bytes::Bytes::from_static(b"x"),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Properties::new(),
            expires_at: None,
            publisher: 0,
        })
    }

    fn topics(store: &RetainedStore, filter: &str) -> Vec<String> {
        let mut v = Vec::new();
        store.for_each_match(filter, Instant::now(), |m| v.push(m.topic.to_string()));
        v.sort();
        v
    }

    #[test]
    fn wildcard_lookup() {
        let now = Instant::now();
        let mut s = RetainedStore::new();
        for (i, t) in ["a", "a/b", "a/b/c", "a/x", "/a", "$SYS/up", "b"]
            .iter()
            .enumerate()
        {
            assert!(s.apply(t, i as u64 + 1, Some(msg(t)), now));
        }
        assert_eq!(s.len(), 7);
        assert_eq!(topics(&s, "a/#"), ["a", "a/b", "a/b/c", "a/x"]);
        assert_eq!(topics(&s, "a/+"), ["a/b", "a/x"]);
        assert_eq!(topics(&s, "+/a"), ["/a"]);
        assert_eq!(topics(&s, "#"), ["/a", "a", "a/b", "a/b/c", "a/x", "b"]);
        assert_eq!(topics(&s, "$SYS/#"), ["$SYS/up"]);
        assert_eq!(topics(&s, "+/up"), Vec::<String>::new());
        assert_eq!(topics(&s, "a/b"), ["a/b"]);
    }

    #[test]
    fn newest_update_wins_and_tombstones_expire() {
        let now = Instant::now();
        let mut s = RetainedStore::new();
        assert!(s.apply("t", 5, Some(msg("t")), now));
        assert!(!s.apply("t", 3, None, now), "older delete must not win");
        assert_eq!(s.len(), 1);
        assert!(s.apply("t", 7, None, now));
        assert_eq!(s.len(), 0);
        assert!(
            !s.apply("t", 6, Some(msg("t")), now),
            "older set must not resurrect"
        );
        assert!(s.get("t").is_none());
        s.sweep(now + Duration::from_secs(61), Duration::from_secs(60));
        assert!(
            s.root.children.is_empty(),
            "tombstone and empty nodes pruned"
        );
    }
}
