//! Supported-PID discovery (J1979 / ISO 15031-5, PIDs `0x00`, `0x20`, ... `0xE0`).
//!
//! Each bitmap PID answers four bytes that flag the next 32 PIDs: bit 7 of byte A is
//! PID base + 1, bit 0 of byte D is PID base + `0x20`, which is itself the next bitmap PID. A
//! tester asks `0x00`, then the next bitmap PID as long as the previous one flags it.

use serde::{Serialize, Serializer};

use super::PidError;

/// A set of Mode 01 PIDs, 256 bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SupportedPids {
    bits: [u64; 4],
}

/// Whether `pid` is one of the supported-PIDs bitmap PIDs `0x00`, `0x20`, ... `0xE0`.
pub fn is_bitmap_pid(pid: u8) -> bool {
    pid.is_multiple_of(0x20)
}

impl SupportedPids {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks one PID supported (the simulator builds its set this way).
    pub fn insert(&mut self, pid: u8) {
        let (word, mask) = Self::position(pid);
        if let Some(word) = self.bits.get_mut(word) {
            *word |= mask;
        }
    }

    /// Adds the answer to bitmap PID `base_pid`. The last bit of `0xE0`'s bitmap would be PID
    /// `0x100`, which a one-byte PID cannot name, so it is ignored.
    pub fn add_bitmap(&mut self, base_pid: u8, bitmap: [u8; 4]) -> Result<(), PidError> {
        if !is_bitmap_pid(base_pid) {
            return Err(PidError::NotBitmapPid(base_pid));
        }
        for (offset, pid) in (1u16..=0x20).map(|o| (o, u16::from(base_pid) + o)) {
            let index = usize::from(offset - 1);
            let byte = bitmap.get(index / 8).copied().unwrap_or(0);
            let flagged = (byte >> (7 - index % 8)) & 1 == 1;
            if let (true, Ok(pid)) = (flagged, u8::try_from(pid)) {
                self.insert(pid);
            }
        }
        Ok(())
    }

    /// The four bytes bitmap PID `base_pid` answers for this set (the simulator's side).
    pub fn bitmap(&self, base_pid: u8) -> Result<[u8; 4], PidError> {
        if !is_bitmap_pid(base_pid) {
            return Err(PidError::NotBitmapPid(base_pid));
        }
        let mut out = [0u8; 4];
        for offset in 1u16..=0x20 {
            let index = usize::from(offset - 1);
            let supported =
                u8::try_from(u16::from(base_pid) + offset).is_ok_and(|pid| self.contains(pid));
            if let (true, Some(byte)) = (supported, out.get_mut(index / 8)) {
                *byte |= 0x80 >> (index % 8);
            }
        }
        Ok(out)
    }

    pub fn contains(&self, pid: u8) -> bool {
        let (word, mask) = Self::position(pid);
        self.bits.get(word).is_some_and(|word| word & mask != 0)
    }

    /// The PIDs in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0u8..=0xFF).filter(|&pid| self.contains(pid))
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&word| word == 0)
    }

    /// `Some(base + 0x20)` when that next bitmap PID is flagged supported, so discovery goes
    /// on; `None` when it is not, when `base` is not a bitmap PID, or after `0xE0`.
    pub fn next_bitmap_pid(&self, base: u8) -> Option<u8> {
        if !is_bitmap_pid(base) {
            return None;
        }
        base.checked_add(0x20).filter(|&next| self.contains(next))
    }

    fn position(pid: u8) -> (usize, u64) {
        (usize::from(pid / 64), 1u64 << (pid % 64))
    }
}

/// Serialised as the list of PIDs.
impl Serialize for SupportedPids {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A common answer to 01 00, decoded by hand from the bit order of J1979: BE 1F A8 13 =
    // 1011 1110 | 0001 1111 | 1010 1000 | 0001 0011
    // = PIDs 01 03 04 05 06 07 | 0C 0D 0E 0F 10 | 11 13 15 | 1C 1F 20.
    #[test]
    fn bitmap_00_example() {
        let mut set = SupportedPids::new();
        set.add_bitmap(0x00, [0xBE, 0x1F, 0xA8, 0x13]).unwrap();
        let pids: Vec<u8> = set.iter().collect();
        assert_eq!(
            pids,
            vec![
                0x01, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x13, 0x15,
                0x1C, 0x1F, 0x20
            ]
        );
        assert_eq!(set.next_bitmap_pid(0x00), Some(0x20));
        assert_eq!(set.next_bitmap_pid(0x20), None);
        assert!(!set.contains(0x02));
        assert_eq!(set.bitmap(0x00).unwrap(), [0xBE, 0x1F, 0xA8, 0x13]);
    }

    #[test]
    fn bitmap_bit_order_at_each_end() {
        let mut set = SupportedPids::new();
        set.add_bitmap(0x40, [0x80, 0, 0, 0x01]).unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0x41, 0x60]);
    }

    #[test]
    fn last_bitmap_stops_at_ff() {
        let mut set = SupportedPids::new();
        set.add_bitmap(0xE0, [0xFF; 4]).unwrap();
        assert_eq!(set.iter().count(), 31);
        assert!(set.contains(0xFF));
        assert_eq!(set.next_bitmap_pid(0xE0), None);
        assert_eq!(set.bitmap(0xE0).unwrap(), [0xFF, 0xFF, 0xFF, 0xFE]);
    }

    #[test]
    fn non_bitmap_base_is_rejected() {
        let mut set = SupportedPids::new();
        assert_eq!(
            set.add_bitmap(0x10, [0xFF; 4]),
            Err(PidError::NotBitmapPid(0x10))
        );
        assert!(set.is_empty());
        assert_eq!(set.bitmap(0x21), Err(PidError::NotBitmapPid(0x21)));
        set.insert(0x30);
        assert_eq!(set.next_bitmap_pid(0x10), None);
    }

    #[test]
    fn discovery_chain() {
        let mut set = SupportedPids::new();
        set.add_bitmap(0x00, [0, 0, 0, 0x01]).unwrap();
        set.add_bitmap(0x20, [0, 0, 0, 0x01]).unwrap();
        set.add_bitmap(0x40, [0x40, 0, 0, 0]).unwrap();
        let mut chain = vec![0x00];
        while let Some(next) = chain.last().and_then(|&b| set.next_bitmap_pid(b)) {
            chain.push(next);
        }
        assert_eq!(chain, vec![0x00, 0x20, 0x40]);
        assert!(set.contains(0x42));
    }

    #[test]
    fn serialises_as_list() {
        let mut set = SupportedPids::new();
        set.insert(0x0C);
        set.insert(0xA6);
        assert_eq!(serde_json::to_string(&set).unwrap(), "[12,166]");
    }

    #[test]
    fn bitmap_pids() {
        let bitmaps: Vec<u8> = (0u8..=0xFF).filter(|&p| is_bitmap_pid(p)).collect();
        assert_eq!(
            bitmaps,
            vec![0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0, 0xE0]
        );
    }

    proptest::proptest! {
        #[test]
        fn bitmap_round_trips(base in 0u8..8, bitmap in proptest::array::uniform4(0u8..)) {
            let base = base * 0x20;
            let mut set = SupportedPids::new();
            set.add_bitmap(base, bitmap).unwrap();
            let mut expected = bitmap;
            if base == 0xE0 {
                expected[3] &= 0xFE;
            }
            proptest::prop_assert_eq!(set.bitmap(base).unwrap(), expected);
        }
    }
}
