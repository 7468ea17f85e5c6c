//! Message-level commands: EXPUNGE, SEARCH, FETCH, STORE, COPY and MOVE.

use std::io::Write as _;
use std::time::SystemTime;

use imap_codec::imap_types::fetch::{Macro, MessageDataItemName, Section};
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use postroom_maildir::{Flags, Mailbox};

use super::*;
use crate::fetch::{self, Loaded, SectionText};
use crate::{search, wire};

impl Session {
    pub(super) fn expunge(&mut self, out: &mut Vec<u8>, tag: &str, uids: Option<&SequenceSet>) {
        let State::Selected { selected, .. } = &mut self.state else {
            return;
        };
        if selected.read_only {
            push(out, &format!("{tag} NO mailbox is read-only\r\n"));
            return;
        }
        let max_uid = selected.messages.last().map_or(0, |m| m.uid);
        let gone: Vec<String> = selected
            .messages
            .iter()
            .filter(|m| m.flags.deleted)
            .filter(|m| uids.is_none_or(|set| contains(set, m.uid, max_uid)))
            .map(|m| m.unique.clone())
            .collect();
        if let Err(e) = selected.mailbox.expunge(&gone) {
            push(out, &format!("{tag} NO {}\r\n", one_line(&e.to_string())));
            return;
        }
        self.refresh(out, true);
        push(out, &format!("{tag} OK EXPUNGE completed\r\n"));
    }

    pub(super) fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, String> {
        let State::Selected { selected, .. } = &self.state else {
            return Ok(Vec::new());
        };
        let msgs = &selected.messages;
        if uid {
            let max = msgs.last().map_or(0, |m| m.uid);
            return Ok((0..msgs.len())
                .filter(|&i| contains(set, msgs[i].uid, max))
                .collect());
        }
        let count = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
        for seq in set.0.as_ref() {
            let values = match seq {
                Sequence::Single(a) => vec![*a],
                Sequence::Range(a, b) => vec![*a, *b],
            };
            for v in values {
                if let SeqOrUid::Value(n) = v
                    && n.get() > count
                {
                    return Err("invalid message sequence number".to_owned());
                }
            }
        }
        Ok((0..msgs.len())
            .filter(|&i| contains(set, i as u32 + 1, count))
            .collect())
    }

    pub(super) fn search(
        &mut self,
        keys: &[imap_codec::imap_types::search::SearchKey<'_>],
        uid: bool,
    ) -> Result<Vec<u32>, String> {
        let State::Selected { selected, .. } = &self.state else {
            return Ok(Vec::new());
        };
        search::run(&selected.mailbox, &selected.messages, keys, uid)
    }

    /// Starts answering a FETCH; [`Session::run_fetch`] writes the responses.
    pub(super) fn fetch(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        set: &SequenceSet,
        items: Vec<MessageDataItemName<'static>>,
        uid: bool,
    ) {
        let indices = match self.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => {
                push(out, &format!("{tag} BAD {e}\r\n"));
                return;
            }
        };
        let State::Selected { selected, .. } = &self.state else {
            return;
        };
        let read_only = selected.read_only;
        let mut items: Vec<MessageDataItemName<'static>> = items
            .into_iter()
            .filter(|i| {
                !matches!(
                    i,
                    MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. }
                )
            })
            .collect();
        if uid && !items.contains(&MessageDataItemName::Uid) {
            items.insert(0, MessageDataItemName::Uid);
        }
        let sets_seen = !read_only
            && items.iter().any(|i| {
                matches!(
                    i,
                    MessageDataItemName::BodyExt { peek: false, .. }
                        | MessageDataItemName::Rfc822
                        | MessageDataItemName::Rfc822Text
                )
            });
        let need = Need::of(&items);
        self.pending = Some(Box::new(FetchJob {
            tag: tag.to_owned(),
            uid,
            items,
            indices: indices.into_iter(),
            sets_seen,
            need,
        }));
    }

    /// Writes FETCH responses of a [`FetchJob`] until it is done (then the tagged OK), or
    /// until `out` holds the chunk size the driver asked for: the rest waits in `pending`, so
    /// a FETCH of a whole mailbox goes out while it is being read instead of being built in
    /// memory first.
    pub(super) fn run_fetch(&mut self, mut job: Box<FetchJob>, out: &mut Vec<u8>) {
        let State::Selected { selected, .. } = &mut self.state else {
            return;
        };
        let chunk = self.chunk;
        let items = &job.items;
        while out.len() < chunk {
            let Some(i) = job.indices.next() else {
                let name = if job.uid { "UID " } else { "" };
                push(out, &format!("{} OK {name}FETCH completed\r\n", job.tag));
                return;
            };
            // The view may have lost messages (a resumed job after an EXPUNGE cannot happen:
            // no other command runs before the job is done; this is only a guard).
            if i >= selected.messages.len() {
                continue;
            }
            let mut flags_changed = false;
            if job.sets_seen && !selected.messages[i].flags.seen {
                let mut flags = selected.messages[i].flags.clone();
                flags.seen = true;
                match selected
                    .mailbox
                    .set_flags(&selected.messages[i].unique, &flags)
                {
                    Ok(path) => {
                        selected.messages[i].path = path;
                        selected.messages[i].flags = flags;
                        flags_changed = true;
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot set \\Seen"),
                }
            }
            let view = &selected.messages[i];
            let (loaded, size) = if job.need.any() {
                match load_message(&selected.mailbox, view, job.need) {
                    Some(l) => l,
                    None => {
                        // Expunged by another session; RFC 3501 allows answering with nothing.
                        continue;
                    }
                }
            } else {
                (None, 0)
            };
            let _ = write!(out, "* {} FETCH (", i + 1);
            let mut first = true;
            let mut flags_written = false;
            for item in items {
                if !first {
                    out.push(b' ');
                }
                first = false;
                match item {
                    MessageDataItemName::Uid => {
                        let _ = write!(out, "UID {}", view.uid);
                    }
                    MessageDataItemName::Flags => {
                        flags_written = true;
                        let _ = write!(out, "FLAGS ({})", flag_list(view));
                    }
                    MessageDataItemName::InternalDate => {
                        let date = std::fs::metadata(&view.path)
                            .and_then(|m| m.modified())
                            .unwrap_or(SystemTime::UNIX_EPOCH);
                        let _ = write!(out, "INTERNALDATE \"{}\"", internal_date(date));
                    }
                    MessageDataItemName::Rfc822Size => {
                        let _ = write!(out, "RFC822.SIZE {size}");
                    }
                    MessageDataItemName::Envelope => {
                        out.extend_from_slice(b"ENVELOPE ");
                        if let Some(l) = &loaded {
                            fetch::envelope(out, l.header());
                        }
                    }
                    MessageDataItemName::BodyStructure | MessageDataItemName::Body => {
                        let extended = matches!(item, MessageDataItemName::BodyStructure);
                        out.extend_from_slice(if extended {
                            b"BODYSTRUCTURE "
                        } else {
                            b"BODY "
                        });
                        if let Some(l) = &loaded {
                            fetch::body_structure(out, &l.bytes, l.root(), extended);
                        }
                    }
                    MessageDataItemName::Rfc822
                    | MessageDataItemName::Rfc822Header
                    | MessageDataItemName::Rfc822Text => {
                        let (label, text) = match item {
                            MessageDataItemName::Rfc822 => ("RFC822", SectionText::Full),
                            MessageDataItemName::Rfc822Header => {
                                ("RFC822.HEADER", SectionText::Header)
                            }
                            _ => ("RFC822.TEXT", SectionText::Text),
                        };
                        let _ = write!(out, "{label} ");
                        let data = loaded
                            .as_ref()
                            .and_then(|l| fetch::section(l, &[], &text))
                            .unwrap_or_default();
                        wire::literal(out, &data);
                    }
                    MessageDataItemName::BodyExt {
                        section, partial, ..
                    } => {
                        let (part, text, label) = section_parts(section.as_ref());
                        let data = loaded
                            .as_ref()
                            .and_then(|l| fetch::section(l, &part, &text))
                            .unwrap_or_default();
                        match partial {
                            Some((origin, count)) => {
                                let start = (*origin as usize).min(data.len());
                                let end =
                                    start.saturating_add(count.get() as usize).min(data.len());
                                let _ = write!(out, "BODY[{label}]<{origin}> ");
                                wire::literal(out, &data[start..end]);
                            }
                            None => {
                                let _ = write!(out, "BODY[{label}] ");
                                wire::literal(out, &data);
                            }
                        }
                    }
                    // BINARY and MODSEQ were filtered out above; nothing else is left.
                    _ => {
                        let _ = write!(out, "UID {}", view.uid);
                    }
                }
            }
            if flags_changed && !flags_written {
                let _ = write!(out, " FLAGS ({})", flag_list(view));
            }
            out.extend_from_slice(b")\r\n");
        }
        self.pending = Some(job);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn store_flags(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
    ) {
        let indices = match self.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => {
                push(out, &format!("{tag} BAD {e}\r\n"));
                return;
            }
        };
        let State::Selected { selected, .. } = &mut self.state else {
            return;
        };
        if selected.read_only {
            push(out, &format!("{tag} NO mailbox is read-only\r\n"));
            return;
        }
        // New keywords get their letters first, so the FLAGS announcement (RFC 3501 section
        // 7.2.6) comes before the FETCH responses that show them. A keyword that cannot be kept
        // refuses the whole STORE before any message changes, rather than an OK that lies.
        let letters = match keyword_letters(&selected.mailbox, flags, kind != StoreType::Remove) {
            Ok(letters) => letters,
            Err(why) => {
                push(out, &format!("{tag} NO {why}\r\n"));
                return;
            }
        };
        let table = selected.mailbox.keywords().unwrap_or_default();
        if table != selected.keywords {
            push(out, &flags_response(&table));
            push(out, &permanent_flags(&table));
            selected.keywords = table;
        }
        for i in indices {
            let mut new_flags = selected.messages[i].flags.clone();
            apply_flags(&mut new_flags, flags, kind, &mut |k| letter_of(&letters, k));
            if new_flags != selected.messages[i].flags {
                match selected
                    .mailbox
                    .set_flags(&selected.messages[i].unique, &new_flags)
                {
                    Ok(path) => {
                        if new_flags.other != selected.messages[i].flags.other {
                            selected.messages[i].keywords =
                                keyword_names(&new_flags, &selected.keywords);
                        }
                        selected.messages[i].path = path;
                        selected.messages[i].flags = new_flags;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "flag change failed");
                        continue;
                    }
                }
            }
            if response == StoreResponse::Answer {
                let view = &selected.messages[i];
                let uid_part = if uid {
                    format!("UID {} ", view.uid)
                } else {
                    String::new()
                };
                push(
                    out,
                    &format!(
                        "* {} FETCH ({uid_part}FLAGS ({}))\r\n",
                        i + 1,
                        flag_list(view)
                    ),
                );
            }
        }
        push(out, &format!("{tag} OK STORE completed\r\n"));
    }

    pub(super) fn copy(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        set: &SequenceSet,
        mailbox: &WireMailbox<'_>,
        uid: bool,
        moving: bool,
    ) {
        let verb = if moving { "MOVE" } else { "COPY" };
        let indices = match self.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => {
                push(out, &format!("{tag} BAD {e}\r\n"));
                return;
            }
        };
        let target = match self.mailbox_name(mailbox).and_then(|(user, name)| {
            self.store
                .mailbox(&user, &name)
                .map_err(|_| "[TRYCREATE] no such mailbox".to_owned())
        }) {
            Ok(t) => t,
            Err(e) => {
                push(out, &format!("{tag} NO {e}\r\n"));
                return;
            }
        };
        let State::Selected { selected, .. } = &mut self.state else {
            return;
        };
        if moving && selected.read_only {
            push(out, &format!("{tag} NO mailbox is read-only\r\n"));
            return;
        }
        let mut source_uids = Vec::new();
        let mut target_uids = Vec::new();
        let mut moved = Vec::new();
        for i in indices {
            let view = &selected.messages[i];
            let path = selected.mailbox.maildir().find(&view.unique).ok().flatten();
            let Some(path) = path else { continue };
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let date = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let mut flags = view.flags.clone();
            flags.other = view
                .keywords
                .iter()
                .filter_map(|name| match target.keyword_letter(name) {
                    Ok(Some(letter)) => Some(letter),
                    Ok(None) => {
                        tracing::warn!("keyword not copied: the target mailbox has no letter left");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "keyword not copied");
                        None
                    }
                })
                .collect();
            flags.other.sort_unstable();
            match target.append(&mut &bytes[..], &flags, date) {
                Ok(new_uid) => {
                    source_uids.push(view.uid);
                    target_uids.push(new_uid);
                    moved.push(view.unique.clone());
                }
                Err(e) => {
                    push(out, &format!("{tag} NO {}\r\n", one_line(&e.to_string())));
                    return;
                }
            }
        }
        let validity = target.snapshot(false).map(|s| s.uid_validity).unwrap_or(0);
        let code = if source_uids.is_empty() {
            String::new()
        } else {
            format!(
                "[COPYUID {validity} {} {}] ",
                uid_list(&source_uids),
                uid_list(&target_uids)
            )
        };
        if moving {
            // RFC 6851 section 4.3: COPYUID goes in an untagged OK before the expunges.
            if !code.is_empty() {
                push(out, &format!("* OK {code}moved\r\n"));
            }
            if let Err(e) = selected.mailbox.expunge(&moved) {
                push(out, &format!("{tag} NO {}\r\n", one_line(&e.to_string())));
                return;
            }
            self.refresh(out, true);
            push(out, &format!("{tag} OK {verb} completed\r\n"));
        } else {
            push(out, &format!("{tag} OK {code}{verb} completed\r\n"));
        }
    }
}

pub(super) fn expand(m: &Macro) -> Vec<MessageDataItemName<'static>> {
    use MessageDataItemName as I;
    match m {
        Macro::All => vec![I::Flags, I::InternalDate, I::Rfc822Size, I::Envelope],
        Macro::Fast => vec![I::Flags, I::InternalDate, I::Rfc822Size],
        Macro::Full => vec![
            I::Flags,
            I::InternalDate,
            I::Rfc822Size,
            I::Envelope,
            I::Body,
        ],
        _ => vec![I::Flags],
    }
}

/// What of the message files a FETCH needs.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Need {
    /// RFC822.SIZE.
    size: bool,
    /// The message's header section (ENVELOPE, BODY[HEADER], BODY[HEADER.FIELDS ...]).
    header: bool,
    /// The whole message (body sections, BODYSTRUCTURE).
    whole: bool,
}

impl Need {
    fn of(items: &[MessageDataItemName<'_>]) -> Need {
        let mut need = Need::default();
        for item in items {
            match item {
                MessageDataItemName::Uid
                | MessageDataItemName::Flags
                | MessageDataItemName::InternalDate => {}
                MessageDataItemName::Rfc822Size => need.size = true,
                MessageDataItemName::Envelope | MessageDataItemName::Rfc822Header => {
                    need.header = true
                }
                MessageDataItemName::BodyExt {
                    section: Some(Section::Header(None)),
                    ..
                }
                | MessageDataItemName::BodyExt {
                    section:
                        Some(Section::HeaderFields(None, _) | Section::HeaderFieldsNot(None, _)),
                    ..
                } => need.header = true,
                _ => need.whole = true,
            }
        }
        need
    }

    fn any(&self) -> bool {
        self.size || self.header || self.whole
    }
}

/// A FETCH not yet fully answered (see [`Session::run_fetch`]).
pub(super) struct FetchJob {
    tag: String,
    uid: bool,
    items: Vec<MessageDataItemName<'static>>,
    /// The messages (indices into the view) still to answer for.
    indices: std::vec::IntoIter<usize>,
    sets_seen: bool,
    need: Need,
}

/// Reads what a FETCH needs of a message: the whole message, or its header only when no item
/// needs more and its RFC822.SIZE is known from an earlier read. Returns the message (None
/// when only the size was asked for and is known) and its RFC822.SIZE (0 when not asked for);
/// None when the message is gone.
fn load_message(mailbox: &Mailbox, view: &View, need: Need) -> Option<(Option<Loaded>, u64)> {
    let (file, len) = match fetch::open(&view.path) {
        Ok(opened) => opened,
        // Renamed (flags changed) by another session since the last scan.
        Err(_) => {
            let path = mailbox.maildir().find(&view.unique).ok().flatten()?;
            fetch::open(&path).ok()?
        }
    };
    let known = if need.size {
        mailbox.known_size(&view.unique, len)
    } else {
        None
    };
    if need.whole || (need.size && known.is_none()) {
        let loaded = fetch::read_whole(file, len).ok()?;
        let size = loaded.bytes.len() as u64;
        mailbox.remember_size(&view.unique, len, size);
        return Some((Some(loaded), size));
    }
    let size = known.unwrap_or(0);
    if need.header {
        Some((Some(fetch::read_header(file).ok()?), size))
    } else {
        Some((None, size))
    }
}

/// Reads a whole message for SEARCH, and remembers its size.
pub(crate) fn read_message(mailbox: &Mailbox, view: &View) -> Option<Loaded> {
    load_message(
        mailbox,
        view,
        Need {
            whole: true,
            ..Need::default()
        },
    )
    .and_then(|(loaded, _)| loaded)
}

/// Reads a message's header section for SEARCH.
pub(crate) fn read_message_header(mailbox: &Mailbox, view: &View) -> Option<Loaded> {
    load_message(
        mailbox,
        view,
        Need {
            header: true,
            ..Need::default()
        },
    )
    .and_then(|(loaded, _)| loaded)
}

/// A message's RFC822.SIZE for SEARCH LARGER and SMALLER: remembered, or read.
pub(crate) fn message_size(mailbox: &Mailbox, view: &View) -> Option<u64> {
    load_message(
        mailbox,
        view,
        Need {
            size: true,
            ..Need::default()
        },
    )
    .map(|(_, size)| size)
}

pub(crate) fn flag_list(view: &View) -> String {
    let mut names = Vec::new();
    let f = &view.flags;
    for (on, name) in [
        (f.answered, "\\Answered"),
        (f.flagged, "\\Flagged"),
        (f.deleted, "\\Deleted"),
        (f.seen, "\\Seen"),
        (f.draft, "\\Draft"),
        (f.passed, "$Forwarded"),
        (view.recent, "\\Recent"),
    ] {
        if on {
            names.push(name);
        }
    }
    names.extend(view.keywords.iter().map(String::as_str));
    names.join(" ")
}

/// The Maildir letter of every keyword in `flags`, by name. With `create`, a keyword new to
/// the mailbox gets a letter (written to its keywords file); without, unknown ones are left out.
/// The error is the text of a tagged NO: no letter is free (a Maildir has 26), or the keywords
/// file could not be read or written.
pub(super) fn keyword_letters(
    mailbox: &Mailbox,
    flags: &[Flag<'_>],
    create: bool,
) -> Result<Vec<(String, u8)>, String> {
    let failed = |e: postroom_maildir::Error| {
        tracing::warn!(error = %e, "keywords file of the mailbox failed");
        format!("keywords could not be kept: {}", one_line(&e.to_string()))
    };
    let table = if create {
        Vec::new()
    } else {
        mailbox.keywords().map_err(failed)?
    };
    let mut letters = Vec::new();
    for flag in flags {
        let Flag::Keyword(k) = flag else { continue };
        let name = k.as_ref();
        // Kept as the Maildir `P` flag, not as a keyword (see apply_flags).
        if name.eq_ignore_ascii_case("$Forwarded") {
            continue;
        }
        let letter = if create {
            match mailbox.keyword_letter(name).map_err(failed)? {
                Some(letter) => letter,
                // RFC 5530 section 3: LIMIT, a hard limit of the server.
                None => {
                    return Err(format!(
                        "[LIMIT] no room for another keyword: this mailbox keeps at most {} \
                         (its keywords file has a letter a-z for each)",
                        MAX_KEYWORDS
                    ));
                }
            }
        } else {
            match table.iter().position(|n| n.eq_ignore_ascii_case(name)) {
                // The table has at most MAX_KEYWORDS entries, so the letter stays in a-z.
                Some(i) => b'a' + i as u8,
                None => continue,
            }
        };
        letters.push((name.to_owned(), letter));
    }
    Ok(letters)
}

/// The letter of keyword `name` in a list from [`keyword_letters`].
pub(super) fn letter_of(letters: &[(String, u8)], name: &str) -> Option<u8> {
    letters
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, l)| l)
}

/// Applies a flag list; `letter` names the Maildir letter of a keyword (making one if new).
pub(super) fn apply_flags(
    target: &mut Flags,
    flags: &[Flag<'_>],
    kind: StoreType,
    letter: &mut dyn FnMut(&str) -> Option<u8>,
) {
    let mut given = Flags::default();
    for flag in flags {
        match flag {
            Flag::Answered => given.answered = true,
            Flag::Deleted => given.deleted = true,
            Flag::Draft => given.draft = true,
            Flag::Flagged => given.flagged = true,
            Flag::Seen => given.seen = true,
            Flag::Keyword(k) if k.as_ref().eq_ignore_ascii_case("$Forwarded") => {
                given.passed = true
            }
            Flag::Keyword(k) => {
                if let Some(l) = letter(k.as_ref()) {
                    given.other.push(l);
                }
            }
            // Not yet: `\Foo` extension flags other than the system ones; no client uses them.
            _ => {}
        }
    }
    match kind {
        StoreType::Replace => {
            target.other.retain(|l| !l.is_ascii_lowercase());
            target.other.extend(&given.other);
        }
        StoreType::Add => target.other.extend(&given.other),
        StoreType::Remove => target.other.retain(|l| !given.other.contains(l)),
    }
    target.other.sort_unstable();
    target.other.dedup();
    let pairs: [(&mut bool, bool); 6] = [
        (&mut target.answered, given.answered),
        (&mut target.deleted, given.deleted),
        (&mut target.draft, given.draft),
        (&mut target.flagged, given.flagged),
        (&mut target.seen, given.seen),
        (&mut target.passed, given.passed),
    ];
    for (t, g) in pairs {
        match kind {
            StoreType::Replace => *t = g,
            StoreType::Add => *t |= g,
            StoreType::Remove => *t &= !g,
        }
    }
}

/// Whether `n` is in a sequence set, with `*` standing for `max` (RFC 3501 section 9,
/// seq-number; a range may be given high to low).
pub(crate) fn contains(set: &SequenceSet, n: u32, max: u32) -> bool {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(x) => x.get(),
        SeqOrUid::Asterisk => max,
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(a) => value(a) == n,
        Sequence::Range(a, b) => {
            let (lo, hi) = (value(a).min(value(b)), value(a).max(value(b)));
            (lo..=hi).contains(&n)
        }
    })
}

pub(super) fn uid_list(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// RFC 3501 date-time: `dd-Mon-yyyy hh:mm:ss +zzzz`, in UTC.
pub(crate) fn internal_date(time: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = time.into();
    dt.format("%d-%b-%Y %H:%M:%S +0000").to_string()
}

/// Splits a section into its part path, what of the part is asked, and its label for the reply.
pub(super) fn section_parts(section: Option<&Section<'_>>) -> (Vec<u32>, SectionText, String) {
    let path = |p: &imap_codec::imap_types::fetch::Part| -> Vec<u32> {
        p.0.as_ref().iter().map(|n| n.get()).collect()
    };
    let label_of = |p: &[u32]| p.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
    let prefix = |p: &[u32]| {
        if p.is_empty() {
            String::new()
        } else {
            format!("{}.", label_of(p))
        }
    };
    match section {
        None => (Vec::new(), SectionText::Full, String::new()),
        Some(Section::Part(p)) => {
            let p = path(p);
            let label = label_of(&p);
            (p, SectionText::Full, label)
        }
        Some(Section::Header(p)) => {
            let p = p.as_ref().map(path).unwrap_or_default();
            let label = format!("{}HEADER", prefix(&p));
            (p, SectionText::Header, label)
        }
        Some(Section::Text(p)) => {
            let p = p.as_ref().map(path).unwrap_or_default();
            let label = format!("{}TEXT", prefix(&p));
            (p, SectionText::Text, label)
        }
        Some(Section::Mime(p)) => {
            let p = path(p);
            let label = format!("{}MIME", prefix(&p));
            (p, SectionText::Mime, label)
        }
        Some(Section::HeaderFields(p, names)) | Some(Section::HeaderFieldsNot(p, names)) => {
            let not = matches!(section, Some(Section::HeaderFieldsNot(..)));
            let p = p.as_ref().map(path).unwrap_or_default();
            let names: Vec<String> = names.as_ref().iter().map(astring).collect();
            let mut label = format!(
                "{}HEADER.FIELDS{} (",
                prefix(&p),
                if not { ".NOT" } else { "" }
            );
            label.push_str(
                &names
                    .iter()
                    .map(|n| n.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            label.push(')');
            (p, SectionText::Fields { names, not }, label)
        }
    }
}
