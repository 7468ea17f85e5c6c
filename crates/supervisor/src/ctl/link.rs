//! `postroom ctl link`: the link component's status, call log and events, and holding,
//! dialling and hanging up by hand. Replies are read as JSON values, so ctl does not depend
//! on the link crate.

use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};

use super::Ctl;
use super::output::{out, outln};

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
    match command.unwrap_or(LinkCommand::Status) {
        LinkCommand::Status => {
            let status: Value = client.get_json("/status")?;
            if ctl.json {
                outln!("{}", serde_json::to_string_pretty(&status)?)?;
            } else {
                out!("{}", render_status(&status["detail"]))?;
            }
        }
        LinkCommand::Calls { limit } => {
            let calls: Value = client.get_json(&format!("/calls?limit={limit}"))?;
            if ctl.json {
                outln!("{}", serde_json::to_string_pretty(&calls)?)?;
            } else {
                out!("{}", render_calls(&calls))?;
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
                        text(&change["at"]),
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

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn render_status(d: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!("mode:     {}\n", text(&d["mode"])));
    out.push_str(&format!(
        "state:    {} since {}\n",
        text(&d["state"]),
        text(&d["since"])
    ));
    if d["mode"] == "on-demand" {
        out.push_str(&format!("device:   {}\n", text(&d["device"])));
        let call = &d["current_call"];
        if call.is_object() {
            out.push_str(&format!(
                "call:     attempt {} ({}), dialled {}, connected {}\n",
                text(&call["attempt"]),
                text(&call["reason"]),
                text(&call["start"]),
                text(&call["connected"])
            ));
        }
        if !d["redial_at"].is_null() {
            out.push_str(&format!("redial:   {}\n", text(&d["redial_at"])));
        }
        out.push_str(&format!(
            "next scheduled call: {}\n",
            text(&d["next_scheduled_call"])
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
            text(&h["since"]),
            text(&h["reason"])
        ));
    }
    out
}

fn render_calls(calls: &Value) -> String {
    let mut out = format!(
        "{:>5}  {:<20}  {:>8}  {:<12}  {:>6}  {}\n",
        "id", "start", "secs", "result", "cost", "hangup"
    );
    for c in calls.as_array().into_iter().flatten() {
        let start = text(&c["start"]);
        out.push_str(&format!(
            "{:>5}  {:<20}  {:>8}  {:<12}  {:>6}  {}{}\n",
            text(&c["id"]),
            start.get(..19).unwrap_or(&start),
            text(&c["duration_secs"]),
            text(&c["result"]),
            text(&c["cost"]),
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

    #[test]
    fn status_shows_state_call_and_holds() {
        let d = json!({
            "mode": "on-demand", "device": "/dev/ttyS0", "state": "up",
            "since": "2026-12-03T09:00:05Z",
            "current_call": {"start": "2026-12-03T09:00:00Z", "connected": "2026-12-03T09:00:05Z",
                             "attempt": 1, "reason": "hold"},
            "next_scheduled_call": null, "redial_at": null, "last_failure": null,
            "holds": [{"id": 3, "reason": "mail", "since": "2026-12-03T08:59:59Z"}]
        });
        let text = render_status(&d);
        assert!(
            text.contains("state:    up since 2026-12-03T09:00:05Z"),
            "{text}"
        );
        assert!(text.contains("attempt 1 (hold)"), "{text}");
        assert!(
            text.contains("   3  since 2026-12-03T08:59:59Z  mail"),
            "{text}"
        );
    }

    #[test]
    fn calls_show_result_cost_and_giving_up() {
        let calls = json!([{"id": 1, "start": "2026-12-03T09:00:00Z", "duration_secs": 0,
                            "result": "BUSY", "cost": 0, "hangup": null, "gave_up": true}]);
        let text = render_calls(&calls);
        assert!(
            text.contains("BUSY") && text.contains("(gave up)"),
            "{text}"
        );
    }
}
