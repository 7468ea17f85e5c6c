//! End-to-end mailbox access through the whole `postroom mail` component: mail sent with swaks
//! reaches an idling IMAP client within a second, and UIDs and UIDVALIDITY stay the same when
//! the component restarts. (Owned by the IMAP/POP3 work, crates/imap and crates/pop3.)

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postroom_config::Config;
use postroom_config::mail::User;
use postroom_mail::app::{App, Prepared};

const IDLE_CLIENT: &str = include_str!("../../imap/tests/clients/idle_client.py");

fn require(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is missing and CI is set"
        );
        eprintln!("skipping: {program} is not installed");
    }
    found
}

fn swaks_to_alice(smtp: std::net::SocketAddr, subject: &str) {
    let server = smtp.to_string();
    let header = format!("Subject: {subject}");
    let (ok, out) = common::run(
        "swaks",
        &[
            "--server",
            &server,
            "--to",
            "alice@office.example",
            "--from",
            "lena@sender.example",
            "--helo",
            "sender.example",
            "--header",
            &header,
            "--body",
            "hello",
        ],
        None,
    );
    assert!(ok, "{out}");
}

#[test]
fn idling_client_sees_a_message_sent_by_swaks_within_one_second() {
    if !require("swaks") || !require("python3") {
        return;
    }
    let server = common::Server::start(|_| {});
    let port = server.addresses.imaps.port().to_string();
    let mut child = Command::new("python3")
        .args(["-c", IDLE_CLIENT, &port, "alice", common::PASSWORD])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "idling");

    swaks_to_alice(server.addresses.smtp, "while idling");
    // The clock starts when swaks has its 250: from then on the message is the server's.
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("write");
    stdin.flush().expect("flush");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read");
    assert!(child.wait().expect("wait").success(), "{rest}");
    let seconds: f64 = rest
        .trim()
        .strip_prefix("exists after ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected: {rest}"));
    assert!(
        seconds < 1.0,
        "EXISTS came {seconds} s after swaks finished"
    );
}

fn config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.system.data_dir = dir.join("data");
    config.system.run_dir = dir.join("run");
    let mail = &mut config.mail;
    mail.hostname = "mx.office.example".into();
    mail.domains = vec!["office.example".into()];
    let loopback = "127.0.0.1:0".parse().expect("address");
    for addr in [
        &mut mail.listen.smtp,
        &mut mail.listen.submission,
        &mut mail.listen.submissions,
        &mut mail.listen.imap,
        &mut mail.listen.imaps,
        &mut mail.listen.pop3,
        &mut mail.listen.pop3s,
    ] {
        *addr = loopback;
    }
    mail.users.push(User {
        name: "alice".into(),
        password_hash: common::password_hash(),
        ..Default::default()
    });
    config
}

const UID_SCRIPT: &str = r#"
import imaplib, ssl, sys
m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ssl._create_unverified_context())
m.login("alice", sys.argv[2])
m.select("INBOX")
print(m.untagged_responses.get("UIDVALIDITY"))
print(m.uid("SEARCH", "ALL")[1])
print(m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1])
m.logout()
"#;

#[test]
fn uids_and_uidvalidity_stay_the_same_across_a_restart_of_postroom_mail() {
    if !require("swaks") || !require("python3") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut seen = Vec::new();
    for round in 0..2 {
        let prepared = Prepared::new(&config(dir.path())).expect("prepare");
        let app = runtime
            .block_on(App::start(prepared, Instant::now()))
            .expect("start");
        if round == 0 {
            for subject in ["first", "second", "third"] {
                swaks_to_alice(app.addresses.smtp, subject);
            }
            let new = dir.path().join("data/mail/alice/new");
            let deadline = Instant::now() + Duration::from_secs(20);
            while common::files_in(&new).len() < 3 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let port = app.addresses.imaps.port().to_string();
        let (ok, out) = common::run(
            "python3",
            &["-c", UID_SCRIPT, &port, common::PASSWORD],
            None,
        );
        assert!(ok, "{out}");
        seen.push(out);
        runtime.block_on(app.stop());
    }
    assert_eq!(seen[0], seen[1]);
    assert!(seen[0].contains("[b'1 2 3']"), "{}", seen[0]);
    assert!(seen[0].contains("Subject: third"), "{}", seen[0]);
}

const CONCURRENT_CLIENTS: &str = r#"
import imaplib, poplib, smtplib, ssl, sys, threading
smtp_port, imaps_port, pop3s_port, password = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl._create_unverified_context()
N = 20
done = threading.Event()
errors = []

def sender():
    try:
        for i in range(N):
            s = smtplib.SMTP("127.0.0.1", smtp_port)
            s.sendmail("lena@sender.example", ["alice@office.example"],
                       "From: lena@sender.example\r\nSubject: burst %02d\r\n\r\nbody %02d\r\n" % (i, i))
            s.quit()
    except Exception as e:
        errors.append("smtp: %r" % e)
    finally:
        done.set()

def imap_flags():
    try:
        m = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ctx)
        m.login("alice", password)
        m.select("INBOX")
        k = 0
        while not done.is_set():
            m.noop()
            typ, data = m.search(None, "ALL")
            if data[0]:
                m.store("1:*", "+FLAGS" if k % 2 == 0 else "-FLAGS", "(\\Flagged)")
            k += 1
        m.logout()
    except Exception as e:
        errors.append("imap: %r" % e)

def pop3_reader():
    try:
        while not done.is_set():
            p = poplib.POP3_SSL("127.0.0.1", pop3s_port, context=ctx)
            p.user("alice"); p.pass_(password)
            count, _ = p.stat()
            for n in range(1, count + 1):
                p.retr(n)
            p.quit()
    except Exception as e:
        errors.append("pop3: %r" % e)

threads = [threading.Thread(target=f) for f in (sender, imap_flags, pop3_reader)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
print("clients done")
"#;

#[test]
fn imap_and_pop3_sessions_during_smtp_delivery_lose_nothing() {
    if !require("python3") {
        return;
    }
    let server = common::Server::start(|_| {});
    let (ok, out) = common::run(
        "python3",
        &[
            "-c",
            CONCURRENT_CLIENTS,
            &server.addresses.smtp.port().to_string(),
            &server.addresses.imaps.port().to_string(),
            &server.addresses.pop3s.port().to_string(),
            common::PASSWORD,
        ],
        None,
    );
    assert!(ok && out.contains("clients done"), "{out}");

    // Every message arrived once, and IMAP lists them with UIDs 1..=20 and their subjects.
    let script = r#"
import imaplib, ssl, sys
m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ssl._create_unverified_context())
m.login("alice", sys.argv[2])
m.select("INBOX")
typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
subjects = sorted(part[1].decode().strip() for part in data if isinstance(part, tuple))
print(m.uid("SEARCH", "ALL")[1][0].decode())
print("|".join(subjects))
"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    let expected: Vec<String> = (0..20).map(|i| format!("Subject: burst {i:02}")).collect();
    let uids: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    loop {
        let port = server.addresses.imaps.port().to_string();
        let (ok, out) = common::run("python3", &["-c", script, &port, common::PASSWORD], None);
        assert!(ok, "{out}");
        let mut lines = out.lines();
        let (found_uids, subjects) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        if subjects == expected.join("|") {
            assert_eq!(found_uids, uids.join(" "));
            break;
        }
        assert!(Instant::now() < deadline, "messages missing: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
