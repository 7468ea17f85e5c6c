//! SEARCH (RFC 3501 section 6.4.4) over the session's view of the selected mailbox.

use std::collections::HashMap;
use std::time::SystemTime;

use imap_codec::imap_types::search::SearchKey;

use crate::fetch::Loaded;
use crate::mime;
use crate::session::{View, contains};

/// Runs a search; returns matching sequence numbers, or UIDs with `uid` (UID SEARCH).
pub(crate) fn run(
    messages: &[View],
    keys: &[SearchKey<'_>],
    sizes: &mut HashMap<u32, usize>,
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
            decoded: None,
            sizes,
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
    loaded: Option<Option<Loaded>>,
    decoded: Option<Vec<(String, String)>>,
    sizes: &'a mut HashMap<u32, usize>,
}

impl Context<'_> {
    fn load(&mut self) -> Option<&Loaded> {
        if self.loaded.is_none() {
            let loaded = std::fs::read(&self.view.path).ok().map(Loaded::new);
            if let Some(l) = &loaded {
                self.sizes.insert(self.view.uid, l.bytes.len());
            }
            self.loaded = Some(loaded);
        }
        self.loaded.as_ref().and_then(Option::as_ref)
    }

    fn header_has(&mut self, name: &str, needle: &[u8]) -> bool {
        let Some(l) = self.load() else { return false };
        let fields = l.root.fields(&l.bytes);
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
            if let Some(l) = self.load() {
                let header = &l.bytes[l.root.header.clone()];
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
        let l = self.load()?;
        let fields = l.root.fields(&l.bytes);
        let value = mime::field(&fields, "date")?;
        let parsed = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
        // RFC 3501: sent dates are compared disregarding time and timezone.
        Some(parsed.date_naive())
    }

    fn size(&mut self) -> usize {
        if let Some(&s) = self.sizes.get(&self.view.uid) {
            return s;
        }
        self.load().map_or(0, |l| l.bytes.len())
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
                let raw = self
                    .load()
                    .is_some_and(|l| contains_ci(&l.bytes[l.root.body.clone()], &needle));
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
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
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
