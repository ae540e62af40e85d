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

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Opening hours as a person writes them: `mon-fri 08:00-17:30; sat 09:00-13:00`.
pub fn parse_hours(spec: &str) -> Result<Vec<Hours>, String> {
    let day = |d: &str| {
        DAYS.iter()
            .position(|x| d.eq_ignore_ascii_case(x))
            .map(|i| i as u32 + 1)
            .ok_or_else(|| format!("{d:?} is not a day (mon, tue, ... sun)"))
    };
    let minute = |t: &str| -> Result<u32, String> {
        let (h, m) = t
            .split_once(':')
            .ok_or_else(|| format!("{t:?} is not a time like 08:00"))?;
        match (h.parse::<u32>(), m.parse::<u32>()) {
            (Ok(h), Ok(m)) if (h < 24 && m < 60) || (h == 24 && m == 0) => Ok(h * 60 + m),
            _ => Err(format!("{t:?} is not a time like 08:00")),
        }
    };
    let mut hours = Vec::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (days, times) = part
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{part:?}: write days then times, like mon-fri 08:00-17:00"))?;
        let (open, close) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("{part:?}: times are open-close, like 08:00-17:00"))?;
        let (first, last) = match days.split_once('-') {
            Some((a, b)) => (day(a)?, day(b)?),
            None => (day(days)?, day(days)?),
        };
        if first > last {
            return Err(format!("{part:?}: days run Monday to Sunday"));
        }
        for weekday in first..=last {
            let h = Hours {
                weekday,
                open_minute: minute(open.trim())?,
                close_minute: minute(close.trim())?,
            };
            h.check()?;
            hours.push(h);
        }
    }
    Ok(hours)
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

    #[test]
    fn hours_as_people_write_them() {
        let h = parse_hours("mon-fri 08:00-17:30; sat 09:00-13:00").unwrap();
        assert_eq!(h.len(), 6);
        assert_eq!(
            h[0],
            Hours {
                weekday: 1,
                open_minute: 480,
                close_minute: 1050
            }
        );
        assert_eq!(
            h[5],
            Hours {
                weekday: 6,
                open_minute: 540,
                close_minute: 780
            }
        );
        assert_eq!(
            parse_hours("sun 00:00-24:00").unwrap()[0].close_minute,
            1440
        );
        assert!(
            parse_hours("fri-mon 08:00-09:00")
                .unwrap_err()
                .contains("Monday to Sunday")
        );
        assert!(parse_hours("mon 8-17").unwrap_err().contains("like 08:00"));
        assert!(
            parse_hours("funday 08:00-09:00")
                .unwrap_err()
                .contains("not a day")
        );
        assert!(
            parse_hours("mon 17:00-08:00")
                .unwrap_err()
                .contains("before closing")
        );
    }
}
