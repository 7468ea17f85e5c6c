//! The `[mail]` section.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::check::{Check, Report, index, key};

/// The `[mail]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mail {
    /// This box's host name, in the SMTP greeting and in Received headers; empty takes
    /// `[system] hostname`.
    pub hostname: String,
    /// The domains whose mail is delivered here (local users, aliases, catch-alls); empty
    /// takes `[system] domains`.
    pub domains: Vec<String>,
    /// The fax domain: mail to `<number>@<fax_domain>` goes to the fax spool. Empty for none.
    pub fax_domain: String,
    /// `[mail.listen]`: the addresses of the SMTP, IMAP and POP3 listeners.
    pub listen: Listen,
    /// `[mail.tls]`: the certificate of every TLS listener.
    pub tls: Tls,
    /// `[mail.limits]`: sizes, counts and timeouts of SMTP sessions.
    pub limits: Limits,
    /// What to do with a bare CR or LF in message data: `"reject"` (554 5.6.0, the default)
    /// or `"normalize"` (store it as CRLF). Neither ever ends the message early.
    pub bare_line_endings: BareLineEndings,
    /// Networks that may relay without authentication (scanners, scripts on the LAN), as
    /// `"192.168.1.0/24"`. Loopback is not trusted unless listed.
    pub trusted_networks: Vec<Network>,
    /// `[[mail.users]]`: people with a mailbox here.
    pub users: Vec<User>,
    /// `[[mail.aliases]]`: addresses that expand to one or many others (groups).
    pub aliases: Vec<Alias>,
    /// `[[mail.remote_users]]`: addresses of a local domain whose mail is relayed to a
    /// mailbox at the ISP.
    pub remote_users: Vec<RemoteUser>,
    /// `[mail.catch_all]`: per local domain, where mail to unknown local parts goes
    /// (`"office.example" = "alice"`).
    pub catch_all: BTreeMap<String, String>,
    /// The characters that end a local part's name and start its detail (RFC 5233
    /// subaddressing): with `"+"`, the default, `alice+lists@` reaches whatever `alice@` does
    /// when nothing is named `alice+lists` itself. Each character is a delimiter; empty turns
    /// subaddressing off. (The name is Postfix's.)
    pub recipient_delimiter: RecipientDelimiter,
    /// `[mail.queue]`: retries, expiry, notices, concurrency, hold while the link is down.
    pub queue: Queue,
    /// `[mail.relay]`: how outbound mail leaves (smarthost or direct MX).
    pub relay: Relay,
    /// `[mail.access]`: limits of IMAP and POP3 sessions and of failed logins.
    pub access: Access,
    /// `[mail.submission]`: what authenticated users may send as (ports 587 and 465).
    pub submission: Submission,
    /// `[mail.on_connect]`: what happens when the link comes up (on-demand mode): the ISP's
    /// backup MX is sent ETRN, its domain mailboxes are fetched.
    pub on_connect: OnConnect,
}

/// `[mail.listen]`: where each server listens. Defaults are the standard ports on all
/// addresses; examples/dev.toml moves them above 1024 on loopback.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// SMTP from the internet (MX), port 25.
    pub smtp: SocketAddr,
    /// Submission with STARTTLS and AUTH, port 587 (RFC 6409).
    pub submission: SocketAddr,
    /// Submission over implicit TLS, port 465 (RFC 8314).
    pub submissions: SocketAddr,
    /// IMAP with STARTTLS, port 143.
    pub imap: SocketAddr,
    /// IMAP over implicit TLS, port 993.
    pub imaps: SocketAddr,
    /// POP3 with STLS, port 110.
    pub pop3: SocketAddr,
    /// POP3 over implicit TLS, port 995.
    pub pop3s: SocketAddr,
}

impl Default for Listen {
    fn default() -> Listen {
        let any = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        Listen {
            smtp: any(25),
            submission: any(587),
            submissions: any(465),
            imap: any(143),
            imaps: any(993),
            pop3: any(110),
            pop3s: any(995),
        }
    }
}

/// `[mail.tls]`: the server certificate. With both paths empty a self-signed certificate is
/// made on first start and kept under the data directory.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain.
    pub certificate: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

/// `[mail.limits]`: limits of SMTP sessions; each is enforced with its proper reply.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The largest message in octets, offered as SIZE; larger ones get 552 5.3.4.
    pub max_message_size: usize,
    /// Recipients per message (RFC 5321 section 4.5.3.1.8: at least 100); more get 452.
    pub max_recipients: usize,
    /// The longest line of message data; a longer line refuses the message (never split).
    pub max_line_length: usize,
    /// Bad commands answered before the session is closed with 421.
    pub max_errors: u32,
    /// Simultaneous SMTP connections from one client address; more get 421 at once (on port
    /// 465 they are closed without a reply: the client expects TLS first).
    pub max_connections_per_client: usize,
    /// Simultaneous SMTP connections in total.
    pub max_connections: usize,
    /// Waiting for a command (RFC 5321 section 4.5.3.2.7: 5 minutes).
    pub command_timeout: Span,
    /// Waiting for the next block of message data (RFC 5321 section 4.5.3.2).
    pub data_timeout: Span,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_line_length: 64 * 1024,
            max_errors: 10,
            max_connections_per_client: 10,
            max_connections: 100,
            command_timeout: Span(300),
            data_timeout: Span(300),
        }
    }
}

/// The policy for bare CR and bare LF in message data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BareLineEndings {
    /// Refuse the message with 554 5.6.0 once it has been read.
    #[default]
    Reject,
    /// Store each bare CR or LF as CRLF.
    Normalize,
}

/// A person with a mailbox here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct User {
    /// The login name and local part (`alice` gets `alice@` every local domain).
    pub name: String,
    /// The argon2 PHC string of the password (`postroom mail hash-password`).
    pub password_hash: String,
    /// Addresses the mail is forwarded to.
    pub forward: Vec<String>,
    /// With `forward`, also keep a copy in the local mailbox.
    pub keep_copy: bool,
    /// Extra `MAIL FROM` addresses this user may send as on submission, besides their own and
    /// those of aliases that reach them: a full address, a local part (that name in every
    /// local domain), `"@domain"` (any address in that domain), or `"*"` (any address: no
    /// check for this user, e.g. a scanner's account).
    pub send_as: Vec<String>,
}

/// `[mail] recipient_delimiter`: the characters that separate a local part's name from its
/// detail (RFC 5233 section 1: `user+detail`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct RecipientDelimiter(pub String);

impl Default for RecipientDelimiter {
    fn default() -> RecipientDelimiter {
        RecipientDelimiter("+".to_owned())
    }
}

impl RecipientDelimiter {
    /// The name part of `local` when it carries a detail (`alice` of `alice+lists`), or None.
    /// The first delimiter counts; one at the very start leaves no name, so it is no
    /// delimiter there.
    pub fn name_of<'a>(&self, local: &'a str) -> Option<&'a str> {
        let at = local.find(|c| self.0.contains(c))?;
        (at > 0).then(|| &local[..at])
    }
}

/// Local parts that reach the first user unless a user, alias or remote user takes them:
/// postmaster (RFC 5321 section 4.5.1 requires it of every domain) and abuse (RFC 2142
/// section 2 asks for it where there are users who could misbehave on the internet).
pub const ROLE_MAILBOXES: [&str; 2] = ["postmaster", "abuse"];

/// `[mail.submission]`: who may send as whom on the submission ports. Port 25 never checks
/// senders: it takes mail from the world, which authenticates nobody.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Submission {
    /// After AUTH, `MAIL FROM` must be one of the user's own addresses (their name in every
    /// local domain, aliases and groups that deliver to them, their `send_as`); any other is
    /// refused with 553 5.7.1. `false` lets an authenticated user use any sender.
    pub sender_check: bool,
    /// With `sender_check`, whether the null sender `<>` is allowed: read receipts (RFC 8098
    /// section 2) and auto-replies (RFC 3834 section 3.3) are sent with it, and it names
    /// nobody, so nobody can be impersonated with it.
    pub allow_null_sender: bool,
    /// With `sender_check`, also refuse (550 5.7.1, after the data) a message whose `From:`
    /// header names an address the user does not own. Off by default: a secretary sending for
    /// the boss or a shared mailbox's `From:` would need `send_as` entries first.
    pub from_header_check: bool,
}

impl Default for Submission {
    fn default() -> Submission {
        Submission {
            sender_check: true,
            allow_null_sender: true,
            from_header_check: false,
        }
    }
}

/// An address that expands to others: one (an alias) or many (a group). Members are local
/// names, full addresses, or other aliases.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alias {
    /// A local part (valid in every local domain) or a full address.
    pub name: String,
    /// Where the mail goes.
    pub members: Vec<String>,
}

/// An address of a local domain whose mailbox is at the ISP.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteUser {
    /// A local part or a full address of a local domain.
    pub name: String,
    /// The ISP mailbox the mail is relayed to.
    pub mailbox: String,
}

/// An IP network, written `"192.168.1.0/24"` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The network address.
    pub address: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Network {
    /// True when `ip` lies in this network. An IPv4-mapped IPv6 address counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Network, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let address: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Network { address, prefix })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl Serialize for Network {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Network, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
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
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3_600) => write!(f, "{}h", s / 3_600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
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

impl Check for Mail {
    fn check(&self, at: &str, report: &mut Report) {
        let users = key(at, "users");
        for (i, user) in self.users.iter().enumerate() {
            let at = index(&users, i);
            if let Some(problem) = mailbox_name_problem(&user.name) {
                report.add(key(&at, "name"), format!("{:?} {problem}", user.name));
            }
            let send_as = key(&at, "send_as");
            for (j, entry) in user.send_as.iter().enumerate() {
                if let Some(problem) = send_as_problem(entry) {
                    report.add(index(&send_as, j), format!("{entry:?} {problem}"));
                }
            }
            // Empty is allowed: a user without a password (forward only) cannot log in.
            if !user.password_hash.is_empty() && !is_argon2_phc(&user.password_hash) {
                report.add(
                    key(&at, "password_hash"),
                    "is not an argon2 PHC string ($argon2id$v=19$m=..,t=..,p=..$SALT$HASH); \
                     make one with `postroom mail hash-password`",
                );
            }
        }
        self.check_names(at, report);
        let delimiter = &self.recipient_delimiter.0;
        if delimiter
            .chars()
            .any(|c| c == '@' || c == '"' || c.is_whitespace() || c.is_control())
        {
            report.add(
                key(at, "recipient_delimiter"),
                format!(
                    "{delimiter:?} may not contain '@', '\"', spaces or control characters: \
                     they cannot stand unquoted in a local part"
                ),
            );
        }
        let networks = key(at, "trusted_networks");
        for (i, network) in self.trusted_networks.iter().enumerate() {
            if network.prefix == 0 {
                report.add(
                    index(&networks, i),
                    format!("{network} trusts every address: anyone could relay (an open relay)"),
                );
            }
        }
    }
}

impl Mail {
    /// Names that clash or lead nowhere. Routing takes the first user of a name and an alias
    /// before a user, so a second `alice` or an alias named `alice` silently hides the other;
    /// and a local member or forward that names nobody makes every delivery to its alias fail
    /// with 550, also for the members that do exist.
    fn check_names(&self, at: &str, report: &mut Report) {
        let users = key(at, "users");
        for (i, user) in self.users.iter().enumerate() {
            let earlier = self.users[..i]
                .iter()
                .position(|u| u.name.eq_ignore_ascii_case(&user.name));
            if let Some(first) = earlier {
                report.add(
                    key(&index(&users, i), "name"),
                    format!("{:?} is already the name of mail.users[{first}]", user.name),
                );
            }
            let forward = key(&index(&users, i), "forward");
            for (j, target) in user.forward.iter().enumerate() {
                if let Some(problem) = self.local_target_problem(target) {
                    report.add(index(&forward, j), format!("{target:?} {problem}"));
                }
            }
        }
        let aliases = key(at, "aliases");
        for (i, alias) in self.aliases.iter().enumerate() {
            let at = index(&aliases, i);
            if let Some(user) = self
                .users
                .iter()
                .position(|u| u.name.eq_ignore_ascii_case(&alias.name))
            {
                report.add(
                    key(&at, "name"),
                    format!(
                        "{:?} is also the name of mail.users[{user}], whose mail the alias would \
                         take",
                        alias.name
                    ),
                );
            }
            if let Some(first) = self.aliases[..i]
                .iter()
                .position(|a| a.name.eq_ignore_ascii_case(&alias.name))
            {
                report.add(
                    key(&at, "name"),
                    format!(
                        "{:?} is already the name of mail.aliases[{first}]",
                        alias.name
                    ),
                );
            }
            if alias.members.is_empty() {
                report.add(
                    key(&at, "members"),
                    "is empty: mail to the alias would go nowhere",
                );
            }
            let members = key(&at, "members");
            for (j, member) in alias.members.iter().enumerate() {
                if let Some(problem) = self.local_target_problem(member) {
                    report.add(index(&members, j), format!("{member:?} {problem}"));
                }
            }
        }
    }

    /// Why a member or forward target cannot be delivered: it is in a local domain (or has no
    /// domain, meaning each local domain) and names no user, alias or remote user, and no
    /// catch-all takes it. Outside addresses are not checked.
    fn local_target_problem(&self, target: &str) -> Option<String> {
        let (local, domain) = match target.rsplit_once('@') {
            Some((local, domain)) => (local, Some(domain)),
            None => (target, None),
        };
        if local.is_empty() {
            return Some("has no local part".into());
        }
        let domains: Vec<&str> = match domain {
            None => self.domains.iter().map(String::as_str).collect(),
            Some(d) if self.domains.iter().any(|l| l.eq_ignore_ascii_case(d)) => vec![d],
            Some(_) => return None,
        };
        let known = |local: &str| {
            let named = |name: &str| {
                name.eq_ignore_ascii_case(local)
                    || domains
                        .iter()
                        .any(|d| name.eq_ignore_ascii_case(&format!("{local}@{d}")))
            };
            // RFC 5321 section 4.5.1 and RFC 2142: postmaster and abuse reach the first user.
            let role = ROLE_MAILBOXES.iter().any(|r| local.eq_ignore_ascii_case(r));
            role && !self.users.is_empty()
                || self
                    .users
                    .iter()
                    .any(|u| u.name.eq_ignore_ascii_case(local))
                || self.aliases.iter().any(|a| named(&a.name))
                || self.remote_users.iter().any(|r| named(&r.name))
        };
        // A subaddress reaches whatever its name does (RFC 5233).
        let known = known(local) || self.recipient_delimiter.name_of(local).is_some_and(known);
        let caught = !domains.is_empty()
            && domains
                .iter()
                .all(|d| self.catch_all.keys().any(|k| k.eq_ignore_ascii_case(d)));
        (!known && !caught).then(|| {
            "names no user, alias or remote user here, so every message to it would be \
             refused"
                .into()
        })
    }
}

/// Why `name` cannot be a user: it names a directory under the mail store and is the local
/// part of addresses, so it must be lower case (logins are matched in lower case) and must not
/// reach outside the store or hide itself (`/`, `..`, a leading `.`).
fn mailbox_name_problem(name: &str) -> Option<&'static str> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b);
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > 64 {
        // RFC 5321 section 4.5.3.1.1: a local part is at most 64 octets.
        Some("is longer than 64 characters")
    } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some("has upper-case letters; write user names in lower case")
    } else if !name.bytes().all(allowed) {
        Some("may only contain a-z, 0-9, '.', '-' and '_'")
    } else if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        Some("must not start or end with '.' or contain \"..\"")
    } else {
        None
    }
}

/// Why `entry` cannot be a `send_as` entry: it must be `*`, `@domain`, a local part or an
/// address, without spaces or angle brackets.
fn send_as_problem(entry: &str) -> Option<&'static str> {
    if entry == "*" {
        return None;
    }
    if entry.is_empty() {
        Some("is empty")
    } else if entry
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>,;".contains(c))
    {
        Some("must be one address, without spaces, commas or angle brackets")
    } else if entry.ends_with('@') || entry.matches('@').count() > 1 {
        Some("must be \"*\", \"@domain\", a local part or local@domain")
    } else {
        None
    }
}

/// Whether `text` is an argon2 hash in the PHC string format, as the password check reads it:
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>` (salt and hash in unpadded base64; the
/// version may be left out).
fn is_argon2_phc(text: &str) -> bool {
    let mut fields: Vec<&str> = text.split('$').collect();
    if fields.len() == 6 {
        if !fields[2]
            .strip_prefix("v=")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        {
            return false;
        }
        fields.remove(2);
    }
    let [empty, algorithm, params, salt, hash] = fields[..] else {
        return false;
    };
    let base64 = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    let params: Vec<(&str, &str)> = params
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect();
    let number = |name: &str| {
        params
            .iter()
            .any(|(k, v)| *k == name && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
    };
    empty.is_empty()
        && ["argon2id", "argon2i", "argon2d"].contains(&algorithm)
        && number("m")
        && number("t")
        && number("p")
        && base64(salt)
        && base64(hash)
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

#[cfg(test)]
mod transfer_tests {
    use super::*;

    #[test]
    fn trusted_networks_match_their_addresses_only() {
        let lan: Network = "192.168.1.0/24".parse().unwrap();
        assert!(lan.contains("192.168.1.77".parse().unwrap()));
        assert!(!lan.contains("192.168.2.1".parse().unwrap()));
        assert!(lan.contains("::ffff:192.168.1.5".parse().unwrap()));
        let host: Network = "10.0.0.1".parse().unwrap();
        assert!(host.contains("10.0.0.1".parse().unwrap()));
        assert!(!host.contains("10.0.0.2".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
    }

    #[test]
    fn users_aliases_and_listeners_are_read() {
        let text = r#"
[mail]
hostname = "mail.office.example"
domains = ["office.example"]
fax_domain = "fax.office.example"
trusted_networks = ["192.168.1.0/24"]
bare_line_endings = "normalize"
[mail.listen]
smtp = "127.0.0.1:2525"
[mail.limits]
command_timeout = "2m"
[mail.catch_all]
"office.example" = "alice"
[[mail.users]]
name = "alice"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
forward = ["a@elsewhere.example"]
keep_copy = true
[[mail.aliases]]
name = "team"
members = ["alice", "bob"]
"#;
        let config = crate::Config::parse(text).unwrap();
        let mail = &config.mail;
        assert_eq!(mail.listen.smtp.port(), 2525);
        assert_eq!(mail.listen.submission.port(), 587);
        assert_eq!(mail.limits.command_timeout, Span(120));
        assert_eq!(mail.bare_line_endings, BareLineEndings::Normalize);
        assert_eq!(mail.users[0].forward, ["a@elsewhere.example"]);
        assert_eq!(mail.aliases[0].members, ["alice", "bob"]);
        assert_eq!(mail.catch_all["office.example"], "alice");
    }

    #[test]
    fn recipient_delimiter_defaults_to_plus_and_subaddressed_members_name_someone() {
        let base = "[mail]\ndomains = [\"office.example\"]\n";
        let members = "[[mail.users]]\nname = \"alice\"\n\
                       [[mail.aliases]]\nname = \"lists\"\nmembers = [\"alice+lists\"]\n";
        let config = crate::Config::parse(&format!("{base}{members}")).unwrap();
        assert_eq!(config.mail.recipient_delimiter.0, "+");
        assert_eq!(
            config.mail.recipient_delimiter.name_of("alice+lists"),
            Some("alice")
        );
        assert_eq!(config.mail.recipient_delimiter.name_of("+alice"), None);

        let off = crate::Config::parse(&format!("{base}recipient_delimiter = \"\"\n{members}"));
        assert!(off.unwrap_err()[0].contains("alice+lists"));
        let err = crate::Config::parse(&format!("{base}recipient_delimiter = \"@\"\n"));
        assert!(err.unwrap_err()[0].contains("recipient_delimiter"));
    }

    #[test]
    fn unknown_user_key_is_an_error() {
        let err = crate::Config::parse(
            "[[mail.users]]
name = \"a\"
pasword = \"x\"
",
        );
        assert!(err.is_err());
    }
}

/// `[mail.access]`: limits of mailbox access (IMAP and POP3).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Access {
    /// The largest IMAP literal (an APPENDed message) in octets; larger ones get a tagged NO.
    pub max_literal: u32,
    /// The longest IMAP command line outside literals, in octets.
    pub max_command_line: usize,
    /// Failed logins from one client address let through before each further try must wait.
    pub free_login_failures: u32,
    /// The first wait after the free failures; it doubles with every further failure.
    pub login_delay: Span,
    /// The longest wait.
    pub max_login_delay: Span,
    /// Simultaneous IMAP and POP3 connections from one client address, all four ports
    /// together; one more is answered `* BYE` or `-ERR` and closed (on 993 and 995 closed
    /// without a word: the client expects TLS first).
    pub max_connections_per_client: usize,
    /// Simultaneous IMAP and POP3 connections in total.
    pub max_connections: usize,
    /// Before login, how long a client may take over each command line (counted from the
    /// greeting or the last answer, however the bytes trickle in). After login the
    /// autologout timers of RFC 3501 (30 min) and RFC 1939 (10 min) apply instead.
    pub login_timeout: Span,
}

impl Default for Access {
    fn default() -> Access {
        Access {
            max_literal: 50 * 1024 * 1024,
            max_command_line: 64 * 1024,
            free_login_failures: 3,
            login_delay: Span(2),
            max_login_delay: Span(300),
            max_connections_per_client: 10,
            max_connections: 100,
            login_timeout: Span(60),
        }
    }
}

/// `[mail.on_connect]`: mail at the ISP. Once an on-demand link is up the queue is flushed,
/// then the ISP is asked for the mail it holds for us: ETRN (RFC 1985) to its backup MX and/or
/// a POP3 multidrop fetch of each `[[mail.on_connect.pop3]]` mailbox. With a permanent link
/// there is no connect to wait for: the mailboxes are fetched every `fetch_interval` (ETRN is
/// not needed there: the backup MX delivers by itself).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnConnect {
    /// The ISP's backup MX that holds our mail while the link is down; empty for no ETRN.
    pub etrn_host: String,
    /// Its SMTP port.
    pub etrn_port: u16,
    /// The domains to ask for with ETRN; empty takes the mail domains.
    pub etrn_domains: Vec<String>,
    /// `[[mail.on_connect.pop3]]`: the ISP's domain mailboxes, fetched multidrop.
    pub pop3: Vec<Pop3Mailbox>,
    /// The network timeout of each step of ETRN and POP3.
    pub timeout: Span,
    /// How long the queue flush may keep the link before the hold is released anyway.
    pub flush_timeout: Span,
    /// After a call that failed (busy line, no answer), queued mail asks for the link again
    /// only after this long; a scheduled or manual call still flushes it sooner.
    pub redial_after: Span,
    /// With a permanent link: how often the POP3 mailboxes are fetched (the first time when
    /// the mail component starts); `"0s"` never. On demand they are fetched on every connect.
    pub fetch_interval: Span,
}

impl Default for OnConnect {
    fn default() -> OnConnect {
        OnConnect {
            etrn_host: String::new(),
            etrn_port: 25,
            etrn_domains: Vec::new(),
            pop3: Vec::new(),
            timeout: Span(60),
            flush_timeout: Span(600),
            redial_after: Span(900),
            fetch_interval: Span(300),
        }
    }
}

/// One POP3 mailbox at the ISP holding mail for a whole domain (multidrop).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pop3Mailbox {
    /// The ISP's POP3 server; its certificate must be valid for this name.
    pub host: String,
    /// Its port; unset takes 995 with `tls = "implicit"`, else 110.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The mailbox's user name.
    pub user: String,
    /// Its password.
    pub password: String,
    /// `"implicit"` (POP3S, the default), `"starttls"` (STLS on port 110, refused if the server
    /// does not offer it) or `"none"` (the password in plain text).
    pub tls: Pop3Tls,
    /// A PEM file of CA certificates trusted for this server besides the Mozilla roots: an ISP
    /// with a private CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Leave fetched messages at the ISP (their UIDs keep them from being fetched twice).
    pub keep: bool,
}

impl Pop3Mailbox {
    /// The port to connect to: the one given, else the one of the TLS mode (RFC 8314 section
    /// 7.3 registers 995 for POP3S; RFC 1939 uses 110).
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            Pop3Tls::Implicit => 995,
            Pop3Tls::StartTls | Pop3Tls::None => 110,
        })
    }
}

impl Default for Pop3Mailbox {
    fn default() -> Pop3Mailbox {
        Pop3Mailbox {
            host: String::new(),
            port: None,
            user: String::new(),
            password: String::new(),
            tls: Pop3Tls::Implicit,
            ca_file: None,
            keep: false,
        }
    }
}

/// How a POP3 mailbox is reached: `tls = "implicit" | "starttls" | "none"`.
///
/// Files written before there was a choice said `tls = true` (implicit TLS) or `tls = false`,
/// which then meant plain text. `false` is read as `"starttls"`: the password is only ever sent
/// in plain text where the file says `"none"` by name, and a server without STLS fails with an
/// error that says so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pop3Tls {
    /// TLS from the first byte, POP3S (RFC 8314 section 3.3).
    #[default]
    Implicit,
    /// Plain POP3 upgraded with STLS before the login (RFC 2595 section 4).
    StartTls,
    /// No TLS.
    None,
}

impl Pop3Tls {
    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            Pop3Tls::Implicit => "implicit",
            Pop3Tls::StartTls => "starttls",
            Pop3Tls::None => "none",
        }
    }
}

impl Serialize for Pop3Tls {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Pop3Tls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Pop3Tls, D::Error> {
        struct ModeVisitor;
        impl serde::de::Visitor<'_> for ModeVisitor {
            type Value = Pop3Tls;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"implicit\", \"starttls\" or \"none\"")
            }

            fn visit_bool<E: serde::de::Error>(self, tls: bool) -> Result<Pop3Tls, E> {
                Ok(if tls {
                    Pop3Tls::Implicit
                } else {
                    Pop3Tls::StartTls
                })
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Pop3Tls, E> {
                [Pop3Tls::Implicit, Pop3Tls::StartTls, Pop3Tls::None]
                    .into_iter()
                    .find(|mode| mode.name() == name)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "{name:?} is not a TLS mode: \"implicit\", \"starttls\" or \"none\""
                        ))
                    })
            }
        }
        deserializer.deserialize_any(ModeVisitor)
    }
}

#[cfg(test)]
mod submission_tests {
    #[test]
    fn sender_check_is_on_by_default_and_send_as_is_read() {
        let config = crate::Config::parse("[[mail.users]]\nname = \"alice\"\n").unwrap();
        assert!(config.mail.submission.sender_check);
        assert!(config.mail.submission.allow_null_sender);
        assert!(!config.mail.submission.from_header_check);
        assert!(config.mail.users[0].send_as.is_empty());

        let text = "[mail.submission]\nsender_check = false\nallow_null_sender = false\n\
                    [[mail.users]]\nname = \"alice\"\n\
                    send_as = [\"boss@office.example\", \"@shop.example\", \"*\", \"info\"]\n";
        let config = crate::Config::parse(text).unwrap();
        assert!(!config.mail.submission.sender_check);
        assert!(!config.mail.submission.allow_null_sender);
        assert_eq!(
            config.mail.users[0].send_as,
            ["boss@office.example", "@shop.example", "*", "info"]
        );
        assert!(crate::Config::parse("[mail.submission]\nsender_chek = true\n").is_err());
    }

    #[test]
    fn malformed_send_as_entries_are_reported_with_their_key() {
        let text = "[[mail.users]]\nname = \"alice\"\n\
                    send_as = [\"ok@office.example\", \"a b@x\", \"\", \"x@\"]\n";
        let err = crate::Config::parse(text).unwrap_err().join("\n");
        assert!(err.contains("mail.users[0].send_as[1]"), "{err}");
        assert!(err.contains("mail.users[0].send_as[2]"), "{err}");
        assert!(err.contains("mail.users[0].send_as[3]"), "{err}");
        assert!(!err.contains("send_as[0]"), "{err}");
    }
}

#[cfg(test)]
mod on_connect_tests {
    use super::*;

    #[test]
    fn on_connect_section_reads_etrn_and_mailboxes_with_defaults() {
        let text = "[mail.on_connect]\netrn_host = \"mx2.isp.example\"\nredial_after = \"5m\"\n\
                    [[mail.on_connect.pop3]]\nhost = \"pop.isp.example\"\nuser = \"office\"\n\
                    password = \"s\"\n";
        let config = crate::Config::parse(text).unwrap();
        let c = &config.mail.on_connect;
        assert_eq!(c.etrn_host, "mx2.isp.example");
        assert_eq!(c.etrn_port, 25);
        assert_eq!(c.redial_after, Span(300));
        assert_eq!(c.fetch_interval, Span(300));
        assert_eq!(c.pop3[0].port, None);
        assert!(!c.pop3[0].keep);
        assert!(crate::Config::parse("[[mail.on_connect.pop3]]\npasword = \"x\"\n").is_err());
    }

    fn mailbox(lines: &str) -> Result<Pop3Mailbox, Vec<String>> {
        let text = format!("[[mail.on_connect.pop3]]\nhost = \"pop.isp.example\"\n{lines}");
        crate::Config::parse(&text).map(|c| c.mail.on_connect.pop3[0].clone())
    }

    #[test]
    fn a_new_mailbox_uses_pop3s_on_995_unless_told_otherwise() {
        let m = mailbox("").unwrap();
        assert_eq!((m.tls, m.effective_port()), (Pop3Tls::Implicit, 995));

        let m = mailbox("tls = \"starttls\"\n").unwrap();
        assert_eq!((m.tls, m.effective_port()), (Pop3Tls::StartTls, 110));
        let m = mailbox("tls = \"none\"\n").unwrap();
        assert_eq!((m.tls, m.effective_port()), (Pop3Tls::None, 110));
        let m =
            mailbox("tls = \"implicit\"\nport = 1995\nca_file = \"/etc/isp-ca.pem\"\n").unwrap();
        assert_eq!((m.tls, m.effective_port()), (Pop3Tls::Implicit, 1995));
        assert_eq!(
            m.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/isp-ca.pem"))
        );
    }

    #[test]
    fn the_old_boolean_tls_never_means_plain_text() {
        assert_eq!(mailbox("tls = true\n").unwrap().tls, Pop3Tls::Implicit);
        // `false` used to mean plain POP3; now it asks for STLS, and plain text needs "none".
        let m = mailbox("tls = false\nport = 110\n").unwrap();
        assert_eq!((m.tls, m.effective_port()), (Pop3Tls::StartTls, 110));
    }

    #[test]
    fn an_unknown_tls_mode_is_reported_with_its_key() {
        let err = mailbox("tls = \"ssl\"\n").unwrap_err().join("\n");
        assert!(err.contains("mail.on_connect.pop3[0].tls"), "{err}");
        assert!(err.contains("\"starttls\""), "{err}");
    }

    #[test]
    fn a_mailbox_survives_a_save_and_a_load() {
        let mut config = crate::Config::default();
        config.mail.on_connect.pop3 = vec![
            Pop3Mailbox {
                host: "pop.isp.example".into(),
                tls: Pop3Tls::StartTls,
                ..Pop3Mailbox::default()
            },
            Pop3Mailbox {
                host: "pops.isp.example".into(),
                port: Some(1995),
                ca_file: Some("/etc/isp-ca.pem".into()),
                ..Pop3Mailbox::default()
            },
        ];
        let text = config.to_toml().unwrap();
        let again = crate::Config::parse(&text).unwrap();
        assert_eq!(
            again.mail.on_connect.pop3, config.mail.on_connect.pop3,
            "{text}"
        );
    }
}
