//! Hostile IMAP and POP3 clients found by poking a running appliance: a stalled TLS handshake
//! is dropped, not kept until the half-hour autologout (which only runs once a session does).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Server;

/// Sends the first bytes of a TLS record header, then nothing; returns how long the server
/// kept the connection open (at most `give_up`).
fn stall_handshake(addr: SocketAddr, give_up: Duration) -> Duration {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(&[0x16, 0x03, 0x01]).unwrap();
    stream.set_read_timeout(Some(give_up)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => {}
        }
    }
}

/// The same after STARTTLS (IMAP) or STLS (POP3) was accepted.
fn stall_after(addr: SocketAddr, command: &[u8], give_up: Duration) -> Duration {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let mut read_line = |stream: &mut TcpStream, got: &mut Vec<u8>| {
        got.clear();
        while !got.ends_with(b"\r\n") {
            match stream.read(&mut buf[..1]) {
                Ok(1) => got.push(buf[0]),
                _ => panic!("no reply: {:?}", String::from_utf8_lossy(got)),
            }
        }
    };
    read_line(&mut stream, &mut got);
    stream.write_all(command).unwrap();
    read_line(&mut stream, &mut got);
    let reply = String::from_utf8_lossy(&got).into_owned();
    assert!(reply.contains("OK"), "{reply}");

    let start = Instant::now();
    stream.write_all(&[0x16, 0x03, 0x01]).unwrap();
    stream.set_read_timeout(Some(give_up)).unwrap();
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => {}
        }
    }
}

// The handshake bound is 30 s; the autologout it used to fall through to is 10 or 31 minutes.
const GIVE_UP: Duration = Duration::from_secs(120);

#[test]
fn stalled_tls_handshake_on_imaps_and_pop3s_is_dropped() {
    let server = Server::start(|_| {});
    let addresses = [server.addresses.imaps, server.addresses.pop3s];
    let waits: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = addresses
            .iter()
            .map(|&addr| scope.spawn(move || stall_handshake(addr, GIVE_UP)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (addr, waited) in addresses.iter().zip(waits) {
        assert!(waited < Duration::from_secs(100), "{addr}: kept {waited:?}");
    }
}

#[test]
fn stalled_tls_handshake_after_starttls_and_stls_is_dropped() {
    let server = Server::start(|_| {});
    let imap = server.addresses.imap;
    let pop3 = server.addresses.pop3;
    let (imap_wait, pop3_wait) = std::thread::scope(|scope| {
        let a = scope.spawn(move || stall_after(imap, b"a STARTTLS\r\n", GIVE_UP));
        let b = scope.spawn(move || stall_after(pop3, b"STLS\r\n", GIVE_UP));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(
        imap_wait < Duration::from_secs(100),
        "IMAP kept {imap_wait:?}"
    );
    assert!(
        pop3_wait < Duration::from_secs(100),
        "POP3 kept {pop3_wait:?}"
    );
}
