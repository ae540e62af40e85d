//! A shop's appointment slots: from its opening hours, bays and slot length, which start
//! times still have a free bay.
//!
//! Hours are in the shop's local time, given as a fixed offset from UTC (a shop in a country
//! with summer time updates its offset twice a year; see the README's limits). Slots start at
//! opening time and follow each other back to back; the last one ends by closing time. Pure:
//! the caller passes `now` and the appointments already booked.

use std::collections::HashMap;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Open on one weekday (1 = Monday ... 7 = Sunday), minutes after local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hours {
    pub weekday: u32,
    pub open_minute: u32,
    pub close_minute: u32,
}

/// What a shop's calendar is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    pub utc_offset_minutes: i32,
    pub hours: Vec<Hours>,
    pub bays: u32,
    pub slot_minutes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub start_ms: i64,
    pub end_ms: i64,
    pub free_bays: u32,
}

impl Hours {
    /// Checks one day's hours; the message names what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=7).contains(&self.weekday) {
            return Err(format!(
                "weekday {} is not 1 (Monday) to 7 (Sunday)",
                self.weekday
            ));
        }
        if self.open_minute >= self.close_minute || self.close_minute > 24 * 60 {
            return Err(format!(
                "weekday {}: opening minute {} must be before closing minute {} (at most 1440)",
                self.weekday, self.open_minute, self.close_minute
            ));
        }
        Ok(())
    }
}

impl Calendar {
    /// Every slot starting in `[from_ms, to_ms)` and not before `now_ms`, with its free bays;
    /// full slots are left out. `booked` is the start time of every booked appointment.
    pub fn free_slots(&self, from_ms: i64, to_ms: i64, now_ms: i64, booked: &[i64]) -> Vec<Slot> {
        let mut taken: HashMap<i64, u32> = HashMap::new();
        for start in booked {
            *taken.entry(*start).or_default() += 1;
        }
        self.starts(from_ms.max(now_ms), to_ms)
            .filter_map(|start_ms| {
                let free = self
                    .bays
                    .saturating_sub(taken.get(&start_ms).copied().unwrap_or(0));
                (free > 0).then_some(Slot {
                    start_ms,
                    end_ms: start_ms + i64::from(self.slot_minutes) * MINUTE_MS,
                    free_bays: free,
                })
            })
            .collect()
    }

    /// True when `start_ms` is the start of one of the shop's slots.
    pub fn is_slot_start(&self, start_ms: i64) -> bool {
        self.starts(start_ms, start_ms + 1).next() == Some(start_ms)
    }

    fn starts(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = i64> + '_ {
        let offset_ms = i64::from(self.utc_offset_minutes) * MINUTE_MS;
        let step = i64::from(self.slot_minutes.max(1));
        // Local days overlapping the range.
        let first_day = (from_ms + offset_ms).div_euclid(DAY_MS);
        let last_day = (to_ms + offset_ms).div_euclid(DAY_MS);
        (first_day..=last_day).flat_map(move |day| {
            // 1970-01-01 was a Thursday.
            let weekday = ((day + 3).rem_euclid(7) + 1) as u32;
            let midnight_utc = day * DAY_MS - offset_ms;
            self.hours
                .iter()
                .filter(move |h| h.weekday == weekday)
                .flat_map(move |h| {
                    let open = i64::from(h.open_minute);
                    let close = i64::from(h.close_minute);
                    (0..)
                        .map(move |i| open + i * step)
                        .take_while(move |m| m + step <= close)
                        .map(move |m| midnight_utc + m * MINUTE_MS)
                })
                .filter(move |t| *t >= from_ms && *t < to_ms)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Monday 2026-11-23 00:00 UTC.
    const MONDAY: i64 = 1_795_392_000_000;

    fn shop() -> Calendar {
        Calendar {
            utc_offset_minutes: -300,
            hours: vec![
                Hours {
                    weekday: 1,
                    open_minute: 8 * 60,
                    close_minute: 12 * 60,
                },
                Hours {
                    weekday: 2,
                    open_minute: 8 * 60,
                    close_minute: 10 * 60 + 30,
                },
            ],
            bays: 2,
            slot_minutes: 60,
        }
    }

    fn hour(h: i64) -> i64 {
        h * 3_600_000
    }

    #[test]
    fn monday_is_a_monday() {
        assert_eq!(((MONDAY / DAY_MS + 3).rem_euclid(7) + 1), 1);
    }

    #[test]
    fn slots_follow_local_opening_hours() {
        let slots = shop().free_slots(MONDAY, MONDAY + 2 * DAY_MS, 0, &[]);
        let starts: Vec<i64> = slots.iter().map(|s| s.start_ms).collect();
        // 08:00 local at UTC-5 is 13:00 UTC; Monday 8, 9, 10, 11; Tuesday 8 and 9 (9:30 would
        // end after 10:30).
        assert_eq!(
            starts,
            vec![
                MONDAY + hour(13),
                MONDAY + hour(14),
                MONDAY + hour(15),
                MONDAY + hour(16),
                MONDAY + DAY_MS + hour(13),
                MONDAY + DAY_MS + hour(14),
            ]
        );
        assert!(
            slots
                .iter()
                .all(|s| s.free_bays == 2 && s.end_ms - s.start_ms == hour(1))
        );
    }

    #[test]
    fn booked_bays_and_the_past_are_left_out() {
        let nine = MONDAY + hour(14);
        let slots = shop().free_slots(
            MONDAY,
            MONDAY + DAY_MS,
            nine,
            &[nine, nine + hour(1), nine + hour(1)],
        );
        assert_eq!(
            slots
                .iter()
                .map(|s| (s.start_ms, s.free_bays))
                .collect::<Vec<_>>(),
            vec![(nine, 1), (nine + hour(2), 2)]
        );
    }

    #[test]
    fn slot_starts_are_recognised() {
        assert!(shop().is_slot_start(MONDAY + hour(13)));
        assert!(!shop().is_slot_start(MONDAY + hour(13) + 60_000));
        assert!(!shop().is_slot_start(MONDAY + hour(20)));
    }

    #[test]
    fn bad_hours_are_named() {
        assert!(
            Hours {
                weekday: 0,
                open_minute: 0,
                close_minute: 60
            }
            .check()
            .unwrap_err()
            .contains("weekday 0")
        );
        assert!(
            Hours {
                weekday: 3,
                open_minute: 600,
                close_minute: 500
            }
            .check()
            .unwrap_err()
            .contains("before closing")
        );
    }
}
