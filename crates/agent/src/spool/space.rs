//! Giving space back: dropping the oldest records, deleting emptied segments, compacting the
//! journal.

use super::*;

impl Spool {
    /// The lowest class holding any record: where drops come from.
    pub(super) fn lowest_class(&self) -> Option<Class> {
        Class::ALL
            .into_iter()
            .find(|&c| self.classes[c as usize].queue.len() > 0)
    }

    /// Drops the oldest record of `class`, in flight or not. A journal failure is only
    /// logged: at worst the record comes back after a restart and open drops it again.
    pub(super) fn drop_oldest(&mut self, class: Class) {
        let q = &mut self.classes[class as usize].queue;
        let Some(e) = q.oldest().and_then(|e| q.remove(e.id)) else {
            return;
        };
        self.dropped[class as usize] += 1;
        tracing::debug!(id = e.id, ?class, "spool full; dropped oldest record");
        if let Err(err) = self.removed(class, e) {
            tracing::warn!(cause = %err, "could not journal a dropped record");
        }
    }

    /// Bookkeeping for a record already taken out of its queue: bytes, its segment (deleted
    /// once empty and no longer appended to), the journal, and compaction.
    pub(super) fn removed(&mut self, class: Class, e: Entry) -> Result<(), SpoolError> {
        self.live_bytes -= u64::from(e.len);
        let st = &mut self.classes[class as usize];
        let active = st.active.as_ref().map(|a| a.first_id);
        let mut empty = false;
        if let Some(seg) = st.segments.get_mut(&e.segment) {
            seg.live = seg.live.saturating_sub(1);
            seg.dead.push(e.id);
            self.dead_total += 1;
            empty = seg.live == 0 && active != Some(e.segment);
        }
        let journaled = self.journal.record(e.id);
        if empty {
            self.delete_segment(class, e.segment);
        }
        if self.journal.entries() > 1024 + 2 * self.dead_total {
            self.compact();
        }
        journaled
    }

    /// Deletes a segment with no live records. Failure is logged and the segment kept.
    pub(super) fn delete_segment(&mut self, class: Class, first_id: u64) {
        let st = &mut self.classes[class as usize];
        let Some(seg) = st.segments.remove(&first_id) else {
            return;
        };
        if st.reader.as_ref().is_some_and(|(s, _)| *s == first_id) {
            st.reader = None;
        }
        match fs::remove_file(&seg.path) {
            Ok(()) => {
                self.dead_total -= seg.dead.len() as u64;
                if let Err(e) = self.dir_changed() {
                    tracing::warn!(cause = %e, "fsync of the spool directory failed");
                }
            }
            Err(e) => {
                tracing::warn!(path = %seg.path.display(), cause = %e, "could not delete an empty segment");
                st.segments.insert(first_id, seg);
            }
        }
    }

    /// A name was created or deleted: fsync the directory now (Always) or at the next sync.
    pub(super) fn dir_changed(&mut self) -> Result<(), SpoolError> {
        match self.fsync {
            FsyncPolicy::Always => {
                self.fsyncs += 1;
                journal::sync_dir(&self.dir)
            }
            FsyncPolicy::Interval(_) => {
                self.dir_dirty = true;
                Ok(())
            }
            FsyncPolicy::Never => Ok(()),
        }
    }

    /// Rewrites the journal with only the ids segments still need. On failure the old
    /// journal stays in use (it is still correct, only longer).
    pub(super) fn compact(&mut self) {
        let ids = self
            .classes
            .iter()
            .flat_map(|st| st.segments.values())
            .flat_map(|s| s.dead.iter().copied());
        let durable = self.fsync != FsyncPolicy::Never;
        match Journal::rewrite(&self.dir, self.next_id, ids, durable) {
            Ok(j) => {
                tracing::debug!(
                    entries = j.entries(),
                    before = self.journal.entries(),
                    "ack journal compacted"
                );
                self.journal = j;
            }
            Err(e) => tracing::warn!(cause = %e, "ack journal compaction failed"),
        }
    }
}
