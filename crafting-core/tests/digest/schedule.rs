use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use crafting_core::digest::{DigestClock, Timer};

use crate::support::LA;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Every fire instant from `from` to `to`, as the timer would follow them.
fn fires(expr: &str, from: &str, to: &str) -> Vec<DateTime<Utc>> {
    let clock = DigestClock::new(expr, LA).unwrap();
    let (mut at, end) = (utc(from), utc(to));
    let mut out = Vec::new();
    while let Some(next) = clock.next_fire_after(at) {
        if next > end {
            break;
        }
        out.push(next);
        at = next;
    }
    out
}

/// Local date -> local times of day it fired at.
fn by_local_day(fires: &[DateTime<Utc>]) -> BTreeMap<NaiveDate, Vec<NaiveTime>> {
    let mut days: BTreeMap<NaiveDate, Vec<NaiveTime>> = BTreeMap::new();
    for f in fires {
        let l = f.with_timezone(&LA);
        days.entry(l.date_naive()).or_default().push(l.time());
    }
    days
}

fn t(s: &str) -> NaiveTime {
    NaiveTime::from_str(s).unwrap()
}

#[test]
fn six_o_clock_fires_once_a_day_through_both_changes() {
    for (from, to, days) in [
        ("2026-03-05T00:00:00Z", "2026-03-12T00:00:00Z", 7),
        ("2026-10-29T00:00:00Z", "2026-11-05T00:00:00Z", 7),
    ] {
        let f = fires("0 0 6 * * *", from, to);
        let days_seen = by_local_day(&f);
        assert_eq!(days_seen.len(), days, "{days_seen:?}");
        for (day, times) in &days_seen {
            assert_eq!(times, &[t("06:00:00")], "{day}");
        }
        // 23 h into summer time, 25 h out of it, 24 h otherwise.
        let gaps: Vec<i64> = f.windows(2).map(|w| (w[1] - w[0]).num_hours()).collect();
        assert!(gaps.iter().all(|g| [23, 24, 25].contains(g)), "{gaps:?}");
    }
    let spring = fires("0 0 6 * * *", "2026-03-07T00:00:00Z", "2026-03-09T00:00:00Z");
    assert_eq!(spring, [utc("2026-03-07T14:00:00Z"), utc("2026-03-08T13:00:00Z")]);
    let autumn = fires("0 0 6 * * *", "2026-10-31T00:00:00Z", "2026-11-02T00:00:00Z");
    assert_eq!(autumn, [utc("2026-10-31T13:00:00Z"), utc("2026-11-01T14:00:00Z")]);
}

#[test]
fn a_time_skipped_by_spring_forward_fires_when_the_clocks_jump() {
    let f = fires("0 30 2 * * *", "2026-03-05T00:00:00Z", "2026-03-12T00:00:00Z");
    let days = by_local_day(&f);
    assert_eq!(days.len(), 7, "no day skipped: {days:?}");
    for (day, times) in &days {
        // 02:30 does not exist on 2026-03-08: 02:00 PST became 03:00 PDT.
        let want = if day.to_string() == "2026-03-08" { t("03:00:00") } else { t("02:30:00") };
        assert_eq!(times, &[want], "{day}");
    }
    assert!(f.contains(&utc("2026-03-08T10:00:00Z")), "03:00 PDT is 10:00 UTC");
}

#[test]
fn a_time_repeated_by_fall_back_fires_once_at_its_first_occurrence() {
    // 01:30 happens twice on 2026-11-01 (PDT, then PST); 02:30 once.
    for (expr, local) in [("30 1 * * *", "01:30:00"), ("0 30 2 * * *", "02:30:00")] {
        let f = fires(expr, "2026-10-29T00:00:00Z", "2026-11-05T00:00:00Z");
        let days = by_local_day(&f);
        assert_eq!(days.len(), 7, "{expr}: {days:?}");
        assert!(days.values().all(|times| times == &[t(local)]), "{expr}: {days:?}");
    }
    let f = fires("30 1 * * *", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z");
    assert_eq!(f, [utc("2026-11-01T08:30:00Z")], "01:30 PDT, not 01:30 PST");
}

#[test]
fn the_timer_serves_each_local_day_once_across_a_change() {
    // Waking exactly at each target, as run_later does.
    let mut timer = Timer::new(DigestClock::new("0 30 2 * * *", LA).unwrap());
    let mut now = utc("2026-03-06T00:00:00Z");
    let mut dates = Vec::new();
    while dates.len() < 5 {
        let wake = timer.plan(now).unwrap();
        now += chrono::Duration::from_std(wake.after).unwrap();
        if let Some(date) = timer.wake(now, wake.target) {
            dates.push(date.to_string());
        }
    }
    assert_eq!(dates, ["2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]);
}
