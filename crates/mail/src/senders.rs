//! Sender ownership on submission: which `MAIL FROM` addresses an authenticated user owns.
//!
//! RFC 6409 section 6.1 lets a submission server refuse a sender the authenticated user has no
//! right to; the session (crates/smtp) answers 553 5.7.1 from the [`AllowedSenders`] made here.
//! A user owns:
//!
//! - their name in every local domain (`alice@office.example`);
//! - every alias or group that delivers to them, directly or through other aliases
//!   (`sales@office.example` with alice among its members): whoever receives an address's
//!   mail may answer as it, which is how a small office shares `info@` or `sales@`;
//! - their `send_as` entries: an address, a local part (in every local domain), `@domain`
//!   (any address there) or `*` (any address);
//! - the null sender `<>`, when `[mail.submission] allow_null_sender` (the default).
//!
//! Not theirs: a catch-all that lands with them (it stands for addresses nobody has), the
//! postmaster and abuse addresses routed to the first user by default (only an explicit alias
//! gives them), their subaddresses (`alice+lists@`, unless in `send_as`), remote users'
//! addresses, and addresses outside the local domains.
//!
//! With `[mail.submission] from_header_check` the addresses of the `From:` header are held to
//! the same list once the message is in ([`from_header_refusal`]).

use postroom_config::mail::{Alias, Mail};
use postroom_smtp::{AllowedSenders, EnhancedStatus as S, Reply, ReversePath};

/// Aliases may name aliases; the router gives up at the same depth.
const MAX_ALIAS_DEPTH: usize = 8;

/// The senders `user` may use, or None when `[mail.submission] sender_check` is off (any
/// sender goes). `user` is the canonical (lower-case) name that AUTH returned.
pub fn allowed_senders(config: &Mail, user: &str) -> Option<AllowedSenders> {
    if !config.submission.sender_check {
        return None;
    }
    let mut senders = AllowedSenders::new();
    senders.allow_null(config.submission.allow_null_sender);

    for domain in &config.domains {
        senders.add_address(&format!("{user}@{domain}"));
    }

    for alias in &config.aliases {
        for address in alias_addresses(config, alias) {
            if delivers_to(config, &address, user, 0) {
                senders.add_address(&address);
            }
        }
    }

    let me = config
        .users
        .iter()
        .find(|u| u.name.eq_ignore_ascii_case(user));
    for entry in me.map(|u| u.send_as.as_slice()).unwrap_or_default() {
        if entry == "*" {
            senders.allow_any();
        } else if let Some(domain) = entry.strip_prefix('@') {
            senders.add_domain(domain);
        } else if entry.contains('@') {
            senders.add_address(entry);
        } else {
            for domain in &config.domains {
                senders.add_address(&format!("{entry}@{domain}"));
            }
        }
    }
    Some(senders)
}

/// The refusal for a message whose `From:` header (RFC 5322 section 3.6.2: one mailbox or
/// more, maybe in groups) names an address `senders` does not allow, or None when every
/// address there is allowed. A `From:` without any address impersonates nobody and passes.
pub fn from_header_refusal(content: &[u8], senders: &AllowedSenders, user: &str) -> Option<Reply> {
    let headers = mail_parser::MessageParser::default().parse_headers(content)?;
    let from = headers.from()?;
    let foreign = from
        .iter()
        .filter_map(|a| a.address())
        // A word without a domain (mail-parser reads `From: Bob` so) is nobody's address.
        .filter(|a| a.contains('@'))
        .find(|a| !senders.allows(&ReversePath::Mailbox((*a).to_owned())))?;
    let shown: String = foreign
        .chars()
        .filter(|c| !c.is_control())
        .take(256)
        .collect();
    // 550 after the data, 5.7.1 "not authorized" (RFC 3463 section 3.8).
    Some(Reply::new(
        550,
        S(5, 7, 1),
        format!("From: header address <{shown}> is not owned by user {user}"),
    ))
}

/// The addresses an alias answers to: its full address, or its local part in every local
/// domain. A full address outside the local domains is never routed to it, so it is left out.
fn alias_addresses(config: &Mail, alias: &Alias) -> Vec<String> {
    match alias.name.rsplit_once('@') {
        Some((_, domain)) if is_local_domain(config, domain) => vec![alias.name.clone()],
        Some(_) => Vec::new(),
        None => config
            .domains
            .iter()
            .map(|d| format!("{}@{d}", alias.name))
            .collect(),
    }
}

/// True when mail to `address` (in a local domain) reaches `user` through aliases, looked up
/// in the router's order: a full-address alias before a local-part one, aliases before users.
fn delivers_to(config: &Mail, address: &str, user: &str, depth: usize) -> bool {
    if depth > MAX_ALIAS_DEPTH {
        return false;
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    if !is_local_domain(config, domain) {
        return false;
    }
    let alias = config
        .aliases
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(address))
        .or_else(|| {
            config
                .aliases
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(local))
        });
    match alias {
        Some(alias) => alias.members.iter().any(|member| {
            let member = if member.contains('@') {
                member.clone()
            } else {
                format!("{member}@{domain}")
            };
            delivers_to(config, &member, user, depth + 1)
        }),
        None => local.eq_ignore_ascii_case(user),
    }
}

fn is_local_domain(config: &Mail, domain: &str) -> bool {
    config
        .domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use postroom_config::mail::User;
    use postroom_smtp::ReversePath;

    fn config() -> Mail {
        let user = |name: &str, send_as: &[&str]| User {
            name: name.into(),
            send_as: send_as.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let alias = |name: &str, members: &[&str]| Alias {
            name: name.into(),
            members: members.iter().map(|s| s.to_string()).collect(),
        };
        Mail {
            domains: vec!["office.example".into(), "office2.example".into()],
            users: vec![
                user("alice", &[]),
                user("bob", &["boss@office.example", "@shop.example", "info"]),
                user("scanner", &["*"]),
            ],
            aliases: vec![
                alias("a.smith", &["alice"]),
                alias("sales", &["team"]),
                alias("team", &["alice", "bob"]),
                alias("press@office.example", &["bob", "friend@elsewhere.example"]),
                alias("outside@elsewhere.example", &["alice"]),
                alias("loop1", &["loop2"]),
                alias("loop2", &["loop1"]),
            ],
            catch_all: [("office.example".to_owned(), "alice".to_owned())].into(),
            ..Default::default()
        }
    }

    fn may(config: &Mail, user: &str, from: &str) -> bool {
        let path = if from.is_empty() {
            ReversePath::Null
        } else {
            ReversePath::Mailbox(from.into())
        };
        allowed_senders(config, user).is_none_or(|s| s.allows(&path))
    }

    #[test]
    fn own_name_in_every_local_domain_is_owned() {
        let c = config();
        assert!(may(&c, "alice", "alice@office.example"));
        assert!(may(&c, "alice", "ALICE@office2.example"));
        assert!(!may(&c, "alice", "bob@office.example"));
        assert!(!may(&c, "alice", "alice@elsewhere.example"));
    }

    #[test]
    fn aliases_and_groups_that_deliver_to_the_user_are_owned_through_nesting() {
        let c = config();
        assert!(may(&c, "alice", "a.smith@office.example"));
        assert!(may(&c, "alice", "a.smith@office2.example"));
        assert!(may(&c, "alice", "team@office.example"));
        assert!(may(&c, "bob", "team@office.example"));
        assert!(may(&c, "alice", "sales@office2.example"));
        assert!(may(&c, "bob", "press@office.example"));
        assert!(!may(&c, "alice", "press@office.example"));
        assert!(!may(&c, "bob", "a.smith@office.example"));
        // Not a local domain, whatever the alias says.
        assert!(!may(&c, "alice", "outside@elsewhere.example"));
        // A loop owns nobody and does not hang.
        assert!(!may(&c, "alice", "loop1@office.example"));
    }

    #[test]
    fn catch_all_and_implicit_postmaster_are_not_owned() {
        let c = config();
        assert!(!may(&c, "alice", "nobody@office.example"));
        assert!(!may(&c, "alice", "postmaster@office.example"));
    }

    #[test]
    fn send_as_entries_add_addresses_local_parts_domains_and_everything() {
        let c = config();
        assert!(may(&c, "bob", "boss@office.example"));
        assert!(!may(&c, "bob", "boss@office2.example"));
        assert!(may(&c, "bob", "orders@shop.example"));
        assert!(may(&c, "bob", "info@office2.example"));
        assert!(!may(&c, "alice", "info@office.example"));
        assert!(may(&c, "scanner", "anyone@anywhere.example"));
    }

    #[test]
    fn from_header_addresses_must_all_be_owned() {
        let c = config();
        let senders = allowed_senders(&c, "alice").unwrap();
        let refused = |headers: &str| {
            let message = format!("{headers}Subject: x\r\n\r\nbody\r\n");
            from_header_refusal(message.as_bytes(), &senders, "alice")
        };
        assert_eq!(refused("From: Alice <alice@office.example>\r\n"), None);
        assert_eq!(refused("From: \"Team\" <TEAM@office2.example>\r\n"), None);
        assert_eq!(refused("From: =?utf-8?q?Bob?= (no address)\r\n"), None);
        assert_eq!(refused("To: bob@office.example\r\n"), None);
        let reply = refused("From: Alice <alice@office.example>, Bob <bob@office.example>\r\n")
            .expect("bob is not alice's");
        assert_eq!((reply.code, reply.status), (550, S(5, 7, 1)));
        assert!(reply.lines[0].contains("<bob@office.example>"), "{reply:?}");
        assert!(refused("From: staff: bob@office.example;\r\n").is_some());
    }

    #[test]
    fn null_sender_and_the_whole_check_follow_the_submission_section() {
        let mut c = config();
        assert!(may(&c, "alice", ""));
        c.submission.allow_null_sender = false;
        assert!(!may(&c, "alice", ""));
        assert!(!may(&c, "scanner", ""));
        c.submission.sender_check = false;
        assert!(allowed_senders(&c, "alice").is_none());
    }
}
