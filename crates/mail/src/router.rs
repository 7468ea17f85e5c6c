//! Routing: what becomes of each recipient, decided at RCPT time.
//!
//! The order (shared/ARCHITECTURE.md): local user or alias -> forwarding -> remote user (relayed
//! to the ISP mailbox), each by the whole local part and then by its name without a `+detail`
//! (RFC 5233) -> postmaster and abuse -> catch-all -> fax domain -> relay (authenticated
//! submission or trusted network only) -> reject. The fax domain, like relaying, is only for authenticated clients and trusted
//! networks: a fax is a paid call. Unknown local recipients are refused at RCPT with 550 5.1.1, so no bounce
//! is ever made for them later.

use std::collections::HashSet;

use postroom_config::mail::{Mail, ROLE_MAILBOXES};
use postroom_smtp::{EnhancedStatus as S, Reply};
use serde::{Deserialize, Serialize};

/// Where one copy of a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Destination {
    /// A local user's INBOX.
    Local {
        /// The user name (the Maildir under the mail root).
        user: String,
    },
    /// An address elsewhere: relayed through the queue.
    Remote {
        /// The address to deliver to.
        address: String,
    },
    /// The fax spool, for the fax component.
    Fax {
        /// The number to dial, as given in the local part.
        number: String,
    },
}

/// A destination with the envelope recipient it was reached through (for Delivered-To and for
/// delivery status notices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routed {
    /// Where the copy goes.
    pub destination: Destination,
    /// The `RCPT TO` address that led here.
    pub recipient: String,
}

/// The routing table, built from `[mail]`.
#[derive(Debug, Clone)]
pub struct Router {
    config: Mail,
}

/// Aliases may name aliases; deeper chains are taken as a loop.
const MAX_ALIAS_DEPTH: usize = 8;

impl Router {
    /// A router for this configuration.
    pub fn new(config: Mail) -> Router {
        Router { config }
    }

    /// True when `domain` is one of ours (local or fax).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.config
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Resolves one `RCPT TO` address. `may_relay` is true for authenticated clients and
    /// trusted networks. The destinations are deduplicated.
    pub fn resolve(&self, address: &str, may_relay: bool) -> Result<Vec<Destination>, Reply> {
        let mut out = Vec::new();
        self.resolve_into(address, may_relay, 0, &mut out)?;
        let mut seen = HashSet::new();
        out.retain(|d| seen.insert(d.clone()));
        Ok(out)
    }

    fn resolve_into(
        &self,
        address: &str,
        may_relay: bool,
        depth: usize,
        out: &mut Vec<Destination>,
    ) -> Result<(), Reply> {
        if depth > MAX_ALIAS_DEPTH {
            return Err(Reply::new(554, S(5, 4, 6), "Alias loop detected"));
        }
        let (local, domain) = match address.rsplit_once('@') {
            Some((l, d)) => (l, d.to_ascii_lowercase()),
            // RFC 5321 section 4.5.1: <Postmaster> without a domain is ours.
            None if address.eq_ignore_ascii_case("postmaster") => {
                ("postmaster", self.primary_domain().to_owned())
            }
            None => return Err(Reply::new(553, S(5, 1, 3), "Address needs a domain")),
        };

        if self.is_local_domain(&domain) {
            return self.resolve_local(local, &domain, depth, out);
        }
        if !self.config.fax_domain.is_empty()
            && domain.eq_ignore_ascii_case(&self.config.fax_domain)
        {
            return match fax_number(local) {
                // A fax costs a call: only for people who may relay (authenticated, trusted
                // LAN), never for anyone on the internet (toll fraud).
                Some(_) if !may_relay => Err(Reply::new(
                    554,
                    S(5, 7, 1),
                    "Faxing needs authentication or a trusted network",
                )),
                Some(number) => {
                    out.push(Destination::Fax { number });
                    Ok(())
                }
                None => Err(Reply::new(550, S(5, 1, 1), "Not a fax number")),
            };
        }
        if may_relay {
            out.push(Destination::Remote {
                address: address.to_owned(),
            });
            return Ok(());
        }
        Err(Reply::new(554, S(5, 7, 1), "Relay access denied"))
    }

    fn resolve_local(
        &self,
        local: &str,
        domain: &str,
        depth: usize,
        out: &mut Vec<Destination>,
    ) -> Result<(), Reply> {
        let full = format!("{local}@{domain}");

        // 1-3 by the whole local part, then by its name without the detail: RFC 5233
        // subaddressing, `alice+lists@` is alice's unless something is named `alice+lists`.
        // The detail is not carried on: a remote user's ISP mailbox may not know it.
        if self.resolve_name(local, domain, depth, out)? {
            return Ok(());
        }
        let name = self.config.recipient_delimiter.name_of(local);
        if let Some(name) = name
            && self.resolve_name(name, domain, depth, out)?
        {
            return Ok(());
        }

        // RFC 5321 section 4.5.1: every domain must take mail for postmaster; RFC 2142: abuse
        // goes to the same person, the first user, unless configured otherwise.
        let name = name.unwrap_or(local);
        if ROLE_MAILBOXES.iter().any(|r| name.eq_ignore_ascii_case(r))
            && let Some(first) = self.config.users.first()
        {
            out.push(Destination::Local {
                user: first.name.clone(),
            });
            return Ok(());
        }

        // 4. The catch-all of the domain.
        let catch_all = self
            .config
            .catch_all
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain));
        if let Some((_, target)) = catch_all {
            let target = qualify(target, domain);
            if !target.eq_ignore_ascii_case(&full) {
                return self.resolve_into(&target, true, depth + 1, out);
            }
        }

        Err(Reply::new(550, S(5, 1, 1), "No such user here"))
    }

    /// Steps 1-3 for one local part: an alias or group, a user with their forwarding, a remote
    /// user. False when none is named so.
    fn resolve_name(
        &self,
        local: &str,
        domain: &str,
        depth: usize,
        out: &mut Vec<Destination>,
    ) -> Result<bool, Reply> {
        let full = format!("{local}@{domain}");

        // 1. Aliases and groups: a full-address alias wins over a local-part one.
        let alias = self
            .config
            .aliases
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(&full))
            .or_else(|| {
                self.config
                    .aliases
                    .iter()
                    .find(|a| a.name.eq_ignore_ascii_case(local))
            });
        if let Some(alias) = alias {
            for member in &alias.members {
                let member = qualify(member, domain);
                // Members were set by the administrator: outside members are allowed.
                self.resolve_into(&member, true, depth + 1, out)?;
            }
            return Ok(true);
        }

        // 2. Users, with their forwarding.
        if let Some(user) = self
            .config
            .users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(local))
        {
            if user.forward.is_empty() || user.keep_copy {
                out.push(Destination::Local {
                    user: user.name.clone(),
                });
            }
            for target in &user.forward {
                let target = qualify(target, domain);
                self.resolve_into(&target, true, depth + 1, out)?;
            }
            return Ok(true);
        }

        // 3. Remote users: their mailbox is at the ISP.
        let remote = self
            .config
            .remote_users
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(&full) || r.name.eq_ignore_ascii_case(local));
        if let Some(remote) = remote {
            out.push(Destination::Remote {
                address: remote.mailbox.clone(),
            });
            return Ok(true);
        }
        Ok(false)
    }

    fn primary_domain(&self) -> &str {
        self.config
            .domains
            .first()
            .map_or("localhost", String::as_str)
    }
}

/// A bare local name in the configuration means that name in `domain`.
fn qualify(name: &str, domain: &str) -> String {
    if name.contains('@') {
        name.to_owned()
    } else {
        format!("{name}@{domain}")
    }
}

/// A fax number from a local part: digits, with an optional leading `+` and `-` or `.` as
/// separators, which are dropped.
fn fax_number(local: &str) -> Option<String> {
    let (plus, digits) = match local.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", local),
    };
    if digits.is_empty()
        || !digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '.')
    {
        return None;
    }
    let number: String = digits.chars().filter(char::is_ascii_digit).collect();
    (!number.is_empty()).then(|| format!("{plus}{number}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use postroom_config::mail::{Alias, RecipientDelimiter, RemoteUser, User};

    fn router() -> Router {
        let user = |name: &str| User {
            name: name.into(),
            ..Default::default()
        };
        let mut config = Mail {
            domains: vec!["office.example".into(), "office2.example".into()],
            fax_domain: "fax.office.example".into(),
            users: vec![
                user("alice"),
                user("bob"),
                User {
                    name: "carol".into(),
                    forward: vec!["carol@home.example".into()],
                    keep_copy: false,
                    ..Default::default()
                },
                User {
                    name: "dave".into(),
                    forward: vec!["dave@home.example".into(), "bob".into()],
                    keep_copy: true,
                    ..Default::default()
                },
            ],
            aliases: vec![
                Alias {
                    name: "info".into(),
                    members: vec!["alice".into()],
                },
                Alias {
                    name: "team".into(),
                    members: vec!["alice".into(), "bob".into(), "info".into()],
                },
                Alias {
                    name: "loop".into(),
                    members: vec!["loop".into()],
                },
            ],
            remote_users: vec![RemoteUser {
                name: "erin".into(),
                mailbox: "erin.smith@isp.example".into(),
            }],
            ..Default::default()
        };
        config
            .catch_all
            .insert("office2.example".into(), "bob".into());
        Router::new(config)
    }

    fn local(user: &str) -> Destination {
        Destination::Local { user: user.into() }
    }

    fn remote(address: &str) -> Destination {
        Destination::Remote {
            address: address.into(),
        }
    }

    #[test]
    fn local_user_is_delivered_locally_in_any_case() {
        assert_eq!(
            router().resolve("Alice@OFFICE.example", false),
            Ok(vec![local("alice")])
        );
    }

    #[test]
    fn unknown_local_user_gets_550_5_1_1() {
        let err = router()
            .resolve("nobody@office.example", false)
            .unwrap_err();
        assert_eq!((err.code, err.status), (550, S(5, 1, 1)));
    }

    #[test]
    fn group_expands_to_each_member_once() {
        let got = router().resolve("team@office.example", false).unwrap();
        assert_eq!(got, vec![local("alice"), local("bob")]);
    }

    #[test]
    fn alias_loop_is_refused_not_followed_forever() {
        let err = router().resolve("loop@office.example", false).unwrap_err();
        assert_eq!(err.code, 554);
    }

    #[test]
    fn forwarding_without_copy_goes_only_outside() {
        let got = router().resolve("carol@office.example", false).unwrap();
        assert_eq!(got, vec![remote("carol@home.example")]);
    }

    #[test]
    fn forwarding_with_copy_keeps_a_local_copy() {
        let got = router().resolve("dave@office.example", false).unwrap();
        assert_eq!(
            got,
            vec![local("dave"), remote("dave@home.example"), local("bob")]
        );
    }

    #[test]
    fn remote_user_is_relayed_to_isp_mailbox_without_auth() {
        let got = router().resolve("erin@office.example", false).unwrap();
        assert_eq!(got, vec![remote("erin.smith@isp.example")]);
    }

    #[test]
    fn catch_all_takes_unknown_local_parts_of_its_domain() {
        let got = router().resolve("whoever@office2.example", false).unwrap();
        assert_eq!(got, vec![local("bob")]);
    }

    #[test]
    fn fax_domain_gives_fax_destination() {
        let got = router()
            .resolve("+49-30-1234@fax.office.example", true)
            .unwrap();
        assert_eq!(
            got,
            vec![Destination::Fax {
                number: "+49301234".into()
            }]
        );
        assert_eq!(
            router()
                .resolve("bob@fax.office.example", true)
                .unwrap_err()
                .code,
            550
        );
    }

    #[test]
    fn fax_from_unauthenticated_outsider_is_refused() {
        let err = router()
            .resolve("5551234@fax.office.example", false)
            .unwrap_err();
        assert_eq!((err.code, err.status), (554, S(5, 7, 1)));
    }

    #[test]
    fn outside_address_relays_only_when_allowed() {
        let err = router().resolve("x@elsewhere.example", false).unwrap_err();
        assert_eq!((err.code, err.status), (554, S(5, 7, 1)));
        assert_eq!(
            router().resolve("x@elsewhere.example", true),
            Ok(vec![remote("x@elsewhere.example")])
        );
    }

    #[test]
    fn postmaster_always_has_a_home() {
        assert_eq!(
            router().resolve("postmaster", false),
            Ok(vec![local("alice")])
        );
        assert_eq!(
            router().resolve("PostMaster@office.example", false),
            Ok(vec![local("alice")])
        );
    }

    /// The tester's case: `alice+tag@` was refused with 550 5.1.1.
    #[test]
    fn subaddress_reaches_what_its_name_reaches() {
        let r = router();
        let resolve = |a: &str| r.resolve(a, false);
        assert_eq!(
            resolve("alice+tag@office.example"),
            Ok(vec![local("alice")])
        );
        assert_eq!(
            resolve("Alice+a+b@office.example"),
            Ok(vec![local("alice")])
        );
        assert_eq!(
            resolve("team+x@office.example"),
            Ok(vec![local("alice"), local("bob")])
        );
        assert_eq!(
            resolve("carol+x@office.example"),
            Ok(vec![remote("carol@home.example")])
        );
        // A remote user's ISP mailbox gets the mail without the detail.
        assert_eq!(
            resolve("erin+x@office.example"),
            Ok(vec![remote("erin.smith@isp.example")])
        );
        assert_eq!(
            resolve("postmaster+x@office.example"),
            Ok(vec![local("alice")])
        );
        // No name: the catch-all, or 550.
        assert_eq!(resolve("nobody+x@office2.example"), Ok(vec![local("bob")]));
        let err = resolve("nobody+x@office.example").unwrap_err();
        assert_eq!((err.code, err.status), (550, S(5, 1, 1)));
        let err = resolve("+alice@office.example").unwrap_err();
        assert_eq!(err.code, 550);
    }

    #[test]
    fn a_name_with_the_delimiter_in_it_wins_over_the_subaddress() {
        let mut config = router().config;
        config.aliases.push(Alias {
            name: "alice+lists".into(),
            members: vec!["bob".into()],
        });
        let r = Router::new(config);
        assert_eq!(
            r.resolve("alice+lists@office.example", false),
            Ok(vec![local("bob")])
        );
        assert_eq!(
            r.resolve("alice+other@office.example", false),
            Ok(vec![local("alice")])
        );
    }

    #[test]
    fn recipient_delimiter_is_configurable_and_can_be_off() {
        let mut config = router().config;
        config.recipient_delimiter = RecipientDelimiter("-".into());
        let r = Router::new(config.clone());
        assert_eq!(
            r.resolve("alice-tag@office.example", false),
            Ok(vec![local("alice")])
        );
        assert_eq!(
            r.resolve("alice+tag@office.example", false)
                .unwrap_err()
                .code,
            550
        );
        config.recipient_delimiter = RecipientDelimiter(String::new());
        let r = Router::new(config);
        assert_eq!(
            r.resolve("alice-tag@office.example", false)
                .unwrap_err()
                .code,
            550
        );
    }

    #[test]
    fn abuse_goes_where_postmaster_goes_unless_someone_has_it() {
        assert_eq!(
            router().resolve("abuse@office.example", false),
            Ok(vec![local("alice")])
        );
        let mut config = router().config;
        config.aliases.push(Alias {
            name: "abuse".into(),
            members: vec!["bob".into()],
        });
        let r = Router::new(config);
        assert_eq!(
            r.resolve("abuse@office.example", false),
            Ok(vec![local("bob")])
        );
    }
}
