//! Cron schedules (`[[schedules]]`): which slot is due, decided here without I/O. The engine
//! enqueues a slot's job with the idempotency key [`slot_key`], so however many processes
//! decide the same slot, one job is made.
//!
//! After downtime only the latest missed slot runs, once: a report that should have run every
//! hour while genq was down for a day runs once on start, not 24 times. A schedule seen for the
//! first time starts from now: its past slots are not run.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::str::FromStr;

#[derive(Debug, Clone)]
pub struct Plan {
    cron: Cron,
    tz: Tz,
}

/// What a schedule should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Enqueue the job of this slot, then remember it as run.
    Run(DateTime<Utc>),
    /// Seen for the first time: remember now as covered, run nothing.
    Start(DateTime<Utc>),
    /// Nothing until the next slot.
    Wait,
}

impl Plan {
    /// A cron pattern (5 fields, or 6 with seconds first; `@daily` and the like) in an IANA
    /// time zone, in which slots fall (so `0 9 * * MON` in Europe/Moscow is 9:00 there, through
    /// DST changes).
    pub fn parse(cron: &str, timezone: &str) -> Result<Plan, String> {
        let cron = Cron::from_str(cron).map_err(|e| format!("not a cron pattern: {e}"))?;
        let tz = timezone
            .parse::<Tz>()
            .map_err(|_| format!("{timezone:?} is not an IANA time zone"))?;
        Ok(Plan { cron, tz })
    }

    /// The latest slot at or before `now`.
    pub fn last_slot(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&now.with_timezone(&self.tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first slot after `now`.
    pub fn next_slot(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&now.with_timezone(&self.tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// What to do at `now`, given the time up to which the schedule is covered (its last slot
    /// run, or when it was first seen; `None`: never seen).
    pub fn due(&self, covered: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Due {
        let Some(covered) = covered else {
            return Due::Start(now);
        };
        match self.last_slot(now) {
            Some(slot) if slot > covered => Due::Run(slot),
            _ => Due::Wait,
        }
    }
}

/// The idempotency key of a schedule's job for one slot: one job per slot, whoever makes it.
pub fn slot_key(name: &str, slot: DateTime<Utc>) -> String {
    format!(
        "schedule:{name}:{}",
        slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn only_the_latest_missed_slot_runs_and_new_schedules_start_now() {
        let hourly = Plan::parse("0 * * * *", "UTC").unwrap();
        let now = utc(2026, 3, 10, 12, 30, 0);
        assert_eq!(hourly.due(None, now), Due::Start(now));
        // Covered up to 11:00; 12:00 is due.
        assert_eq!(
            hourly.due(Some(utc(2026, 3, 10, 11, 0, 0)), now),
            Due::Run(utc(2026, 3, 10, 12, 0, 0))
        );
        // Down for a day: one run, for the latest slot.
        assert_eq!(
            hourly.due(Some(utc(2026, 3, 9, 11, 0, 0)), now),
            Due::Run(utc(2026, 3, 10, 12, 0, 0))
        );
        assert_eq!(hourly.due(Some(utc(2026, 3, 10, 12, 0, 0)), now), Due::Wait);
        assert_eq!(hourly.next_slot(now), Some(utc(2026, 3, 10, 13, 0, 0)));
        // Seconds are optional: a sixth field in front.
        let every_second = Plan::parse("* * * * * *", "UTC").unwrap();
        assert_eq!(
            every_second.next_slot(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2026, 1, 1, 0, 0, 1))
        );
        assert!(Plan::parse("61 * * * *", "UTC").is_err());
        assert!(Plan::parse("0 9 * * MON", "Mars/Olympus").is_err());
        assert_eq!(
            slot_key("weekly", utc(2026, 3, 9, 6, 0, 0)),
            "schedule:weekly:2026-03-09T06:00:00Z"
        );
    }

    #[test]
    fn slots_follow_the_time_zone_through_dst() {
        // 9:00 in Moscow (UTC+3, no DST) is 6:00 UTC.
        let weekly = Plan::parse("0 9 * * MON", "Europe/Moscow").unwrap();
        assert_eq!(
            weekly.next_slot(utc(2026, 3, 4, 0, 0, 0)),
            Some(utc(2026, 3, 9, 6, 0, 0))
        );
        // Berlin: 9:00 is 8:00 UTC in winter and 7:00 UTC in summer (from 29 March 2026).
        let daily = Plan::parse("0 9 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            daily.next_slot(utc(2026, 3, 28, 12, 0, 0)),
            Some(utc(2026, 3, 29, 7, 0, 0))
        );
        assert_eq!(
            daily.last_slot(utc(2026, 3, 28, 12, 0, 0)),
            Some(utc(2026, 3, 28, 8, 0, 0))
        );
        // 2:30 does not exist on 29 March in Berlin, and happens twice on 25 October: a
        // schedule at 2:30 runs at most once a day either way.
        let night = Plan::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let mut slots = Vec::new();
        let mut t = utc(2026, 3, 27, 0, 0, 0);
        while let Some(next) = night.next_slot(t) {
            if next > utc(2026, 3, 31, 0, 0, 0) {
                break;
            }
            slots.push(next);
            t = next;
        }
        let days: std::collections::BTreeSet<_> = slots.iter().map(|s| s.date_naive()).collect();
        assert_eq!(slots.len(), days.len(), "{slots:?}");
        let mut autumn = Vec::new();
        let mut t = utc(2026, 10, 24, 0, 0, 0);
        while let Some(next) = night.next_slot(t) {
            if next > utc(2026, 10, 27, 0, 0, 0) {
                break;
            }
            autumn.push(next);
            t = next;
        }
        let days: std::collections::BTreeSet<_> = autumn.iter().map(|s| s.date_naive()).collect();
        assert_eq!(autumn.len(), days.len(), "{autumn:?}");
    }
}
