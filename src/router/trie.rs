//! The subscription trie: topic filters mapped to opaque subscriber ids, matched
//! against topic names per MQTT 4.7.
//!
//! It knows nothing of sessions (seam 2): a value is a small `Copy` id that the caller
//! resolves, so QoS, ACLs and delivery policy stay with the caller and these tests
//! need no broker.
//!
//! Nodes live in one arena and point at each other by `u32` index, so a million
//! subscriptions cost a million-odd slots in pages of `PAGE` rather than a million
//! boxes. Pages rather than one `Vec`: a vector doubles, so it may hold nearly as
//! many empty slots as nodes, and each doubling copies every node.
//! A node holds one level of a filter: its literal children (a short inline list,
//! a hash map once there are many), a dedicated `+` child, and the values of the
//! filter ending at it and of the filter ending in `/#` at it. Matching walks the
//! topic's levels once and keeps the `+` branches it still owes on a small stack
//! that lives on the call stack, so a match allocates nothing.

use std::convert::Infallible;
use std::ops::{ControlFlow, Index, IndexMut};

use hashbrown::HashMap;
use smallvec::SmallVec;

/// Index of a node in the arena.
type NodeId = u32;

/// The root: the node before the first level of every filter.
const ROOT: NodeId = 0;

/// No node: an absent `+` child.
const NIL: NodeId = NodeId::MAX;

/// Nodes per arena page.
const PAGE: usize = 256;

/// Literal children beyond this count move from the inline list into a hash map.
/// Measured with a throwaway lookup loop (boxed levels in a list against a
/// hashbrown map, 2 to 12 children, short ids and longer words, one probe in four
/// absent): the list is ahead up to 3 or 4 children and behind from 5 or 6.
const MAX_LIST_CHILDREN: usize = 4;

/// A map shrinks back into a list at this count, below `MAX_LIST_CHILDREN` so that
/// a node hovering at the threshold does not convert on every change.
const MIN_MAP_CHILDREN: usize = MAX_LIST_CHILDREN / 2;

/// Pending `+` branches kept inline while matching; a topic that owes more spills
/// onto the heap, which only a filter set with `+` at more than this many levels
/// of one topic can cause.
const INLINE_BRANCHES: usize = 16;

/// Path nodes kept inline while removing.
const INLINE_DEPTH: usize = 16;

/// Maps topic filters to values and finds the values whose filters match a topic.
///
/// Filters and topics are assumed valid (see `protocol::topic`); a `$share/{group}/`
/// prefix must be stripped by the caller. A malformed level such as `a#` or `a+`
/// is stored literally and, since topic names cannot contain wildcards, never
/// matches.
#[derive(Debug, Clone)]
pub struct Trie<V> {
    /// The arena. Slot `ROOT` always holds the root; free slots hold empty nodes.
    nodes: Arena<V>,
    /// Free slots, reused before the arena grows.
    free: Vec<NodeId>,
    /// Stored (filter, value) entries.
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<V> {
    children: Children,
    /// The values of the filter ending at this node, `values[..exact]`, followed by
    /// those of the filter ending in `/#` here, `values[exact..]`. One list rather
    /// than two keeps the node small; four `u32` ids take the room of the heap
    /// pointer and length that a spilled list needs anyway.
    values: SmallVec<[V; 4]>,
    exact: u32,
    /// The `+` child, or `NIL`.
    plus: NodeId,
}

/// Literal children by level.
#[derive(Debug, Clone)]
enum Children {
    /// Up to `MAX_LIST_CHILDREN`; one is kept inline, as chains of single children
    /// (`device/{id}/telemetry`) are the common case.
    List(SmallVec<[(Box<str>, NodeId); 1]>),
    /// Boxed so that the rarer wide node does not widen every node.
    Map(Box<HashMap<Box<str>, NodeId>>),
}

impl<V: Copy + Eq> Trie<V> {
    /// An empty trie.
    pub fn new() -> Self {
        Trie {
            nodes: Arena::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Adds `value` under `filter`. Returns true if the filter had no values
    /// before: its first subscriber, which the caller announces to other shards.
    ///
    /// The trie is a multiset: inserting the same pair twice stores it twice, and
    /// it takes two removals to take it out.
    pub fn insert(&mut self, filter: &str, value: V) -> bool {
        let (levels, multi) = split_filter(filter);
        let mut id = ROOT;
        if let Some(levels) = levels {
            for level in levels.split('/') {
                id = self.child_or_insert(id, level);
            }
        }
        self.len += 1;
        let node = &mut self.nodes[id];
        let exact = node.exact as usize;
        if multi {
            node.values.push(value);
            node.values.len() == exact + 1
        } else {
            node.values.insert(exact, value);
            node.exact += 1;
            exact == 0
        }
    }

    /// Removes one occurrence of `value` under `filter`. Returns true if the
    /// filter had the value and has no values left, false if it had none left or
    /// the value was not there. Nodes left empty are freed at once, so memory
    /// returns after unsubscribes; their slots are reused by later inserts, and
    /// the arena gives back all its pages but the first when the trie becomes empty.
    ///
    /// Finding the value scans the filter's values, so this is linear in the
    /// number of subscribers to that one filter.
    pub fn remove(&mut self, filter: &str, value: V) -> bool {
        let (levels, multi) = split_filter(filter);
        // The nodes below the root along the filter, to prune on the way back.
        let mut trail: SmallVec<[NodeId; INLINE_DEPTH]> = SmallVec::new();
        let mut id = ROOT;
        if let Some(levels) = levels {
            for level in levels.split('/') {
                match self.nodes[id].child(level) {
                    Some(child) => id = child,
                    None => return false,
                }
                trail.push(id);
            }
        }

        let node = &mut self.nodes[id];
        let exact = node.exact as usize;
        let range = if multi {
            exact..node.values.len()
        } else {
            0..exact
        };
        let Some(at) = node.values[range.clone()].iter().position(|v| *v == value) else {
            return false;
        };
        node.values.remove(range.start + at);
        if !multi {
            node.exact -= 1;
        }
        let emptied = if multi {
            node.values.len() == node.exact as usize
        } else {
            node.exact == 0
        };
        if node.values.spilled() && node.values.len() * 4 <= node.values.capacity() {
            node.values.shrink_to_fit();
        }
        self.len -= 1;

        if let Some(levels) = levels {
            self.prune(&trail, levels);
        }
        emptied
    }

    /// Calls `f` with each value whose filter matches `topic`, once per stored
    /// entry, in no particular order.
    ///
    /// Per MQTT 4.7: `+` matches exactly one level, empty ones included; `#`
    /// matches its parent level and any number below it (`sport/#` matches
    /// `sport`); and a topic starting with `$` is not matched by a filter whose
    /// first level is a wildcard.
    pub fn match_topic(&self, topic: &str, mut f: impl FnMut(V)) {
        let done = self.walk(topic, |values| -> ControlFlow<Infallible> {
            values.iter().for_each(|&v| f(v));
            ControlFlow::Continue(())
        });
        match done {
            ControlFlow::Continue(()) => {}
            ControlFlow::Break(never) => match never {},
        }
    }

    /// Whether any filter matches `topic`; stops at the first.
    pub fn has_match(&self, topic: &str) -> bool {
        self.walk(topic, |_| ControlFlow::Break(())).is_break()
    }

    /// The number of stored (filter, value) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entries are stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Live nodes, the root included.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Calls `visit` with every non-empty list of matching values until it breaks.
    fn walk<B>(
        &self,
        topic: &str,
        mut visit: impl FnMut(&[V]) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        // Topics starting with '$' are not matched by the root's wildcards (4.7.2).
        let dollar = topic.starts_with('$');
        // `+` branches still owed: a node and the topic levels left below it, `None`
        // once every level is consumed. The literal branch is followed directly.
        let mut owed: SmallVec<[(NodeId, Option<&str>); INLINE_BRANCHES]> = SmallVec::new();
        let mut id = ROOT;
        let mut rest = Some(topic);
        loop {
            let node = &self.nodes[id];
            match rest {
                // The topic ends at this node: its filter matches, and so does the
                // one ending in `/#` here.
                None => {
                    if !node.values.is_empty() {
                        visit(&node.values)?;
                    }
                }
                Some(levels) => {
                    let (level, below) = match levels.split_once('/') {
                        Some((level, below)) => (level, Some(below)),
                        None => (levels, None),
                    };
                    if !(dollar && id == ROOT) {
                        let multi = &node.values[node.exact as usize..];
                        if !multi.is_empty() {
                            visit(multi)?;
                        }
                        if node.plus != NIL {
                            owed.push((node.plus, below));
                        }
                    }
                    if let Some(child) = node.children.get(level) {
                        id = child;
                        rest = below;
                        continue;
                    }
                }
            }
            match owed.pop() {
                Some((next, below)) => {
                    id = next;
                    rest = below;
                }
                None => return ControlFlow::Continue(()),
            }
        }
    }

    /// The child of `parent` for `level`, created if absent.
    fn child_or_insert(&mut self, parent: NodeId, level: &str) -> NodeId {
        if let Some(child) = self.nodes[parent].child(level) {
            return child;
        }
        let child = self.alloc();
        let node = &mut self.nodes[parent];
        if level == "+" {
            node.plus = child;
        } else {
            node.children.insert(level, child);
        }
        child
    }

    /// Frees the empty nodes at the end of `trail`, the nodes reached by each of
    /// `levels`, deepest first, unlinking each from its parent.
    fn prune(&mut self, trail: &[NodeId], levels: &str) {
        for (depth, level) in (0..trail.len()).rev().zip(levels.rsplit('/')) {
            let id = trail[depth];
            if !self.nodes[id].is_empty() {
                break;
            }
            let parent = if depth == 0 { ROOT } else { trail[depth - 1] };
            let node = &mut self.nodes[parent];
            if level == "+" {
                node.plus = NIL;
            } else {
                node.children.remove(level);
            }
            self.release(id);
        }
        if self.nodes.len() == self.free.len() + 1 {
            self.nodes.truncate_to_root();
            self.free = Vec::new();
        }
    }

    /// A fresh empty node, from the free list if it has one.
    fn alloc(&mut self) -> NodeId {
        if let Some(id) = self.free.pop() {
            return id;
        }
        let id = NodeId::try_from(self.nodes.len())
            .ok()
            .filter(|&id| id != NIL)
            .expect("subscription trie is limited to u32::MAX - 1 nodes");
        self.nodes.push_empty();
        id
    }

    /// Returns a node's slot to the free list, dropping what it owned.
    fn release(&mut self, id: NodeId) {
        self.nodes[id] = Node::empty();
        self.free.push(id);
    }
}

impl<V: Copy + Eq> Default for Trie<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// The node slots, in pages of `PAGE` allocated whole (every slot an empty node
/// until used) and never moved. A whole page is indexed without a bounds check
/// and a page is one thin pointer, so a lookup costs one load more than in a
/// single vector. The first page is allocated with the trie, which makes the
/// smallest trie a page.
#[derive(Debug, Clone)]
struct Arena<V> {
    pages: Vec<Box<[Node<V>; PAGE]>>,
    /// Slots handed out, `ROOT` included.
    len: usize,
}

impl<V> Arena<V> {
    /// An arena holding only an empty root.
    fn new() -> Self {
        Arena {
            pages: vec![Self::page()],
            len: 1,
        }
    }

    fn page() -> Box<[Node<V>; PAGE]> {
        let page: Box<[Node<V>]> = (0..PAGE).map(|_| Node::empty()).collect();
        page.try_into().ok().expect("a page has PAGE slots")
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Frees every slot but the root's; the first page stays.
    fn truncate_to_root(&mut self) {
        self.pages.truncate(1);
        self.pages.shrink_to_fit();
        self.len = 1;
    }

    /// Hands out the next never-used slot, which holds an empty node.
    fn push_empty(&mut self) {
        if self.len == self.pages.len() * PAGE {
            self.pages.push(Self::page());
        }
        self.len += 1;
    }
}

impl<V> Index<NodeId> for Arena<V> {
    type Output = Node<V>;

    fn index(&self, id: NodeId) -> &Node<V> {
        let id = id as usize;
        &self.pages[id / PAGE][id % PAGE]
    }
}

impl<V> IndexMut<NodeId> for Arena<V> {
    fn index_mut(&mut self, id: NodeId) -> &mut Node<V> {
        let id = id as usize;
        &mut self.pages[id / PAGE][id % PAGE]
    }
}

impl<V> Node<V> {
    fn empty() -> Self {
        Node {
            children: Children::List(SmallVec::new()),
            values: SmallVec::new(),
            exact: 0,
            plus: NIL,
        }
    }

    /// The child for `level`, `+` included.
    #[inline]
    fn child(&self, level: &str) -> Option<NodeId> {
        if level == "+" {
            Some(self.plus).filter(|&id| id != NIL)
        } else {
            self.children.get(level)
        }
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty() && self.plus == NIL && self.children.is_empty()
    }
}

impl Children {
    #[inline]
    fn get(&self, level: &str) -> Option<NodeId> {
        match self {
            Children::List(list) => list
                .iter()
                .find(|(key, _)| **key == *level)
                .map(|&(_, id)| id),
            Children::Map(map) => map.get(level).copied(),
        }
    }

    /// Adds a child that is not there yet.
    fn insert(&mut self, level: &str, id: NodeId) {
        match self {
            Children::List(list) if list.len() < MAX_LIST_CHILDREN => {
                list.push((level.into(), id));
            }
            Children::List(list) => {
                let mut map: HashMap<Box<str>, NodeId> = list.drain(..).collect();
                map.insert(level.into(), id);
                *self = Children::Map(Box::new(map));
            }
            Children::Map(map) => {
                map.insert(level.into(), id);
            }
        }
    }

    fn remove(&mut self, level: &str) {
        match self {
            Children::List(list) => {
                if let Some(at) = list.iter().position(|(key, _)| **key == *level) {
                    list.swap_remove(at);
                }
                if list.spilled() && list.len() * 4 <= list.capacity() {
                    list.shrink_to_fit();
                }
            }
            Children::Map(map) => {
                map.remove(level);
                if map.len() <= MIN_MAP_CHILDREN {
                    *self = Children::List(map.drain().collect());
                } else if map.len() * 4 <= map.capacity() {
                    map.shrink_to(map.len() * 2);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Children::List(list) => list.is_empty(),
            Children::Map(map) => map.is_empty(),
        }
    }
}

/// Splits a filter into its levels before a trailing `#` (`None` for the filter
/// `#` alone, which has none) and whether it had that `#`.
fn split_filter(filter: &str) -> (Option<&str>, bool) {
    if filter == "#" {
        (None, true)
    } else if let Some(levels) = filter.strip_suffix("/#") {
        (Some(levels), true)
    } else {
        (Some(filter), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::topic::matches;
    use proptest::prelude::*;

    /// The values matching `topic`, sorted.
    fn matched(trie: &Trie<u32>, topic: &str) -> Vec<u32> {
        let mut out = Vec::new();
        trie.match_topic(topic, |v| out.push(v));
        out.sort_unstable();
        out
    }

    /// Whether `filter` alone, in a trie of its own, matches `topic`; checked
    /// against `has_match` so both paths agree.
    fn single(filter: &str, topic: &str) -> bool {
        let mut trie = Trie::new();
        trie.insert(filter, 7u32);
        let found = matched(&trie, topic) == [7];
        assert_eq!(trie.has_match(topic), found, "{filter} vs {topic}");
        found
    }

    #[track_caller]
    fn check(cases: &[(&str, &str, bool)]) {
        for &(filter, topic, want) in cases {
            assert_eq!(single(filter, topic), want, "{filter} vs {topic}");
        }
    }

    #[test]
    fn spec_multi_level_wildcard() {
        // 4.7.1.2
        check(&[
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/tennis/player1/#", "sport/tennis/player2", false),
            ("sport/tennis/player1/#", "sport/tennis", false),
            ("sport/#", "sport", true),
            ("sport/#", "sport/", true),
            ("sport/#", "sports", false),
            ("#", "sport", true),
            ("#", "sport/tennis/player1", true),
            ("#", "/", true),
        ]);
    }

    #[test]
    fn spec_single_level_wildcard() {
        // 4.7.1.3
        check(&[
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player2", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+", "sport", true),
            ("+/tennis/#", "sport/tennis", true),
            ("+/tennis/#", "sport/tennis/player1", true),
            ("+/tennis/#", "sport/golf", false),
            ("sport/+/player1", "sport/tennis/player1", true),
            ("sport/+/player1", "sport//player1", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("a//b", "a//b", true),
            ("a//b", "a/b", false),
        ]);
    }

    #[test]
    fn spec_dollar_topics() {
        // 4.7.2
        check(&[
            ("#", "$SYS/monitor/Clients", false),
            ("#", "$SYS", false),
            ("+", "$SYS", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/monitor/Clients", true),
            ("$SYS/#", "$SYS", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("$SYS/+/Clients", "$SYS/monitor/Clients", true),
            // Only the first level of the topic counts.
            ("a/#", "a/$b", true),
            ("a/+", "a/$b", true),
        ]);
    }

    #[test]
    fn spec_topic_semantics() {
        // 4.7.3: case-sensitive, and a leading '/' makes a distinct level.
        check(&[
            ("ACCOUNTS", "Accounts", false),
            ("Accounts payable", "Accounts payable", true),
            ("/finance", "finance", false),
            ("finance", "/finance", false),
        ]);
    }

    #[test]
    fn every_matching_filter_contributes() {
        let mut trie = Trie::new();
        let filters = [
            "sport/tennis/player1",
            "sport/tennis/+",
            "sport/+/player1",
            "sport/#",
            "sport/tennis/player1/#",
            "+/+/+",
            "#",
            "sport/tennis",
            "sport/tennis/player1/ranking",
        ];
        for (value, filter) in (0u32..).zip(filters) {
            trie.insert(filter, value);
        }
        assert_eq!(
            matched(&trie, "sport/tennis/player1"),
            [0, 1, 2, 3, 4, 5, 6]
        );
        assert_eq!(matched(&trie, "sport/tennis"), [3, 6, 7]);
        assert_eq!(matched(&trie, "$SYS/tennis/player1"), Vec::<u32>::new());
        assert!(!trie.has_match("$SYS/tennis/player1"));
        assert!(trie.has_match("other"));
    }

    #[test]
    fn multiset_and_return_values() {
        let mut trie = Trie::new();
        assert!(trie.is_empty());
        assert!(trie.insert("a/+", 1u32), "first subscriber");
        assert!(!trie.insert("a/+", 2), "second subscriber");
        assert!(!trie.insert("a/+", 1), "same pair again");
        assert!(trie.insert("a/#", 1), "a/# is a filter of its own");
        assert!(trie.insert("a", 1), "so is its parent");
        assert_eq!(trie.len(), 5);
        assert_eq!(matched(&trie, "a/b"), [1, 1, 1, 2]);
        assert_eq!(matched(&trie, "a"), [1, 1]);

        assert!(!trie.remove("a/+", 3), "absent value");
        assert!(!trie.remove("a/b", 1), "absent filter");
        assert!(!trie.remove("a/+/c", 1), "absent deeper filter");
        assert!(!trie.remove("a/+", 1), "one of two copies left");
        assert_eq!(matched(&trie, "a/b"), [1, 1, 2]);
        assert!(!trie.remove("a/+", 1));
        assert!(trie.remove("a/+", 2), "last subscriber");
        assert!(!trie.remove("a/+", 2), "already gone");
        assert_eq!(matched(&trie, "a/b"), [1]);
        assert!(trie.remove("a", 1));
        assert_eq!(matched(&trie, "a"), [1], "a/# still matches its parent");
        assert!(trie.remove("a/#", 1));
        assert!(!trie.has_match("a"));
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 1);
    }

    #[test]
    fn exact_and_multi_values_at_one_node_are_kept_apart() {
        let mut trie = Trie::new();
        trie.insert("a/#", 1u32);
        trie.insert("a", 2);
        trie.insert("a/#", 3);
        trie.insert("a", 4);
        assert_eq!(matched(&trie, "a"), [1, 2, 3, 4]);
        assert_eq!(matched(&trie, "a/x"), [1, 3]);
        assert!(!trie.remove("a", 1), "1 is under a/#, not a");
        assert!(!trie.remove("a/#", 2), "2 is under a, not a/#");
        trie.remove("a", 2);
        assert_eq!(matched(&trie, "a/x"), [1, 3]);
        assert_eq!(matched(&trie, "a"), [1, 3, 4]);
    }

    #[test]
    fn pruning_returns_every_node() {
        let mut trie = Trie::new();
        let filters: Vec<String> = (0..200)
            .map(|i| match i % 5 {
                0 => format!("t/{}/d/{i}/x", i % 7),
                1 => format!("t/{}/+/{i}", i % 7),
                2 => format!("t/{}/#", i % 3),
                3 => format!("+/{i}//#"),
                _ => format!("/{i}/+"),
            })
            .collect();
        for (value, filter) in (0u32..).zip(&filters) {
            trie.insert(filter, value);
        }
        trie.insert("#", 1000);
        trie.insert("+", 1001);
        assert!(trie.node_count() > 200);
        // Remove in an order unrelated to insertion, so inner nodes empty out at
        // different times; wide nodes go back from map to list on the way.
        for i in 0..filters.len() {
            let value = (i * 37) % filters.len();
            let before = trie.len();
            trie.remove(&filters[value], value as u32);
            assert_eq!(trie.len(), before - 1, "{}", filters[value]);
        }
        assert!(trie.remove("#", 1000));
        assert_eq!(trie.node_count(), 2, "only root and the + child are left");
        assert!(trie.remove("+", 1001));
        assert_eq!(trie.node_count(), 1);
        assert!(trie.is_empty());
        assert!(!trie.has_match("t/1/d/1/x"));
    }

    #[test]
    fn wide_nodes_switch_between_list_and_map() {
        let mut trie = Trie::new();
        for i in 0..(MAX_LIST_CHILDREN as u32 * 4) {
            trie.insert(&format!("w/{i}"), i);
            assert_eq!(matched(&trie, &format!("w/{i}")), [i]);
        }
        for i in 0..(MAX_LIST_CHILDREN as u32 * 4) {
            assert_eq!(matched(&trie, &format!("w/{i}")), [i], "after growth");
        }
        for i in 0..(MAX_LIST_CHILDREN as u32 * 4 - 1) {
            assert!(trie.remove(&format!("w/{i}"), i));
            assert!(!trie.has_match(&format!("w/{i}")));
        }
        let last = MAX_LIST_CHILDREN as u32 * 4 - 1;
        assert_eq!(matched(&trie, &format!("w/{last}")), [last]);
        assert_eq!(trie.node_count(), 3);
    }

    #[test]
    fn freed_slots_are_reused() {
        let mut trie = Trie::new();
        trie.insert("keep", 0u32);
        trie.insert("a/b/c", 1);
        let grown = trie.nodes.len();
        trie.remove("a/b/c", 1);
        trie.insert("x/y/z", 2);
        assert_eq!(trie.nodes.len(), grown);
        assert_eq!(matched(&trie, "x/y/z"), [2]);
        assert!(!trie.has_match("a/b/c"));
    }

    #[test]
    fn the_arena_grows_by_pages_and_spare_slots_stay_under_one() {
        let mut trie = Trie::new();
        let n = PAGE as u32 * 5 + 7;
        for i in 0..n {
            trie.insert(&format!("wide/{i}"), i);
        }
        let held = trie.nodes.pages.len() * PAGE;
        assert!(
            held - trie.node_count() < PAGE,
            "{held} slots hold {}",
            trie.node_count()
        );
        for i in (0..n).step_by(97) {
            assert_eq!(matched(&trie, &format!("wide/{i}")), [i]);
        }
        for i in 0..n {
            assert!(trie.remove(&format!("wide/{i}"), i));
        }
        assert_eq!(trie.node_count(), 1);
        assert_eq!(
            trie.nodes.pages.len(),
            1,
            "an emptied trie gives its pages back"
        );
    }

    #[test]
    fn deep_topics_spill_the_branch_stack() {
        let mut trie = Trie::new();
        let depth = INLINE_BRANCHES * 3;
        let plus = vec!["+"; depth].join("/");
        let topic = vec!["l"; depth].join("/");
        trie.insert(&plus, 1u32);
        trie.insert(&topic, 2);
        trie.insert(&format!("{}/#", vec!["+"; depth - 1].join("/")), 3);
        assert_eq!(matched(&trie, &topic), [1, 2, 3]);
        assert!(trie.remove(&plus, 1));
        assert!(trie.remove(&topic, 2));
        assert!(trie.remove(&format!("{}/#", vec!["+"; depth - 1].join("/")), 3));
        assert_eq!(trie.node_count(), 1);
    }

    /// A level drawn from a small alphabet, so filters and topics collide often.
    fn name_level() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "", "$s"])
    }

    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(name_level(), 1..5)
            .prop_map(|levels| levels.join("/"))
            .prop_filter("topic names are not empty", |t| !t.is_empty())
    }

    fn filter() -> impl Strategy<Value = String> {
        let level = prop_oneof![3 => name_level(), 1 => Just("+")];
        (prop::collection::vec(level, 0..5), any::<bool>())
            .prop_map(|(mut levels, multi)| {
                if multi || levels.is_empty() {
                    levels.push("#");
                }
                levels.join("/")
            })
            .prop_filter("filters are not empty", |f| !f.is_empty())
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference_matcher(
            filters in prop::collection::vec(filter(), 1..40),
            topics in prop::collection::vec(topic(), 1..20),
            keep in prop::collection::vec(any::<bool>(), 40),
        ) {
            let mut trie = Trie::new();
            for (value, filter) in (0u32..).zip(&filters) {
                trie.insert(filter, value);
            }
            let expect = |live: &dyn Fn(usize) -> bool, topic: &str| -> Vec<u32> {
                (0u32..)
                    .zip(&filters)
                    .filter(|&(v, f)| live(v as usize) && matches(f, topic))
                    .map(|(v, _)| v)
                    .collect()
            };
            for topic in &topics {
                let want = expect(&|_| true, topic);
                prop_assert_eq!(&matched(&trie, topic), &want, "topic {}", topic);
                prop_assert_eq!(trie.has_match(topic), !want.is_empty());
            }

            // Remove some, then check again: pruning must not lose live entries,
            // and `remove` reports the filter's last value as a model predicts.
            let mut live: HashMap<&str, usize> = HashMap::new();
            for filter in &filters {
                *live.entry(filter.as_str()).or_default() += 1;
            }
            let order = (0u32..).zip(&filters);
            let (dropped, kept): (Vec<_>, Vec<_>) = order.partition(|&(v, _)| !keep[v as usize]);
            for (value, filter) in dropped {
                prop_assert!(!trie.remove(filter, u32::MAX), "absent value");
                let left = live.get_mut(filter.as_str()).expect("counted");
                *left -= 1;
                prop_assert_eq!(trie.remove(filter, value), *left == 0, "removing {}", filter);
            }
            prop_assert_eq!(trie.len(), kept.len());
            for topic in &topics {
                let want = expect(&|v| keep[v], topic);
                prop_assert_eq!(&matched(&trie, topic), &want, "topic {} after removals", topic);
            }
            for (value, filter) in kept {
                let left = live.get_mut(filter.as_str()).expect("counted");
                *left -= 1;
                prop_assert_eq!(trie.remove(filter, value), *left == 0, "removing {}", filter);
            }
            prop_assert!(trie.is_empty());
            prop_assert_eq!(trie.node_count(), 1);
        }
    }
}
