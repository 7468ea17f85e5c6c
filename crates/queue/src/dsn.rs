//! Delivery status notifications: the failure and delay notices sent to a message's sender
//! (RFC 3464 message/delivery-status inside an RFC 6522 multipart/report).

use crate::envelope::QueueId;

/// A full original is returned up to this size; above it, only its headers (RFC 3462
/// text/rfc822-headers), as a bounce of a 20 MB attachment helps nobody.
pub const RETURN_FULL_LIMIT: usize = 256 * 1024;

/// Which notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The message could not be delivered to some recipients (Action: failed).
    Failure,
    /// The message is late but still being tried (Action: delayed).
    Delay,
}

/// One recipient's part of a notice (RFC 3464 section 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecipient {
    /// The recipient as given at RCPT TO.
    pub address: String,
    /// The RFC 3463 status code, e.g. `5.1.1`.
    pub status: String,
    /// The remote server's reply on one line, e.g. `550 5.1.1 <x@y>: Recipient address
    /// rejected`, when there was an SMTP reply; otherwise our own reason.
    pub diagnostic: String,
    /// Whether `diagnostic` is an SMTP reply (Diagnostic-Code type `smtp`).
    pub diagnostic_is_smtp: bool,
    /// The server that gave the reply.
    pub remote_mta: Option<String>,
}

/// Everything a notice says.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    /// Failure or delay.
    pub kind: NoticeKind,
    /// Our host name (Reporting-MTA, the From domain).
    pub reporting_mta: &'a str,
    /// The original message's queue id.
    pub queue_id: QueueId,
    /// When the original arrived, Unix seconds.
    pub arrived: u64,
    /// Now, Unix seconds (Date, Last-Attempt-Date).
    pub now: u64,
    /// Until when a delayed message is retried, Unix seconds.
    pub retry_until: u64,
    /// The original sender, to whom the notice goes.
    pub sender: &'a str,
    /// The recipients it is about.
    pub recipients: Vec<NoticeRecipient>,
    /// The original message.
    pub original: &'a [u8],
    /// Return only the original's headers (DSN RET=HDRS, or a delay notice).
    pub headers_only: bool,
}

/// Builds the notice as a complete message with CRLF line ends.
pub fn build(notice: &Notice<'_>) -> Vec<u8> {
    let boundary = format!(
        "{}.{}/{}",
        notice.queue_id, notice.now, notice.reporting_mta
    );
    let (subject, action) = match notice.kind {
        NoticeKind::Failure => ("Undelivered Mail Returned to Sender", "failed"),
        NoticeKind::Delay => ("Delayed Mail (still being retried)", "delayed"),
    };
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push_str("\r\n");
    };

    line(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>",
        notice.reporting_mta
    ));
    line(&format!("To: <{}>", notice.sender));
    line(&format!("Subject: {subject}"));
    line(&format!("Date: {}", rfc5322_date(notice.now)));
    line(&format!(
        "Message-ID: <{}.{}.notice@{}>",
        notice.now, notice.queue_id, notice.reporting_mta
    ));
    // RFC 3834 section 5: automatic replies are marked so that nobody answers them.
    line("Auto-Submitted: auto-replied");
    line("MIME-Version: 1.0");
    line(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\""
    ));
    line("");
    line("This is a MIME-encapsulated delivery status notification.");
    line("");

    // The part a person reads.
    line(&format!("--{boundary}"));
    line("Content-Type: text/plain; charset=utf-8");
    line("Content-Transfer-Encoding: 8bit");
    line("");
    line(&format!(
        "This is the mail system at {}.",
        notice.reporting_mta
    ));
    line("");
    match notice.kind {
        NoticeKind::Failure => {
            line("Your message could not be delivered to one or more recipients.");
            line("It is attached below.");
        }
        NoticeKind::Delay => {
            line("Your message could not be delivered yet. It is still in the queue and will");
            line(&format!(
                "be tried again until {}.",
                rfc5322_date(notice.retry_until)
            ));
            line("You need not send it again.");
        }
    }
    line("");
    for r in &notice.recipients {
        line(&format!(
            "<{}>: {}",
            r.address,
            fold(&r.diagnostic, 900).join("\r\n    ")
        ));
    }
    line("");

    // RFC 3464 section 2.2: per-message fields, then a blank line and per-recipient fields.
    line(&format!("--{boundary}"));
    line("Content-Type: message/delivery-status");
    line("");
    line(&format!("Reporting-MTA: dns; {}", notice.reporting_mta));
    line(&format!("X-Postroom-Queue-ID: {}", notice.queue_id));
    line(&format!("Arrival-Date: {}", rfc5322_date(notice.arrived)));
    for r in &notice.recipients {
        line("");
        line(&format!("Final-Recipient: rfc822; {}", r.address));
        line(&format!("Original-Recipient: rfc822; {}", r.address));
        line(&format!("Action: {action}"));
        line(&format!("Status: {}", r.status));
        if let Some(mta) = &r.remote_mta {
            line(&format!("Remote-MTA: dns; {mta}"));
        }
        let kind = if r.diagnostic_is_smtp {
            "smtp"
        } else {
            "x-postroom"
        };
        let diag = format!("Diagnostic-Code: {kind}; {}", r.diagnostic);
        line(&fold(&diag, 900).join("\r\n "));
        line(&format!("Last-Attempt-Date: {}", rfc5322_date(notice.now)));
        if notice.kind == NoticeKind::Delay {
            line(&format!(
                "Will-Retry-Until: {}",
                rfc5322_date(notice.retry_until)
            ));
        }
    }
    line("");

    // The original: whole (message/rfc822) or its header section (text/rfc822-headers).
    let full = !notice.headers_only && notice.original.len() <= RETURN_FULL_LIMIT;
    line(&format!("--{boundary}"));
    if full {
        line("Content-Type: message/rfc822");
        line("Content-Description: Undelivered Message");
    } else {
        line("Content-Type: text/rfc822-headers");
        line("Content-Description: Undelivered Message Headers");
    }
    line("");

    let mut bytes = out.into_bytes();
    let original = if full {
        notice.original
    } else {
        header_section(notice.original)
    };
    bytes.extend_from_slice(original);
    if !original.ends_with(b"\r\n") && !original.is_empty() {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// The header section of a message, with its ending line break but not the blank line.
pub fn header_section(message: &[u8]) -> &[u8] {
    let crlf = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2);
    let lf = message.windows(2).position(|w| w == b"\n\n").map(|p| p + 1);
    match (crlf, lf) {
        (Some(a), Some(b)) => &message[..a.min(b)],
        (Some(a), None) => &message[..a],
        (None, Some(b)) => &message[..b],
        (None, None) => message,
    }
}

/// Splits a long text at spaces into pieces of at most `width` characters where possible
/// (RFC 5322 section 2.1.1 keeps lines under 998 octets).
fn fold(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let current = lines
            .last_mut()
            .expect("lines starts non-empty and only grows");
        if !current.is_empty() && current.len() + 1 + word.len() > width {
            lines.push(word.to_owned());
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
    }
    lines
}

/// An RFC 5322 section 3.3 date in UTC, e.g. `Thu, 03 Dec 2026 16:48:06 +0000`.
pub fn rfc5322_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (the well-known era arithmetic).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests;
