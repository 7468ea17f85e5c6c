//! SMTP load clients: each sends numbered messages, one after the other, over sessions that it
//! opens again whenever the server goes away, and records what it sent and whether the server
//! answered 250 at the end of DATA (RFC 5321 section 4.1.1.4: only that reply makes the
//! message the server's responsibility).
//!
//! A message that got no 250 is never sent again under the same Message-ID; the next message
//! gets the next number. So the record tells, for each Message-ID, what the server promised.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::rng::Rng;

/// Where a copy of a message should end up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// A local user's Maildir (INBOX).
    Local(String),
    /// Relayed through the smarthost to this address.
    Remote(String),
}

/// How the server answered the end of a message's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 250: the server took responsibility for the message.
    Accepted,
    /// Any other reply, or the connection broke before a reply came.
    NotAccepted,
}

/// One message a client sent (or began to send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The Message-ID, without angle brackets; unique in the run.
    pub message_id: String,
    /// The recipients' destinations.
    pub destinations: Vec<Destination>,
    /// FNV-1a of the body with CR removed, to recognise a damaged copy.
    pub body_hash: u64,
    /// How the server answered.
    pub answer: Answer,
}

/// The settings of one load client.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Its number; part of every Message-ID it makes.
    pub client: u32,
    /// The run's seed.
    pub seed: u64,
    /// The server's MX port.
    pub server: SocketAddr,
    /// The local users to send to, at the server's domain.
    pub local_users: Vec<String>,
    /// The server's domain.
    pub domain: String,
    /// Remote addresses (relayed through the smarthost); empty for local mail only.
    pub remote: Vec<String>,
    /// The largest body, in octets.
    pub max_body: usize,
}

/// What a load client did.
#[derive(Debug, Default)]
pub struct LoadRecord {
    /// Every message it sent or began to send, in order.
    pub sent: Vec<Sent>,
    /// How many connections it opened.
    pub connections: u64,
}

/// Runs a load client until `stop` is set, then ends its session (after the message under
/// way has its answer) and returns its record.
pub fn run(plan: &LoadPlan, stop: &Arc<AtomicBool>) -> LoadRecord {
    let mut rng = Rng::stream(plan.seed, u64::from(plan.client));
    let mut record = LoadRecord::default();
    let mut number = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Ok(stream) = TcpStream::connect_timeout(&plan.server, Duration::from_secs(5)) else {
            // The server is down (killed, not yet started again): try again soon.
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        record.connections += 1;
        // Errors end the session; its message, if any, is already recorded as not accepted.
        let _ = session(plan, stream, &mut rng, &mut number, &mut record.sent, stop);
    }
    record
}

/// One SMTP session: greeting, EHLO, then messages until `stop` or an error.
fn session(
    plan: &LoadPlan,
    stream: TcpStream,
    rng: &mut Rng,
    number: &mut u64,
    sent: &mut Vec<Sent>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    // Generous: a loaded 2-core machine may take a while to start the component again, and a
    // session that waits out a kill gets its answer as soon as the socket closes anyway.
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    expect(&mut reader, 220)?;
    writer.write_all(format!("EHLO load{}.client.test\r\n", plan.client).as_bytes())?;
    expect(&mut reader, 250)?;

    // A few messages per session, so that both new sessions and long ones meet the kills.
    let messages = rng.between(1, 8);
    for _ in 0..messages {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        *number += 1;
        let message = compose(plan, rng, *number);
        sent.push(Sent {
            message_id: message.message_id.clone(),
            destinations: message.destinations.clone(),
            body_hash: body_hash(message.body.as_bytes()),
            answer: Answer::NotAccepted,
        });
        let accepted = transaction(plan, &mut reader, &mut writer, &message)?;
        if accepted {
            if let Some(last) = sent.last_mut() {
                last.answer = Answer::Accepted;
            }
        } else {
            // Refused: the session may be in any state; start a fresh one.
            return Ok(());
        }
    }
    writer.write_all(b"QUIT\r\n")?;
    let _ = read_reply(&mut reader);
    Ok(())
}

/// MAIL, RCPT, DATA and the content; true when the end of data got 250.
fn transaction(
    plan: &LoadPlan,
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    message: &Message,
) -> std::io::Result<bool> {
    writer.write_all(format!("MAIL FROM:<load{}@client.test>\r\n", plan.client).as_bytes())?;
    if read_reply(reader)? != 250 {
        return Ok(false);
    }
    for destination in &message.destinations {
        let address = match destination {
            Destination::Local(user) => format!("{user}@{}", plan.domain),
            Destination::Remote(address) => address.clone(),
        };
        writer.write_all(format!("RCPT TO:<{address}>\r\n").as_bytes())?;
        if read_reply(reader)? != 250 {
            return Ok(false);
        }
    }
    writer.write_all(b"DATA\r\n")?;
    if read_reply(reader)? != 354 {
        return Ok(false);
    }
    writer.write_all(message.text.as_bytes())?;
    writer.write_all(b".\r\n")?;
    Ok(read_reply(reader)? == 250)
}

/// A message ready to send.
struct Message {
    message_id: String,
    destinations: Vec<Destination>,
    /// The whole text as sent in DATA, CRLF lines, without the final dot.
    text: String,
    /// The body alone.
    body: String,
}

/// Composes message `number` of this client: recipients and size from `rng`.
fn compose(plan: &LoadPlan, rng: &mut Rng, number: u64) -> Message {
    let message_id = format!(
        "crash-{:x}-c{}-n{number}@client.test",
        plan.seed, plan.client
    );
    let mut destinations = Vec::new();
    for user in &plan.local_users {
        if rng.percent(50) {
            destinations.push(Destination::Local(user.clone()));
        }
    }
    for address in &plan.remote {
        if rng.percent(30) {
            destinations.push(Destination::Remote(address.clone()));
        }
    }
    if destinations.is_empty() {
        let pick = rng.between(0, plan.local_users.len().saturating_sub(1) as u64) as usize;
        if let Some(user) = plan.local_users.get(pick) {
            destinations.push(Destination::Local(user.clone()));
        }
    }

    // Lines that never start with a dot, so no dot-stuffing is needed (RFC 5321 4.5.2).
    let size = rng.between(200, plan.max_body as u64) as usize;
    let mut body = String::with_capacity(size + 80);
    let mut line = 0u64;
    while body.len() < size {
        line += 1;
        body.push_str(&format!(
            "line {line} of message {number} from client {}, {:016x}\r\n",
            plan.client,
            rng.next_u64()
        ));
    }
    let to: Vec<String> = destinations
        .iter()
        .map(|d| match d {
            Destination::Local(user) => format!("<{user}@{}>", plan.domain),
            Destination::Remote(address) => format!("<{address}>"),
        })
        .collect();
    let text = format!(
        "From: <load{c}@client.test>\r\nTo: {to}\r\nSubject: crash c{c} n{number}\r\n\
         Message-ID: <{message_id}>\r\n\r\n{body}",
        c = plan.client,
        to = to.join(", "),
    );
    Message {
        message_id,
        destinations,
        text,
        body,
    }
}

/// FNV-1a (64 bits) of `body` with every CR left out, so that the CRLF copy in our Maildirs
/// and the LF copy Postfix stores hash alike.
pub fn body_hash(body: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &byte in body.iter().filter(|&&b| b != b'\r') {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

/// Reads a reply and fails unless its code is `code`.
fn expect(reader: &mut BufReader<TcpStream>, code: u16) -> std::io::Result<()> {
    let got = read_reply(reader)?;
    if got == code {
        return Ok(());
    }
    Err(std::io::Error::other(format!("expected {code}, got {got}")))
}

/// Reads one reply, all its lines (RFC 5321 section 4.2.1), and returns its code.
fn read_reply(reader: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| std::io::Error::other(format!("not a reply: {line:?}")))?;
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> LoadPlan {
        LoadPlan {
            client: 3,
            seed: 0x5eed,
            server: "127.0.0.1:1".parse().unwrap(),
            local_users: vec!["alice".into(), "bob".into()],
            domain: "office.example".into(),
            remote: vec!["carol@elsewhere.example".into()],
            max_body: 4000,
        }
    }

    #[test]
    fn composed_messages_have_unique_ids_recipients_and_no_line_starting_with_a_dot() {
        let plan = plan();
        let mut rng = Rng::new(1);
        let mut ids = std::collections::HashSet::new();
        for n in 1..200 {
            let m = compose(&plan, &mut rng, n);
            assert!(ids.insert(m.message_id.clone()));
            assert!(!m.destinations.is_empty());
            assert!(
                m.text
                    .contains(&format!("Message-ID: <{}>\r\n", m.message_id))
            );
            assert!(m.text.ends_with(&m.body) && m.body.ends_with("\r\n"));
            assert!(!m.text.split("\r\n").any(|l| l.starts_with('.')));
        }
    }

    #[test]
    fn body_hash_ignores_carriage_returns_only() {
        assert_eq!(body_hash(b"a\r\nb\r\n"), body_hash(b"a\nb\n"));
        assert_ne!(body_hash(b"a\nb\n"), body_hash(b"a\nc\n"));
    }
}
