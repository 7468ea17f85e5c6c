//! Trace headers (RFC 5321 section 4.4) and message ids.
//!
//! Every accepted message gets a Received header at its top. Local delivery adds Return-Path
//! (the reverse-path, RFC 5321 section 4.4) and Delivered-To (the envelope recipient, as
//! Postfix and qmail write it, so forwarding loops can be seen).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use postroom_smtp::Envelope;

/// A new message id: time in microseconds, process id and a counter, in upper-case hex.
/// Unique within this box; a valid Maildir file name part and queue key.
pub fn new_message_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{micros:014X}{:05X}{:04X}",
        std::process::id() & 0xF_FFFF,
        n & 0xFFFF
    )
}

/// The Received header for a message, with its CRLF.
pub fn received_header(
    envelope: &Envelope,
    peer: IpAddr,
    hostname: &str,
    id: &str,
    now: SystemTime,
) -> String {
    // RFC 3848: the "with" keyword says ESMTP, S for TLS, A for authentication.
    let mut with = String::from(if envelope.esmtp { "ESMTP" } else { "SMTP" });
    if envelope.esmtp && envelope.tls {
        with.push('S');
    }
    if envelope.esmtp && envelope.authenticated.is_some() {
        with.push('A');
    }
    let helo: String = envelope
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let mut header = format!("Received: from {helo} ([{peer}])\r\n\tby {hostname} (Postroom)");
    let _ = write!(header, " with {with} id {id}");

    // Only a single recipient is named: with several, a "for" would tell each one about the
    // others (the Bcc problem).
    if let [only] = envelope.recipients.as_slice() {
        let address: String = only.address.chars().filter(|c| !c.is_control()).collect();
        let _ = write!(header, "\r\n\tfor <{address}>");
    }
    let _ = write!(header, ";\r\n\t{}\r\n", rfc5322_date(now));
    header
}

/// Return-Path and Delivered-To for one local delivery, with their CRLFs.
pub fn delivery_headers(reverse_path: &str, recipient: &str) -> String {
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).collect() };
    format!(
        "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
        clean(reverse_path),
        clean(recipient)
    )
}

/// A date in RFC 5322 section 3.3 form, in UTC: `Thu, 03 Dec 2026 16:48:06 +0000`.
pub fn rfc5322_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Converts days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar,
/// by the well-known era arithmetic (400-year cycles of 146097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use postroom_smtp::{BodyType, Recipient, ReversePath};
    use std::time::Duration;

    #[test]
    fn dates_are_rfc5322_in_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(0);
        assert_eq!(rfc5322_date(t), "Thu, 01 Jan 1970 00:00:00 +0000");
        // 2024-02-29 12:34:56 UTC, a leap day.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc5322_date(t), "Thu, 29 Feb 2024 12:34:56 +0000");
    }

    #[test]
    fn received_names_protocol_and_single_recipient() {
        let envelope = Envelope {
            helo: "client.example".into(),
            esmtp: true,
            tls: true,
            authenticated: Some("alice".into()),
            reverse_path: ReversePath::Null,
            declared_size: None,
            body_type: BodyType::Unspecified,
            smtputf8: false,
            dsn_return: None,
            dsn_envelope_id: None,
            recipients: vec![Recipient {
                address: "bob@office.example".into(),
                notify: None,
                original_recipient: None,
            }],
        };
        let h = received_header(
            &envelope,
            "127.0.0.1".parse().unwrap(),
            "mx.office.example",
            "ID1",
            UNIX_EPOCH,
        );
        assert!(h.starts_with("Received: from client.example ([127.0.0.1])\r\n"));
        assert!(h.contains("with ESMTPSA id ID1"));
        assert!(h.contains("for <bob@office.example>;"));
        assert!(h.ends_with("+0000\r\n"));
    }

    #[test]
    fn message_ids_differ() {
        assert_ne!(new_message_id(), new_message_id());
    }
}
