//! `postroom ctl link`: the link component's status, call log and events, and holding,
//! dialling and hanging up by hand. Replies are read as JSON values, so ctl does not depend
//! on the link crate.
//!
//! For people, times are shown in the link's `time_zone` with the zone's abbreviation, and
//! costs in the tariff's currency; `--json` keeps what the link sent (UTC timestamps, costs in
//! the currency's smallest unit).

use std::time::Duration;

use clap::Subcommand;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use postroom_config::link::Link;
use serde_json::{Value, json};

use super::Ctl;
use super::output::{out, outln};
use super::supervisor::duration;

/// How long `ctl link hold` waits for the link: dialling with redials can take minutes.
const HOLD_WAIT: Duration = Duration::from_secs(30 * 60);

/// `postroom ctl link ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum LinkCommand {
    /// State, since when, the current call, the next scheduled call, holds (the default).
    Status,
    /// The call log: start, duration, result, cost.
    Calls {
        /// How many of the newest calls.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
    },
    /// Follow the state changes until interrupted.
    Events,
    /// Hold the link up; answers once it is up (or failed). Release with `ctl link release ID`.
    Hold {
        /// Why (shown in the status).
        #[arg(default_value = "held by hand (ctl)")]
        reason: String,
    },
    /// Release a hold.
    Release {
        /// The hold's id.
        id: u64,
    },
    /// Dial now.
    Dial,
    /// Hang up now.
    Hangup,
}

/// Runs `ctl link`.
pub fn run(ctl: &Ctl, command: Option<LinkCommand>) -> anyhow::Result<()> {
    let client = ctl.client("link")?;
    let units = Units::of(&ctl.config.link);
    match command.unwrap_or(LinkCommand::Status) {
        LinkCommand::Status => {
            let status: Value = client.get_json("/status")?;
            if ctl.json {
                outln!("{}", serde_json::to_string_pretty(&status)?)?;
            } else {
                out!("{}", render_status(&status["detail"], &units))?;
            }
        }
        LinkCommand::Calls { limit } => {
            let calls: Value = client.get_json(&format!("/calls?limit={limit}"))?;
            if ctl.json {
                outln!("{}", serde_json::to_string_pretty(&calls)?)?;
            } else {
                out!("{}", render_calls(&calls, &units))?;
            }
        }
        LinkCommand::Events => {
            // The stream ends only when the link does, so a reader gone away ends it here.
            let mut written = Ok(());
            client.for_each_line("/events", |line| {
                written = if ctl.json {
                    outln!("{line}")
                } else if let Ok(change) = serde_json::from_str::<Value>(line) {
                    outln!(
                        "{}  {:<11} {}",
                        units.time(&change["at"]),
                        text(&change["state"]),
                        text(&change["detail"])
                    )
                } else {
                    Ok(())
                };
                written.is_ok()
            })?;
            written?;
        }
        LinkCommand::Hold { reason } => {
            let client = client.with_timeout(HOLD_WAIT);
            let reply: Value = client.post_json("/hold", &json!({ "reason": reason }))?;
            if ctl.json {
                outln!("{reply}")?;
            } else {
                outln!(
                    "link up; hold {} (release with `postroom ctl link release {}`)",
                    reply["id"],
                    reply["id"]
                )?;
            }
        }
        LinkCommand::Release { id } => {
            client.delete(&format!("/hold/{id}"))?;
            if !ctl.json {
                outln!("hold {id} released")?;
            }
        }
        LinkCommand::Dial => {
            let _: Value = client.post_json("/dial", &())?;
            if !ctl.json {
                outln!("dialling")?;
            }
        }
        LinkCommand::Hangup => {
            let _: Value = client.post_json("/hangup", &())?;
            if !ctl.json {
                outln!("hanging up")?;
            }
        }
    }
    Ok(())
}

/// How the link's times and costs read for people.
#[derive(Debug)]
struct Units {
    /// The link's time zone, as it uses it for schedules and tariffs.
    zone: TimeZone,
    /// Its name, for the heading.
    zone_name: String,
    /// The tariff's currency code; costs are in its smallest unit.
    currency: String,
}

impl Units {
    /// The zone and currency of `[link]`. The zone is found as the link finds it (its name, or
    /// the system's when empty); one that cannot be found is shown as UTC, and says so.
    fn of(link: &Link) -> Units {
        let named = if link.time_zone.is_empty() {
            TimeZone::try_system().ok()
        } else {
            TimeZone::get(&link.time_zone).ok()
        };
        let (zone, zone_name) = match named {
            Some(zone) => {
                let name = match zone.iana_name() {
                    Some(name) => name.to_owned(),
                    None if link.time_zone.is_empty() => "the system's time zone".to_owned(),
                    None => link.time_zone.clone(),
                };
                (zone, name)
            }
            None => (TimeZone::UTC, "UTC".to_owned()),
        };
        Units {
            zone,
            zone_name,
            currency: link.tariff.currency.clone(),
        }
    }

    /// `2026-12-03 10:00:05 CET` for an RFC 3339 timestamp; anything else as it is.
    fn time(&self, v: &Value) -> String {
        let Some(at) = v.as_str().and_then(|s| s.parse::<Timestamp>().ok()) else {
            return text(v);
        };
        at.to_zoned(self.zone.clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    /// `0.10 EUR` for 10 (cents); without a currency, the bare number.
    fn cost(&self, v: &Value) -> String {
        let Some(minor) = v.as_u64() else {
            return text(v);
        };
        if self.currency.is_empty() {
            return minor.to_string();
        }
        let digits = minor_digits(&self.currency);
        if digits == 0 {
            return format!("{minor} {}", self.currency);
        }
        let scale = 10u64.pow(digits);
        format!(
            "{}.{:0width$} {}",
            minor / scale,
            minor % scale,
            self.currency,
            width = digits as usize
        )
    }

    /// The heading that says which zone and currency the table is in.
    fn heading(&self) -> String {
        if self.currency.is_empty() {
            format!("times in {}", self.zone_name)
        } else {
            format!("times in {}, costs in {}", self.zone_name, self.currency)
        }
    }
}

/// The digits after the decimal point of a currency's smallest unit (ISO 4217 minor unit):
/// 2 for most, 0 or 3 for the few listed.
fn minor_digits(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn render_status(d: &Value, units: &Units) -> String {
    let mut out = String::new();
    out.push_str(&format!("mode:     {}\n", text(&d["mode"])));
    out.push_str(&format!(
        "state:    {} since {}\n",
        text(&d["state"]),
        units.time(&d["since"])
    ));
    if d["mode"] == "on-demand" {
        out.push_str(&format!("device:   {}\n", text(&d["device"])));
        let call = &d["current_call"];
        if call.is_object() {
            out.push_str(&format!(
                "call:     attempt {} ({}), dialled {}, connected {}\n",
                text(&call["attempt"]),
                text(&call["reason"]),
                units.time(&call["start"]),
                units.time(&call["connected"])
            ));
        }
        if !d["redial_at"].is_null() {
            out.push_str(&format!("redial:   {}\n", units.time(&d["redial_at"])));
        }
        out.push_str(&format!(
            "next scheduled call: {}\n",
            units.time(&d["next_scheduled_call"])
        ));
        if !d["last_failure"].is_null() {
            out.push_str(&format!("last failure: {}\n", text(&d["last_failure"])));
        }
    }
    let holds = d["holds"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("holds:    {}\n", holds.len()));
    for h in holds {
        out.push_str(&format!(
            "  {:>4}  since {}  {}\n",
            text(&h["id"]),
            units.time(&h["since"]),
            text(&h["reason"])
        ));
    }
    out
}

fn render_calls(calls: &Value, units: &Units) -> String {
    let mut out = format!(
        "{}\n{:>5}  {:<24}  {:>8}  {:<12}  {:>12}  {}\n",
        units.heading(),
        "id",
        "start",
        "duration",
        "result",
        "cost",
        "hang-up"
    );
    for c in calls.as_array().into_iter().flatten() {
        let connected = c["duration_secs"]
            .as_u64()
            .map(duration)
            .unwrap_or_else(|| text(&c["duration_secs"]));
        out.push_str(&format!(
            "{:>5}  {:<24}  {:>8}  {:<12}  {:>12}  {}{}\n",
            text(&c["id"]),
            units.time(&c["start"]),
            connected,
            text(&c["result"]),
            units.cost(&c["cost"]),
            text(&c["hangup"]),
            if c["gave_up"] == true {
                " (gave up)"
            } else {
                ""
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(zone: &str, currency: &str) -> Units {
        let mut link = Link {
            time_zone: zone.into(),
            ..Link::default()
        };
        link.tariff.currency = currency.into();
        Units::of(&link)
    }

    #[test]
    fn status_shows_state_call_and_holds_in_the_links_time_zone() {
        let d = json!({
            "mode": "on-demand", "device": "/dev/ttyS0", "state": "up",
            "since": "2026-12-03T09:00:05Z",
            "current_call": {"start": "2026-12-03T09:00:00Z", "connected": "2026-12-03T09:00:05Z",
                             "attempt": 1, "reason": "hold"},
            "next_scheduled_call": null, "redial_at": null, "last_failure": null,
            "holds": [{"id": 3, "reason": "mail", "since": "2026-12-03T08:59:59Z"}]
        });
        let text = render_status(&d, &units("Europe/Vienna", "EUR"));
        assert!(
            text.contains("state:    up since 2026-12-03 10:00:05 CET"),
            "{text}"
        );
        assert!(text.contains("attempt 1 (hold)"), "{text}");
        assert!(
            text.contains("   3  since 2026-12-03 09:59:59 CET  mail"),
            "{text}"
        );
    }

    /// The call log used to show `2026-12-03T09:00:00` (UTC, but not saying so) and a cost of
    /// `10` in no unit.
    #[test]
    fn call_log_shows_local_times_with_their_zone_and_costs_in_the_currency() {
        let calls = json!([
            {"id": 1, "start": "2026-12-03T09:00:00Z", "duration_secs": 0,
             "result": "BUSY", "cost": 0, "hangup": null, "gave_up": true},
            {"id": 2, "start": "2026-07-03T09:00:00Z", "duration_secs": 307,
             "result": "connected", "cost": 1234, "hangup": "idle", "gave_up": false}
        ]);
        let text = render_calls(&calls, &units("Europe/Vienna", "EUR"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "times in Europe/Vienna, costs in EUR", "{text}");
        assert!(
            lines[2].contains("2026-12-03 10:00:00 CET")
                && lines[2].contains("BUSY")
                && lines[2].contains("0.00 EUR")
                && lines[2].ends_with("(gave up)"),
            "{text}"
        );
        assert!(
            lines[3].contains("2026-07-03 11:00:00 CEST")
                && lines[3].contains("5m07s")
                && lines[3].contains("12.34 EUR  idle"),
            "{text}"
        );
    }

    #[test]
    fn costs_follow_the_currencys_minor_unit() {
        assert_eq!(units("UTC", "JPY").cost(&json!(120)), "120 JPY");
        assert_eq!(units("UTC", "KWD").cost(&json!(1005)), "1.005 KWD");
        assert_eq!(units("UTC", "CHF").cost(&json!(5)), "0.05 CHF");
        assert_eq!(units("UTC", "").cost(&json!(5)), "5");
    }

    #[test]
    fn an_unknown_time_zone_shows_utc_and_says_so() {
        let units = units("Mars/Olympus", "EUR");
        assert_eq!(units.heading(), "times in UTC, costs in EUR");
        assert_eq!(
            units.time(&json!("2026-12-03T09:00:00Z")),
            "2026-12-03 09:00:00 UTC"
        );
    }
}
