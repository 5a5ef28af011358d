//! When digests fire: a cron expression evaluated on the wall clock of a
//! time zone, and the window of jobs each digest date covers.
//!
//! The cron crate resolves local times itself and silently drops a time that
//! does not exist, which would skip a whole day's digest on a spring-forward
//! day. So the expression is evaluated on *naive* wall-clock times and each
//! candidate is mapped to an instant here:
//!
//! - a wall time that exists once is that instant;
//! - a wall time that exists twice (the repeated hour of a fall-back day)
//!   fires once, at its **first** occurrence;
//! - a wall time that does not exist (the skipped hour of a spring-forward
//!   day) fires at the **next valid instant**, the moment the clocks jump
//!   (02:30 in America/Los_Angeles on 2026-03-08 fires at 03:00 PDT).
//!
//! So a daily expression fires exactly once per local day.
//!
//! # Windows
//!
//! A digest date `D` ends at its *fire time*: the first instant the schedule
//! fires on local date `D`, or, when it does not fire that day, local
//! midnight at the end of `D`. Its window runs from the end of `D - 1` to the
//! end of `D` (start included, end excluded). That is the 24 h before the fire
//! time, or 23 h / 25 h across a daylight-saving change, so the windows of
//! consecutive dates tile time: no job is reported twice or missed.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use cron::Schedule;

use crate::error::{Error, Result};

/// The longest the timer sleeps before looking at the clock again, so that a
/// changed system clock or a suspended machine delays a digest by at most this.
pub const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Parses a cron expression in the cron crate's 6- or 7-field form
/// (`sec min hour day-of-month month day-of-week [year]`), or the common
/// 5-field form (`min hour day-of-month month day-of-week`), which gets a
/// leading `0` seconds field.
pub fn parse_cron(expr: &str) -> Result<Schedule> {
    let fields = expr.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {}", expr.trim()),
        6 | 7 => expr.trim().to_owned(),
        _ => {
            return Err(bad_cron(expr, &format!("it has {fields} fields, expected 5, 6 or 7")));
        }
    };
    Schedule::from_str(&full).map_err(|e| bad_cron(expr, &e.to_string()))
}

fn bad_cron(expr: &str, why: &str) -> Error {
    Error::invalid(
        "invalid_config",
        format!(
            "CRAFTING_DIGEST_CRON={expr:?} is not a cron expression ({why}); \
             use e.g. \"0 6 * * *\" or \"0 0 6 * * *\" for 06:00 every day"
        ),
    )
}

/// Parses an IANA time zone name such as `America/Los_Angeles`.
pub fn parse_time_zone(name: &str) -> Result<Tz> {
    Tz::from_str(name.trim()).map_err(|_| {
        Error::invalid(
            "invalid_config",
            format!(
                "CRAFTING_DIGEST_TZ={name:?} is not an IANA time zone; \
                 use e.g. America/Los_Angeles, Europe/Berlin or UTC"
            ),
        )
    })
}

/// A cron schedule on the wall clock of a time zone.
#[derive(Debug, Clone)]
pub struct DigestClock {
    schedule: Schedule,
    tz: Tz,
}

impl DigestClock {
    /// A clock for `expr` (see [`parse_cron`]) in `tz`.
    pub fn new(expr: &str, tz: Tz) -> Result<DigestClock> {
        Ok(DigestClock { schedule: parse_cron(expr)?, tz })
    }

    /// The time zone.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The first fire instant strictly after `after`.
    pub fn next_fire_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz).naive_local();
        // Candidates mapped into a gap or onto the first of two repeated wall
        // times can land at or before `after`; a handful of them at most.
        self.schedule
            .after(&naive_as_utc(local))
            .take(64)
            .map(|c| self.instant(c.naive_utc()))
            .find(|t| *t > after)
    }

    /// The first instant the schedule fires on local date `date`, if it does.
    pub fn fire_on(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        let before = date.and_hms_opt(0, 0, 0)? - chrono::Duration::seconds(1);
        let first = self.schedule.after(&naive_as_utc(before)).next()?.naive_utc();
        (first.date() == date).then(|| self.instant(first))
    }

    /// Where the window of digest date `date` ends: its fire time, or local
    /// midnight at the end of the day when the schedule does not fire on it.
    pub fn window_end(&self, date: NaiveDate) -> DateTime<Utc> {
        self.fire_on(date).unwrap_or_else(|| {
            let next = date.checked_add_days(Days::new(1)).unwrap_or(date);
            self.instant(next.and_time(chrono::NaiveTime::MIN))
        })
    }

    /// The window of jobs digest date `date` covers: `[start, end)`.
    pub fn window(&self, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let prev = date.checked_sub_days(Days::new(1)).unwrap_or(date);
        (self.window_end(prev), self.window_end(date))
    }

    /// The local date of an instant.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// The digest date whose window holds instant `t`.
    pub fn date_covering(&self, t: DateTime<Utc>) -> NaiveDate {
        let d = self.local_date(t);
        for cand in [d.pred_opt(), Some(d), d.succ_opt()].into_iter().flatten() {
            let (start, end) = self.window(cand);
            if start <= t && t < end {
                return cand;
            }
        }
        d
    }

    /// The newest digest date whose window has closed at `t`: the date a
    /// timer firing at `t` sends, and the default of a run-now.
    pub fn latest_closed_date(&self, t: DateTime<Utc>) -> NaiveDate {
        let d = self.local_date(t);
        if self.window_end(d) <= t { d } else { d.pred_opt().unwrap_or(d) }
    }

    /// Maps a wall-clock time to the instant it fires at (see the module docs).
    fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        // In a gap: the first whole minute after it that exists is where the
        // clocks landed. Real gaps are whole minutes and at most a day long.
        let mut probe = local.with_second(0).unwrap_or(local);
        for _ in 0..(26 * 60) {
            probe += chrono::Duration::minutes(1);
            if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                return t.with_timezone(&Utc);
            }
        }
        // Not reached for any zone in the database; fall back to reading the
        // wall time as UTC rather than failing.
        naive_as_utc(local)
    }
}

/// A naive wall time carried as a UTC date-time, so the cron crate iterates
/// wall-clock values without resolving them in a zone.
fn naive_as_utc(t: NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t)
}

/// What the scheduler's timer should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    /// Sleep this long.
    pub after: Duration,
    /// The fire instant being waited for; the timer fires when it wakes at
    /// or past it, and only looks again otherwise.
    pub target: DateTime<Utc>,
}

/// The scheduler's timer state: which fire instant comes next and which one
/// fired last. Plain and synchronous, so tests drive it with any clock.
#[derive(Debug, Clone)]
pub struct Timer {
    clock: DigestClock,
    last_fired: Option<DateTime<Utc>>,
}

impl Timer {
    /// A timer that has not fired yet.
    pub fn new(clock: DigestClock) -> Timer {
        Timer { clock, last_fired: None }
    }

    /// The clock it follows.
    pub fn clock(&self) -> &DigestClock {
        &self.clock
    }

    /// The next wake-up seen from `now`: the next fire instant after both
    /// `now` and the last one fired (so a clock set back does not fire an
    /// instant twice), slept towards in steps of at most [`MAX_SLEEP`].
    pub fn plan(&self, now: DateTime<Utc>) -> Option<Wake> {
        let from = self.last_fired.map_or(now, |l| l.max(now));
        let target = self.clock.next_fire_after(from)?;
        let after = (target - now).to_std().unwrap_or_default().min(MAX_SLEEP);
        Some(Wake { after, target })
    }

    /// Called when the timer wakes at `now` waiting for `target`: the digest
    /// date to send when the target is reached (and records it as fired),
    /// or `None` to plan again.
    pub fn wake(&mut self, now: DateTime<Utc>, target: DateTime<Utc>) -> Option<NaiveDate> {
        if now < target || self.last_fired.is_some_and(|l| l >= target) {
            return None;
        }
        self.last_fired = Some(target);
        Some(self.clock.latest_closed_date(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn la() -> Tz {
        chrono_tz::America::Los_Angeles
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::from_str(s).unwrap()
    }

    #[test]
    fn five_six_and_seven_fields_parse_and_others_do_not() {
        for ok in ["0 6 * * *", "0 0 6 * * *", "0 0 6 * * * *", " 30 2 * * Mon-Fri "] {
            assert!(parse_cron(ok).is_ok(), "{ok}");
        }
        for bad in ["", "6 * *", "0 0 25 * * *", "every day", "1 2 3 4 5 6 7 8"] {
            assert_eq!(parse_cron(bad).unwrap_err().code(), "invalid_config", "{bad}");
        }
        assert!(parse_time_zone("Europe/Berlin").is_ok());
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn the_five_field_form_fires_at_second_zero() {
        let c = DigestClock::new("15 6 * * *", chrono_tz::UTC).unwrap();
        assert_eq!(
            c.next_fire_after(utc("2026-05-01T00:00:00Z")),
            Some(utc("2026-05-01T06:15:00Z"))
        );
    }

    #[test]
    fn fire_on_and_windows_tile_across_both_transitions() {
        let c = DigestClock::new("0 0 6 * * *", la()).unwrap();
        // Spring forward: 06:00 PST on the 7th, 06:00 PDT on the 8th: 23 h.
        assert_eq!(c.fire_on(date("2026-03-07")), Some(utc("2026-03-07T14:00:00Z")));
        assert_eq!(c.fire_on(date("2026-03-08")), Some(utc("2026-03-08T13:00:00Z")));
        let (s, e) = c.window(date("2026-03-08"));
        assert_eq!((e - s).num_hours(), 23);
        // Fall back: 25 h.
        let (s, e) = c.window(date("2026-11-01"));
        assert_eq!((s, e), (utc("2026-10-31T13:00:00Z"), utc("2026-11-01T14:00:00Z")));
        // Consecutive windows share their boundary.
        let mut d = date("2026-02-25");
        while d < date("2026-11-10") {
            assert_eq!(c.window(d).1, c.window(d.succ_opt().unwrap()).0);
            d = d.succ_opt().unwrap();
        }
    }

    #[test]
    fn a_date_without_a_fire_ends_at_local_midnight() {
        // Mondays only; 2026-05-05 is a Tuesday.
        let c = DigestClock::new("0 0 6 * * Mon", la()).unwrap();
        assert_eq!(c.fire_on(date("2026-05-05")), None);
        assert_eq!(c.window_end(date("2026-05-05")), utc("2026-05-06T07:00:00Z"));
    }

    #[test]
    fn covering_and_closed_dates() {
        let c = DigestClock::new("0 0 6 * * *", la()).unwrap();
        // 05:59 PDT on May 3rd belongs to May 3rd's digest; 06:00 to May 4th's.
        assert_eq!(c.date_covering(utc("2026-05-03T12:59:00Z")), date("2026-05-03"));
        assert_eq!(c.date_covering(utc("2026-05-03T13:00:00Z")), date("2026-05-04"));
        // Late evening local is already the next UTC day.
        assert_eq!(c.date_covering(utc("2026-05-04T05:00:00Z")), date("2026-05-04"));
        assert_eq!(c.latest_closed_date(utc("2026-05-03T12:59:00Z")), date("2026-05-02"));
        assert_eq!(c.latest_closed_date(utc("2026-05-03T13:00:00Z")), date("2026-05-03"));
    }

    #[test]
    fn the_timer_sleeps_in_steps_and_fires_each_target_once() {
        let c = DigestClock::new("0 0 6 * * *", la()).unwrap();
        let mut t = Timer::new(c);
        let now = utc("2026-05-03T00:00:00Z");
        let w = t.plan(now).unwrap();
        assert_eq!(w.target, utc("2026-05-03T13:00:00Z"));
        assert_eq!(w.after, MAX_SLEEP);
        assert_eq!(t.wake(now + chrono::Duration::hours(1), w.target), None);
        assert_eq!(t.wake(w.target, w.target), Some(date("2026-05-03")));
        // Woken again for the same target (a clock set back): nothing.
        assert_eq!(t.wake(w.target, w.target), None);
        let back = utc("2026-05-03T12:00:00Z");
        assert_eq!(t.plan(back).unwrap().target, utc("2026-05-04T13:00:00Z"));
    }
}
