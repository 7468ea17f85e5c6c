//! The `[mail]` section.

use serde::{Deserialize, Serialize};

/// The `[mail]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mail {
    /// `[mail.queue]`: retries, expiry, notices, concurrency, hold while the link is down.
    pub queue: Queue,
    /// `[mail.relay]`: how outbound mail leaves (smarthost or direct MX).
    pub relay: Relay,
}

/// `[mail.queue]`: the outbound queue.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Queue {
    /// Pauses between delivery attempts; the last one repeats until the message expires.
    pub retry_schedule: Vec<Span>,
    /// A message still undelivered this long after it arrived is bounced (RFC 5321 4.5.4.1
    /// suggests 4-5 days).
    pub expire_after: Span,
    /// A delay notice goes to the sender once a message has waited this long; "0s" for never.
    pub delay_notice_after: Span,
    /// At most this many deliveries at once to one destination (smarthost, MX domain, local).
    pub concurrency_per_destination: usize,
    /// At most this many deliveries at once in total.
    pub concurrency_total: usize,
    /// In on-demand link mode, hold outbound mail while the link is down; flushed on link up.
    pub hold_when_link_down: bool,
}

impl Default for Queue {
    fn default() -> Queue {
        let spans = ["5m", "10m", "20m", "40m", "1h", "2h", "4h"];
        Queue {
            retry_schedule: spans
                .iter()
                .map(|s| s.parse().unwrap_or(Span(300)))
                .collect(),
            expire_after: Span(5 * 86_400),
            delay_notice_after: Span(4 * 3_600),
            concurrency_per_destination: 2,
            concurrency_total: 10,
            hold_when_link_down: true,
        }
    }
}

/// How outbound mail leaves the box.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayMode {
    /// Everything through the ISP's smarthost.
    #[default]
    Smarthost,
    /// Straight to each recipient domain's MX hosts.
    Mx,
}

/// When outbound SMTP uses STARTTLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    /// STARTTLS must succeed or the message waits.
    #[default]
    Required,
    /// STARTTLS when offered, plain text otherwise.
    Opportunistic,
    /// Plain text only.
    None,
}

/// `[mail.relay]`: outbound delivery.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Relay {
    /// Smarthost or direct MX.
    pub mode: RelayMode,
    /// The smarthost's host name (or address); empty means not configured.
    pub host: String,
    /// The smarthost's port: 587 (submission) or 25.
    pub port: u16,
    /// STARTTLS policy towards the smarthost. MX delivery is always opportunistic.
    pub tls: RelayTls,
    /// Check the smarthost's certificate (chain and name). MX delivery never checks.
    pub verify_certificate: bool,
    /// Extra CA certificates (PEM) trusted for the smarthost, besides the Mozilla roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// AUTH user name at the smarthost; empty for no AUTH.
    pub username: String,
    /// AUTH password at the smarthost.
    pub password: String,
    /// The port of MX hosts; 25 except in tests.
    pub mx_port: u16,
}

impl Default for Relay {
    fn default() -> Relay {
        Relay {
            mode: RelayMode::Smarthost,
            host: String::new(),
            port: 587,
            tls: RelayTls::Required,
            verify_certificate: true,
            ca_file: None,
            username: String::new(),
            password: String::new(),
            mx_port: 25,
        }
    }
}

/// A length of time in seconds, written in the file as `"90s"`, `"5m"`, `"4h"` or `"5d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub u64);

impl Span {
    /// As a std duration.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Span, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a time span like \"5m\""))?;
        let factor = match unit {
            "s" | "" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
        };
        n.checked_mul(factor)
            .map(Span)
            .ok_or_else(|| format!("{s:?} is too long"))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        match s {
            0 => write!(f, "0s"),
            _ if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            _ if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            _ if s % 60 == 0 => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Span, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;

    #[test]
    fn queue_section_reads_spans_and_keeps_defaults_for_the_rest() {
        let text = "[mail.queue]\nretry_schedule = [\"1m\", \"2h\"]\nexpire_after = \"3d\"\n\
                    [mail.relay]\nmode = \"mx\"\n";
        let config = crate::Config::parse(text).unwrap();
        assert_eq!(config.mail.queue.retry_schedule, [Span(60), Span(7_200)]);
        assert_eq!(config.mail.queue.expire_after, Span(3 * 86_400));
        assert_eq!(config.mail.queue.delay_notice_after, Span(4 * 3_600));
        assert_eq!(config.mail.relay.mode, RelayMode::Mx);
        assert_eq!(config.mail.relay.port, 587);
    }

    #[test]
    fn bad_span_is_reported() {
        let err = crate::Config::parse("[mail.queue]\nexpire_after = \"5 weeks\"\n").unwrap_err();
        assert!(err[0].contains("unit"), "{err:?}");
    }

    #[test]
    fn span_round_trips_through_its_text() {
        for s in ["0s", "90s", "5m", "4h", "5d"] {
            assert_eq!(s.parse::<Span>().unwrap().to_string(), s);
        }
    }
}
