//! The MIME structure of a stored message, as IMAP's BODYSTRUCTURE, ENVELOPE and
//! `BODY[section]` need it (RFC 3501 sections 6.4.5 and 7.4.2; RFC 2045/2046).
//!
//! We keep byte ranges into the message rather than decoded text: IMAP hands out parts as they
//! are stored, and header values in ENVELOPE are sent undecoded (encoded words and all) so the
//! client decodes them. A multipart whose closing boundary is missing ends where the message
//! (or the enclosing part) ends, so its parts are still listed.

use std::ops::Range;

/// One MIME entity: the whole message, a part of a multipart, or a message/rfc822 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// The header section, including the blank line that ends it (if there is one).
    pub header: Range<usize>,
    /// The body.
    pub body: Range<usize>,
    /// Lower-case media type and subtype.
    pub media: (String, String),
    /// Content-Type parameters, names lower-cased.
    pub params: Vec<(String, String)>,
    /// Parts of a multipart body.
    pub parts: Vec<Entity>,
    /// The enclosed message of a message/rfc822 body.
    pub enclosed: Option<Box<Entity>>,
}

impl Entity {
    /// Parses the entity held in `bytes[range]`, defaulting to text/plain (RFC 2045 5.2).
    pub fn parse(bytes: &[u8], range: Range<usize>) -> Entity {
        Entity::parse_with_default(bytes, range, ("text", "plain"), 0)
    }

    fn parse_with_default(
        bytes: &[u8],
        range: Range<usize>,
        default: (&str, &str),
        depth: usize,
    ) -> Entity {
        let header_end = header_end(bytes, range.clone());
        let header = range.start..header_end;
        let body = header_end..range.end;
        let fields = fields(&bytes[header.clone()]);
        let (media, params) = match field(&fields, "content-type").and_then(|v| content_type(&v)) {
            Some(ct) => ct,
            None => ((default.0.to_owned(), default.1.to_owned()), Vec::new()),
        };
        let mut entity = Entity {
            header,
            body,
            media,
            params,
            parts: Vec::new(),
            enclosed: None,
        };
        // Deep nesting is a known way to exhaust a parser's stack; past this depth parts are
        // served as opaque bodies.
        if depth > 32 {
            return entity;
        }
        if entity.media.0 == "multipart" {
            if let Some(boundary) = entity.param("boundary") {
                let child_default = if entity.media.1 == "digest" {
                    ("message", "rfc822")
                } else {
                    ("text", "plain")
                };
                for part in split_parts(bytes, entity.body.clone(), boundary.as_bytes()) {
                    let child = Entity::parse_with_default(bytes, part, child_default, depth + 1);
                    entity.parts.push(child);
                }
            }
        } else if entity.media == ("message".to_owned(), "rfc822".to_owned()) {
            let inner = Entity::parse_with_default(
                bytes,
                entity.body.clone(),
                ("text", "plain"),
                depth + 1,
            );
            entity.enclosed = Some(Box::new(inner));
        }
        entity
    }

    /// A Content-Type parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The header fields of this entity, unfolded: (name, raw value).
    pub fn fields(&self, bytes: &[u8]) -> Vec<(String, String)> {
        fields(&bytes[self.header.clone()])
    }

    /// The part a section number (`1.2.3`) names; numbering per RFC 3501 section 6.4.5.
    pub fn part(&self, path: &[u32]) -> Option<&Entity> {
        let Some((&first, rest)) = path.split_first() else {
            return Some(self);
        };
        let index = usize::try_from(first).ok()?.checked_sub(1)?;
        let child = if !self.parts.is_empty() {
            self.parts.get(index)?
        } else if let Some(enclosed) = &self.enclosed {
            // A message/rfc822 part's sub-parts are those of the enclosed message.
            return enclosed.part(path);
        } else if index == 0 {
            // A non-multipart entity's only part is itself (section 1).
            self
        } else {
            return None;
        };
        if rest.is_empty() {
            Some(child)
        } else {
            child.part_in(rest)
        }
    }

    fn part_in(&self, rest: &[u32]) -> Option<&Entity> {
        match &self.enclosed {
            Some(enclosed) if self.parts.is_empty() => enclosed.part(rest),
            _ => self.part(rest),
        }
    }
}

/// Where the header section ends (after its blank line). A message whose first line is not a
/// header field has no header section at all.
pub(crate) fn header_end(bytes: &[u8], range: Range<usize>) -> usize {
    let data = &bytes[range.clone()];
    if data.starts_with(b"\r\n") {
        return range.start + 2;
    }
    if data.starts_with(b"\n") {
        return range.start + 1;
    }
    if !starts_with_field(data) {
        return range.start;
    }
    let mut i = 0;
    while i < data.len() {
        let line_end = data[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| i + p + 1);
        let Some(line_end) = line_end else {
            return range.end;
        };
        let next = &data[line_end..];
        if next.starts_with(b"\r\n") {
            return range.start + line_end + 2;
        }
        if next.starts_with(b"\n") {
            return range.start + line_end + 1;
        }
        i = line_end;
    }
    range.end
}

fn starts_with_field(data: &[u8]) -> bool {
    let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => line[..colon].iter().all(|&b| (33..=126).contains(&b)),
        _ => false,
    }
}

/// Header fields, unfolded (RFC 5322 section 2.2.3), values trimmed.
pub fn fields(header: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(header);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// The first field of a name (case-insensitive).
pub fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// A lower-case media type and subtype.
pub type MediaType = (String, String);

/// Parses `type/subtype; name=value; ...` (RFC 2045 section 5.1).
pub fn content_type(value: &str) -> Option<(MediaType, Vec<(String, String)>)> {
    let mut pieces = split_params(value);
    let media = pieces.remove(0);
    let (ty, sub) = media.split_once('/')?;
    let (ty, sub) = (
        ty.trim().to_ascii_lowercase(),
        sub.trim().to_ascii_lowercase(),
    );
    if ty.is_empty() || sub.is_empty() {
        return None;
    }
    Some(((ty, sub), params_of(pieces)))
}

/// Parameters of a structured value such as Content-Disposition.
pub fn disposition(value: &str) -> (String, Vec<(String, String)>) {
    let mut pieces = split_params(value);
    let kind = pieces.remove(0).trim().to_ascii_lowercase();
    (kind, params_of(pieces))
}

fn params_of(pieces: Vec<String>) -> Vec<(String, String)> {
    pieces
        .into_iter()
        .filter_map(|p| {
            let (name, value) = p.split_once('=')?;
            let value = value.trim();
            let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
                None => value.to_owned(),
            };
            Some((name.trim().to_ascii_lowercase(), value))
        })
        .collect()
}

/// Splits on `;` outside quoted strings; the first piece is always present.
fn split_params(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        let current = out.last_mut().expect("out starts non-empty and only grows");
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' && quoted {
            current.push(c);
            escaped = true;
        } else if c == '"' {
            current.push(c);
            quoted = !quoted;
        } else if c == ';' && !quoted {
            out.push(String::new());
        } else if c == '(' && !quoted {
            // Comments are rare in Content-Type; what follows one is dropped.
            break;
        } else {
            current.push(c);
        }
    }
    out.into_iter().map(|s| s.trim().to_owned()).collect()
}

/// The byte ranges of a multipart body's parts (RFC 2046 section 5.1.1). The CRLF before a
/// boundary line belongs to the boundary. Without a closing boundary, the last part runs to the
/// end of the body.
fn split_parts(bytes: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut line_start = body.start;
    while line_start < body.end {
        let line_end = bytes[line_start..body.end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.end, |p| line_start + p + 1);
        let line = &bytes[line_start..line_end];
        if line.starts_with(&delimiter) {
            let rest = &line[delimiter.len()..];
            let closing = rest.starts_with(b"--");
            let rest = if closing { &rest[2..] } else { rest };
            if rest.iter().all(|b| b.is_ascii_whitespace()) {
                if let Some(start) = current {
                    let mut end = line_start;
                    if end > start && bytes[end - 1] == b'\n' {
                        end -= 1;
                        if end > start && bytes[end - 1] == b'\r' {
                            end -= 1;
                        }
                    }
                    parts.push(start..end.max(start));
                }
                if closing {
                    return parts;
                }
                current = Some(line_end);
            }
        }
        line_start = line_end;
    }
    if let Some(start) = current {
        parts.push(start..body.end);
    }
    parts
}

/// Counts lines as RFC 3501 `body-fld-lines` wants: the number of line ends.
pub fn line_count(data: &[u8]) -> usize {
    let n = data.iter().filter(|&&b| b == b'\n').count();
    if data.last().is_some_and(|&b| b != b'\n') {
        n + 1
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTERMINATED: &[u8] =
        include_bytes!("../../../../shared/cases/mime-unterminated-multipart.eml");

    #[test]
    fn unterminated_multipart_lists_its_parts_as_if_the_end_closed_them() {
        let entity = Entity::parse(UNTERMINATED, 0..UNTERMINATED.len());
        assert_eq!(entity.media, ("multipart".to_owned(), "mixed".to_owned()));
        assert_eq!(entity.parts.len(), 2);
        let first = &entity.parts[0];
        assert_eq!(&UNTERMINATED[first.body.clone()], b"Figures attached.");
        let second = &entity.parts[1];
        assert_eq!(second.media, ("text".to_owned(), "csv".to_owned()));
        assert_eq!(
            &UNTERMINATED[second.body.clone()],
            b"region,total\r\nnorth,12\r\n"
        );
    }

    #[test]
    fn message_without_header_section_is_all_body() {
        let msg = b"This message has no header section at all.\r\nJust two lines of body.\r\n";
        let entity = Entity::parse(msg, 0..msg.len());
        assert_eq!(entity.header, 0..0);
        assert_eq!(entity.body, 0..msg.len());
        assert_eq!(entity.media.0, "text");
    }

    #[test]
    fn terminated_multipart_ignores_preamble_and_epilogue() {
        let msg = b"Content-Type: multipart/alternative; boundary=b\r\n\r\npre\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--b--\r\nepilogue\r\n";
        let entity = Entity::parse(msg, 0..msg.len());
        assert_eq!(entity.parts.len(), 2);
        assert_eq!(&msg[entity.parts[0].body.clone()], b"one");
        assert_eq!(entity.parts[1].media.1, "html");
        assert!(entity.part(&[2]).is_some());
        assert!(entity.part(&[3]).is_none());
    }

    #[test]
    fn folded_header_fields_are_unfolded() {
        let f = fields(b"Subject: a\r\n b\r\nTo: x\r\n\r\n");
        assert_eq!(f[0], ("Subject".to_owned(), "a b".to_owned()));
        assert_eq!(f[1].0, "To");
    }
}
