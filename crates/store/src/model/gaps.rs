//! Sequence gaps per boot: what a stored seq or a drained status says is missing.

use chrono::{DateTime, Utc};

use crate::{Envelope, Uplink};

/// A run of missing seqs, with when it was first seen.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(crate) struct GapSpan {
    #[sqlx(rename = "first_missing")]
    pub(crate) first: i64,
    #[sqlx(rename = "last_missing")]
    pub(crate) last: i64,
    pub(crate) detected_at: DateTime<Utc>,
}

/// What is known about one boot of one device: the highest seq stored and the holes below it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BootState {
    pub(crate) max_seq: i64,
    pub(crate) gaps: Vec<GapSpan>,
}

/// The device and boot a [`BootState`] belongs to.
pub(crate) type BootKey = (String, Vec<u8>);

/// Accounts for one stored seq. Returns whether a new gap was recorded.
///
/// Above `max + 1` the skipped seqs become a gap; at or below `max` the seq fills (shrinks,
/// splits or closes) the gap it falls in. A boot seen for the first time starts from 0, since
/// the agent numbers each boot from 1.
pub(crate) fn account_seq(state: &mut BootState, seq: i64, now: DateTime<Utc>) -> bool {
    if seq > state.max_seq {
        let recorded = seq > state.max_seq + 1;
        if recorded {
            state.gaps.push(GapSpan {
                first: state.max_seq + 1,
                last: seq - 1,
                detected_at: now,
            });
        }
        state.max_seq = seq;
        return recorded;
    }
    let Some(i) = state
        .gaps
        .iter()
        .position(|g| g.first <= seq && seq <= g.last)
    else {
        return false;
    };
    let gap = state.gaps.remove(i);
    let mut pieces = Vec::new();
    if gap.first < seq {
        pieces.push(GapSpan {
            first: gap.first,
            last: seq - 1,
            detected_at: gap.detected_at,
        });
    }
    if seq < gap.last {
        pieces.push(GapSpan {
            first: seq + 1,
            last: gap.last,
            detected_at: gap.detected_at,
        });
    }
    for (k, piece) in pieces.into_iter().enumerate() {
        state.gaps.insert(i + k, piece);
    }
    false
}

/// A status whose agent had nothing left in its spool claims that every message of its boot
/// up to `last_seq` was acknowledged by the broker (or dropped by the spool for space): the boot
/// and that seq, or `None` for any other status.
pub(crate) fn drained_claim(envelope: &Envelope) -> Option<(BootKey, i64)> {
    let Uplink::Status(status) = &envelope.message else {
        return None;
    };
    let h = status.header.as_ref()?;
    let last = i64::try_from(status.last_seq).ok()?;
    (status.spool_messages == 0 && last > 0 && !h.boot_id.is_empty())
        .then(|| ((envelope.device_id.clone(), h.boot_id.clone()), last))
}

/// Accounts for a drained status's `last_seq`: seqs above the highest stored, up to it, are
/// owed and recorded as a gap (the boot's tail, which no later message would reveal when the
/// dongle died or its spool was lost). Messages still on their way fill it like any gap.
/// Returns whether a gap was recorded.
pub(crate) fn account_claim(state: &mut BootState, last_seq: i64, now: DateTime<Utc>) -> bool {
    if last_seq <= state.max_seq {
        return false;
    }
    state.gaps.push(GapSpan {
        first: state.max_seq + 1,
        last: last_seq,
        detected_at: now,
    });
    state.max_seq = last_seq;
    true
}
