//! Who a message in a multidrop mailbox is for (sans I/O).
//!
//! A domain mailbox at the ISP collects mail for every address of the office; the envelope is
//! gone, so the recipients must come from headers the ISP's server wrote on delivery, as
//! fetchmail's multidrop mode does: `X-Original-To` (Postfix), `Delivered-To`, `X-Envelope-To`.
//! Only when none names one of our domains do To and Cc serve, which misses Bcc recipients
//! and duplicates list mail, hence the warning.

/// Where the recipients came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Envelope headers written by the ISP's server.
    Envelope,
    /// To and Cc: a guess.
    ToCc,
    /// Nothing usable: the message goes to the postmaster.
    Nothing,
}

/// The recipients of a fetched message in our domains, lower-cased and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipients {
    /// The addresses.
    pub addresses: Vec<String>,
    /// Where they came from.
    pub source: Source,
}

/// The header section's fields as (lower-cased name, unfolded value) (RFC 5322 2.2.3).
pub fn header_fields(message: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in message.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(text.trim());
            }
            continue;
        }
        if let Some((name, value)) = text.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    fields
}

/// The addresses in an address-list header value: `<...>` forms, else bare `a@b` words.
pub fn addresses(value: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = value;
    let mut angle = false;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        found.push(rest[open + 1..open + close].trim().to_owned());
        rest = &rest[open + close + 1..];
        angle = true;
    }
    if !angle {
        for word in value.split([',', ' ', ';', '\t']) {
            let word = word.trim_matches(|c: char| c == '"' || c == '(' || c == ')');
            if word.contains('@') {
                found.push(word.to_owned());
            }
        }
    }
    found
        .into_iter()
        .filter(|a| a.contains('@'))
        .map(|a| a.to_ascii_lowercase())
        .collect()
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// The recipients of `message` in `domains`.
pub fn recipients(message: &[u8], domains: &[String]) -> Recipients {
    let fields = header_fields(message);
    let ours = |a: &String| domains.iter().any(|d| d.eq_ignore_ascii_case(domain_of(a)));
    let collect = |names: &[&str]| {
        let mut out: Vec<String> = Vec::new();
        for (name, value) in &fields {
            if names.contains(&name.as_str()) {
                for a in addresses(value).into_iter().filter(ours) {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
        }
        out
    };
    let envelope = collect(&["x-original-to", "delivered-to", "x-envelope-to"]);
    if !envelope.is_empty() {
        return Recipients {
            addresses: envelope,
            source: Source::Envelope,
        };
    }
    let guessed = collect(&["to", "cc"]);
    if !guessed.is_empty() {
        return Recipients {
            addresses: guessed,
            source: Source::ToCc,
        };
    }
    Recipients {
        addresses: Vec::new(),
        source: Source::Nothing,
    }
}

/// The reverse path for re-injection: the `Return-Path` the ISP wrote, else the null path.
pub fn return_path(message: &[u8]) -> String {
    header_fields(message)
        .into_iter()
        .find(|(n, _)| n == "return-path")
        .and_then(|(_, v)| addresses(&v).into_iter().next())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<String> {
        vec!["office.example".into()]
    }

    #[test]
    fn envelope_headers_win_over_to_and_cc() {
        let m = b"Return-Path: <s@far.example>\r\nDelivered-To: office@isp.example\r\n\
                  X-Original-To: Alice@Office.example\r\nTo: everyone@list.example\r\n\r\nhi\r\n";
        let r = recipients(m, &domains());
        assert_eq!(
            r,
            Recipients {
                addresses: vec!["alice@office.example".into()],
                source: Source::Envelope
            }
        );
        assert_eq!(return_path(m), "s@far.example");
    }

    #[test]
    fn to_and_cc_are_the_fallback() {
        let m = b"To: \"Bob\" <bob@office.example>,\r\n carol@elsewhere.example\r\n\
                  Cc: alice@office.example, bob@office.example\r\n\r\n";
        let r = recipients(m, &domains());
        assert_eq!(r.source, Source::ToCc);
        assert_eq!(r.addresses, ["bob@office.example", "alice@office.example"]);
    }

    #[test]
    fn nothing_of_ours_is_nothing() {
        let m = b"To: x@elsewhere.example\r\n\r\nbody: To: alice@office.example\r\n";
        assert_eq!(recipients(m, &domains()).source, Source::Nothing);
        assert_eq!(return_path(m), "");
    }
}
