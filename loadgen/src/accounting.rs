//! Subscriber-side accounting: which messages arrived, which are missing, which came
//! twice or out of order. Pure data structures, no I/O, so crafted sequences test them.
//!
//! A subscriber keeps one [`SeqTracker`] per publisher it expects: the next sequence
//! it expects plus, only while some are outstanding, the missing ranges below it.
//! Holes are kept as ranges rather than as a set of early arrivals because the two
//! things a broker does to a stream are drop runs of messages (QoS 0 under load) and
//! swap a few neighbours; both are one or two ranges. A tracker in order is 16 bytes
//! and allocates nothing.
//!
//! Members of a shared subscription each see part of every publisher's stream, so
//! their group is accounted once, in a [`GroupBook`]: one bit per sequence number,
//! set atomically by whichever member receives it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Serialize;

/// Missing ranges one tracker keeps before it writes the oldest off as lost.
pub const MAX_HOLES: usize = 1024;

/// What one arrival turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next sequence expected.
    InOrder,
    /// New, but beyond the next expected: the sequences skipped are now missing.
    AfterGap,
    /// New, filling a gap left earlier: it was overtaken by later messages.
    Reordered,
    /// Seen before.
    Duplicate,
    /// Below a range already written off as lost (see [`MAX_HOLES`]).
    Late,
    /// From a publisher this subscriber does not expect, or without a valid header.
    Unexpected,
    /// A sequence beyond a shared group's bitmap capacity.
    Untracked,
    /// From another run (an earlier one the broker is still delivering, or another
    /// generator): its publisher id is outside this run's range.
    Foreign,
}

impl Arrival {
    /// Whether this arrival is a message delivered for the first time.
    #[inline]
    pub fn is_new(self) -> bool {
        matches!(
            self,
            Arrival::InOrder | Arrival::AfterGap | Arrival::Reordered
        )
    }
}

/// Counts over one or more subscribers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Messages delivered for the first time.
    pub delivered: u64,
    /// Messages published and never delivered: gaps left at the end, messages after
    /// the last one seen, and ranges written off early.
    pub lost: u64,
    pub duplicates: u64,
    /// Messages that arrived after a later message from the same publisher.
    pub reordered: u64,
    /// Times a sequence number skipped ahead.
    pub gaps: u64,
    /// Arrivals below a range written off as lost (reported, not delivered).
    pub late: u64,
    /// Arrivals from unexpected publishers, without a header, or beyond what their
    /// publisher says it sent.
    pub unexpected: u64,
    /// Shared-group arrivals beyond the group's capacity.
    pub untracked: u64,
    /// Arrivals from another run, ignored.
    pub foreign: u64,
}

impl Tally {
    pub fn merge(&mut self, o: &Tally) {
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.reordered += o.reordered;
        self.gaps += o.gaps;
        self.late += o.late;
        self.unexpected += o.unexpected;
        self.untracked += o.untracked;
        self.foreign += o.foreign;
    }

    /// Counts an arrival that was classified elsewhere (e.g. a payload without a header).
    pub fn count(&mut self, a: Arrival) {
        match a {
            Arrival::InOrder => self.delivered += 1,
            Arrival::AfterGap => {
                self.delivered += 1;
                self.gaps += 1
            }
            Arrival::Reordered => {
                self.delivered += 1;
                self.reordered += 1
            }
            Arrival::Duplicate => self.duplicates += 1,
            Arrival::Late => self.late += 1,
            Arrival::Unexpected => self.unexpected += 1,
            Arrival::Untracked => self.untracked += 1,
            Arrival::Foreign => self.foreign += 1,
        }
    }
}

/// One publisher's stream as one subscriber sees it.
#[derive(Debug, Default)]
pub struct SeqTracker {
    /// One past the highest sequence seen.
    next: u64,
    holes: Option<Box<Holes>>,
}

#[derive(Debug, Default)]
struct Holes {
    /// Everything below was either seen or written off.
    floor: u64,
    /// Missing `[start, end)` ranges below `next`, sorted and disjoint.
    ranges: VecDeque<(u64, u64)>,
}

impl Holes {
    /// Writes off the oldest ranges beyond [`MAX_HOLES`].
    fn trim(&mut self, tally: &mut Tally) {
        while self.ranges.len() > MAX_HOLES {
            if let Some((a, b)) = self.ranges.pop_front() {
                tally.lost += b - a;
                self.floor = b;
            }
        }
    }
}

impl SeqTracker {
    /// Classifies the arrival of `seq` and counts it in `tally`.
    #[inline]
    pub fn record(&mut self, seq: u64, tally: &mut Tally) -> Arrival {
        let arrival = self.classify(seq, tally);
        tally.count(arrival);
        arrival
    }

    fn classify(&mut self, seq: u64, tally: &mut Tally) -> Arrival {
        if seq == self.next {
            self.next += 1;
            return Arrival::InOrder;
        }
        if seq > self.next {
            let holes = self.holes.get_or_insert_with(Box::default);
            holes.ranges.push_back((self.next, seq));
            holes.trim(tally);
            self.next = seq + 1;
            return Arrival::AfterGap;
        }
        let Some(holes) = self.holes.as_deref_mut() else {
            return Arrival::Duplicate;
        };
        let i = holes.ranges.partition_point(|&(_, end)| end <= seq);
        match holes.ranges.get(i).copied() {
            Some((a, b)) if a <= seq => {
                match (seq == a, seq + 1 == b) {
                    (true, true) => {
                        holes.ranges.remove(i);
                    }
                    (true, false) => holes.ranges[i].0 = seq + 1,
                    (false, true) => holes.ranges[i].1 = seq,
                    (false, false) => {
                        holes.ranges[i].1 = seq;
                        holes.ranges.insert(i + 1, (seq + 1, b));
                        holes.trim(tally);
                    }
                }
                if holes.ranges.is_empty() && holes.floor == 0 {
                    self.holes = None;
                }
                Arrival::Reordered
            }
            _ if seq < holes.floor => Arrival::Late,
            _ => Arrival::Duplicate,
        }
    }

    /// One past the highest sequence seen.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Sequences below `next` still missing.
    pub fn missing(&self) -> u64 {
        self.holes
            .as_ref()
            .map_or(0, |h| h.ranges.iter().map(|(a, b)| b - a).sum())
    }

    /// `(lost, beyond)` once the publisher has sent `published` messages: lost counts
    /// the holes and the tail never seen; beyond counts sequences seen that the
    /// publisher says it never sent.
    pub fn settle(&self, published: u64) -> (u64, u64) {
        let beyond = self.next.saturating_sub(published);
        let missing = self.holes.as_ref().map_or(0, |h| {
            h.ranges
                .iter()
                .map(|&(a, b)| b.min(published).saturating_sub(a))
                .sum()
        });
        (published.saturating_sub(self.next) + missing, beyond)
    }
}

/// A set of publisher ids kept as sorted ranges, with a dense index for each member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublisherSet {
    /// `[start, end)` ranges and the dense index of each range's first member.
    ranges: Vec<(u32, u32, u32)>,
    len: u32,
}

impl PublisherSet {
    /// Publishers `start..end`.
    pub fn range(start: u32, end: u32) -> PublisherSet {
        PublisherSet::from_sorted(start..end)
    }

    /// Collapses ascending, distinct ids into ranges.
    pub fn from_sorted(ids: impl IntoIterator<Item = u32>) -> PublisherSet {
        let mut set = PublisherSet::default();
        for id in ids {
            match set.ranges.last_mut() {
                Some(r) if r.1 == id => r.1 += 1,
                _ => set.ranges.push((id, id + 1, set.len)),
            }
            set.len += 1;
        }
        set
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The dense index of `id`, if it is a member.
    #[inline]
    pub fn index_of(&self, id: u32) -> Option<usize> {
        let r = match self.ranges.as_slice() {
            [only] => only,
            ranges => {
                &ranges[ranges
                    .partition_point(|r| r.1 <= id)
                    .min(ranges.len().checked_sub(1)?)]
            }
        };
        (r.0 <= id && id < r.1).then(|| (r.2 + (id - r.0)) as usize)
    }

    /// Members in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|r| r.0..r.1)
    }
}

/// One subscriber's book: a tracker per expected publisher and the running tally.
#[derive(Debug)]
pub struct SubscriberBook {
    publishers: Arc<PublisherSet>,
    trackers: Vec<SeqTracker>,
    tally: Tally,
}

impl SubscriberBook {
    pub fn new(publishers: Arc<PublisherSet>) -> SubscriberBook {
        let trackers = (0..publishers.len())
            .map(|_| SeqTracker::default())
            .collect();
        SubscriberBook {
            publishers,
            trackers,
            tally: Tally::default(),
        }
    }

    /// Classifies and counts one arrival.
    #[inline]
    pub fn record(&mut self, publisher: u32, seq: u64) -> Arrival {
        match self.publishers.index_of(publisher) {
            Some(i) => self.trackers[i].record(seq, &mut self.tally),
            None => {
                self.tally.count(Arrival::Unexpected);
                Arrival::Unexpected
            }
        }
    }

    /// Counts an arrival classified by someone else (no header; a shared group).
    pub fn count(&mut self, a: Arrival) {
        self.tally.count(a)
    }

    /// The running tally (without end-of-run losses).
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The tally with losses settled against each publisher's final count.
    pub fn settle(&self, published: impl Fn(u32) -> u64) -> Tally {
        let mut t = self.tally;
        for (id, tracker) in self.publishers.iter().zip(&self.trackers) {
            let (lost, beyond) = tracker.settle(published(id));
            t.lost += lost;
            t.unexpected += beyond;
        }
        t
    }
}

/// One bit per sequence number, in chunks allocated on first use, safe to set from
/// any thread.
#[derive(Debug)]
pub struct SeqBitmap {
    shift: u32,
    chunks: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

impl SeqBitmap {
    /// A bitmap for sequences below (about) `capacity`, in at most 1024 chunks of at
    /// least 4096 bits.
    pub fn new(capacity: u64) -> SeqBitmap {
        let chunk_bits = capacity.div_ceil(1024).next_power_of_two().max(4096);
        let chunks = capacity.div_ceil(chunk_bits).max(1) as usize;
        SeqBitmap {
            shift: chunk_bits.trailing_zeros(),
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Sequences below this are tracked.
    pub fn capacity(&self) -> u64 {
        (self.chunks.len() as u64) << self.shift
    }

    /// Sets the bit for `seq`: `Some(was_set)`, or `None` beyond capacity.
    #[inline]
    pub fn set(&self, seq: u64) -> Option<bool> {
        let chunk = self.chunks.get((seq >> self.shift) as usize)?;
        let words = chunk.get_or_init(|| {
            (0..(1usize << self.shift) / 64)
                .map(|_| AtomicU64::new(0))
                .collect()
        });
        let bit = seq & ((1 << self.shift) - 1);
        let mask = 1u64 << (bit % 64);
        Some(words[(bit / 64) as usize].fetch_or(mask, Ordering::Relaxed) & mask != 0)
    }

    /// Bits set below `n`.
    pub fn count_below(&self, n: u64) -> u64 {
        let mut total = 0;
        for (c, chunk) in self.chunks.iter().enumerate() {
            let base = (c as u64) << self.shift;
            if base >= n {
                break;
            }
            let Some(words) = chunk.get() else { continue };
            for (w, word) in words.iter().enumerate() {
                let lo = base + 64 * w as u64;
                if lo >= n {
                    break;
                }
                let mut v = word.load(Ordering::Relaxed);
                if n - lo < 64 {
                    v &= (1u64 << (n - lo)) - 1;
                }
                total += u64::from(v.count_ones());
            }
        }
        total
    }
}

/// The book of one shared-subscription group, shared by its members on every core.
#[derive(Debug)]
pub struct GroupBook {
    publishers: Arc<PublisherSet>,
    seen: Box<[SeqBitmap]>,
    /// One past the highest sequence any member received, per publisher.
    highest: Box<[AtomicU64]>,
}

impl GroupBook {
    /// `capacity` bounds the sequences tracked per publisher.
    pub fn new(publishers: Arc<PublisherSet>, capacity: u64) -> GroupBook {
        let n = publishers.len();
        GroupBook {
            seen: (0..n).map(|_| SeqBitmap::new(capacity)).collect(),
            highest: (0..n).map(|_| AtomicU64::new(0)).collect(),
            publishers,
        }
    }

    /// Classifies one arrival at any member and counts it in that member's `tally`.
    /// Reordering is judged across the group: an arrival below the highest sequence
    /// any member has received.
    #[inline]
    pub fn record(&self, publisher: u32, seq: u64, tally: &mut Tally) -> Arrival {
        let arrival = match self.publishers.index_of(publisher) {
            None => Arrival::Unexpected,
            Some(i) => match self.seen[i].set(seq) {
                None => Arrival::Untracked,
                Some(true) => Arrival::Duplicate,
                Some(false) => {
                    let before = self.highest[i].fetch_max(seq + 1, Ordering::Relaxed);
                    if seq + 1 < before {
                        Arrival::Reordered
                    } else if seq > before {
                        Arrival::AfterGap
                    } else {
                        Arrival::InOrder
                    }
                }
            },
        };
        tally.count(arrival);
        arrival
    }

    /// Lost and beyond-published counts once every publisher's total is known
    /// (delivered, duplicates and reordering are in the members' tallies).
    pub fn settle(&self, published: impl Fn(u32) -> u64) -> Tally {
        let mut t = Tally::default();
        for (i, id) in self.publishers.iter().enumerate() {
            let sent = published(id);
            // Sequences past the bitmap were counted as untracked on arrival.
            let tracked = sent.min(self.seen[i].capacity());
            t.lost += tracked - self.seen[i].count_below(tracked);
            t.unexpected += self.highest[i].load(Ordering::Relaxed).saturating_sub(sent);
        }
        t
    }
}
