//! Which reverse-paths an authenticated client may give in `MAIL FROM`.
//!
//! RFC 6409 section 6.1 lets a submission server refuse a `MAIL FROM` that the authenticated
//! identity has no right to use. The driver knows who owns which address (users, aliases,
//! extra addresses in the configuration) and hands the session an [`AllowedSenders`] once the
//! client has authenticated; the session then checks every `MAIL FROM` against it, without
//! asking the driver again.

use crate::envelope::ReversePath;

/// The reverse-paths one authenticated user may use. Addresses and domains compare without
/// regard to ASCII case, as routing does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedSenders {
    /// Whole addresses, `local@domain`.
    addresses: Vec<String>,
    /// Domains in which every address is allowed.
    domains: Vec<String>,
    /// Every address is allowed.
    any: bool,
    /// The null reverse-path `<>` is allowed.
    null: bool,
}

impl AllowedSenders {
    /// Nothing allowed yet.
    pub fn new() -> AllowedSenders {
        AllowedSenders::default()
    }

    /// Allows one address.
    pub fn add_address(&mut self, address: &str) {
        if !self
            .addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(address))
        {
            self.addresses.push(address.to_owned());
        }
    }

    /// Allows every address in `domain`.
    pub fn add_domain(&mut self, domain: &str) {
        if !self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            self.domains.push(domain.to_owned());
        }
    }

    /// Allows every address (no check at all).
    pub fn allow_any(&mut self) {
        self.any = true;
    }

    /// Allows or forbids the null reverse-path `<>`.
    pub fn allow_null(&mut self, allowed: bool) {
        self.null = allowed;
    }

    /// The addresses allowed one by one, in the order added.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// True when `path` may be used.
    pub fn allows(&self, path: &ReversePath) -> bool {
        match path {
            ReversePath::Null => self.null,
            ReversePath::Mailbox(_) if self.any => true,
            ReversePath::Mailbox(address) => {
                self.addresses
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(address))
                    || address.rsplit_once('@').is_some_and(|(_, domain)| {
                        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(a: &str) -> ReversePath {
        ReversePath::Mailbox(a.into())
    }

    #[test]
    fn addresses_and_domains_match_without_regard_to_case_and_nothing_else_does() {
        let mut senders = AllowedSenders::new();
        senders.add_address("alice@office.example");
        senders.add_domain("shop.example");
        assert!(senders.allows(&mailbox("Alice@OFFICE.example")));
        assert!(senders.allows(&mailbox("orders@Shop.Example")));
        assert!(!senders.allows(&mailbox("bob@office.example")));
        assert!(!senders.allows(&mailbox("alice@office.example.evil")));
        assert!(!senders.allows(&mailbox("x@sub.shop.example")));
        assert!(!senders.allows(&mailbox("shop.example")));
        assert!(!senders.allows(&ReversePath::Null));
    }

    #[test]
    fn null_path_and_any_are_separate_permissions() {
        let mut senders = AllowedSenders::new();
        senders.allow_any();
        assert!(senders.allows(&mailbox("anyone@anywhere.example")));
        assert!(!senders.allows(&ReversePath::Null));
        senders.allow_null(true);
        assert!(senders.allows(&ReversePath::Null));
    }
}
