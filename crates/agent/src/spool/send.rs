//! Handing records to the publisher and removing them on acknowledgement.

use super::*;

impl Spool {
    /// The next record to publish (highest class first, then oldest), marked in flight.
    pub fn next_to_send(&mut self) -> Result<Option<Record>, SpoolError> {
        loop {
            let Some((class, e)) = Class::ALL.into_iter().rev().find_map(|c| {
                self.classes[c as usize]
                    .queue
                    .peek_waiting()
                    .map(|e| (c, e))
            }) else {
                return Ok(None);
            };
            let mut frame = vec![0u8; e.len as usize];
            let read = self.read_at(class, e, &mut frame);
            let decoded = match read {
                Ok(()) => frame::decode(&frame).ok(),
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => None,
                Err(err) => return Err(SpoolError::io(&self.segment_path(class, e.segment), err)),
            };
            if let Some(d) = decoded.filter(|d| d.header.id == e.id && d.header.class == class) {
                let record = Record {
                    id: RecordId(e.id),
                    class,
                    topic: d.topic.to_owned(),
                    payload: d.payload.to_vec(),
                };
                self.classes[class as usize].queue.mark_in_flight(e.id);
                return Ok(Some(record));
            }
            tracing::error!(id = e.id, ?class, path = %self.segment_path(class, e.segment).display(), offset = e.offset, "spool record unreadable; removed");
            self.corrupt_records += 1;
            if self.classes[class as usize].queue.remove(e.id).is_some()
                && let Err(err) = self.removed(class, e)
            {
                tracing::warn!(cause = %err, "could not journal a corrupt record's removal");
            }
        }
    }

    pub(super) fn segment_path(&self, class: Class, segment: u64) -> PathBuf {
        self.classes[class as usize]
            .segments
            .get(&segment)
            .map(|s| s.path.clone())
            .unwrap_or_else(|| self.dir.join(segment::file_name(class, segment)))
    }

    pub(super) fn read_at(&mut self, class: Class, e: Entry, buf: &mut [u8]) -> io::Result<()> {
        let path = self.segment_path(class, e.segment);
        let st = &mut self.classes[class as usize];
        if let Some(a) = st.active.as_ref().filter(|a| a.first_id == e.segment) {
            return a.file.read_exact_at(buf, u64::from(e.offset));
        }
        if st.reader.as_ref().is_none_or(|(seg, _)| *seg != e.segment) {
            st.reader = Some((e.segment, File::open(&path)?));
        }
        match &st.reader {
            Some((_, f)) => f.read_exact_at(buf, u64::from(e.offset)),
            None => Err(io::Error::other("no reader")),
        }
    }

    /// The broker has it: remove it. Unknown or already-removed ids are ignored.
    pub fn ack(&mut self, id: RecordId) -> Result<(), SpoolError> {
        for class in Class::ALL.into_iter().rev() {
            if let Some(e) = self.classes[class as usize].queue.remove(id.0) {
                return self.removed(class, e);
            }
        }
        Ok(())
    }

    /// The connection dropped: everything in flight is unsent again (it will be re-published;
    /// the cloud deduplicates on the header).
    pub fn requeue_in_flight(&mut self) {
        for st in &mut self.classes {
            st.queue.requeue();
        }
    }
}
