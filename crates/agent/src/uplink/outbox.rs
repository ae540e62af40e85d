//! The publish/acknowledge bookkeeping of the MQTT session, without I/O (as rumqttc's own
//! `MqttState` is): which publishes are queued to the client, which are in flight under which
//! packet id, how many more may go, what a PUBACK settles, and what a lost connection undoes.
//! The session drives it with the client's events; the tests drive it with packet ids.
//!
//! Matching PUBACKs to records: rumqttc reports the packet id it gave each publish
//! (`Published(pkid)`) in the order the publishes were queued, so a FIFO of queued publishes
//! pairs each reported id with the next one. A publish is a spooled record, or a status
//! message (retained, not spooled, nothing to remove on its PUBACK).

use std::collections::{HashMap, VecDeque};

use crate::spool::RecordId;

/// One publish handed to the client: a spooled record, or `None` for a status message.
type Publish = Option<RecordId>;

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// At most this many records queued or in flight (the broker's receive maximum).
    window: usize,
    /// Handed to the client, packet id not reported yet.
    queued: VecDeque<Publish>,
    /// Packet id reported, PUBACK not yet received.
    in_flight: HashMap<u16, Publish>,
}

impl Outbox {
    pub(crate) fn new(window: usize) -> Outbox {
        Outbox {
            window: window.max(1),
            ..Outbox::default()
        }
    }

    /// How many more records may be handed to the client now.
    pub(crate) fn room(&self) -> usize {
        self.window
            .saturating_sub(self.queued.len() + self.in_flight.len())
    }

    /// A record (or, with `None`, a status message) was handed to the client.
    pub(crate) fn queued(&mut self, publish: Publish) {
        self.queued.push_back(publish);
    }

    /// The client reported `pkid` for the oldest queued publish.
    pub(crate) fn published(&mut self, pkid: u16) {
        let publish = self.queued.pop_front().flatten();
        self.in_flight.insert(pkid, publish);
    }

    /// A PUBACK for `pkid`: the record it settles, to remove from the spool (`None` for a
    /// status message, or an id this session does not know).
    pub(crate) fn acked(&mut self, pkid: u16) -> Option<RecordId> {
        self.in_flight.remove(&pkid).flatten()
    }

    /// The connection dropped: nothing is queued or in flight any more (the spool puts every
    /// record it handed out back in line); returns how many publishes were outstanding.
    pub(crate) fn connection_lost(&mut self) -> usize {
        let outstanding = self.outstanding();
        self.queued.clear();
        self.in_flight.clear();
        outstanding
    }

    /// Publishes handed to the client and not yet acknowledged.
    pub(crate) fn outstanding(&self) -> usize {
        self.queued.len() + self.in_flight.len()
    }

    /// Nothing queued or in flight: a drain can end.
    pub(crate) fn is_idle(&self) -> bool {
        self.outstanding() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_pair_with_publishes_in_order() {
        let mut o = Outbox::new(3);
        assert_eq!(o.room(), 3);
        o.queued(Some(RecordId(10)));
        o.queued(None); // a status message
        o.queued(Some(RecordId(11)));
        assert_eq!(o.room(), 0);
        o.published(7);
        o.published(8);
        o.published(9);
        // PUBACKs come in any order; each settles its own record.
        assert_eq!(o.acked(9), Some(RecordId(11)));
        assert_eq!(o.acked(8), None);
        assert_eq!(o.room(), 2);
        assert_eq!(o.acked(7), Some(RecordId(10)));
        assert!(o.is_idle());
        // An unknown or repeated packet id settles nothing.
        assert_eq!(o.acked(7), None);
    }

    #[test]
    fn a_lost_connection_forgets_what_was_outstanding() {
        let mut o = Outbox::new(4);
        o.queued(Some(RecordId(1)));
        o.queued(Some(RecordId(2)));
        o.published(1);
        assert_eq!(o.connection_lost(), 2);
        assert!(o.is_idle());
        assert_eq!(o.room(), 4);
        // A PUBACK from the old connection settles nothing.
        assert_eq!(o.acked(1), None);
    }

    #[test]
    fn the_window_is_never_zero() {
        let o = Outbox::new(0);
        assert_eq!(o.room(), 1);
    }
}
