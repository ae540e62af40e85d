//! Storing a record: framing, the fsync policy, rolling to a new segment, and dropping older
//! records to stay within the bound.

use super::*;

impl Spool {
    /// Stores a message; durable according to the fsync policy when it returns. Drops older
    /// records (by class, oldest first) to stay within `max_bytes`.
    pub fn append(
        &mut self,
        class: Class,
        topic: &str,
        payload: &[u8],
    ) -> Result<RecordId, SpoolError> {
        if topic.len() > usize::from(u16::MAX) {
            return Err(SpoolError::TopicTooLong {
                len: topic.len(),
                max: usize::from(u16::MAX),
            });
        }
        let len = frame::frame_len(topic.len(), payload.len());
        let max = self.max_bytes.min(u64::from(u32::MAX));
        if len > max {
            return Err(SpoolError::TooLarge { size: len, max });
        }
        let id = self.next_id;
        self.next_id += 1;

        while self.live_bytes + len > self.max_bytes {
            match self.lowest_class() {
                Some(lowest) if lowest <= class => self.drop_oldest(lowest),
                _ => {
                    self.dropped[class as usize] += 1;
                    tracing::debug!(
                        id,
                        ?class,
                        "spool full of higher classes; the new message is dropped"
                    );
                    // Journaled like any removal, so the id is not issued again after a restart.
                    if let Err(e) = self.journal.record(id) {
                        tracing::warn!(cause = %e, "could not journal a dropped record");
                    }
                    return Ok(RecordId(id));
                }
            }
        }

        self.write_record(id, class, topic, payload)?;
        if let FsyncPolicy::Interval(every) = self.fsync
            && self.last_sync.elapsed() >= every
            && let Err(e) = self.sync_now()
        {
            tracing::error!(cause = %e, "spool interval fsync failed; will retry");
        }
        Ok(RecordId(id))
    }

    /// Frames and writes one record to its class's active segment and indexes it.
    pub(super) fn write_record(
        &mut self,
        id: u64,
        class: Class,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), SpoolError> {
        frame::encode(&mut self.buf, id, class, topic, payload).map_err(|e| match e {
            frame::SizeError::TopicTooLong(len) => SpoolError::TopicTooLong {
                len,
                max: usize::from(u16::MAX),
            },
            frame::SizeError::FrameTooLarge(size) => SpoolError::TooLarge {
                size,
                max: u64::from(u32::MAX),
            },
        })?;
        let len = self.buf.len() as u64;
        let ci = class as usize;
        let need_new = match &self.classes[ci].active {
            None => true,
            Some(a) => self.classes[ci]
                .segments
                .get(&a.first_id)
                .is_none_or(|seg| {
                    seg.len > 0
                        && (seg.len + len > self.segment_target
                            || seg.len + len > u64::from(u32::MAX))
                }),
        };
        if need_new {
            self.roll(class, id)?;
        }
        let st = &mut self.classes[ci];
        let first_id = st.active.as_ref().map(|a| a.first_id);
        let (Some(active), Some(seg)) = (
            st.active.as_mut(),
            first_id.and_then(|f| st.segments.get_mut(&f)),
        ) else {
            return Err(SpoolError::io(
                &self.dir,
                io::Error::other("no active segment after roll"),
            ));
        };
        let offset = seg.len;
        let (Ok(offset32), Ok(len32)) = (u32::try_from(offset), u32::try_from(len)) else {
            return Err(SpoolError::TooLarge {
                size: len,
                max: u64::from(u32::MAX),
            });
        };
        if let Err(e) = active.file.write_all_at(&self.buf, offset) {
            // Cut off whatever part landed; if even that fails, stop appending to this file
            // (open will cut it).
            if active.file.set_len(offset).is_err() {
                seg.appendable = false;
                st.active = None;
            }
            return Err(SpoolError::io(&seg.path, e));
        }
        seg.len += len;
        if self.fsync == FsyncPolicy::Always {
            self.fsyncs += 1;
            if let Err(e) = active.file.sync_data() {
                // Whether the bytes are on disk is unknown: count the record as not stored
                // (journaled as removed), and write no more to this file.
                seg.dead.push(id);
                self.dead_total += 1;
                seg.appendable = false;
                let path = seg.path.clone();
                st.active = None;
                let _ = self.journal.record(id);
                return Err(SpoolError::io(&path, e));
            }
        } else {
            active.dirty = true;
        }
        seg.live += 1;
        st.queue.push(Entry {
            id,
            segment: active.first_id,
            offset: offset32,
            len: len32,
        });
        self.live_bytes += len;
        Ok(())
    }

    /// Retires the class's active segment and starts a new one named after `first_id`.
    pub(super) fn roll(&mut self, class: Class, first_id: u64) -> Result<(), SpoolError> {
        let ci = class as usize;
        if let Some(old) = self.classes[ci].active.take() {
            if old.dirty && self.fsync != FsyncPolicy::Never {
                // Interval: the handle is going away, so its data is synced now rather than
                // tracked until the next tick.
                self.fsyncs += 1;
                if let Err(e) = old.file.sync_data() {
                    tracing::error!(cause = %e, "fsync of a retired segment failed");
                }
            }
            if self.classes[ci]
                .segments
                .get(&old.first_id)
                .is_some_and(|s| s.live == 0)
            {
                self.delete_segment(class, old.first_id);
            }
        }
        let path = self.dir.join(segment::file_name(class, first_id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| SpoolError::io(&path, e))?;
        self.classes[ci].segments.insert(
            first_id,
            Segment {
                path,
                len: 0,
                live: 0,
                dead: Vec::new(),
                appendable: true,
            },
        );
        self.classes[ci].active = Some(Active {
            first_id,
            file,
            dirty: false,
        });
        self.dir_changed()?;
        Ok(())
    }
}
