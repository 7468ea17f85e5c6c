//! `postroom ctl queue`: the mail component's outbound queue: list (with decoded From and
//! Subject), flush, delete, bounce. Replies are read as JSON values, so ctl does not depend on
//! the queue crate.

use clap::Subcommand;
use serde_json::Value;

use super::Ctl;
use super::output::{out, outln};

/// `postroom ctl queue ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum QueueCommand {
    /// Every entry: id, age, size, sender, From, Subject, recipients, attempts, next try,
    /// last error (the default).
    List,
    /// Try every entry now. While the link is down, mail for remote recipients keeps waiting
    /// for it (it is sent when the link is up; `ctl link dial` dials now).
    Flush,
    /// Remove an entry without telling its sender.
    Delete {
        /// The queue id, as the list shows it.
        id: String,
    },
    /// Give up on an entry now: its sender gets a failure notice.
    Bounce {
        /// The queue id, as the list shows it.
        id: String,
    },
}

/// Runs `ctl queue`.
pub fn run(ctl: &Ctl, command: Option<QueueCommand>) -> anyhow::Result<()> {
    let client = ctl.client("mail")?;
    match command.unwrap_or(QueueCommand::List) {
        QueueCommand::List => {
            let listing: Value = client.get_json("/queue")?;
            if ctl.json {
                outln!("{}", serde_json::to_string_pretty(&listing)?)?;
            } else {
                out!("{}", render(&listing, now()))?;
            }
        }
        QueueCommand::Flush => {
            let reply: Value = client.post_json("/queue/flush", &())?;
            if ctl.json {
                outln!("{reply}")?;
            } else {
                out!("{}", render_flush(&reply))?;
            }
        }
        QueueCommand::Delete { id } => {
            client.delete(&format!("/queue/{id}"))?;
            if !ctl.json {
                outln!("{id} deleted")?;
            }
        }
        QueueCommand::Bounce { id } => {
            let reply: Value = client.post_json(&format!("/queue/{id}/bounce"), &())?;
            if ctl.json {
                outln!("{reply}")?;
            } else {
                outln!("{id} bounced: the sender gets a failure notice")?;
            }
        }
    }
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A span of seconds as people say it: 45s, 12m, 3h, 2d.
fn span(secs: i64) -> String {
    let (sign, s) = if secs < 0 { ("-", -secs) } else { ("", secs) };
    match s {
        0..60 => format!("{sign}{s}s"),
        60..3_600 => format!("{sign}{}m", s / 60),
        3_600..86_400 => format!("{sign}{}h", s / 3_600),
        _ => format!("{sign}{}d", s / 86_400),
    }
}

/// `n` with the noun for one or for many: "1 message", "2 messages".
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What `ctl queue flush` did. With the link down remote mail was not tried, which is not a
/// failure: it goes when the link is up.
fn render_flush(reply: &Value) -> String {
    if reply["held"] != true {
        return "queue flushed: every message is being tried now\n".to_owned();
    }
    let waiting = reply["waiting_for_link"].as_u64().unwrap_or(0) as usize;
    if waiting == 0 {
        return "queue flushed: every message is being tried now (the link is down, but no \
                message waits for it)\n"
            .to_owned();
    }
    format!(
        "the link is down: {} for remote recipients will be sent when the link is up \
         (`postroom ctl link dial` dials now); local and fax deliveries are being tried now\n",
        count(waiting, "message", "messages"),
    )
}

fn render(listing: &Value, now: u64) -> String {
    let entries = listing["entries"].as_array().cloned().unwrap_or_default();
    let held = listing["held"] == true;
    let mut out = String::new();
    if held {
        out.push_str(
            "the link is down: mail for remote recipients waits and is sent when the link is up \
             (`postroom ctl link dial` dials now)\n",
        );
    }
    if entries.is_empty() {
        out.push_str("the queue is empty\n");
        return out;
    }
    for e in &entries {
        let age = now as i64 - e["arrived"].as_i64().unwrap_or(now as i64);
        let next = e["next_attempt"].as_i64().unwrap_or(now as i64) - now as i64;
        let recipients = e["recipients"].as_array().cloned().unwrap_or_default();
        let pending = recipients.iter().filter(|r| r["status"] == "pending");
        let only_remote_pending =
            pending.clone().count() > 0 && pending.clone().all(|r| r["destination"] == "remote");
        let next_try = if held && only_remote_pending {
            "when the link is up".to_owned()
        } else if next <= 0 {
            "now".to_owned()
        } else {
            format!("in {}", span(next))
        };
        let sender = match e["sender"].as_str() {
            Some("") => "<> (notice)".to_owned(),
            _ => text(&e["sender"]),
        };
        out.push_str(&format!(
            "{}  {:>8} octets  age {}  attempts {}  next try {}\n",
            text(&e["id"]),
            text(&e["size"]),
            span(age),
            text(&e["attempts"]),
            next_try,
        ));
        out.push_str(&format!("    sender:  {sender}\n"));
        out.push_str(&format!("    from:    {}\n", text(&e["from"])));
        out.push_str(&format!("    subject: {}\n", text(&e["subject"])));
        for r in &recipients {
            out.push_str(&format!(
                "    to:      {} ({}, {})",
                text(&r["address"]),
                text(&r["destination"]),
                text(&r["status"])
            ));
            if !r["last_reply"].is_null() {
                out.push_str(&format!(": {}", text(&r["last_reply"])));
            }
            out.push('\n');
        }
        if !e["last_error"].is_null() {
            out.push_str(&format!("    last error: {}\n", text(&e["last_error"])));
        }
    }
    out.push_str(&format!(
        "{} in the queue\n",
        count(entries.len(), "message", "messages")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_shows_decoded_headers_recipients_attempts_and_next_try() {
        let listing = json!({
            "held": true,
            "entries": [{
                "id": "00063f1a2b3c4d5e", "sender": "k.d@sender.example",
                "from": "Kristýna Dvořáková <k.d@sender.example>", "subject": "Objednávka",
                "arrived": 1_000, "size": 2048, "attempts": 3, "next_attempt": 1_000 + 7_200 + 600,
                "last_error": "bob@elsewhere.example: 451 4.3.0 try later",
                "recipients": [{"address": "bob@elsewhere.example", "destination": "remote",
                                "status": "pending", "last_reply": "451 4.3.0 try later"}]
            }]
        });
        let text = render(&listing, 1_000 + 7_200);
        assert!(
            text.starts_with("the link is down: mail for remote recipients waits"),
            "{text}"
        );
        assert!(
            text.contains("from:    Kristýna Dvořáková <k.d@sender.example>"),
            "{text}"
        );
        assert!(text.contains("subject: Objednávka"), "{text}");
        // Held: its only pending recipient is remote, so it goes when the link is up.
        assert!(
            text.contains("age 2h  attempts 3  next try when the link is up"),
            "{text}"
        );
        assert!(
            text.contains("to:      bob@elsewhere.example (remote, pending): 451 4.3.0 try later"),
            "{text}"
        );
        assert!(text.ends_with("\n1 message in the queue\n"), "{text}");

        let mut not_held = listing.clone();
        not_held["held"] = json!(false);
        not_held["entries"] = json!([listing["entries"][0], listing["entries"][0]]);
        let text = render(&not_held, 1_000 + 7_200);
        assert!(!text.contains("link is down"), "{text}");
        assert!(text.contains("next try in 10m"), "{text}");
        assert!(text.ends_with("\n2 messages in the queue\n"), "{text}");
    }

    /// The tester's case: `ctl queue flush` with the link down said "queue flushed: every entry
    /// is being tried now", which looked like success while nothing could leave.
    #[test]
    fn flush_with_the_link_down_says_remote_mail_goes_when_the_link_is_up() {
        let text = render_flush(&json!({"flushed": true, "held": true, "waiting_for_link": 1}));
        assert!(
            text.starts_with(
                "the link is down: 1 message for remote recipients will be sent when the link is up"
            ),
            "{text}"
        );
        let text = render_flush(&json!({"flushed": true, "held": true, "waiting_for_link": 3}));
        assert!(
            text.contains("3 messages for remote recipients will be sent"),
            "{text}"
        );
        let text = render_flush(&json!({"flushed": true, "held": false, "waiting_for_link": 0}));
        assert_eq!(text, "queue flushed: every message is being tried now\n");
    }

    #[test]
    fn empty_queue_says_so() {
        let text = render(&json!({"held": false, "entries": []}), 0);
        assert_eq!(text, "the queue is empty\n");
    }
}
