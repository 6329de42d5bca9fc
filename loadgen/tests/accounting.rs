//! The subscriber-side accounting fed crafted sequences: in order, gaps filled late
//! (reordering), duplicates, losses in the middle and at the tail, runs of holes
//! beyond what a tracker keeps, and shared groups whose members race each other.

use std::sync::Arc;

use ringmq_loadgen::accounting::{
    Arrival, GroupBook, PublisherSet, SeqBitmap, SeqTracker, SubscriberBook, Tally, MAX_HOLES,
};

fn feed(seqs: &[u64]) -> (SeqTracker, Tally, Vec<Arrival>) {
    let mut t = SeqTracker::default();
    let mut tally = Tally::default();
    let arrivals = seqs.iter().map(|&s| t.record(s, &mut tally)).collect();
    (t, tally, arrivals)
}

#[test]
fn an_in_order_stream_is_all_delivered_and_nothing_else() {
    let (t, tally, arrivals) = feed(&(0..1000).collect::<Vec<_>>());
    assert!(arrivals.iter().all(|a| *a == Arrival::InOrder));
    assert_eq!(
        tally,
        Tally {
            delivered: 1000,
            ..Tally::default()
        }
    );
    assert_eq!(t.settle(1000), (0, 0));
}

#[test]
fn a_late_message_filling_a_gap_is_reordered_not_lost() {
    let (t, tally, arrivals) = feed(&[0, 1, 3, 2, 4]);
    assert_eq!(
        arrivals,
        [
            Arrival::InOrder,
            Arrival::InOrder,
            Arrival::AfterGap,
            Arrival::Reordered,
            Arrival::InOrder
        ]
    );
    assert_eq!(
        (
            tally.delivered,
            tally.reordered,
            tally.gaps,
            tally.duplicates
        ),
        (5, 1, 1, 0)
    );
    assert_eq!(t.missing(), 0);
    assert_eq!(t.settle(5), (0, 0));
}

#[test]
fn repeats_are_duplicates_wherever_they_fall() {
    // A repeat of the newest, of an old one, and of one that filled a gap.
    let (_, tally, arrivals) = feed(&[0, 1, 1, 3, 0, 2, 2, 3]);
    assert_eq!(
        arrivals
            .iter()
            .filter(|a| **a == Arrival::Duplicate)
            .count(),
        4
    );
    assert_eq!(
        (tally.delivered, tally.duplicates, tally.reordered),
        (4, 4, 1)
    );
}

#[test]
fn gaps_still_missing_and_the_unseen_tail_are_lost() {
    // 3 and 4 never come; the publisher sent 9, so 7 and 8 are lost at the tail.
    let (t, tally, _) = feed(&[0, 1, 2, 5, 6]);
    assert_eq!(tally.delivered, 5);
    assert_eq!(t.missing(), 2);
    assert_eq!(t.settle(9), (4, 0));
    // A subscriber that heard nothing lost everything.
    assert_eq!(SeqTracker::default().settle(7), (7, 0));
}

#[test]
fn a_gap_split_in_the_middle_leaves_both_sides_missing() {
    let (t, tally, _) = feed(&[0, 10, 5]);
    assert_eq!(tally.reordered, 1);
    assert_eq!(t.missing(), 8); // 1..=4 and 6..=9
    let (t, _, _) = feed(&[0, 10, 5, 1, 9, 4, 6]);
    assert_eq!(t.missing(), 4); // 2, 3, 7, 8
}

#[test]
fn sequences_beyond_what_the_publisher_sent_are_reported() {
    let (t, _, _) = feed(&[0, 1, 2, 3]);
    assert_eq!(t.settle(2), (0, 2));
}

#[test]
fn beyond_max_holes_the_oldest_gaps_are_written_off_and_late_arrivals_noted() {
    // Every other message: one hole per message.
    let seqs: Vec<u64> = (0..(MAX_HOLES as u64 + 10)).map(|i| 2 * i).collect();
    let (mut t, mut tally, _) = feed(&seqs);
    assert_eq!(
        tally.lost, 9,
        "the oldest holes beyond the cap are lost at once"
    );
    assert_eq!(t.missing(), MAX_HOLES as u64);
    // Odd 1 was written off: its arrival now is late, not delivered or duplicate.
    assert_eq!(t.record(1, &mut tally), Arrival::Late);
    // Odd 21 is still tracked: reordered.
    assert_eq!(t.record(21, &mut tally), Arrival::Reordered);
    assert_eq!((tally.late, tally.reordered, tally.duplicates), (1, 1, 0));
}

#[test]
fn publisher_sets_map_ids_to_dense_indices_across_ranges() {
    let set = PublisherSet::from_sorted([2, 3, 4, 10, 11, 40]);
    assert_eq!(set.len(), 6);
    assert_eq!(set.index_of(2), Some(0));
    assert_eq!(set.index_of(4), Some(2));
    assert_eq!(set.index_of(10), Some(3));
    assert_eq!(set.index_of(40), Some(5));
    for absent in [0, 1, 5, 9, 12, 39, 41, u32::MAX] {
        assert_eq!(set.index_of(absent), None, "{absent}");
    }
    assert_eq!(set.iter().collect::<Vec<_>>(), vec![2, 3, 4, 10, 11, 40]);
    assert_eq!(PublisherSet::range(5, 5).index_of(5), None);
}

#[test]
fn a_subscriber_book_keeps_publishers_apart_and_flags_strangers() {
    let mut book = SubscriberBook::new(Arc::new(PublisherSet::range(0, 3)));
    for p in 0..3 {
        for s in 0..10 {
            if !(p == 1 && s == 4) {
                book.record(p, s);
            }
        }
    }
    book.record(2, 9);
    assert_eq!(book.record(7, 0), Arrival::Unexpected);
    // Publisher 0 sent 12: two never came. Publisher 1 lost seq 4.
    let t = book.settle(|p| if p == 0 { 12 } else { 10 });
    assert_eq!(
        (t.delivered, t.lost, t.duplicates, t.unexpected),
        (29, 3, 1, 1)
    );
}

#[test]
fn a_shared_group_counts_each_message_once_across_members() {
    let group = Arc::new(GroupBook::new(Arc::new(PublisherSet::range(0, 2)), 10_000));
    let mut a = Tally::default();
    let mut b = Tally::default();
    // Members alternate; publisher 1's message 5 reaches both members.
    for s in 0..100u64 {
        let member = if s % 2 == 0 { &mut a } else { &mut b };
        assert!(group.record(0, s, member).is_new());
    }
    for s in 0..50u64 {
        group.record(1, s, &mut a);
    }
    assert_eq!(group.record(1, 5, &mut b), Arrival::Duplicate);
    // Publisher 1 sent 60: 10 lost. Publisher 0 sent 100: none.
    let settled = group.settle(|p| if p == 0 { 100 } else { 60 });
    assert_eq!(settled.lost, 10);
    assert_eq!(a.delivered + b.delivered, 150);
    assert_eq!(a.duplicates + b.duplicates, 1);
    // Reordering across the group: 200 after 300 is late relative to the group.
    let mut c = Tally::default();
    group.record(0, 300, &mut c);
    assert_eq!(group.record(0, 200, &mut c), Arrival::Reordered);
    assert_eq!(group.record(9, 0, &mut c), Arrival::Unexpected);
}

#[test]
fn a_shared_group_is_exact_when_members_race_on_threads() {
    let group = Arc::new(GroupBook::new(Arc::new(PublisherSet::range(0, 1)), 1 << 20));
    let handles: Vec<_> = (0..4u64)
        .map(|m| {
            let g = group.clone();
            std::thread::spawn(move || {
                let mut t = Tally::default();
                // Every member sees every seq divisible by its stride, plus all of 0..1000:
                // 0..1000 arrive four times (three duplicates each).
                for s in 0..1000 {
                    g.record(0, s, &mut t);
                }
                for s in (1000..100_000).filter(|s| s % 4 == m) {
                    g.record(0, s, &mut t);
                }
                t
            })
        })
        .collect();
    let mut total = Tally::default();
    for h in handles {
        total.merge(&h.join().unwrap());
    }
    assert_eq!(total.delivered, 100_000);
    assert_eq!(total.duplicates, 3000);
    assert_eq!(group.settle(|_| 100_000).lost, 0);
    assert_eq!(group.settle(|_| 100_100).lost, 100);
}

#[test]
fn bitmaps_count_exactly_at_word_and_chunk_edges() {
    let map = SeqBitmap::new(10_000);
    assert!(map.capacity() >= 10_000);
    for s in [0, 63, 64, 4095, 4096, 4097, 9_999] {
        assert_eq!(map.set(s), Some(false));
        assert_eq!(map.set(s), Some(true));
    }
    assert_eq!(map.count_below(0), 0);
    assert_eq!(map.count_below(64), 2);
    assert_eq!(map.count_below(65), 3);
    assert_eq!(map.count_below(4097), 5);
    assert_eq!(map.count_below(u64::MAX), 7);
    assert_eq!(map.set(map.capacity()), None);
}
