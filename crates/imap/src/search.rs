//! SEARCH (RFC 3501 section 6.4.4) over the session's view of the selected mailbox.

use std::time::SystemTime;

use imap_codec::imap_types::search::SearchKey;
use postroom_maildir::Mailbox;

use crate::fetch::Loaded;
use crate::mime;
use crate::session::{View, contains, message_size, read_message, read_message_header};

/// Runs a search; returns matching sequence numbers, or UIDs with `uid` (UID SEARCH).
pub(crate) fn run(
    mailbox: &Mailbox,
    messages: &[View],
    keys: &[SearchKey<'_>],
    uid: bool,
) -> Result<Vec<u32>, String> {
    let max_uid = messages.last().map_or(0, |m| m.uid);
    let count = messages.len() as u32;
    let mut found = Vec::new();
    for (i, view) in messages.iter().enumerate() {
        let mut ctx = Context {
            view,
            seq: i as u32 + 1,
            count,
            max_uid,
            loaded: None,
            whole: false,
            decoded: None,
            mailbox,
        };
        if keys.iter().all(|k| ctx.matches(k)) {
            found.push(if uid { view.uid } else { i as u32 + 1 });
        }
    }
    Ok(found)
}

struct Context<'a> {
    view: &'a View,
    seq: u32,
    count: u32,
    max_uid: u32,
    /// The message as read so far: None before the first read, Some(None) when it is gone.
    loaded: Option<Option<Loaded>>,
    /// True when `loaded` holds the whole message, not only its header section.
    whole: bool,
    decoded: Option<Vec<(String, String)>>,
    mailbox: &'a Mailbox,
}

impl Context<'_> {
    /// The whole message.
    fn load(&mut self) -> Option<&Loaded> {
        if self.loaded.is_none() || !self.whole {
            self.loaded = Some(read_message(self.mailbox, self.view));
            self.whole = true;
        }
        self.loaded.as_ref().and_then(Option::as_ref)
    }

    /// The message's header section (or more, when the whole message was read already):
    /// header keys need only the first few kilobytes of each file.
    fn load_header(&mut self) -> Option<&Loaded> {
        if self.loaded.is_none() {
            self.loaded = Some(read_message_header(self.mailbox, self.view));
        }
        self.loaded.as_ref().and_then(Option::as_ref)
    }

    fn header_has(&mut self, name: &str, needle: &[u8]) -> bool {
        let Some(l) = self.load_header() else {
            return false;
        };
        let fields = mime::fields(l.header());
        let raw = fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .any(|(_, v)| {
                // HEADER name "" matches every message that has the field (RFC 3501 6.4.4).
                needle.is_empty() || contains_ci(v.as_bytes(), needle)
            });
        if raw {
            return true;
        }
        // Encoded words (RFC 2047) in any charset are decoded before matching, so a client
        // searching for "Objednávka" (sent as UTF-8, RFC 3501 section 6.4.4 CHARSET) finds a
        // subject written in ISO-8859-2 encoded words.
        let needle = String::from_utf8_lossy(needle).to_lowercase();
        self.decoded_headers()
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .any(|(_, v)| v.to_lowercase().contains(&needle))
    }

    /// Whether a text part, with its transfer encoding undone and its charset converted,
    /// holds the needle (base64 or quoted-printable bodies, non-UTF-8 charsets).
    fn decoded_text_has(&mut self, needle: &[u8]) -> bool {
        let needle = String::from_utf8_lossy(needle).to_lowercase();
        let Some(l) = self.load() else { return false };
        let Some(msg) = mail_parser::MessageParser::default().parse(&l.bytes[..]) else {
            return false;
        };
        msg.parts
            .iter()
            .filter_map(|part| part.text_contents())
            .any(|text| text.to_lowercase().contains(&needle))
    }

    fn decoded_headers(&mut self) -> &[(String, String)] {
        if self.decoded.is_none() {
            let mut out = Vec::new();
            if let Some(l) = self.load_header() {
                let header = l.header();
                if let Some(msg) = mail_parser::MessageParser::default().parse_headers(header) {
                    for h in msg.headers() {
                        out.push((h.name().to_owned(), header_text(h.value())));
                    }
                }
            }
            self.decoded = Some(out);
        }
        self.decoded.as_deref().unwrap_or_default()
    }

    fn has_keyword(&self, name: &str) -> bool {
        if name.eq_ignore_ascii_case("$Forwarded") {
            return self.view.flags.passed;
        }
        self.view
            .keywords
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name))
    }

    fn internal_date(&self) -> chrono::NaiveDate {
        let time = std::fs::metadata(&self.view.path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let dt: chrono::DateTime<chrono::Utc> = time.into();
        dt.date_naive()
    }

    fn sent_date(&mut self) -> Option<chrono::NaiveDate> {
        let l = self.load_header()?;
        let fields = mime::fields(l.header());
        let value = mime::field(&fields, "date")?;
        let parsed = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
        // RFC 3501: sent dates are compared disregarding time and timezone.
        Some(parsed.date_naive())
    }

    fn size(&mut self) -> usize {
        if let Some(Some(l)) = &self.loaded
            && self.whole
        {
            return l.bytes.len();
        }
        message_size(self.mailbox, self.view).map_or(0, |s| usize::try_from(s).unwrap_or(0))
    }

    fn matches(&mut self, key: &SearchKey<'_>) -> bool {
        use SearchKey as K;
        let f = &self.view.flags;
        match key {
            K::And(keys) => keys.as_ref().iter().all(|k| self.matches(k)),
            K::SequenceSet(set) => contains(set, self.seq, self.count),
            K::Uid(set) => contains(set, self.view.uid, self.max_uid),
            K::All => true,
            K::Answered => f.answered,
            K::Unanswered => !f.answered,
            K::Deleted => f.deleted,
            K::Undeleted => !f.deleted,
            K::Draft => f.draft,
            K::Undraft => !f.draft,
            K::Flagged => f.flagged,
            K::Unflagged => !f.flagged,
            K::Seen => f.seen,
            K::Unseen => !f.seen,
            K::Recent => self.view.recent,
            K::Old => !self.view.recent,
            K::New => self.view.recent && !f.seen,
            K::Keyword(k) => self.has_keyword(k.as_ref()),
            K::Unkeyword(k) => !self.has_keyword(k.as_ref()),
            K::Before(d) => self.internal_date() < *d.as_ref(),
            K::On(d) => self.internal_date() == *d.as_ref(),
            K::Since(d) => self.internal_date() >= *d.as_ref(),
            K::SentBefore(d) => self.sent_date().is_some_and(|s| s < *d.as_ref()),
            K::SentOn(d) => self.sent_date().is_some_and(|s| s == *d.as_ref()),
            K::SentSince(d) => self.sent_date().is_some_and(|s| s >= *d.as_ref()),
            K::Larger(n) => self.size() > *n as usize,
            K::Smaller(n) => self.size() < *n as usize,
            K::From(s) => self.header_has("from", s.as_ref()),
            K::To(s) => self.header_has("to", s.as_ref()),
            K::Cc(s) => self.header_has("cc", s.as_ref()),
            K::Bcc(s) => self.header_has("bcc", s.as_ref()),
            K::Subject(s) => self.header_has("subject", s.as_ref()),
            K::Header(name, value) => {
                let name = String::from_utf8_lossy(name.as_ref()).into_owned();
                self.header_has(&name, value.as_ref())
            }
            K::Body(s) => {
                let needle = s.as_ref().to_vec();
                let raw = self.load().is_some_and(|l| contains_ci(l.text(), &needle));
                raw || self.decoded_text_has(&needle)
            }
            K::Text(s) => {
                let needle = s.as_ref().to_vec();
                let raw = self.load().is_some_and(|l| contains_ci(&l.bytes, &needle));
                raw || self.decoded_text_has(&needle)
                    || self.decoded_headers().iter().any(|(_, v)| {
                        v.to_lowercase()
                            .contains(&String::from_utf8_lossy(&needle).to_lowercase())
                    })
            }
            K::Not(k) => !self.matches(k),
            K::Or(a, b) => self.matches(a) || self.matches(b),
        }
    }
}

/// Case-insensitive (ASCII) substring search on raw bytes; the callers also try the decoded
/// text.
fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    // Candidates are found by their first byte in either case (memchr), then compared.
    let first = needle[0];
    let rest = &needle[1..];
    memchr::memchr2_iter(
        first.to_ascii_lowercase(),
        first.to_ascii_uppercase(),
        haystack,
    )
    .any(|i| {
        haystack
            .get(i + 1..i + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(rest))
    })
}

/// A decoded header value as text: names and addresses for address fields.
fn header_text(value: &mail_parser::HeaderValue<'_>) -> String {
    use mail_parser::HeaderValue as V;
    match value {
        V::Text(t) => t.to_string(),
        V::TextList(list) => list.join(" "),
        V::Address(address) => address
            .iter()
            .map(|a| {
                let name = a.name().unwrap_or_default();
                format!("{name} <{}>", a.address().unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}
