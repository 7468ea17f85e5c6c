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
    /// Release a hold and try every entry now.
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
                outln!("queue flushed: every entry is being tried now")?;
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

fn render(listing: &Value, now: u64) -> String {
    let entries = listing["entries"].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    if listing["held"] == true {
        out.push_str("remote delivery is held until the link is up (or `ctl queue flush`)\n");
    }
    if entries.is_empty() {
        out.push_str("the queue is empty\n");
        return out;
    }
    for e in &entries {
        let age = now as i64 - e["arrived"].as_i64().unwrap_or(now as i64);
        let next = e["next_attempt"].as_i64().unwrap_or(now as i64) - now as i64;
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
            if next <= 0 {
                "now".to_owned()
            } else {
                format!("in {}", span(next))
            },
        ));
        out.push_str(&format!("    sender:  {sender}\n"));
        out.push_str(&format!("    from:    {}\n", text(&e["from"])));
        out.push_str(&format!("    subject: {}\n", text(&e["subject"])));
        for r in e["recipients"].as_array().into_iter().flatten() {
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
    out.push_str(&format!("{} entries\n", entries.len()));
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
        assert!(text.contains("remote delivery is held"), "{text}");
        assert!(
            text.contains("from:    Kristýna Dvořáková <k.d@sender.example>"),
            "{text}"
        );
        assert!(text.contains("subject: Objednávka"), "{text}");
        assert!(
            text.contains("age 2h  attempts 3  next try in 10m"),
            "{text}"
        );
        assert!(
            text.contains("to:      bob@elsewhere.example (remote, pending): 451 4.3.0 try later"),
            "{text}"
        );
        assert!(text.contains("1 entries"), "{text}");
    }

    #[test]
    fn empty_queue_says_so() {
        let text = render(&json!({"held": false, "entries": []}), 0);
        assert_eq!(text, "the queue is empty\n");
    }
}
