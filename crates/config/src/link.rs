//! The `[link]` section: how the box reaches the internet.
//!
//! In `permanent` mode the link is always up and nothing is dialled. In `on-demand` mode a
//! modem is dialled when a component holds the link, on a schedule, or by hand, and hung up
//! when idle. Times of day are local (`time_zone`), written `"HH:MM"`. The call log is
//! `<system.data_dir>/link.redb`, the control socket `<system.run_dir>/link.sock`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::check::{Check, Report, index, key};

/// The `[link]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Link {
    /// `"permanent"` (the default: always up, never dials) or `"on-demand"`.
    pub mode: Mode,
    /// The IANA time zone for schedules and tariffs (`"Europe/Berlin"`); empty for the
    /// system's zone.
    pub time_zone: String,
    /// `[link.modem]`: the serial port and the AT dialogue.
    pub modem: Modem,
    /// `[link.dial]`: redial, idle and call-length policy.
    pub dial: Dial,
    /// `[link.schedule]`: calls made without being asked.
    pub schedule: Schedule,
    /// `[link.tariff]`: what a call costs, for the call log.
    pub tariff: Tariff,
    /// `[link.ppp]`: what runs on the line after CONNECT, and when the link counts as up.
    pub ppp: Ppp,
    /// `[link.simulator]`: how the built-in modem simulator behaves (device `"sim"`).
    pub simulator: Simulator,
}

impl Default for Link {
    fn default() -> Link {
        Link {
            mode: Mode::Permanent,
            time_zone: String::new(),
            modem: Modem::default(),
            dial: Dial::default(),
            schedule: Schedule::default(),
            tariff: Tariff::default(),
            ppp: Ppp::default(),
            simulator: Simulator::default(),
        }
    }
}

/// Permanent or on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Always up (a leased line, DSL, a LAN router): nothing is dialled.
    Permanent,
    /// A modem dialled when needed and hung up when idle.
    OnDemand,
}

impl std::fmt::Display for Mode {
    /// As written in the configuration file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Permanent => "permanent",
            Mode::OnDemand => "on-demand",
        })
    }
}

/// How the modem is hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hangup {
    /// The escape sequence `+++` between guard times, then `ATH`.
    Escape,
    /// Drop DTR (the modem needs `AT&D2`); falls back to the escape where the port has no
    /// modem lines.
    Dtr,
}

/// `[link.modem]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Modem {
    /// The serial device, e.g. `/dev/ttyS0` or `/dev/ttyUSB0`; `"sim"` runs the built-in modem
    /// simulator on a pty (dev mode).
    pub device: String,
    /// The port speed in bit/s.
    pub speed: u32,
    /// The UUCP lock directory (`LCK..ttyS0` goes here).
    pub lock_dir: PathBuf,
    /// Command lines sent before each dial; each must answer OK.
    pub init: Vec<String>,
    /// The number to dial (phone modems).
    pub number: String,
    /// The dial command prefix: `ATDT` (tone) or `ATDP` (pulse).
    pub dial_prefix: String,
    /// For a cellular modem: the access point name. When set, the modem is told
    /// `AT+CGDCONT=1,"IP","<apn>"` and dials `ATD*99#` instead of `number`.
    pub apn: String,
    /// How long a command may take, in seconds.
    pub command_timeout_secs: u64,
    /// How long a dial may take before it is aborted, in seconds.
    pub dial_timeout_secs: u64,
    /// How to hang up.
    pub hangup: Hangup,
    /// The escape guard time in milliseconds (the modem's S12, 1 s by default).
    pub guard_time_ms: u64,
}

impl Default for Modem {
    fn default() -> Modem {
        Modem {
            device: "/dev/ttyS0".into(),
            speed: 115_200,
            lock_dir: "/var/lock".into(),
            init: vec!["ATZ".into(), "ATE0V1&D2".into()],
            number: String::new(),
            dial_prefix: "ATDT".into(),
            apn: String::new(),
            command_timeout_secs: 5,
            dial_timeout_secs: 90,
            hangup: Hangup::Escape,
            guard_time_ms: 1000,
        }
    }
}

/// `[link.dial]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dial {
    /// Dial attempts per call before giving up (BUSY, NO ANSWER, NO CARRIER, no result).
    pub max_attempts: u32,
    /// The pause before the first redial, in seconds; it doubles with every attempt.
    pub backoff_initial_secs: u64,
    /// The longest pause between redials, in seconds.
    pub backoff_max_secs: u64,
    /// NO DIALTONE this soon after a hang-up (seconds) means the line is still resting.
    pub line_rest_window_secs: u64,
    /// Then wait this long (seconds) and dial again.
    pub line_rest_secs: u64,
    /// At most this many times per call.
    pub line_rest_retries: u32,
    /// Hang up after this many seconds up with no holds.
    pub idle_timeout_secs: u64,
    /// Hang up after this many seconds connected, whatever holds there are.
    pub max_call_secs: u64,
    /// How long PPP may take to pass its check after CONNECT, in seconds.
    pub up_timeout_secs: u64,
}

impl Default for Dial {
    fn default() -> Dial {
        Dial {
            max_attempts: 5,
            backoff_initial_secs: 30,
            backoff_max_secs: 600,
            line_rest_window_secs: 10,
            line_rest_secs: 5,
            line_rest_retries: 3,
            idle_timeout_secs: 120,
            max_call_secs: 3600,
            up_timeout_secs: 60,
        }
    }
}

/// `[link.schedule]`: a call every so many minutes, by period; 0 turns a period off.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Schedule {
    /// Office days, as `"mon"` .. `"sun"`.
    pub office_days: Vec<String>,
    /// Office hours on those days, `"08:00-18:00"`.
    pub office_hours: String,
    /// Minutes between calls during office hours.
    pub office_interval_mins: u32,
    /// Minutes between calls on office days outside office hours.
    pub off_hours_interval_mins: u32,
    /// Minutes between calls on the other days.
    pub weekend_interval_mins: u32,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule {
            office_days: ["mon", "tue", "wed", "thu", "fri"]
                .map(String::from)
                .to_vec(),
            office_hours: "08:00-18:00".into(),
            office_interval_mins: 60,
            off_hours_interval_mins: 240,
            weekend_interval_mins: 480,
        }
    }
}

/// `[link.tariff]`: per-call charge plus a per-minute rate by time of day, in the smallest
/// unit of `currency` (cents).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tariff {
    /// The currency's code, for display.
    pub currency: String,
    /// Charged once for every connected call.
    pub per_call: u64,
    /// Per started minute, outside every listed period.
    pub per_minute: u64,
    /// `[[link.tariff.periods]]`: other per-minute rates by time of day; the first that
    /// matches the call's start wins.
    pub periods: Vec<TariffPeriod>,
}

impl Default for Tariff {
    fn default() -> Tariff {
        Tariff {
            currency: "EUR".into(),
            per_call: 0,
            per_minute: 0,
            periods: Vec::new(),
        }
    }
}

/// One tariff period.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TariffPeriod {
    /// Days it applies on (`"mon"` .. `"sun"`); empty for every day.
    pub days: Vec<String>,
    /// `"08:00-18:00"`; a range past midnight (`"22:00-06:00"`) wraps.
    pub hours: String,
    /// Per started minute.
    pub per_minute: u64,
}

impl Default for TariffPeriod {
    fn default() -> TariffPeriod {
        TariffPeriod {
            days: Vec::new(),
            hours: "00:00-24:00".into(),
            per_minute: 0,
        }
    }
}

/// `[link.ppp]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ppp {
    /// The program run on the line after CONNECT, with the serial port as its standard input
    /// and output (pppd uses its stdin tty when given no device).
    pub command: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// When the link counts as up: `"route:ppp0"` (a route through that interface appears
    /// in /proc/net/route), `"tcp:host:port"` (that address accepts a connection), or
    /// `"started"` (as soon as the program runs; for tests and dev mode only).
    pub up_check: String,
}

impl Default for Ppp {
    fn default() -> Ppp {
        Ppp {
            command: "/usr/sbin/pppd".into(),
            // pppd starts on a line we dialled and locked: no `connect` script, no `lock`, no
            // `persist` (the dialling policy decides about the next call).
            args: ["nodetach", "noauth", "defaultroute", "usepeerdns"]
                .map(String::from)
                .to_vec(),
            up_check: "route:ppp0".into(),
        }
    }
}

/// `[link.simulator]`: the modem simulator behind device `"sim"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Simulator {
    /// Answer BUSY to this many dials first.
    pub busy_first: u32,
    /// Then: `"connect"`, `"busy"`, `"no-dialtone"`, `"no-answer"`, `"no-carrier"`, `"error"`.
    pub answer: String,
    /// The rate in CONNECT.
    pub rate: u32,
    /// Write results in two pieces.
    pub split: bool,
    /// A dial this soon after a hang-up (ms) gets NO DIALTONE.
    pub line_rest_ms: u64,
    /// How long a dial takes (ms).
    pub dial_delay_ms: u64,
}

impl Default for Simulator {
    fn default() -> Simulator {
        Simulator {
            busy_first: 0,
            answer: "connect".into(),
            rate: 33600,
            split: false,
            line_rest_ms: 0,
            dial_delay_ms: 1000,
        }
    }
}

/// Parses `"08:00-18:00"` into minutes since midnight (from, to); `24:00` is the end of the day.
/// A range with `to <= from` wraps past midnight.
pub fn parse_hours(text: &str) -> Option<(u32, u32)> {
    let (from, to) = text.split_once('-')?;
    let minutes = |s: &str| -> Option<u32> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        // `then`, not `then_some`: an hour like 99999999 must not be multiplied before the check.
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then(|| h * 60 + m)
    };
    Some((minutes(from)?, minutes(to)?))
}

/// Parses a day name (`"mon"` .. `"sun"`, or the full English name) into 0 (Monday) .. 6.
pub fn parse_day(name: &str) -> Option<u8> {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let lower = name.to_ascii_lowercase();
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    days.iter()
        .zip(full)
        .position(|(short, long)| lower == *short || lower == long)
        .map(|i| i as u8)
}

fn check_days(days: &[String], at: &str, report: &mut Report) {
    for (i, day) in days.iter().enumerate() {
        if parse_day(day).is_none() {
            report.add(
                index(at, i),
                format!("{day:?} is not a day of the week (mon .. sun)"),
            );
        }
    }
}

impl Check for Link {
    fn check(&self, at: &str, report: &mut Report) {
        let on_demand = self.mode == Mode::OnDemand;
        let modem = key(at, "modem");
        if on_demand && self.modem.device.is_empty() {
            report.add(
                key(&modem, "device"),
                "is empty; give the modem's serial device or \"sim\"",
            );
        }
        if on_demand && self.modem.number.is_empty() && self.modem.apn.is_empty() {
            report.add(
                key(&modem, "number"),
                "is empty; give the number to dial (or modem.apn)",
            );
        }
        let dial = key(at, "dial");
        if self.dial.max_attempts == 0 {
            report.add(key(&dial, "max_attempts"), "must be at least 1");
        }
        let schedule = key(at, "schedule");
        check_days(
            &self.schedule.office_days,
            &key(&schedule, "office_days"),
            report,
        );
        if parse_hours(&self.schedule.office_hours).is_none() {
            report.add(
                key(&schedule, "office_hours"),
                format!(
                    "{:?} is not a range of hours like \"08:00-18:00\"",
                    self.schedule.office_hours
                ),
            );
        }
        let periods = key(&key(at, "tariff"), "periods");
        for (i, period) in self.tariff.periods.iter().enumerate() {
            let at = index(&periods, i);
            check_days(&period.days, &key(&at, "days"), report);
            if parse_hours(&period.hours).is_none() {
                report.add(
                    key(&at, "hours"),
                    format!("{:?} is not a range of hours", period.hours),
                );
            }
        }
        let check = &self.ppp.up_check;
        let known = check == "started"
            || check.strip_prefix("route:").is_some_and(|i| !i.is_empty())
            || check.strip_prefix("tcp:").is_some_and(|a| a.contains(':'));
        if !known {
            report.add(
                key(&key(at, "ppp"), "up_check"),
                format!("{check:?} is none of \"route:IFACE\", \"tcp:HOST:PORT\", \"started\""),
            );
        }
        let answers = [
            "connect",
            "busy",
            "no-dialtone",
            "no-answer",
            "no-carrier",
            "error",
        ];
        if !answers.contains(&self.simulator.answer.as_str()) {
            report.add(
                key(&key(at, "simulator"), "answer"),
                format!(
                    "{:?} is none of {}",
                    self.simulator.answer,
                    answers.join(", ")
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn link_mistakes_are_reported_with_their_keys() {
        let text = "[link]\nmode = \"on-demand\"\n[link.modem]\nnumber = \"1\"\n\
                    [link.schedule]\noffice_hours = \"25:00-18:00\"\noffice_days = [\"mon\", \"funday\"]\n\
                    [link.ppp]\nup_check = \"ping\"\n";
        let mistakes = Config::parse(text).unwrap_err().join("\n");
        assert!(
            mistakes.contains("link.schedule.office_hours"),
            "{mistakes}"
        );
        assert!(
            mistakes.contains("link.schedule.office_days[1]"),
            "{mistakes}"
        );
        assert!(mistakes.contains("link.ppp.up_check"), "{mistakes}");
    }

    #[test]
    fn defaults_and_the_dev_example_pass() {
        assert!(Config::parse("[link]\nmode = \"permanent\"\n").is_ok());
        let dev = include_str!("../../../examples/dev.toml");
        let parsed = Config::parse(dev);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert_eq!(parsed.unwrap().link.modem.device, "sim");
        assert_eq!(parse_hours("22:00-06:00"), Some((1320, 360)));
        assert_eq!(parse_day("Sunday"), Some(6));
    }
}
