//! The in-memory index of one class: where each live record is on disk, and whether it is
//! waiting or in flight. Payloads stay on disk; an entry is 24 bytes, so 100k records cost
//! about 2.4 MB.
//!
//! Records are handed out oldest first and appended newest last, so every in-flight id is
//! below every waiting id; `requeue` relies on that to put them back in front in O(k), and
//! falls back to a merge if an outside ack broke the pattern.

use std::collections::{BTreeMap, VecDeque};

/// Where a live record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: u64,
    /// The first id of the segment file, which names it.
    pub(crate) segment: u64,
    pub(crate) offset: u32,
    pub(crate) len: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    waiting: VecDeque<Entry>,
    in_flight: BTreeMap<u64, Entry>,
}

impl Queue {
    /// Adds a record newer than any present.
    pub(crate) fn push(&mut self, e: Entry) {
        self.waiting.push_back(e);
    }

    /// The oldest waiting record, without taking it.
    pub(crate) fn peek_waiting(&self) -> Option<Entry> {
        self.waiting.front().copied()
    }

    /// Moves the oldest waiting record (which must be `id`) in flight.
    pub(crate) fn mark_in_flight(&mut self, id: u64) {
        if self.waiting.front().is_some_and(|e| e.id == id)
            && let Some(e) = self.waiting.pop_front()
        {
            self.in_flight.insert(e.id, e);
        }
    }

    /// Removes a record wherever it is.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Entry> {
        if let Some(e) = self.in_flight.remove(&id) {
            return Some(e);
        }
        let i = self.waiting.binary_search_by_key(&id, |e| e.id).ok()?;
        self.waiting.remove(i)
    }

    /// The oldest record, in flight or not: what a drop takes.
    pub(crate) fn oldest(&self) -> Option<Entry> {
        let f = self.in_flight.values().next().copied();
        let w = self.waiting.front().copied();
        match (f, w) {
            (Some(f), Some(w)) => Some(if f.id < w.id { f } else { w }),
            (f, w) => f.or(w),
        }
    }

    /// Everything in flight is waiting again, in id order.
    pub(crate) fn requeue(&mut self) {
        let back = std::mem::take(&mut self.in_flight);
        let in_front = match (back.keys().next_back(), self.waiting.front()) {
            (Some(last), Some(first)) => *last < first.id,
            _ => true,
        };
        if in_front {
            for e in back.into_values().rev() {
                self.waiting.push_front(e);
            }
        } else {
            self.waiting.extend(back.into_values());
            self.waiting
                .make_contiguous()
                .sort_unstable_by_key(|e| e.id);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.len() + self.in_flight.len()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Every live entry, in id order (for tests and the open-time size check).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = self
            .in_flight
            .values()
            .chain(self.waiting.iter())
            .copied()
            .collect();
        v.sort_unstable_by_key(|e| e.id);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: u64) -> Entry {
        Entry {
            id,
            segment: 0,
            offset: 0,
            len: 1,
        }
    }

    #[test]
    fn requeue_restores_order() {
        let mut q = Queue::default();
        for id in [1, 2, 3, 4] {
            q.push(e(id));
        }
        q.mark_in_flight(1);
        q.mark_in_flight(2);
        assert_eq!(q.peek_waiting(), Some(e(3)));
        assert_eq!(q.oldest(), Some(e(1)));
        q.requeue();
        assert_eq!(q.in_flight(), 0);
        assert_eq!(
            q.entries().iter().map(|e| e.id).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(q.peek_waiting(), Some(e(1)));
    }

    #[test]
    fn remove_from_anywhere() {
        let mut q = Queue::default();
        for id in [1, 2, 3] {
            q.push(e(id));
        }
        q.mark_in_flight(1);
        assert_eq!(q.remove(2), Some(e(2)));
        assert_eq!(q.remove(1), Some(e(1)));
        assert_eq!(q.remove(9), None);
        assert_eq!(q.len(), 1);
    }
}
