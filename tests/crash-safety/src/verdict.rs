//! The comparison of what the load clients were promised with what was delivered.
//!
//! The rules (issue 6, item 4):
//! - a message that got its 250 is in each local recipient's Maildir exactly once, or still in
//!   the queue; at the smarthost at least once, or still in the queue;
//! - a message that got no 250 may be missing, but no local copy is there twice;
//! - a remote copy may arrive twice only where SMTP cannot prevent it (killed after the
//!   smarthost's 250 and before the queue recorded it): such copies are counted, not failed;
//! - every delivered copy is whole (its body hash is the one sent) and belongs to a message
//!   sent to that mailbox.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::load::{Answer, Destination, Sent};
use crate::mailbox::Delivered;

/// The outcome of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Messages sent or begun.
    pub sent: usize,
    /// Of those, answered 250.
    pub accepted: usize,
    /// Of those, without 250 (refused, or the connection broke).
    pub not_accepted: usize,
    /// Copies promised: each accepted message times its destinations.
    pub copies_promised: usize,
    /// Accepted copies found in local Maildirs.
    pub local_delivered: usize,
    /// Accepted copies found at the smarthost (each message counted once).
    pub remote_delivered: usize,
    /// Copies of messages without 250 that were delivered anyway (allowed).
    pub delivered_without_250: usize,
    /// Accepted copies not delivered but still in the queue.
    pub still_queued: usize,
    /// Accepted copies neither delivered nor queued: `message-id -> destination`.
    pub lost: Vec<String>,
    /// Local copies found more than once: `message-id -> user: n copies`.
    pub local_duplicates: Vec<String>,
    /// Extra remote copies (the second and later of one message at the smarthost).
    pub remote_duplicates: usize,
    /// Copies whose body is not the one sent: their paths.
    pub damaged: Vec<String>,
    /// Files with no Message-ID, or one not sent to that mailbox: their paths.
    pub unknown: Vec<String>,
}

impl Report {
    /// Compares `sent` with the files found per destination and the copies still queued.
    pub fn new(
        sent: &[Sent],
        delivered: &BTreeMap<Destination, Vec<Delivered>>,
        queued: &BTreeSet<(String, Destination)>,
    ) -> Report {
        let mut report = Report {
            sent: sent.len(),
            ..Report::default()
        };
        let by_id: HashMap<&str, &Sent> = sent.iter().map(|s| (s.message_id.as_str(), s)).collect();

        // Copies per (message, destination), checking each file on the way.
        let mut copies: HashMap<(&str, &Destination), usize> = HashMap::new();
        for (destination, files) in delivered {
            for file in files {
                let owner = file
                    .message_id
                    .as_deref()
                    .and_then(|id| by_id.get(id))
                    .filter(|s| s.destinations.contains(destination));
                let Some(owner) = owner else {
                    report.unknown.push(file.path.display().to_string());
                    continue;
                };
                if owner.body_hash != file.body_hash {
                    report.damaged.push(file.path.display().to_string());
                }
                *copies
                    .entry((owner.message_id.as_str(), destination))
                    .or_default() += 1;
            }
        }

        for message in sent {
            let accepted = message.answer == Answer::Accepted;
            if accepted {
                report.accepted += 1;
                report.copies_promised += message.destinations.len();
            } else {
                report.not_accepted += 1;
            }
            for destination in &message.destinations {
                let n = copies
                    .get(&(message.message_id.as_str(), destination))
                    .copied()
                    .unwrap_or(0);
                let id = &message.message_id;
                match destination {
                    Destination::Local(user) if n > 1 => {
                        report
                            .local_duplicates
                            .push(format!("{id} -> {user}: {n} copies"));
                    }
                    Destination::Remote(_) if n > 1 => report.remote_duplicates += n - 1,
                    _ => {}
                }
                if !accepted {
                    report.delivered_without_250 += n.min(1);
                    continue;
                }
                if n == 0 {
                    if queued.contains(&(id.clone(), destination.clone())) {
                        report.still_queued += 1;
                    } else {
                        report.lost.push(format!("{id} -> {destination:?}"));
                    }
                    continue;
                }
                match destination {
                    Destination::Local(_) => report.local_delivered += 1,
                    Destination::Remote(_) => report.remote_delivered += 1,
                }
            }
        }
        report
    }

    /// What breaks the promise: lost or damaged copies, local duplicates, strangers.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let mut list = |what: &str, items: &[String]| {
            if !items.is_empty() {
                let shown: Vec<&str> = items.iter().take(20).map(String::as_str).collect();
                failures.push(format!("{} {what}: {}", items.len(), shown.join("; ")));
            }
        };
        list("accepted copies lost", &self.lost);
        list(
            "local copies delivered twice or more",
            &self.local_duplicates,
        );
        list("damaged copies", &self.damaged);
        list("files that belong to no message sent there", &self.unknown);
        failures
    }

    /// The figures, one per line, for the test's output and docs/RELIABILITY.md.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "messages sent (begun):              {}", self.sent);
        let _ = writeln!(s, "  answered 250:                     {}", self.accepted);
        let _ = writeln!(
            s,
            "  without 250:                      {}",
            self.not_accepted
        );
        let _ = writeln!(
            s,
            "copies promised (250 x recipients): {}",
            self.copies_promised
        );
        let _ = writeln!(
            s,
            "  delivered to local Maildirs:      {}",
            self.local_delivered
        );
        let _ = writeln!(
            s,
            "  delivered at the smarthost:       {}",
            self.remote_delivered
        );
        let _ = writeln!(
            s,
            "  still in the queue:               {}",
            self.still_queued
        );
        let _ = writeln!(s, "  lost:                             {}", self.lost.len());
        let _ = writeln!(
            s,
            "copies of messages without 250:     {}",
            self.delivered_without_250
        );
        let _ = writeln!(
            s,
            "local duplicates:                   {}",
            self.local_duplicates.len()
        );
        let _ = writeln!(
            s,
            "remote duplicates (extra copies):   {}",
            self.remote_duplicates
        );
        let _ = writeln!(
            s,
            "damaged copies:                     {}",
            self.damaged.len()
        );
        let _ = writeln!(
            s,
            "unknown files:                      {}",
            self.unknown.len()
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn local(user: &str) -> Destination {
        Destination::Local(user.into())
    }

    fn remote() -> Destination {
        Destination::Remote("carol@elsewhere.example".into())
    }

    fn sent(id: &str, destinations: Vec<Destination>, answer: Answer) -> Sent {
        Sent {
            message_id: id.into(),
            destinations,
            body_hash: 7,
            answer,
        }
    }

    fn file(id: &str, hash: u64) -> Delivered {
        Delivered {
            path: PathBuf::from(format!("/m/{id}")),
            message_id: Some(id.into()),
            body_hash: hash,
        }
    }

    fn delivered(
        entries: Vec<(Destination, Vec<Delivered>)>,
    ) -> BTreeMap<Destination, Vec<Delivered>> {
        entries.into_iter().collect()
    }

    #[test]
    fn every_accepted_copy_delivered_once_passes() {
        let sent = [
            sent("a", vec![local("alice"), remote()], Answer::Accepted),
            sent("b", vec![local("bob")], Answer::NotAccepted),
        ];
        let found = delivered(vec![
            (local("alice"), vec![file("a", 7)]),
            (remote(), vec![file("a", 7)]),
        ]);
        let report = Report::new(&sent, &found, &BTreeSet::new());
        assert!(report.failures().is_empty(), "{:?}", report.failures());
        assert_eq!(
            (
                report.accepted,
                report.local_delivered,
                report.remote_delivered
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn a_missing_accepted_copy_is_lost_unless_it_is_still_queued() {
        let sent = [sent("a", vec![local("alice"), remote()], Answer::Accepted)];
        let found = delivered(vec![(local("alice"), vec![file("a", 7)])]);
        let report = Report::new(&sent, &found, &BTreeSet::new());
        assert_eq!(report.lost.len(), 1);
        assert_eq!(report.failures().len(), 1);

        let queued = BTreeSet::from([("a".to_owned(), remote())]);
        let report = Report::new(&sent, &found, &queued);
        assert!(report.failures().is_empty());
        assert_eq!(report.still_queued, 1);
    }

    #[test]
    fn a_local_copy_twice_fails_even_without_250_but_a_remote_one_is_only_counted() {
        let sent = [
            sent("a", vec![local("bob")], Answer::NotAccepted),
            sent("b", vec![remote()], Answer::Accepted),
        ];
        let found = delivered(vec![
            (local("bob"), vec![file("a", 7), file("a", 7)]),
            (remote(), vec![file("b", 7), file("b", 7)]),
        ]);
        let report = Report::new(&sent, &found, &BTreeSet::new());
        assert_eq!(report.local_duplicates.len(), 1);
        assert_eq!(report.remote_duplicates, 1);
        assert_eq!(report.failures().len(), 1);
    }

    #[test]
    fn damaged_and_stray_files_fail() {
        let sent = [sent("a", vec![local("alice")], Answer::Accepted)];
        let found = delivered(vec![
            (local("alice"), vec![file("a", 8)]),
            (local("bob"), vec![file("a", 7), file("zz", 7)]),
        ]);
        let report = Report::new(&sent, &found, &BTreeSet::new());
        assert_eq!(report.damaged.len(), 1);
        assert_eq!(
            report.unknown.len(),
            2,
            "a was not sent to bob; zz was never sent"
        );
        assert_eq!(report.failures().len(), 2);
    }
}
