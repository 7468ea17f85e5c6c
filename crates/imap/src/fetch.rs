//! Rendering FETCH data items: ENVELOPE, BODYSTRUCTURE and `BODY[section]<partial>`
//! (RFC 3501 sections 6.4.5 and 7.4.2).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fs::File;
use std::io::Read;

use crate::mime::{self, Entity};
use crate::wire;

/// A stored message loaded for FETCH or SEARCH: its bytes with CRLF line ends, whole or only
/// its header section, and its MIME tree, parsed only when something asks for it.
pub struct Loaded {
    /// The message as IMAP serves it, or its header section only (see [`Loaded::header_only`]).
    /// Maildir files written by other tools may end lines in a bare LF; IMAP wants CRLF
    /// (RFC 3501 section 2.2), so those are converted on loading and RFC822.SIZE counts the
    /// converted bytes.
    pub bytes: Vec<u8>,
    /// Where the header section ends (after its blank line).
    header_end: usize,
    /// The parsed structure, made on first use: BODY[] and BODY[HEADER] do without it.
    root: OnceCell<Entity>,
}

impl Loaded {
    /// Loads a message from its raw file bytes.
    pub fn new(raw: Vec<u8>) -> Loaded {
        let bytes = crlf(raw);
        let header_end = mime::header_end(&bytes, 0..bytes.len());
        Loaded {
            bytes,
            header_end,
            root: OnceCell::new(),
        }
    }

    /// Loads a message's header section from the raw bytes of its file up to the end of that
    /// section (what [`read_header`] returns). Only the header is there: the body is empty.
    pub fn header_only(raw: Vec<u8>) -> Loaded {
        let bytes = crlf(raw);
        Loaded {
            header_end: bytes.len(),
            bytes,
            root: OnceCell::new(),
        }
    }

    /// The MIME structure.
    pub fn root(&self) -> &Entity {
        self.root
            .get_or_init(|| Entity::parse(&self.bytes, 0..self.bytes.len()))
    }

    /// The header section, with its blank line.
    pub fn header(&self) -> &[u8] {
        &self.bytes[..self.header_end]
    }

    /// The body (empty when only the header was loaded).
    pub fn text(&self) -> &[u8] {
        &self.bytes[self.header_end..]
    }
}

/// Opens a message file; returns it with its length.
pub fn open(path: &std::path::Path) -> std::io::Result<(File, u64)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

/// Reads a whole message file opened with [`open`].
pub fn read_whole(mut file: File, len: u64) -> std::io::Result<Loaded> {
    // The length is a hint for the buffer only; the file may have changed since.
    let hint = usize::try_from(len).unwrap_or(0).min(64 * 1024 * 1024);
    let mut raw = Vec::with_capacity(hint.saturating_add(1));
    file.read_to_end(&mut raw)?;
    Ok(Loaded::new(raw))
}

/// Reads a message file opened with [`open`] only as far as its header section goes: the
/// header of a large message is a few kilobytes at its start.
pub fn read_header(mut file: File) -> std::io::Result<Loaded> {
    let mut raw = Vec::new();
    let mut step = 4096;
    loop {
        let start = raw.len();
        raw.resize(start + step, 0);
        let n = loop {
            match file.read(&mut raw[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        raw.truncate(start + n);
        // Whether there is a header section at all is told by the first line, so nothing is
        // decided before that line is in; then the first blank line ends the section, whatever
        // follows it.
        if n > 0 && memchr::memchr(b'\n', &raw).is_none() {
            step = (step * 2).min(64 * 1024);
            continue;
        }
        let end = mime::header_end(&raw, 0..raw.len());
        if n == 0 || end < raw.len() {
            raw.truncate(end);
            return Ok(Loaded::header_only(raw));
        }
        step = (step * 2).min(64 * 1024);
    }
}

/// Converts bare LF line ends to CRLF; bytes already in CRLF form are returned as they are.
pub fn crlf(raw: Vec<u8>) -> Vec<u8> {
    let bare = |&i: &usize| i == 0 || raw[i - 1] != b'\r';
    let count = memchr::memchr_iter(b'\n', &raw).filter(bare).count();
    if count == 0 {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + count);
    let mut from = 0;
    for i in memchr::memchr_iter(b'\n', &raw).filter(bare) {
        out.extend_from_slice(&raw[from..i]);
        out.push(b'\r');
        from = i;
    }
    out.extend_from_slice(&raw[from..]);
    out
}

/// Writes the ENVELOPE structure of a header section.
pub fn envelope(out: &mut Vec<u8>, header: &[u8]) {
    let fields = mime::fields(header);
    let get = |name: &str| mime::field(&fields, name);
    out.push(b'(');
    wire::nstring(out, get("date").as_deref().map(str::as_bytes));
    out.push(b' ');
    wire::nstring(out, get("subject").as_deref().map(str::as_bytes));
    let from = get("from");
    for (name, fallback) in [
        ("from", None),
        ("sender", from.as_deref()),
        ("reply-to", from.as_deref()),
        ("to", None),
        ("cc", None),
        ("bcc", None),
    ] {
        out.push(b' ');
        let value = get(name)
            .filter(|v| !v.is_empty())
            .or(fallback.map(str::to_owned));
        addresses(out, value.as_deref());
    }
    out.push(b' ');
    wire::nstring(out, get("in-reply-to").as_deref().map(str::as_bytes));
    out.push(b' ');
    wire::nstring(out, get("message-id").as_deref().map(str::as_bytes));
    out.push(b')');
}

/// Writes an address list `((name adl mailbox host) ...)` or NIL, with RFC 3501 group markers.
fn addresses(out: &mut Vec<u8>, value: Option<&str>) {
    let list = value.map(parse_addresses).unwrap_or_default();
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        wire::nstring(out, a.name.as_deref().map(str::as_bytes));
        out.extend_from_slice(b" NIL ");
        wire::nstring(out, a.mailbox.as_deref().map(str::as_bytes));
        out.push(b' ');
        wire::nstring(out, a.host.as_deref().map(str::as_bytes));
        out.push(b')');
    }
    out.push(b')');
}

/// One element of an ENVELOPE address list.
#[derive(Debug, PartialEq, Eq)]
pub struct Address {
    /// Display name, undecoded.
    pub name: Option<String>,
    /// Local part, or the group name at a group's start.
    pub mailbox: Option<String>,
    /// Domain; None marks a group start or end.
    pub host: Option<String>,
}

/// Parses an RFC 5322 address list leniently.
pub fn parse_addresses(value: &str) -> Vec<Address> {
    let mut out = Vec::new();
    for item in split_top(value, ',') {
        let mut item = item.trim().to_owned();
        if item.is_empty() {
            continue;
        }
        // Group syntax: `name: a@b, c@d;` arrives split at commas; the colon starts it.
        if let Some(colon) = top_index(&item, ':') {
            let group = unquote(item[..colon].trim());
            out.push(Address {
                name: None,
                mailbox: Some(group),
                host: None,
            });
            item = item[colon + 1..].trim().to_owned();
            if item.is_empty() {
                continue;
            }
        }
        let ends_group = item.ends_with(';');
        let member = item.trim_end_matches(';').trim();
        if !member.is_empty() {
            out.push(mailbox_address(member));
        }
        if ends_group {
            out.push(Address {
                name: None,
                mailbox: None,
                host: None,
            });
        }
    }
    out
}

fn mailbox_address(item: &str) -> Address {
    let (name, spec) = match (top_index(item, '<'), item.rfind('>')) {
        (Some(open), Some(close)) if close > open => {
            let name = unquote(item[..open].trim());
            (
                if name.is_empty() { None } else { Some(name) },
                item[open + 1..close].trim().to_owned(),
            )
        }
        _ => {
            let without_comment = match top_index(item, '(') {
                Some(p) => item[..p].trim(),
                None => item.trim(),
            };
            (None, without_comment.to_owned())
        }
    };
    // A source route `@a,@b:user@host` keeps only the final address.
    let spec = spec.rsplit(':').next().unwrap_or_default().to_owned();
    match spec.rsplit_once('@') {
        Some((local, host)) => Address {
            name,
            mailbox: Some(unquote(local)),
            host: Some(host.to_owned()),
        },
        None => Address {
            name,
            mailbox: Some(spec),
            host: Some(String::new()),
        },
    }
}

fn unquote(s: &str) -> String {
    match s.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => s.to_owned(),
    }
}

/// Splits at `sep` outside quotes, angle brackets and comments.
fn split_top(value: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut quoted, mut angle, mut comment, mut escaped) = (false, false, 0u32, false);
    for c in value.chars() {
        let current = out.last_mut().expect("out starts non-empty and only grows");
        if escaped {
            escaped = false;
            current.push(c);
            continue;
        }
        match c {
            '\\' if quoted || comment > 0 => escaped = true,
            '"' if comment == 0 => quoted = !quoted,
            '<' if !quoted && comment == 0 => angle = true,
            '>' if !quoted && comment == 0 => angle = false,
            '(' if !quoted => comment += 1,
            ')' if !quoted => comment = comment.saturating_sub(1),
            c if c == sep && !quoted && !angle && comment == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out
}

fn top_index(value: &str, wanted: char) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == wanted && !quoted {
            return Some(i);
        }
    }
    None
}

/// Writes BODYSTRUCTURE (with `extended`) or BODY.
pub fn body_structure(out: &mut Vec<u8>, bytes: &[u8], entity: &Entity, extended: bool) {
    out.push(b'(');
    let fields = entity.fields(bytes);
    if entity.media.0 == "multipart" && !entity.parts.is_empty() {
        for part in &entity.parts {
            body_structure(out, bytes, part, extended);
        }
        out.push(b' ');
        wire::string(out, entity.media.1.to_ascii_uppercase().as_bytes());
        if extended {
            out.push(b' ');
            params(out, &entity.params);
            extension_tail(out, &fields);
        }
        out.push(b')');
        return;
    }
    // A multipart without parts (no boundary found) is described as an opaque body of its
    // declared type, as Dovecot does.
    wire::string(out, entity.media.0.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    wire::string(out, entity.media.1.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    let mut shown_params = entity.params.clone();
    // RFC 2045 section 5.2: no Content-Type at all means text/plain; charset=us-ascii.
    if mime::field(&fields, "content-type").is_none() && entity.media.0 == "text" {
        shown_params.push(("charset".to_owned(), "us-ascii".to_owned()));
    }
    params(out, &shown_params);
    out.push(b' ');
    wire::nstring(
        out,
        mime::field(&fields, "content-id")
            .as_deref()
            .map(str::as_bytes),
    );
    out.push(b' ');
    wire::nstring(
        out,
        mime::field(&fields, "content-description")
            .as_deref()
            .map(str::as_bytes),
    );
    out.push(b' ');
    let encoding = mime::field(&fields, "content-transfer-encoding")
        .map(|e| e.to_ascii_uppercase())
        .unwrap_or_else(|| "7BIT".to_owned());
    wire::string(out, encoding.as_bytes());
    let body = &bytes[entity.body.clone()];
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    if let Some(enclosed) = &entity.enclosed {
        out.push(b' ');
        envelope(out, &bytes[enclosed.header.clone()]);
        out.push(b' ');
        body_structure(out, bytes, enclosed, extended);
        out.extend_from_slice(format!(" {}", mime::line_count(body)).as_bytes());
    } else if entity.media.0 == "text" {
        out.extend_from_slice(format!(" {}", mime::line_count(body)).as_bytes());
    }
    if extended {
        out.push(b' ');
        wire::nstring(
            out,
            mime::field(&fields, "content-md5")
                .as_deref()
                .map(str::as_bytes),
        );
        extension_tail(out, &fields);
    }
    out.push(b')');
}

/// disposition, language, location.
fn extension_tail(out: &mut Vec<u8>, fields: &[(String, String)]) {
    out.push(b' ');
    match mime::field(fields, "content-disposition") {
        Some(value) => {
            let (kind, p) = mime::disposition(&value);
            out.push(b'(');
            wire::string(out, kind.as_bytes());
            out.push(b' ');
            params(out, &p);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match mime::field(fields, "content-language") {
        Some(value) => {
            let langs: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            out.push(b'(');
            for (i, l) in langs.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                wire::string(out, l.as_bytes());
            }
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    wire::nstring(
        out,
        mime::field(fields, "content-location")
            .as_deref()
            .map(str::as_bytes),
    );
}

fn params(out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        wire::string(out, name.to_ascii_uppercase().as_bytes());
        out.push(b' ');
        wire::string(out, value.as_bytes());
    }
    out.push(b')');
}

/// What a `BODY[...]` section asks for, independent of the parser's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// The whole entity (`BODY[]`, or `BODY[1.2]`).
    Full,
    /// `HEADER`.
    Header,
    /// `HEADER.FIELDS (...)` or, with `not`, `HEADER.FIELDS.NOT (...)`.
    Fields { names: Vec<String>, not: bool },
    /// `TEXT`.
    Text,
    /// `MIME`: the part's own header.
    Mime,
}

/// Extracts a section's bytes. `part` is the section number path (empty for the message).
/// The message's own HEADER, HEADER.FIELDS and TEXT need no MIME parsing, and only HEADER and
/// HEADER.FIELDS of the message can be served by a [`Loaded::header_only`].
pub fn section<'a>(loaded: &'a Loaded, part: &[u32], text: &SectionText) -> Option<Cow<'a, [u8]>> {
    let bytes = &loaded.bytes;
    if part.is_empty() {
        return match text {
            SectionText::Full => Some(Cow::Borrowed(&bytes[..])),
            SectionText::Mime => None,
            SectionText::Header => Some(Cow::Borrowed(loaded.header())),
            SectionText::Text => Some(Cow::Borrowed(loaded.text())),
            SectionText::Fields { names, not } => {
                Some(Cow::Owned(header_fields(loaded.header(), names, *not)))
            }
        };
    }
    let entity = loaded.root().part(part)?;
    // HEADER and TEXT of a part address the message inside a message/rfc822 part.
    let message = || entity.enclosed.as_deref();
    let result = match text {
        SectionText::Full => &bytes[entity.body.clone()],
        SectionText::Mime => &bytes[entity.header.clone()],
        SectionText::Header => &bytes[message()?.header.clone()],
        SectionText::Text => &bytes[message()?.body.clone()],
        SectionText::Fields { names, not } => {
            return Some(Cow::Owned(header_fields(
                &bytes[message()?.header.clone()],
                names,
                *not,
            )));
        }
    };
    Some(Cow::Borrowed(result))
}

/// The header lines (with their continuations) whose names are (or with `not`, are not) in
/// `names`, followed by the blank line (RFC 3501 section 6.4.5).
fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name);
            let listed = names.iter().any(|n| n.eq_ignore_ascii_case(name.trim()));
            keep = listed != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_structure(msg: &[u8]) -> String {
        let loaded = Loaded::new(msg.to_vec());
        let mut out = Vec::new();
        body_structure(&mut out, &loaded.bytes, loaded.root(), true);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unterminated_multipart_bodystructure_lists_both_parts() {
        let msg = include_bytes!("../../../../shared/cases/mime-unterminated-multipart.eml");
        assert_eq!(
            render_structure(msg),
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 17 1 NIL NIL NIL NIL)\
             (\"TEXT\" \"CSV\" (\"NAME\" \"q3.csv\") NIL NIL \"7BIT\" 24 2 NIL \
             (\"attachment\" (\"FILENAME\" \"q3.csv\")) NIL NIL) \"MIXED\" (\"BOUNDARY\" \"XYZ\") \
             NIL NIL NIL)"
        );
    }

    #[test]
    fn latin2_envelope_carries_the_encoded_words_for_the_client_to_decode() {
        let msg = include_bytes!("../../../../shared/cases/mime-latin2-encoded-words.eml");
        let loaded = Loaded::new(msg.to_vec());
        let mut out = Vec::new();
        envelope(&mut out, loaded.header());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\"=?iso-8859-2?Q?Objedn=E1vka?=\""), "{text}");
        assert!(
            text.contains(
                "((\"=?iso-8859-2?Q?Krist=FDna_Dvo=F8=E1kov=E1?=\" NIL \"k.d\" \"sender.example\"))"
            ),
            "{text}"
        );
        assert!(render_structure(msg).starts_with(
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"iso-8859-2\") NIL NIL \"QUOTED-PRINTABLE\""
        ));
    }

    #[test]
    fn bare_lf_files_are_served_with_crlf() {
        assert_eq!(crlf(b"a\nb\r\nc\n".to_vec()), b"a\r\nb\r\nc\r\n");
    }

    #[test]
    fn header_fields_selects_named_lines_with_continuations() {
        let msg = b"From: a@b\r\nSubject: x\r\n y\r\nTo: c@d\r\n\r\nbody".to_vec();
        let loaded = Loaded::new(msg);
        let names = vec!["subject".to_owned()];
        let got = section(
            &loaded,
            &[],
            &SectionText::Fields {
                names: names.clone(),
                not: false,
            },
        );
        assert_eq!(&got.unwrap()[..], b"Subject: x\r\n y\r\n\r\n");
        let got = section(&loaded, &[], &SectionText::Fields { names, not: true });
        assert_eq!(&got.unwrap()[..], b"From: a@b\r\nTo: c@d\r\n\r\n");
    }

    /// The header as `read_header` gets it from the start of the file, and as the whole
    /// message gives it.
    fn both_headers(raw: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        std::fs::write(&path, raw).unwrap();
        let (file, _) = open(&path).unwrap();
        let partial = read_header(file).unwrap();
        let whole = Loaded::new(raw.to_vec());
        (partial.header().to_vec(), whole.header().to_vec())
    }

    #[test]
    fn reading_only_the_header_gives_the_header_of_the_whole_message() {
        let long_first_line = format!("X-Long: {}\r\nSubject: s\r\n\r\nbody\r\n", "a".repeat(9000));
        let long_header: String = (0..3000).map(|i| format!("X-{i}: v\r\n")).collect();
        let cases: Vec<Vec<u8>> = vec![
            b"Subject: a\r\nTo: b\r\n\r\nbody\r\n".to_vec(),
            b"Subject: a\nTo: b\n\nbody with bare LF\n".to_vec(),
            b"Subject: a\r\n\nmixed\r\n".to_vec(),
            b"no header section here\r\nSubject: not a field\r\n\r\nx\r\n".to_vec(),
            b"\r\nbody only".to_vec(),
            b"Subject: header without blank line and body\r\n".to_vec(),
            b"".to_vec(),
            long_first_line.into_bytes(),
            format!("{long_header}\r\nbody\r\n").into_bytes(),
            include_bytes!("../../../../shared/cases/mime-no-headers.eml").to_vec(),
            include_bytes!("../../../../shared/cases/mime-long-line.eml").to_vec(),
        ];
        for raw in cases {
            let (partial, whole) = both_headers(&raw);
            assert_eq!(
                partial,
                whole,
                "{:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(80)])
            );
        }
    }

    #[test]
    fn the_message_s_own_sections_need_no_mime_tree() {
        let loaded = Loaded::new(b"Subject: a\r\n\r\nbody\r\n".to_vec());
        assert_eq!(
            &section(&loaded, &[], &SectionText::Text).unwrap()[..],
            b"body\r\n"
        );
        assert_eq!(
            &section(&loaded, &[], &SectionText::Header).unwrap()[..],
            b"Subject: a\r\n\r\n"
        );
        assert!(loaded.root.get().is_none());
        assert_eq!(
            &section(&loaded, &[1], &SectionText::Full).unwrap()[..],
            b"body\r\n"
        );
        assert!(loaded.root.get().is_some());
    }

    #[test]
    fn groups_and_plain_addresses_parse() {
        let list = parse_addresses("undisclosed-recipients:;, \"Doe, J\" <j@x.example>, k@y");
        assert_eq!(list.len(), 4);
        assert_eq!(list[0].host, None);
        assert_eq!(
            list[1],
            Address {
                name: None,
                mailbox: None,
                host: None
            }
        );
        assert_eq!(list[2].name.as_deref(), Some("Doe, J"));
        assert_eq!(list[3].host.as_deref(), Some("y"));
    }
}
