//! Local time for the dialling schedule and the tariff: office days, hour ranges, periods.

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

use crate::Error;

/// A range of the day, in minutes since midnight; `to <= from` wraps past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourRange {
    from: u32,
    to: u32,
}

impl HourRange {
    /// Parses `"08:00-18:00"`; `24:00` is the end of the day.
    pub fn parse(text: &str) -> Result<HourRange, Error> {
        let (from, to) = postroom_config::link::parse_hours(text).ok_or_else(|| {
            Error::Config(format!(
                "{text:?} is not a range of hours like \"08:00-18:00\""
            ))
        })?;
        Ok(HourRange { from, to })
    }

    /// Whether the minute of the day falls in the range.
    pub fn contains(&self, minute: u32) -> bool {
        if self.from < self.to {
            (self.from..self.to).contains(&minute)
        } else {
            minute >= self.from || minute < self.to
        }
    }
}

/// Parses day names (`"mon"` .. `"sun"`, or the full English names).
pub fn parse_days(days: &[String]) -> Result<Vec<Weekday>, Error> {
    const WEEK: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];
    days.iter()
        .map(|d| {
            postroom_config::link::parse_day(d)
                .and_then(|i| WEEK.get(usize::from(i)).copied())
                .ok_or_else(|| Error::Config(format!("{d:?} is not a day of the week")))
        })
        .collect()
}

/// The time zone named in config, or the system's.
pub fn time_zone(name: &str) -> Result<TimeZone, Error> {
    if name.is_empty() {
        return Ok(TimeZone::try_system().unwrap_or(TimeZone::UTC));
    }
    TimeZone::get(name).map_err(|e| Error::Config(format!("time zone {name:?}: {e}")))
}

fn minute_of_day(local: &Zoned) -> u32 {
    let t = local.time();
    // hour() is 0..=23 and minute() 0..=59, so the casts cannot lose anything.
    t.hour() as u32 * 60 + t.minute() as u32
}

/// Which schedule interval applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Period {
    /// An office day, inside office hours.
    OfficeHours,
    /// An office day, outside office hours.
    OffHours,
    /// Not an office day.
    Weekend,
}

/// The dialling schedule: a call every so often, by period.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    office_days: Vec<Weekday>,
    office_hours: HourRange,
    /// Intervals for office hours, off hours and weekends; zero turns a period off.
    intervals: [SignedDuration; 3],
}

impl Schedule {
    /// Reads `[link.schedule]`.
    pub fn from_config(cfg: &postroom_config::link::Schedule, tz: TimeZone) -> Result<Self, Error> {
        let mins = |m: u32| SignedDuration::from_mins(i64::from(m));
        Ok(Schedule {
            tz,
            office_days: parse_days(&cfg.office_days)?,
            office_hours: HourRange::parse(&cfg.office_hours)?,
            intervals: [
                mins(cfg.office_interval_mins),
                mins(cfg.off_hours_interval_mins),
                mins(cfg.weekend_interval_mins),
            ],
        })
    }

    /// The period a moment falls in.
    pub fn period(&self, at: Timestamp) -> Period {
        let local = at.to_zoned(self.tz.clone());
        if !self.office_days.contains(&local.weekday()) {
            Period::Weekend
        } else if self.office_hours.contains(minute_of_day(&local)) {
            Period::OfficeHours
        } else {
            Period::OffHours
        }
    }

    fn interval(&self, period: Period) -> SignedDuration {
        match period {
            Period::OfficeHours => self.intervals[0],
            Period::OffHours => self.intervals[1],
            Period::Weekend => self.intervals[2],
        }
    }

    /// When to call next after a call (or the start) at `after`: the interval of the period
    /// `after` is in; in a period with no calls, the first quarter hour of a period with
    /// calls. `None` when every period is off.
    pub fn next_call(&self, after: Timestamp) -> Option<Timestamp> {
        let interval = self.interval(self.period(after));
        if !interval.is_zero() {
            return after.checked_add(interval).ok();
        }
        let step = SignedDuration::from_mins(15);
        let mut t = after;
        // A week and a day of quarter hours covers every period there is.
        for _ in 0..(8 * 24 * 4) {
            t = t.checked_add(step).ok()?;
            if !self.interval(self.period(t)).is_zero() {
                return Some(t);
            }
        }
        None
    }
}

/// The tariff: what a connected call costs.
#[derive(Debug, Clone)]
pub struct Tariff {
    tz: TimeZone,
    per_call: u64,
    per_minute: u64,
    periods: Vec<(Vec<Weekday>, HourRange, u64)>,
}

impl Tariff {
    /// Reads `[link.tariff]`.
    pub fn from_config(cfg: &postroom_config::link::Tariff, tz: TimeZone) -> Result<Self, Error> {
        let periods = cfg
            .periods
            .iter()
            .map(|p| {
                Ok((
                    parse_days(&p.days)?,
                    HourRange::parse(&p.hours)?,
                    p.per_minute,
                ))
            })
            .collect::<Result<_, Error>>()?;
        Ok(Tariff {
            tz,
            per_call: cfg.per_call,
            per_minute: cfg.per_minute,
            periods,
        })
    }

    /// The per-minute rate for a call that connected at `at`.
    pub fn rate_at(&self, at: Timestamp) -> u64 {
        let local = at.to_zoned(self.tz.clone());
        let minute = minute_of_day(&local);
        self.periods
            .iter()
            .find(|(days, hours, _)| {
                (days.is_empty() || days.contains(&local.weekday())) && hours.contains(minute)
            })
            .map_or(self.per_minute, |(_, _, rate)| *rate)
    }

    /// The cost of a call connected at `at` for `secs` seconds: the per-call charge plus the
    /// rate for every started minute.
    pub fn cost(&self, at: Timestamp, secs: u64) -> u64 {
        let minutes = secs.div_ceil(60);
        self.per_call
            .saturating_add(self.rate_at(at).saturating_mul(minutes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn schedule() -> Schedule {
        let cfg = postroom_config::link::Schedule {
            office_interval_mins: 30,
            off_hours_interval_mins: 120,
            weekend_interval_mins: 0,
            ..Default::default()
        };
        Schedule::from_config(&cfg, TimeZone::UTC).unwrap()
    }

    #[test]
    fn schedule_intervals_differ_by_period() {
        let s = schedule();
        // 2026-12-03 is a Thursday.
        assert_eq!(s.period(utc("2026-12-03T10:00:00Z")), Period::OfficeHours);
        assert_eq!(
            s.next_call(utc("2026-12-03T10:00:00Z")),
            Some(utc("2026-12-03T10:30:00Z"))
        );
        assert_eq!(s.period(utc("2026-12-03T20:00:00Z")), Period::OffHours);
        assert_eq!(
            s.next_call(utc("2026-12-03T20:00:00Z")),
            Some(utc("2026-12-03T22:00:00Z"))
        );
    }

    #[test]
    fn weekend_with_calls_off_waits_for_monday() {
        let s = schedule();
        assert_eq!(s.period(utc("2026-12-05T12:00:00Z")), Period::Weekend);
        assert_eq!(
            s.next_call(utc("2026-12-05T12:00:00Z")),
            Some(utc("2026-12-07T00:00:00Z"))
        );
    }

    #[test]
    fn tariff_by_time_of_day() {
        let cfg = postroom_config::link::Tariff {
            per_call: 10,
            per_minute: 2,
            periods: vec![postroom_config::link::TariffPeriod {
                days: vec![
                    "mon".into(),
                    "tue".into(),
                    "wed".into(),
                    "thu".into(),
                    "fri".into(),
                ],
                hours: "08:00-18:00".into(),
                per_minute: 5,
            }],
            ..Default::default()
        };
        let t = Tariff::from_config(&cfg, TimeZone::UTC).unwrap();
        // 61 s is two started minutes.
        assert_eq!(t.cost(utc("2026-12-03T09:00:00Z"), 61), 10 + 2 * 5);
        assert_eq!(t.cost(utc("2026-12-03T19:00:00Z"), 61), 10 + 2 * 2);
        assert_eq!(t.cost(utc("2026-12-05T09:00:00Z"), 60), 10 + 2);
    }

    #[test]
    fn hour_range_wraps_past_midnight() {
        let night = HourRange::parse("22:00-06:00").unwrap();
        assert!(night.contains(23 * 60) && night.contains(60) && !night.contains(12 * 60));
        assert!(HourRange::parse("8-18").is_err());
        assert!(
            HourRange::parse("00:00-24:00")
                .unwrap()
                .contains(23 * 60 + 59)
        );
    }
}
