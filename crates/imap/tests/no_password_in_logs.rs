//! A password never appears in a log, at any level, whether the login works or not.

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn passwords_stay_out_of_trace_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
        let store = Store::open(dir.path().join("mail"), db).unwrap();
        store.create_user("alice").unwrap();
        let users = Arc::new(StaticUsers(vec![("alice".into(), "Hunter2-right".into())]));
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let limiter = Arc::new(LoginLimiter::default());
        let mut imap = postroom_imap::Session::new(
            store.clone(),
            users.clone(),
            limiter.clone(),
            Default::default(),
            peer,
            true,
        );
        imap.receive(b"a LOGIN alice Hunter2-wrong\r\nb LOGIN alice Hunter2-right\r\n");
        let mut imap2 = postroom_imap::Session::new(
            store.clone(),
            users.clone(),
            limiter.clone(),
            Default::default(),
            peer,
            true,
        );
        // base64("\0alice\0Hunter2-right")
        imap2.receive(b"c AUTHENTICATE PLAIN AGFsaWNlAEh1bnRlcjItcmlnaHQ=\r\n");
        let mut pop = postroom_pop3::Session::new(store, users, limiter, peer, true);
        pop.receive(b"USER alice\r\nPASS Hunter2-wrong\r\nUSER alice\r\nPASS Hunter2-right\r\n");
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("imap login") && log.contains("pop3 login"),
        "the logins were logged: {log}"
    );
    assert!(!log.contains("Hunter2"), "{log}");
    assert!(!log.contains("AGFsaWNlAEh1bnRlcjItcmlnaHQ"), "{log}");
}
