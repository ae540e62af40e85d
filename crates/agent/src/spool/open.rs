//! Opening a spool: the directory lock, reading the journal, scanning and repairing the
//! segments, and building the per-class queues.

use super::*;

impl Spool {
    /// Opens (creating) the spool in `config.dir`, recovering what is there.
    pub fn open(config: SpoolConfig) -> Result<Spool, SpoolError> {
        let target = (config.max_bytes / 16).clamp(64 * 1024, 4 * 1024 * 1024);
        Spool::open_tuned(config, target)
    }

    /// [`Spool::open`] with a chosen segment size (tests use small ones to see rollover).
    pub(crate) fn open_tuned(
        config: SpoolConfig,
        segment_target: u64,
    ) -> Result<Spool, SpoolError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| SpoolError::io(&dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| SpoolError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked { path: dir }),
            Err(fs::TryLockError::Error(e)) => return Err(SpoolError::io(&lock_path, e)),
        }
        journal::remove_leftover_tmp(&dir)?;
        let loaded = journal::load(&dir)?;
        let mut recovery = Recovery {
            journal_bad_bytes: loaded.bad_bytes,
            ..Recovery::default()
        };
        let mut next_id = loaded.floor.max(1);
        for &id in &loaded.removed {
            next_id = next_id.max(id.saturating_add(1));
        }

        let mut found = Vec::new();
        for item in fs::read_dir(&dir).map_err(|e| SpoolError::io(&dir, e))? {
            let item = item.map_err(|e| SpoolError::io(&dir, e))?;
            let name = item.file_name();
            match name.to_str().and_then(segment::parse_file_name) {
                Some((class, first_id)) => found.push((class, first_id, item.path())),
                None if name != journal::FILE_NAME && name != LOCK_FILE => {
                    tracing::debug!(file = ?name, dir = %dir.display(), "not a spool file; left alone");
                }
                None => {}
            }
        }
        found.sort_by_key(|(class, first_id, _)| (*class, *first_id));

        let mut classes: [ClassState; 4] = Default::default();
        let mut live_bytes = 0u64;
        let mut prev: Option<(Class, u64)> = None;
        for (class, first_id, path) in found {
            next_id = next_id.max(first_id.saturating_add(1));
            let min_id = match prev {
                Some((c, last)) if c == class => first_id.max(last.saturating_add(1)),
                _ => first_id,
            };
            let scanned =
                segment::scan(&path, class, min_id).map_err(|e| SpoolError::io(&path, e))?;
            recovery.segments += 1;
            let mut seg = Segment {
                path: path.clone(),
                len: scanned.good_len,
                live: 0,
                dead: Vec::new(),
                appendable: true,
            };
            if let Some(damage) = scanned.damage {
                let cut = scanned.file_len - scanned.good_len;
                recovery.damaged_segments += 1;
                match damage {
                    Damage::Torn => recovery.torn_bytes += cut,
                    Damage::Corrupt => recovery.corrupt_bytes += cut,
                }
                tracing::warn!(path = %path.display(), ?damage, at = scanned.good_len, cut, "spool segment damaged; cut off after its last good record");
                let truncated = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(scanned.good_len).and_then(|()| f.sync_all()));
                if let Err(e) = truncated {
                    tracing::warn!(path = %path.display(), cause = %e, "could not truncate; the segment is kept read-only");
                    seg.len = scanned.file_len;
                    seg.appendable = false;
                }
            }
            let st = &mut classes[class as usize];
            for r in &scanned.records {
                next_id = next_id.max(r.id.saturating_add(1));
                if loaded.removed.contains(&r.id) {
                    seg.dead.push(r.id);
                } else {
                    seg.live += 1;
                    live_bytes += u64::from(r.len);
                    st.queue.push(Entry {
                        id: r.id,
                        segment: first_id,
                        offset: r.offset,
                        len: r.len,
                    });
                }
            }
            if let Some(last) = scanned.records.last() {
                prev = Some((class, last.id));
            }
            recovery.records += u64::from(seg.live);
            st.segments.insert(first_id, seg);
        }

        // Empty segments go first, then the journal is rewritten without their ids: in that
        // order a crash in between leaves the old journal, still right.
        let durable = config.fsync != FsyncPolicy::Never;
        let mut deleted_any = false;
        for st in &mut classes {
            st.segments.retain(|_, seg| {
                if seg.live > 0 {
                    return true;
                }
                match fs::remove_file(&seg.path) {
                    Ok(()) => {
                        deleted_any = true;
                        false
                    }
                    Err(e) => {
                        tracing::warn!(path = %seg.path.display(), cause = %e, "could not delete an empty segment");
                        true
                    }
                }
            });
        }
        if deleted_any && durable {
            journal::sync_dir(&dir)?;
        }
        let dead_total = classes
            .iter()
            .flat_map(|st| st.segments.values())
            .map(|s| s.dead.len() as u64)
            .sum();
        let dead_ids = classes
            .iter()
            .flat_map(|st| st.segments.values())
            .flat_map(|s| s.dead.iter().copied());
        let journal = Journal::rewrite(&dir, next_id, dead_ids, durable)?;

        let segment_target = segment_target.clamp(1, MAX_SEGMENT_BYTES);
        for st in &mut classes {
            if let Some((&first_id, seg)) = st.segments.iter().next_back()
                && seg.appendable
                && seg.len < segment_target
            {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&seg.path)
                    .map_err(|e| SpoolError::io(&seg.path, e))?;
                st.active = Some(Active {
                    first_id,
                    file,
                    dirty: false,
                });
            }
        }

        let mut spool = Spool {
            dir,
            _lock: lock,
            max_bytes: config.max_bytes,
            fsync: config.fsync,
            segment_target,
            classes,
            journal,
            next_id,
            live_bytes,
            dead_total,
            dropped: [0; 4],
            corrupt_records: 0,
            fsyncs: 0,
            recovery,
            dir_dirty: false,
            last_sync: Instant::now(),
            buf: Vec::new(),
        };
        while spool.live_bytes > spool.max_bytes {
            let Some(class) = spool.lowest_class() else {
                break;
            };
            spool.drop_oldest(class);
            spool.recovery.dropped_to_fit += 1;
        }
        tracing::info!(
            dir = %spool.dir.display(),
            records = spool.recovery.records,
            segments = spool.recovery.segments,
            damaged = spool.recovery.damaged_segments,
            torn_bytes = spool.recovery.torn_bytes,
            corrupt_bytes = spool.recovery.corrupt_bytes,
            dropped_to_fit = spool.recovery.dropped_to_fit,
            next_id = spool.next_id,
            "spool opened"
        );
        Ok(spool)
    }
}
