//! Topic aliases the broker sets toward one client connection (v5 3.3.2.3.4): which
//! topic each alias stands for, and which alias a topic gets next. Aliases live as
//! long as the network connection, so the session drops this table at every attach
//! and detach.

use hashbrown::HashMap;

use crate::protocol::ByteStr;

/// How a PUBLISH names its topic when an alias is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AliasUse {
    /// The client already maps this alias to the topic: empty topic plus alias.
    Known(u16),
    /// The alias is (re)assigned to the topic: full topic plus alias.
    Assign(u16),
}

impl AliasUse {
    pub fn alias(self) -> u16 {
        match self {
            AliasUse::Known(a) | AliasUse::Assign(a) => a,
        }
    }
}

#[derive(Debug)]
struct Slot {
    topic: ByteStr,
    /// Neighbours in the recency list (alias numbers, 0 for none).
    newer: u16,
    older: u16,
}

/// The aliases of one connection, numbered 1..=max in the order they were first
/// given. With `lru`, a full table reassigns its least recently used alias; without,
/// topics beyond the table go out in full.
#[derive(Debug)]
pub(crate) struct TopicAliases {
    max: u16,
    lru: bool,
    by_topic: HashMap<ByteStr, u16>,
    /// Alias `a` is `slots[a - 1]`.
    slots: Vec<Slot>,
    /// Most and least recently used aliases (0 while empty).
    newest: u16,
    oldest: u16,
}

impl TopicAliases {
    pub fn new(max: u16, lru: bool) -> TopicAliases {
        TopicAliases {
            max,
            lru,
            by_topic: HashMap::new(),
            slots: Vec::new(),
            newest: 0,
            oldest: 0,
        }
    }

    /// The alias to send `topic` with, or `None` to send it in full without one.
    /// Changes nothing: the caller commits what it actually sent.
    pub fn plan(&self, topic: &str) -> Option<AliasUse> {
        if let Some(&alias) = self.by_topic.get(topic) {
            return Some(AliasUse::Known(alias));
        }
        if self.slots.len() < usize::from(self.max) {
            return Some(AliasUse::Assign(self.slots.len() as u16 + 1));
        }
        (self.lru && self.oldest != 0).then_some(AliasUse::Assign(self.oldest))
    }

    /// Records that `topic` was sent with `used` (as returned by `plan`).
    pub fn commit(&mut self, topic: &str, used: AliasUse) {
        match used {
            AliasUse::Known(alias) => {
                if self.lru {
                    self.touch(alias);
                }
            }
            AliasUse::Assign(alias) => {
                // An owned copy: a slice of the publisher's read buffer would keep
                // that whole buffer alive for as long as the alias lasts.
                let topic = ByteStr::from(topic);
                let i = usize::from(alias) - 1;
                if i == self.slots.len() {
                    self.slots.push(Slot {
                        topic: topic.clone(),
                        newer: 0,
                        older: 0,
                    });
                    self.push_newest(alias);
                } else {
                    let old = std::mem::replace(&mut self.slots[i].topic, topic.clone());
                    self.by_topic.remove(&old);
                    self.touch(alias);
                }
                self.by_topic.insert(topic, alias);
            }
        }
    }

    fn slot(&mut self, alias: u16) -> &mut Slot {
        &mut self.slots[usize::from(alias) - 1]
    }

    fn touch(&mut self, alias: u16) {
        if self.newest != alias {
            self.unlink(alias);
            self.push_newest(alias);
        }
    }

    fn unlink(&mut self, alias: u16) {
        let Slot { newer, older, .. } = *self.slot(alias);
        match newer {
            0 => self.newest = older,
            n => self.slot(n).older = older,
        }
        match older {
            0 => self.oldest = newer,
            o => self.slot(o).newer = newer,
        }
    }

    fn push_newest(&mut self, alias: u16) {
        let previous = self.newest;
        let slot = self.slot(alias);
        slot.newer = 0;
        slot.older = previous;
        match previous {
            0 => self.oldest = alias,
            p => self.slot(p).newer = alias,
        }
        self.newest = alias;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plans and commits `topic`, as a delivery does.
    fn send(t: &mut TopicAliases, topic: &str) -> Option<AliasUse> {
        let used = t.plan(topic);
        if let Some(u) = used {
            t.commit(topic, u);
        }
        used
    }

    #[test]
    fn fill_assigns_until_full_then_sends_topics_in_full() {
        let mut t = TopicAliases::new(2, false);
        assert_eq!(send(&mut t, "a"), Some(AliasUse::Assign(1)));
        assert_eq!(send(&mut t, "b"), Some(AliasUse::Assign(2)));
        assert_eq!(send(&mut t, "c"), None);
        assert_eq!(send(&mut t, "a"), Some(AliasUse::Known(1)));
        assert_eq!(send(&mut t, "c"), None);
        assert_eq!(send(&mut t, "b"), Some(AliasUse::Known(2)));
    }

    #[test]
    fn lru_reassigns_the_least_recently_used_alias() {
        let mut t = TopicAliases::new(3, true);
        for topic in ["a", "b", "c"] {
            send(&mut t, topic);
        }
        // a is used again, so b is now the least recently used.
        assert_eq!(send(&mut t, "a"), Some(AliasUse::Known(1)));
        assert_eq!(send(&mut t, "d"), Some(AliasUse::Assign(2)));
        assert_eq!(send(&mut t, "b"), Some(AliasUse::Assign(3)));
        assert_eq!(send(&mut t, "d"), Some(AliasUse::Known(2)));
        assert_eq!(send(&mut t, "e"), Some(AliasUse::Assign(1)));
        assert_eq!(send(&mut t, "a"), Some(AliasUse::Assign(3)));
        assert_eq!(t.by_topic.len(), 3);
    }

    #[test]
    fn a_plan_not_committed_changes_nothing() {
        let mut t = TopicAliases::new(1, true);
        assert_eq!(t.plan("a"), Some(AliasUse::Assign(1)));
        assert_eq!(t.plan("a"), Some(AliasUse::Assign(1)));
        send(&mut t, "b");
        assert_eq!(t.plan("a"), Some(AliasUse::Assign(1)));
        assert_eq!(send(&mut t, "b"), Some(AliasUse::Known(1)));
    }

    #[test]
    fn one_alias_lru_keeps_reassigning_it() {
        let mut t = TopicAliases::new(1, true);
        for (i, topic) in ["a", "b", "a", "a"].into_iter().enumerate() {
            let want = if i == 3 {
                AliasUse::Known(1)
            } else {
                AliasUse::Assign(1)
            };
            assert_eq!(send(&mut t, topic), Some(want), "{i}");
        }
    }
}
