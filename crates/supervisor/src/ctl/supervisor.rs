//! The subcommands answered by the supervisor: status, restart, reload, logs.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use postroom_control::Status;

use super::Ctl;
use super::output::{out, outln};
use crate::logs::{LogLine, Stream};
use crate::status::{
    ComponentStatus, LogsReply, ReloadReply, RestartReply, State, SupervisorDetail,
};

/// `ctl status`.
pub fn status(ctl: &Ctl) -> anyhow::Result<()> {
    let client = ctl.client("supervisor")?;
    if ctl.json {
        let value: serde_json::Value = client.get_json("/status")?;
        outln!("{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let status: Status<SupervisorDetail> = client.get_json("/status")?;
    out!("{}", render_status(&status))?;
    Ok(())
}

/// `ctl restart NAME`.
pub fn restart(ctl: &Ctl, name: &str) -> anyhow::Result<()> {
    let path = format!("/components/{name}/restart");
    let reply: RestartReply = ctl.client("supervisor")?.post_json(&path, &())?;
    if ctl.json {
        outln!("{}", serde_json::to_string(&reply)?)?;
    } else {
        outln!("restarting {}", reply.restarting)?;
    }
    Ok(())
}

/// How long `ctl reload` waits for the mail component to apply the file.
const MAIL_RELOAD_WAIT: Duration = Duration::from_secs(10);

/// `ctl reload`. The supervisor answers once it has sent SIGHUP; the mail component applies
/// the file a moment later. So that a script may log in as a user it has just added, ctl
/// waits until mail's reload count moves.
pub fn reload(ctl: &Ctl) -> anyhow::Result<()> {
    let mail = ctl
        .client("mail")
        .ok()
        .map(|c| c.with_timeout(Duration::from_secs(2)));
    let mail_before = mail.as_ref().and_then(mail_reloads);
    let reply: ReloadReply = ctl.client("supervisor")?.post_json("/reload", &())?;
    let mail_applied = match mail_before {
        Some(before) if reply.signalled.iter().any(|c| c == "mail") => {
            let mail = mail.as_ref().expect("the count came from it");
            let deadline = Instant::now() + MAIL_RELOAD_WAIT;
            loop {
                if mail_reloads(mail).is_some_and(|now| now > before) {
                    break Some(true);
                }
                if Instant::now() >= deadline {
                    break Some(false);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        _ => None,
    };
    if ctl.json {
        outln!("{}", serde_json::to_string(&reply)?)?;
    } else {
        for (what, names) in [
            ("started", &reply.started),
            ("stopped", &reply.stopped),
            ("restarted", &reply.restarted),
        ] {
            if !names.is_empty() {
                outln!("{what}: {}", names.join(", "))?;
            }
        }
        if reply.signalled.is_empty() {
            outln!("no running component to ask to reload")?;
        } else {
            outln!("asked to reload: {}", reply.signalled.join(", "))?;
        }
        match mail_applied {
            Some(true) => outln!("mail: the new configuration applies to new connections")?,
            Some(false) => outln!(
                "mail: not applied within {} s; see `postroom ctl logs mail`",
                MAIL_RELOAD_WAIT.as_secs()
            )?,
            None => {}
        }
    }
    Ok(())
}

/// The mail component's count of applied reloads, if it answers and reports one.
fn mail_reloads(mail: &postroom_control::BlockingClient) -> Option<u64> {
    let status: serde_json::Value = mail.get_json("/status").ok()?;
    status["detail"]["reloads"].as_u64()
}

/// `ctl logs [NAME]`.
pub fn logs(ctl: &Ctl, name: Option<&str>, lines: usize) -> anyhow::Result<()> {
    let mut path = format!("/logs?lines={lines}");
    if let Some(name) = name {
        // Component names are plain words; anything else would not name a component anyway.
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            anyhow::bail!("{name:?} is not a component name");
        }
        path.push_str("&component=");
        path.push_str(name);
    }
    let reply: LogsReply = ctl.client("supervisor")?.get_json(&path)?;
    if ctl.json {
        outln!("{}", serde_json::to_string_pretty(&reply)?)?;
        return Ok(());
    }
    for (component, lines) in &reply.components {
        for line in lines {
            outln!("{}", render_line(component, line))?;
        }
    }
    Ok(())
}

/// The status table for people.
fn render_status(status: &Status<SupervisorDetail>) -> String {
    let mut out = String::new();
    let detail = &status.detail;
    let _ = writeln!(
        out,
        "supervisor  pid {}  up {}  version {}",
        status.pid,
        duration(status.uptime_secs),
        status.version
    );
    let watchdog = &detail.watchdog;
    let device = match &watchdog.device {
        Some(path) => path.display().to_string(),
        None => "none".to_owned(),
    };
    let petting = match &watchdog.withheld {
        Some(reason) => format!("NOT PETTED: {reason}"),
        None => format!("petted {} times", watchdog.pets),
    };
    let _ = writeln!(out, "watchdog    {device}  {petting}\n");

    let _ = writeln!(
        out,
        "{:<12} {:<9} {:>8} {:>9} {:>8}  LAST EXIT",
        "COMPONENT", "STATE", "PID", "UPTIME", "RESTARTS"
    );
    for c in &detail.components {
        let _ = writeln!(
            out,
            "{:<12} {:<9} {:>8} {:>9} {:>8}  {}",
            name_column(c),
            state_word(c),
            c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            c.uptime_secs.map(duration).unwrap_or_else(|| "-".into()),
            c.restarts,
            last_exit(c),
        );
        if c.failing {
            let _ = writeln!(
                out,
                "    failing after {} crashes in a row; last lines:",
                c.crashes
            );
            for line in &c.last_lines {
                let _ = writeln!(out, "    | {line}");
            }
        }
    }
    out
}

fn name_column(c: &ComponentStatus) -> String {
    if c.critical {
        format!("{}*", c.name)
    } else {
        c.name.clone()
    }
}

fn state_word(c: &ComponentStatus) -> &'static str {
    if c.failing && c.state != State::Up {
        return "FAILING";
    }
    match c.state {
        State::Starting => "starting",
        State::Up => "up",
        State::Stopping => "stopping",
        State::Waiting => "waiting",
        State::Stopped => "stopped",
    }
}

fn last_exit(c: &ComponentStatus) -> String {
    let Some(exit) = &c.last_exit else {
        return "-".into();
    };
    let mut text = exit.description.clone();
    if let Some(reason) = &exit.reason {
        let _ = write!(text, " ({reason})");
    }
    if let Some(ms) = c.next_start_in_ms {
        let _ = write!(text, "; next start in {}", duration(ms.div_ceil(1000)));
    }
    text
}

fn render_line(component: &str, line: &LogLine) -> String {
    let stream = match line.stream {
        Stream::Stdout => "out",
        Stream::Stderr => "err",
    };
    format!("{component}[{}] {stream}: {}", line.pid, line.text)
}

/// `3d04h`, `2h03m`, `5m07s`, `42s`.
pub(super) fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_the_two_largest_units() {
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(307), "5m07s");
        assert_eq!(duration(7380), "2h03m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 5), "3d04h");
    }
}
