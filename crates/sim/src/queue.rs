//! The event queue: a timing wheel of one-millisecond buckets over the near future, and a binary
//! heap for events beyond it. Events come out in (time, insertion) order — exactly the order of
//! a heap keyed by (time, sequence number) — but pushing and popping cost O(1) instead of a
//! walk down a heap of hundreds of thousands of entries, which was the largest single cost of a
//! 100,000-provider run.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// Milliseconds the wheel covers; later events wait in the heap.
const WHEEL: u64 = 1 << 18;

struct Far<T> {
    time: u64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Far<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<T> Eq for Far<T> {}
impl<T> PartialOrd for Far<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Far<T> {
    /// Reversed, so the heap pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

pub struct EventQueue<T> {
    /// The time of the bucket being emptied; nothing earlier is ever pushed.
    base: u64,
    buckets: Vec<VecDeque<T>>,
    far: BinaryHeap<Far<T>>,
    seq: u64,
    near: usize,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> EventQueue<T> {
    pub fn new() -> EventQueue<T> {
        EventQueue {
            base: 0,
            buckets: (0..WHEEL).map(|_| VecDeque::new()).collect(),
            far: BinaryHeap::new(),
            seq: 0,
            near: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.near + self.far.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Schedules `item` at `time` (a time in the past counts as now).
    pub fn push(&mut self, time: u64, item: T) {
        let time = time.max(self.base);
        if time < self.base + WHEEL {
            self.buckets[(time % WHEEL) as usize].push_back(item);
            self.near += 1;
        } else {
            self.seq += 1;
            self.far.push(Far {
                time,
                seq: self.seq,
                item,
            });
        }
    }

    /// The earliest event and its time.
    pub fn pop(&mut self) -> Option<(u64, T)> {
        loop {
            if let Some(item) = self.buckets[(self.base % WHEEL) as usize].pop_front() {
                self.near -= 1;
                return Some((self.base, item));
            }
            if self.near == 0 {
                // Jump straight to the next far event.
                let next = self.far.peek()?.time;
                self.base = self.base.max(next);
            } else {
                self.base += 1;
            }
            // Far events that the wheel now covers move in, in (time, insertion) order, ahead
            // of anything pushed for those times later.
            while let Some(first) = self.far.peek() {
                if first.time >= self.base + WHEEL {
                    break;
                }
                if let Some(f) = self.far.pop() {
                    self.buckets[(f.time % WHEEL) as usize].push_back(f.item);
                    self.near += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::Draw;

    #[test]
    fn pops_in_time_then_insertion_order_like_a_heap() {
        let mut q = EventQueue::new();
        let mut reference = BinaryHeap::new();
        let mut d = Draw::new(9);
        let mut now = 0u64;
        let mut seq = 0u64;
        let mut out = Vec::new();
        let mut expect = Vec::new();
        for round in 0..20_000u64 {
            // Mostly near, sometimes far beyond the wheel, sometimes at the current time.
            for _ in 0..d.range(0, 3) {
                let delay = match d.range(0, 9) {
                    0 => 0,
                    1 => WHEEL + d.range(0, 3 * WHEEL),
                    _ => d.range(0, 5_000),
                };
                seq += 1;
                q.push(now + delay, seq);
                reference.push(Far {
                    time: now + delay,
                    seq,
                    item: seq,
                });
            }
            if round % 3 != 0 {
                if let Some((t, item)) = q.pop() {
                    now = t;
                    out.push((t, item));
                }
                if let Some(f) = reference.pop() {
                    expect.push((f.time, f.item));
                }
            }
        }
        while let Some(x) = q.pop() {
            out.push(x);
        }
        while let Some(f) = reference.pop() {
            expect.push((f.time, f.item));
        }
        assert_eq!(out.len(), expect.len());
        assert_eq!(out, expect);
        assert!(q.is_empty());
    }
}
