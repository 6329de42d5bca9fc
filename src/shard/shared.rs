//! Shared subscriptions (`$share/{group}/{filter}`, v5 4.8.2, also accepted from
//! 3.1.1 clients): groups whose members may sit on any shard, each message going
//! to exactly one member.
//!
//! Every shard knows, for every group with members anywhere, how many members each
//! shard has (kept current by `SharedMembers` messages). The shard where a message
//! is published picks the member's shard by weighted round robin over those counts,
//! so shares stay even however members and publishers are spread; a local member is
//! served with no cross-shard traffic, a remote one with one message, never a round
//! trip. The chosen shard picks one of its members by round robin or least load.

use hashbrown::HashMap;

use crate::config::SharedStrategy;
use crate::protocol::{ByteStr, SubscriptionOptions};
use crate::router::Trie;

use super::slab::Slab;

/// One local member of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub slot: u32,
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
}

struct Group {
    /// The whole `$share/{group}/{filter}` string: the group's name on every shard.
    key: ByteStr,
    /// The filter part, as entered in the trie.
    filter: ByteStr,
    members: Vec<Member>,
    /// Members per shard (this shard's entry is `members.len()`).
    counts: Vec<u32>,
    next_member: usize,
    next_shard: u64,
}

impl Group {
    fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}

/// One shard's view of the shared subscription groups.
pub(crate) struct SharedGroups {
    id: usize,
    shards: usize,
    strategy: SharedStrategy,
    by_key: HashMap<ByteStr, u32>,
    groups: Slab<Group>,
    trie: Trie<u32>,
}

impl SharedGroups {
    pub fn new(id: usize, shards: usize, strategy: SharedStrategy) -> SharedGroups {
        SharedGroups {
            id,
            shards,
            strategy,
            by_key: HashMap::new(),
            groups: Slab::default(),
            trie: Trie::new(),
        }
    }

    /// Members on this shard, over every group.
    pub fn local_members(&self) -> usize {
        self.groups.iter().map(|(_, g)| g.members.len()).sum()
    }

    fn group_for(&mut self, key: &ByteStr, filter: &ByteStr) -> u32 {
        if let Some(&gid) = self.by_key.get(key) {
            return gid;
        }
        let gid = self.groups.insert(Group {
            key: key.clone(),
            filter: filter.clone(),
            members: Vec::new(),
            counts: vec![0; self.shards],
            next_member: 0,
            next_shard: 0,
        });
        self.by_key.insert(key.clone(), gid);
        gid
    }

    /// Sets one shard's member count, entering or leaving the trie as the group
    /// gains its first or loses its last member anywhere.
    fn set_count(&mut self, gid: u32, shard: usize, count: u32) {
        let group = self.groups.get_mut(gid).expect("group exists");
        let before = group.total();
        group.counts[shard] = count;
        let after = group.total();
        if before == 0 && after > 0 {
            self.trie.insert(&group.filter, gid);
        } else if before > 0 && after == 0 {
            self.trie.remove(&group.filter, gid);
            let key = group.key.clone();
            self.groups.remove(gid);
            self.by_key.remove(&key);
        }
    }

    /// Adds or updates a local member. Returns this shard's new member count.
    pub fn join(&mut self, key: &ByteStr, filter: &ByteStr, member: Member) -> u32 {
        let gid = self.group_for(key, filter);
        let group = self.groups.get_mut(gid).expect("group exists");
        match group.members.iter_mut().find(|m| m.slot == member.slot) {
            Some(m) => *m = member,
            None => group.members.push(member),
        }
        let count = group.members.len() as u32;
        self.set_count(gid, self.id, count);
        count
    }

    /// Removes a local member. Returns this shard's new member count, or `None`
    /// if it was not a member.
    pub fn leave(&mut self, key: &str, slot: u32) -> Option<u32> {
        let gid = *self.by_key.get(key)?;
        let group = self.groups.get_mut(gid).expect("group exists");
        let pos = group.members.iter().position(|m| m.slot == slot)?;
        group.members.remove(pos);
        let count = group.members.len() as u32;
        self.set_count(gid, self.id, count);
        Some(count)
    }

    /// Another shard's member count for a group.
    pub fn set_remote(&mut self, key: &ByteStr, filter: &ByteStr, shard: usize, count: u32) {
        let known = self.by_key.contains_key(key);
        if !known && count == 0 {
            return;
        }
        let gid = self.group_for(key, filter);
        self.set_count(gid, shard, count);
    }

    /// Groups whose filter matches `topic`.
    pub fn matching(&self, topic: &str, mut f: impl FnMut(u32)) {
        self.trie.match_topic(topic, &mut f);
    }

    pub fn key(&self, gid: u32) -> Option<&ByteStr> {
        self.groups.get(gid).map(|g| &g.key)
    }

    /// This shard's members of a group.
    pub fn members(&self, gid: u32) -> &[Member] {
        self.groups.get(gid).map_or(&[], |g| &g.members)
    }

    pub fn gid(&self, key: &str) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// The shard that gets the group's next message: weighted round robin over
    /// member counts, skipping shards in `exclude` (a bit set).
    pub fn pick_shard(&mut self, gid: u32, exclude: u128) -> Option<usize> {
        let group = self.groups.get_mut(gid)?;
        let eligible = |s: usize| exclude & (1u128 << s) == 0;
        let total: u64 = (0..group.counts.len())
            .filter(|&s| eligible(s))
            .map(|s| u64::from(group.counts[s]))
            .sum();
        if total == 0 {
            return None;
        }
        let mut n = group.next_shard % total;
        group.next_shard = group.next_shard.wrapping_add(1);
        for (s, &c) in group.counts.iter().enumerate() {
            if !eligible(s) {
                continue;
            }
            if n < u64::from(c) {
                return Some(s);
            }
            n -= u64::from(c);
        }
        None
    }

    /// A local member for the group's next message. `online` and `load` describe
    /// the member's session; online members are preferred, and `skip` is passed over.
    pub fn pick_member(
        &mut self,
        gid: u32,
        skip: Option<u32>,
        online: impl Fn(u32) -> bool,
        load: impl Fn(u32) -> usize,
    ) -> Option<Member> {
        let strategy = self.strategy;
        let group = self.groups.get_mut(gid)?;
        let members = &group.members;
        let (start, n) = (group.next_member, members.len());
        let candidates = || {
            (0..n)
                .map(move |i| (start + i) % n)
                .filter(move |&i| Some(members[i].slot) != skip)
        };
        let any_online = candidates().any(|i| online(members[i].slot));
        let usable = |i: &usize| !any_online || online(members[*i].slot);
        let chosen = match strategy {
            SharedStrategy::RoundRobin => candidates().find(usable),
            SharedStrategy::LeastLoaded => candidates()
                .filter(usable)
                .min_by_key(|&i| load(members[i].slot)),
        }?;
        let member = members[chosen];
        group.next_member = (chosen + 1) % n;
        Some(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(slot: u32) -> Member {
        Member {
            slot,
            options: SubscriptionOptions::default(),
            id: None,
        }
    }

    #[test]
    fn weighted_round_robin_over_shards_is_exact() {
        let key = ByteStr::from("$share/g/t");
        let filter = ByteStr::from("t");
        let mut g = SharedGroups::new(0, 3, SharedStrategy::RoundRobin);
        g.join(&key, &filter, member(1));
        g.set_remote(&key, &filter, 1, 2);
        g.set_remote(&key, &filter, 2, 1);
        let gid = g.gid("$share/g/t").unwrap();
        let mut hits = [0; 3];
        for _ in 0..400 {
            hits[g.pick_shard(gid, 0).unwrap()] += 1;
        }
        assert_eq!(hits, [100, 200, 100]);
        assert_eq!(g.pick_shard(gid, 0b111), None);
        let mut seen = Vec::new();
        g.matching("t", |x| seen.push(x));
        assert_eq!(seen, [gid]);
    }

    #[test]
    fn members_in_turn_online_first_and_least_loaded() {
        let key = ByteStr::from("$share/g/t");
        let filter = ByteStr::from("t");
        let mut g = SharedGroups::new(0, 1, SharedStrategy::RoundRobin);
        for slot in [10, 11, 12] {
            g.join(&key, &filter, member(slot));
        }
        let gid = g.gid("$share/g/t").unwrap();
        let picks: Vec<u32> = (0..6)
            .map(|_| g.pick_member(gid, None, |_| true, |_| 0).unwrap().slot)
            .collect();
        assert_eq!(picks, [10, 11, 12, 10, 11, 12]);
        let offline_11 = |s: u32| s != 11;
        let picks: Vec<u32> = (0..4)
            .map(|_| g.pick_member(gid, None, offline_11, |_| 0).unwrap().slot)
            .collect();
        assert!(!picks.contains(&11), "{picks:?}");
        assert_ne!(
            g.pick_member(gid, Some(10), |s| s == 10, |_| 0)
                .unwrap()
                .slot,
            10
        );

        let mut g = SharedGroups::new(0, 1, SharedStrategy::LeastLoaded);
        for slot in [1, 2, 3] {
            g.join(&key, &filter, member(slot));
        }
        let gid = g.gid("$share/g/t").unwrap();
        let load = |s: u32| [0, 5, 1, 9][s as usize];
        assert_eq!(g.pick_member(gid, None, |_| true, load).unwrap().slot, 2);
    }

    #[test]
    fn group_disappears_with_its_last_member() {
        let key = ByteStr::from("$share/g/a/+");
        let filter = ByteStr::from("a/+");
        let mut g = SharedGroups::new(0, 2, SharedStrategy::RoundRobin);
        assert_eq!(g.join(&key, &filter, member(1)), 1);
        g.set_remote(&key, &filter, 1, 1);
        assert_eq!(g.leave("$share/g/a/+", 1), Some(0));
        assert!(g.gid("$share/g/a/+").is_some(), "still has a remote member");
        g.set_remote(&key, &filter, 1, 0);
        assert!(g.gid("$share/g/a/+").is_none());
        let mut seen = 0;
        g.matching("a/b", |_| seen += 1);
        assert_eq!(seen, 0);
    }
}
