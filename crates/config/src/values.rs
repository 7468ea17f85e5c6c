//! Small typed values for any section: times of day, daily time ranges, intervals, ports.
//!
//! Each reads from the form a person writes in the file and refuses anything else with a
//! message that quotes the value, e.g. `"25:00" is not a time of day`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A time of day, written `"HH:MM"` (`"07:30"`, `"23:59"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    minutes: u16,
}

impl TimeOfDay {
    /// Midnight, `"00:00"`.
    pub const MIDNIGHT: TimeOfDay = TimeOfDay { minutes: 0 };

    /// `hour:minute`, or `None` outside 00:00 to 23:59.
    pub fn new(hour: u8, minute: u8) -> Option<TimeOfDay> {
        (hour < 24 && minute < 60).then(|| TimeOfDay {
            minutes: hour as u16 * 60 + minute as u16,
        })
    }

    /// The hour, 0 to 23.
    pub fn hour(self) -> u8 {
        // At most 23 * 60 + 59 minutes, so the hour fits.
        (self.minutes / 60) as u8
    }

    /// The minute, 0 to 59.
    pub fn minute(self) -> u8 {
        (self.minutes % 60) as u8
    }

    /// Minutes since midnight, 0 to 1439.
    pub fn minutes_since_midnight(self) -> u16 {
        self.minutes
    }
}

/// Reads `H:MM` or `HH:MM` as minutes since midnight; `24:00` only if `end_of_day` is allowed.
fn parse_clock(s: &str, end_of_day: bool) -> Option<u16> {
    let (hour, minute) = s.split_once(':')?;
    let digits = |t: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(hour, 1..=2) || !digits(minute, 2..=2) {
        return None;
    }
    let (hour, minute): (u16, u16) = (hour.parse().ok()?, minute.parse().ok()?);
    let valid = minute < 60 && (hour < 24 || (end_of_day && hour == 24 && minute == 0));
    valid.then_some(hour * 60 + minute)
}

impl FromStr for TimeOfDay {
    type Err = String;

    fn from_str(s: &str) -> Result<TimeOfDay, String> {
        match parse_clock(s.trim(), false) {
            Some(minutes) => Ok(TimeOfDay { minutes }),
            None => Err(format!("{s:?} is not a time of day")),
        }
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour(), self.minute())
    }
}

/// A daily range of times, written `"08:00-18:00"`. The end may be `"24:00"`; an end before the
/// start wraps past midnight (`"22:00-06:00"`). The start is included, the end is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    start: u16,
    end: u16,
}

impl TimeRange {
    /// The whole day, `"00:00-24:00"`.
    pub const ALL_DAY: TimeRange = TimeRange {
        start: 0,
        end: 24 * 60,
    };

    /// The first minute of the range.
    pub fn start(self) -> TimeOfDay {
        TimeOfDay {
            minutes: self.start,
        }
    }

    /// Whether `time` lies in the range.
    pub fn contains(self, time: TimeOfDay) -> bool {
        let t = time.minutes;
        if self.start <= self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl FromStr for TimeRange {
    type Err = String;

    fn from_str(s: &str) -> Result<TimeRange, String> {
        let refuse = || format!("{s:?} is not a range of times like \"08:00-18:00\"");
        let (start, end) = s.trim().split_once('-').ok_or_else(refuse)?;
        let start = parse_clock(start.trim(), false).ok_or_else(refuse)?;
        let end = parse_clock(end.trim(), true).ok_or_else(refuse)?;
        if start == end {
            return Err(format!("{s:?} is an empty range of times"));
        }
        Ok(TimeRange { start, end })
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, e) = (self.start, self.end);
        write!(f, "{:02}:{:02}-{:02}:{:02}", s / 60, s % 60, e / 60, e % 60)
    }
}

/// A length of time, written `"30s"`, `"5m"`, `"4h"`, `"2d"`, `"500ms"` or combined
/// (`"1h30m"`); a bare number counts as seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Interval(pub Duration);

impl Interval {
    /// `secs` whole seconds.
    pub const fn from_secs(secs: u64) -> Interval {
        Interval(Duration::from_secs(secs))
    }

    /// As a std duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// The longest interval accepted: a year is beyond any timeout or period of an appliance, and
/// the bound keeps arithmetic on deadlines from overflowing.
const MAX_INTERVAL: Duration = Duration::from_secs(366 * 86_400);

impl FromStr for Interval {
    type Err = String;

    fn from_str(s: &str) -> Result<Interval, String> {
        let refuse = || format!("{s:?} is not a duration like \"30s\", \"5m\" or \"4h\"");
        let text = s.trim();
        if text.is_empty() {
            return Err(refuse());
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let secs: u64 = text.parse().map_err(|_| refuse())?;
            return checked(Duration::from_secs(secs.min(u64::MAX / 2)), s);
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(refuse());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| refuse())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (unit, after) = rest.split_at(unit_len);
            let one = match unit {
                "ms" => Duration::from_millis(1),
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                "h" => Duration::from_secs(3_600),
                "d" => Duration::from_secs(86_400),
                _ => return Err(refuse()),
            };
            let part = u32::try_from(number).ok().and_then(|n| one.checked_mul(n));
            total = part
                .and_then(|p| total.checked_add(p))
                .ok_or_else(|| too_long(s))?;
            rest = after;
        }
        checked(total, s)
    }
}

fn too_long(s: &str) -> String {
    format!("{s:?} is longer than a year")
}

fn checked(d: Duration, s: &str) -> Result<Interval, String> {
    if d > MAX_INTERVAL {
        Err(too_long(s))
    } else {
        Ok(Interval(d))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if millis >= size {
                write!(f, "{}{unit}", millis / size)?;
                millis %= size;
            }
        }
        if millis > 0 {
            write!(f, "{millis}ms")?;
        }
        Ok(())
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Interval, D::Error> {
        deserializer.deserialize_any(IntervalVisitor)
    }
}

/// Reads an [`Interval`] from a string or from a number of seconds.
pub(crate) struct IntervalVisitor;

impl Visitor<'_> for IntervalVisitor {
    type Value = Interval;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration like \"30s\", \"5m\" or \"4h\", or a number of seconds")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Interval, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Interval, E> {
        checked(Duration::from_secs(v.min(u64::MAX / 2)), &v.to_string()).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Interval, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!("{v} is not a duration: it is negative"))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Interval, E> {
        if !(0.0..=MAX_INTERVAL.as_secs_f64()).contains(&v) {
            return Err(E::custom(format!(
                "{v} is not a number of seconds up to a year"
            )));
        }
        Ok(Interval(Duration::from_secs_f64(v)))
    }
}

/// A TCP or UDP port, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(u16);

impl Port {
    /// `port`, or `None` for 0.
    pub const fn new(port: u16) -> Option<Port> {
        if port == 0 { None } else { Some(Port(port)) }
    }

    /// The port number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.0)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Port, D::Error> {
        let n = i64::deserialize(deserializer)?;
        u16::try_from(n)
            .ok()
            .and_then(Port::new)
            .ok_or_else(|| de::Error::custom(format!("{n} is not a port number (1 to 65535)")))
    }
}

macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$t, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(de::Error::custom)
            }
        }
    )*};
}

serde_via_str!(TimeOfDay, TimeRange);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day_read_and_print() {
        assert_eq!("7:05".parse::<TimeOfDay>().unwrap().to_string(), "07:05");
        assert_eq!(
            "23:59".parse::<TimeOfDay>().unwrap(),
            TimeOfDay::new(23, 59).unwrap()
        );
        for bad in [
            "24:00", "25:00", "12:60", "12", "12:5", "-1:00", "ab:cd", "",
        ] {
            assert!(bad.parse::<TimeOfDay>().is_err(), "{bad}");
        }
        assert_eq!(
            "25:00".parse::<TimeOfDay>().unwrap_err(),
            "\"25:00\" is not a time of day"
        );
    }

    #[test]
    fn time_ranges_wrap_past_midnight() {
        let office: TimeRange = "08:00-18:00".parse().unwrap();
        let night: TimeRange = "22:00-06:00".parse().unwrap();
        let t = |s: &str| s.parse::<TimeOfDay>().unwrap();
        assert!(office.contains(t("08:00")) && !office.contains(t("18:00")));
        assert!(night.contains(t("23:30")) && night.contains(t("05:59")));
        assert!(!night.contains(t("12:00")));
        assert!(
            "00:00-24:00"
                .parse::<TimeRange>()
                .unwrap()
                .contains(t("23:59"))
        );
        assert!("08:00-08:00".parse::<TimeRange>().is_err());
        assert!("8-18".parse::<TimeRange>().is_err());
    }

    #[test]
    fn intervals_read_units_and_combinations() {
        let secs = |s: &str| s.parse::<Interval>().unwrap().0;
        assert_eq!(secs("30s"), Duration::from_secs(30));
        assert_eq!(secs("5m"), Duration::from_secs(300));
        assert_eq!(secs("4h"), Duration::from_secs(14_400));
        assert_eq!(secs("1h30m"), Duration::from_secs(5_400));
        assert_eq!(secs("250ms"), Duration::from_millis(250));
        assert_eq!(secs("90"), Duration::from_secs(90));
        for bad in ["", "5 weeks", "m", "5x", "1.5h", "-5s", "400d"] {
            assert!(bad.parse::<Interval>().is_err(), "{bad}");
        }
        assert_eq!(
            Interval(Duration::from_millis(5_400_250)).to_string(),
            "1h30m250ms"
        );
    }
}
