//! Mailbox-level commands: the view refresh, LIST and LSUB, STATUS, APPEND.

use std::collections::HashMap;
use std::time::SystemTime;

use imap_codec::imap_types::flag::{Flag, StoreType};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as WireMailbox};
use imap_codec::imap_types::status::StatusDataItemName;
use postroom_maildir::{Flags, SPECIAL_FOLDERS, mutf7};

use super::messages::{self, apply_flags, flag_list};
use super::*;
use crate::wire;

impl Session {
    /// Brings the view up to date with the mailbox, writing untagged EXPUNGE (when allowed,
    /// RFC 3501 section 7.4.1), EXISTS, RECENT and FETCH FLAGS responses.
    pub(super) fn refresh(&mut self, out: &mut Vec<u8>, allow_expunge: bool) {
        let State::Selected { selected, .. } = &mut self.state else {
            return;
        };
        while selected.watch.try_recv().is_ok() {}
        let snap = match selected.mailbox.snapshot_shared(!selected.read_only) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "mailbox rescan failed");
                return;
            }
        };
        let table = selected.mailbox.keywords().unwrap_or_default();
        let table_changed = table != selected.keywords;
        if table_changed {
            // RFC 3501 section 7.2.6: a new keyword is announced with FLAGS.
            push(out, &flags_response(&table));
            if !selected.read_only {
                push(out, &permanent_flags(&table));
            }
            selected.keywords = table;
        }
        // The very scan this view was last brought in line with: nothing changed since.
        if selected
            .scan
            .as_ref()
            .is_some_and(|seen| Arc::ptr_eq(seen, &snap))
        {
            return;
        }
        let by_uid: HashMap<u32, &postroom_maildir::Message> =
            snap.messages.iter().map(|m| (m.uid, m)).collect();
        // Whether the view still holds messages the scan no longer has (an EXPUNGE that may not
        // be announced now, RFC 3501 section 7.4.1): then the view is not the scan.
        let mut withheld = false;
        if allow_expunge {
            let mut i = 0;
            while i < selected.messages.len() {
                if by_uid.contains_key(&selected.messages[i].uid) {
                    i += 1;
                } else {
                    selected.messages.remove(i);
                    push(out, &format!("* {} EXPUNGE\r\n", i + 1));
                }
            }
        }
        for (i, view) in selected.messages.iter_mut().enumerate() {
            let Some(m) = by_uid.get(&view.uid) else {
                withheld = true;
                continue;
            };
            view.path = m.path.clone();
            if m.flags != view.flags {
                view.flags = m.flags.clone();
                view.keywords = keyword_names(&view.flags, &selected.keywords);
                push(
                    out,
                    &format!(
                        "* {} FETCH (UID {} FLAGS ({}))\r\n",
                        i + 1,
                        view.uid,
                        flag_list(view)
                    ),
                );
            }
        }
        let last = selected.messages.last().map_or(0, |m| m.uid);
        let before = selected.messages.len();
        for m in snap.messages.iter().filter(|m| m.uid > last) {
            selected.messages.push(View {
                keywords: keyword_names(&m.flags, &selected.keywords),
                uid: m.uid,
                unique: m.unique.clone(),
                path: m.path.clone(),
                flags: m.flags.clone(),
                recent: m.recent,
            });
        }
        if selected.messages.len() != before {
            let recent = selected.messages.iter().filter(|m| m.recent).count();
            push(
                out,
                &format!(
                    "* {} EXISTS\r\n* {recent} RECENT\r\n",
                    selected.messages.len()
                ),
            );
        }
        selected.uid_next = snap.uid_next;
        selected.uid_validity = snap.uid_validity;
        selected.scan = if withheld { None } else { Some(snap) };
    }

    pub(super) fn list(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        reference: &WireMailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
    ) {
        let Some(user) = self.user().map(str::to_owned) else {
            return;
        };
        let verb = if lsub { "LSUB" } else { "LIST" };
        let reference = match reference {
            WireMailbox::Inbox => "INBOX".to_owned(),
            WireMailbox::Other(o) => String::from_utf8_lossy(o.inner().as_ref()).into_owned(),
        };
        let pattern = match pattern {
            ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
            ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
        };
        if pattern.is_empty() && !lsub {
            // RFC 3501 section 6.3.8: the hierarchy delimiter and root.
            push(out, "* LIST (\\Noselect) \".\" \"\"\r\n");
            push(out, &format!("{tag} OK LIST completed\r\n"));
            return;
        }
        let full = format!("{reference}{pattern}");
        let names = match self.store.list_mailboxes(&user) {
            Ok(n) => n,
            Err(e) => {
                push(out, &format!("{tag} NO {}\r\n", one_line(&e.to_string())));
                return;
            }
        };
        let subscribed = self.store.subscriptions(&user).unwrap_or_default();
        let candidates: Vec<String> = if lsub {
            subscribed
                .iter()
                .filter(|s| s.eq_ignore_ascii_case("INBOX") || names.contains(s))
                .cloned()
                .collect()
        } else {
            with_missing_parents(&names)
        };
        for name in candidates {
            let encoded = mutf7::encode(&name);
            let matched = if full.to_ascii_uppercase().starts_with("INBOX") && name == "INBOX" {
                wildcard(&full.to_ascii_uppercase(), "INBOX")
            } else {
                wildcard(&full, &encoded)
            };
            if !matched {
                continue;
            }
            let mut attrs: Vec<&str> = Vec::new();
            if !lsub && !names.contains(&name) {
                attrs.push("\\Noselect");
            }
            let children = names.iter().any(|n| n.starts_with(&format!("{name}.")));
            attrs.push(if children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if let Some((_, special)) = SPECIAL_FOLDERS.iter().find(|(n, _)| *n == name) {
                attrs.push(special);
            }
            if !lsub && subscribed.contains(&name) {
                attrs.push("\\Subscribed");
            }
            if lsub {
                attrs.retain(|a| *a != "\\HasChildren" && *a != "\\HasNoChildren");
            }
            let mut line = format!("* {verb} ({}) \".\" ", attrs.join(" ")).into_bytes();
            wire::mailbox(&mut line, &encoded);
            line.extend_from_slice(b"\r\n");
            out.extend_from_slice(&line);
        }
        push(out, &format!("{tag} OK {verb} completed\r\n"));
    }

    pub(super) fn status(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        mailbox: &WireMailbox<'_>,
        items: &[StatusDataItemName],
    ) {
        let result = self.mailbox_name(mailbox).and_then(|(user, name)| {
            let mb = self
                .store
                .mailbox(&user, &name)
                .map_err(|e| e.to_string())?;
            let snap = mb.snapshot(false).map_err(|e| e.to_string())?;
            Ok((name, mb, snap))
        });
        let (name, mb, snap) = match result {
            Ok(x) => x,
            Err(e) => {
                push(out, &format!("{tag} NO {}\r\n", one_line(&e)));
                return;
            }
        };
        let new_dir = mb.maildir().path().join("new");
        let mut parts = Vec::new();
        for item in items {
            match item {
                StatusDataItemName::Messages => {
                    parts.push(format!("MESSAGES {}", snap.messages.len()))
                }
                StatusDataItemName::Recent => {
                    let n = snap
                        .messages
                        .iter()
                        .filter(|m| m.path.parent() == Some(&new_dir))
                        .count();
                    parts.push(format!("RECENT {n}"));
                }
                StatusDataItemName::UidNext => parts.push(format!("UIDNEXT {}", snap.uid_next)),
                StatusDataItemName::UidValidity => {
                    parts.push(format!("UIDVALIDITY {}", snap.uid_validity))
                }
                StatusDataItemName::Unseen => {
                    let n = snap.messages.iter().filter(|m| !m.flags.seen).count();
                    parts.push(format!("UNSEEN {n}"));
                }
                StatusDataItemName::Deleted => {
                    let n = snap.messages.iter().filter(|m| m.flags.deleted).count();
                    parts.push(format!("DELETED {n}"));
                }
                _ => {}
            }
        }
        let mut line = b"* STATUS ".to_vec();
        wire::mailbox(&mut line, &mutf7::encode(&name));
        line.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        out.extend_from_slice(&line);
        push(out, &format!("{tag} OK STATUS completed\r\n"));
    }

    pub(super) fn append(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        mailbox: &WireMailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<SystemTime>,
        data: &[u8],
    ) {
        let result = self.mailbox_name(mailbox).and_then(|(user, name)| {
            self.store
                .mailbox(&user, &name)
                .map_err(|_| "[TRYCREATE] no such mailbox".to_owned())
        });
        let target = match result {
            Ok(mb) => mb,
            Err(e) => {
                push(out, &format!("{tag} NO {e}\r\n"));
                return;
            }
        };
        let letters = match messages::keyword_letters(&target, flags, true) {
            Ok(letters) => letters,
            Err(why) => {
                push(out, &format!("{tag} NO {why}\r\n"));
                return;
            }
        };
        let mut new_flags = Flags::default();
        apply_flags(&mut new_flags, flags, StoreType::Replace, &mut |k| {
            messages::letter_of(&letters, k)
        });
        match target.append(&mut &data[..], &new_flags, date) {
            Ok(uid) => {
                let validity = target.snapshot(false).map(|s| s.uid_validity).unwrap_or(0);
                self.refresh(out, false);
                push(
                    out,
                    &format!("{tag} OK [APPENDUID {validity} {uid}] APPEND completed\r\n"),
                );
            }
            Err(e) => push(out, &format!("{tag} NO {}\r\n", one_line(&e.to_string()))),
        }
    }
}

/// IMAP LIST wildcards (RFC 3501 section 6.3.8): `*` matches anything, `%` anything but the
/// hierarchy delimiter. Dynamic programming over (pattern, name) positions, so a pattern of many
/// wildcards costs pattern length times name length, not an exponential backtrack.
/// `names` with the levels above a mailbox that are no mailbox themselves (left by DELETE of a
/// parent, or made by hand in the Maildir), each just before its first child. RFC 3501 section
/// 6.3.8: LIST with `%` must show such a level, as \Noselect, or a client never sees the
/// mailboxes below it.
fn with_missing_parents(names: &[String]) -> Vec<String> {
    let mut all: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        for (at, _) in name.match_indices('.') {
            let parent = &name[..at];
            if !parent.is_empty()
                && !names.iter().any(|n| n == parent)
                && !all.iter().any(|n| n == parent)
            {
                all.push(parent.to_owned());
            }
        }
        all.push(name.clone());
    }
    all
}

pub(crate) fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // row[j]: the pattern so far matches the first j bytes of the name.
    let mut row = vec![false; n.len() + 1];
    row[0] = true;
    for &c in p {
        let mut next = vec![false; n.len() + 1];
        match c {
            b'*' => {
                let mut reached = false;
                for j in 0..=n.len() {
                    reached |= row[j];
                    next[j] = reached;
                }
            }
            b'%' => {
                let mut reached = false;
                for j in 0..=n.len() {
                    reached |= row[j];
                    next[j] = reached;
                    // `%` cannot stretch over a delimiter.
                    if j < n.len() && n[j] == b'.' {
                        reached = false;
                    }
                }
            }
            c => {
                for j in 1..=n.len() {
                    next[j] = row[j - 1] && n[j - 1] == c;
                }
            }
        }
        row = next;
    }
    row[n.len()]
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn list_wildcards_match_as_rfc3501_says() {
        assert!(wildcard("*", "Archive.2026"));
        assert!(wildcard("%", "Archive"));
        assert!(!wildcard("%", "Archive.2026"));
        assert!(wildcard("Archive.%", "Archive.2026"));
        assert!(wildcard("A%.2%", "Archive.2026"));
        assert!(!wildcard("Archive", "Archive.2026"));
        assert!(wildcard("*6", "Archive.2026"));
    }

    #[test]
    fn many_stars_do_not_take_exponential_time() {
        let pattern = format!("{}x", "*a".repeat(200));
        let name = "a".repeat(400);
        let start = std::time::Instant::now();
        assert!(!wildcard(&pattern, &name));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
