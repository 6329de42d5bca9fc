//! A hashed timing wheel for a shard's timers (keep alive, connect timeout, will
//! delay, session expiry).
//!
//! Connections do not touch the wheel on every packet: an entry is checked when its
//! slot comes round, and the owner's callback re-arms it if the real deadline moved
//! (a client that kept talking). Slots keep their vectors, so a steady state costs no
//! allocation and no task per connection.

/// Timers in ticks (the shard's tick is 100 ms).
pub struct TimerWheel<T> {
    slots: Vec<Vec<(u64, T)>>,
    /// The last tick processed.
    current: u64,
    spare: Vec<(u64, T)>,
    len: usize,
}

impl<T> TimerWheel<T> {
    /// A wheel with `slots` slots starting at tick `now`.
    pub fn new(slots: usize, now: u64) -> TimerWheel<T> {
        assert!(slots > 0, "a timing wheel needs at least one slot");
        TimerWheel {
            slots: (0..slots).map(|_| Vec::new()).collect(),
            current: now,
            spare: Vec::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Arms `item` to fire at tick `deadline` (the next tick if that is already past).
    pub fn schedule(&mut self, deadline: u64, item: T) {
        let deadline = deadline.max(self.current + 1);
        let slot = (deadline % self.slots.len() as u64) as usize;
        self.slots[slot].push((deadline, item));
        self.len += 1;
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
            let mut due = std::mem::replace(&mut self.slots[slot], std::mem::take(&mut self.spare));
            for (deadline, item) in due.drain(..) {
                self.len -= 1;
                if deadline > now {
                    self.slots[slot].push((deadline, item));
                    self.len += 1;
                } else if let Some((next, item)) = fire(item) {
                    self.schedule(next, item);
                }
            }
            self.spare = due;
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
}
