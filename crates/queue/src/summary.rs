//! What a person sees of a queued message in the queue list: its From and Subject, with
//! RFC 2047 encoded words decoded (any charset mail-parser knows, ISO-8859-2 included).

use mail_parser::MessageParser;

/// How much of a body is read to find its headers.
pub const HEAD_LIMIT: usize = 64 * 1024;

/// The decoded From and Subject of a message, given its first bytes.
pub fn from_and_subject(head: &[u8]) -> (Option<String>, Option<String>) {
    let Some(message) = MessageParser::new().parse_headers(head) else {
        return (None, None);
    };
    let from = message.from().and_then(|list| list.first()).map(|addr| {
        match (addr.name(), addr.address()) {
            (Some(name), Some(address)) => one_line(&format!("{name} <{address}>")),
            (None, Some(address)) => one_line(address),
            (Some(name), None) => one_line(name),
            (None, None) => String::new(),
        }
    });
    (from, message.subject().map(one_line))
}

/// The text with every control character (CR and LF included) as a space: an encoded word
/// (RFC 2047) can carry any byte, and a line break must not split a line of the queue list.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin2_encoded_words_in_from_and_subject_are_decoded() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/cases/mime-latin2-encoded-words.eml"
        );
        let bytes = std::fs::read(path).expect("shared/cases/mime-latin2-encoded-words.eml");
        let (from, subject) = from_and_subject(&bytes);
        let (from, subject) = (from.unwrap(), subject.unwrap());

        // ř is 0xF8 in ISO-8859-2 but ø in ISO-8859-1: a wrong charset shows here.
        assert_eq!(from, "Kristýna Dvořáková <k.d@sender.example>");
        assert_eq!(subject, "Objednávka");
    }

    #[test]
    fn message_without_headers_has_no_summary() {
        assert_eq!(from_and_subject(b"\r\njust a body\r\n"), (None, None));
    }
}
