//! A hashed timing wheel for a shard's timers (keep alive, connect timeout, will
//! delay, session expiry).
//!
//! Connections do not touch the wheel on every packet: an entry is checked when its
//! slot comes round, and the owner's callback re-arms it if the real deadline moved
//! (a client that kept talking). Entries reuse their slab slots, so a steady state
//! costs no allocation and no task per connection.

use super::slab::Slab;

/// Timers in ticks (the shard's tick is 100 ms).
///
/// Entries live in one paged slab and each slot is a FIFO list threaded through
/// them: a million timers are a few dense pages, not thousands of small vectors
/// each growing by doubling, which would leave the allocator's pages fragmented
/// long after connections went idle.
pub struct TimerWheel<T> {
    /// First and last entry of each slot's list (`NIL`: empty).
    slots: Vec<(u32, u32)>,
    entries: Slab<Entry<T>>,
    /// The last tick processed.
    current: u64,
}

struct Entry<T> {
    deadline: u64,
    next: u32,
    item: T,
}

const NIL: u32 = u32::MAX;

impl<T> TimerWheel<T> {
    /// A wheel with `slots` slots starting at tick `now`.
    pub fn new(slots: usize, now: u64) -> TimerWheel<T> {
        assert!(slots > 0, "a timing wheel needs at least one slot");
        TimerWheel {
            slots: vec![(NIL, NIL); slots],
            entries: Slab::default(),
            current: now,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Arms `item` to fire at tick `deadline` (the next tick if that is already past).
    pub fn schedule(&mut self, deadline: u64, item: T) {
        let deadline = deadline.max(self.current + 1);
        let slot = (deadline % self.slots.len() as u64) as usize;
        let key = self.entries.insert(Entry {
            deadline,
            next: NIL,
            item,
        });
        self.append(slot, key);
    }

    fn append(&mut self, slot: usize, key: u32) {
        let (head, tail) = self.slots[slot];
        if tail == NIL {
            self.slots[slot] = (key, key);
        } else {
            self.entries.get_mut(tail).expect("tail entry").next = key;
            self.slots[slot] = (head, key);
        }
    }

    /// Processes every tick up to `now`. `fire` gets each due item and returns
    /// `Some((deadline, item))` to re-arm it, or `None` to drop it.
    pub fn advance(&mut self, now: u64, mut fire: impl FnMut(T) -> Option<(u64, T)>) {
        if now <= self.current {
            return;
        }
        let n = self.slots.len() as u64;
        // After a stall longer than a revolution, one pass over every slot covers all.
        let first = (self.current + 1).max(now.saturating_sub(n - 1));
        self.current = now;
        for tick in first..=now {
            let slot = (tick % n) as usize;
            let (mut key, _) = std::mem::replace(&mut self.slots[slot], (NIL, NIL));
            while key != NIL {
                let entry = self.entries.get_mut(key).expect("listed entry");
                let next = std::mem::replace(&mut entry.next, NIL);
                if entry.deadline > now {
                    // Due in a later revolution.
                    self.append(slot, key);
                } else {
                    let entry = self.entries.remove(key).expect("listed entry");
                    if let Some((deadline, item)) = fire(entry.item) {
                        self.schedule(deadline, item);
                    }
                }
                key = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_deadline_and_rearms() {
        let mut w = TimerWheel::new(8, 0);
        w.schedule(3, "a");
        w.schedule(20, "far");
        let mut fired = Vec::new();
        w.advance(2, |i| {
            fired.push(i);
            None
        });
        assert!(fired.is_empty());
        w.advance(3, |i| {
            fired.push(i);
            Some((5, i))
        });
        assert_eq!(fired, ["a"]);
        w.advance(4, |i| {
            fired.push(i);
            None
        });
        assert_eq!(fired, ["a"]);
        w.advance(19, |i| {
            fired.push(i);
            None
        });
        assert_eq!(
            fired,
            ["a", "a"],
            "re-armed entry fired again, far one not yet"
        );
        assert_eq!(w.len(), 1);
        w.advance(1000, |i| {
            fired.push(i);
            None
        });
        assert_eq!(
            fired,
            ["a", "a", "far"],
            "a long stall still fires everything due"
        );
        assert!(w.is_empty());
    }

    #[test]
    fn every_entry_fires_once_at_its_deadline_in_arming_order() {
        let mut w = TimerWheel::new(16, 0);
        // Deadlines spanning several revolutions, armed out of order.
        for i in 0..1000u64 {
            w.schedule(1 + (i * 37) % 100, i);
        }
        let mut fired: Vec<(u64, u64)> = Vec::new();
        for now in 1..=100 {
            w.advance(now, |i| {
                fired.push((now, i));
                None
            });
        }
        assert!(w.is_empty());
        assert_eq!(fired.len(), 1000);
        for &(at, i) in &fired {
            assert_eq!(at, 1 + (i * 37) % 100, "entry {i} fired at its deadline");
        }
        // Within a tick, entries fire in the order they were armed.
        for pair in fired.windows(2) {
            if pair[0].0 == pair[1].0 {
                assert!(pair[0].1 < pair[1].1, "{pair:?}");
            }
        }
    }
}
