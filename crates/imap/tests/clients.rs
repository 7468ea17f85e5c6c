//! Real clients against the IMAP and POP3 servers: curl, Python's imaplib and poplib, mbsync.
//!
//! The full `postroom mail` component is not needed here: the tests run the listeners
//! themselves on loopback with a freshly made self-signed certificate, the way `postroom mail`
//! spawns them. Without CI set, a missing client makes its test skip with a message; with CI
//! set it fails.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use postroom_imap::Limits;
use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};

struct Servers {
    dir: tempfile::TempDir,
    store: Store,
    imaps: SocketAddr,
    imap: SocketAddr,
    pop3s: SocketAddr,
    pop3: SocketAddr,
    cert: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn tls_config(dir: &Path) -> Arc<rustls::ServerConfig> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    Arc::new(config)
}

impl Servers {
    fn start() -> Servers {
        let dir = tempfile::tempdir().unwrap();
        let tls = tls_config(dir.path());
        Servers::start_in(dir, tls)
    }

    fn start_in(dir: tempfile::TempDir, tls: Arc<rustls::ServerConfig>) -> Servers {
        let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
        let store = Store::open(dir.path().join("mail"), db).unwrap();
        store.create_user("alice").unwrap();
        let auth = Arc::new(StaticUsers(vec![("alice".into(), "secret".into())]));
        let limiter = Arc::new(LoginLimiter::default());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let connections = Arc::new(postroom_imap::connection_limiter(&Default::default()));
        let imap_ctx = Arc::new(postroom_imap::server::Context {
            store: store.clone(),
            auth: auth.clone(),
            limiter: limiter.clone(),
            limits: Limits::default(),
            tls: tls.clone(),
            connections: connections.clone(),
            login_timeout: std::time::Duration::from_secs(60),
        });
        let pop3_ctx = Arc::new(postroom_pop3::server::Context {
            store: store.clone(),
            auth,
            limiter,
            tls,
            connections,
            login_timeout: std::time::Duration::from_secs(60),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (imaps, imap, pop3s, pop3) = rt.block_on(async {
            let bind = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() };
            let (a, b, c, d) = (bind().await, bind().await, bind().await, bind().await);
            let addrs = (
                a.local_addr().unwrap(),
                b.local_addr().unwrap(),
                c.local_addr().unwrap(),
                d.local_addr().unwrap(),
            );
            tokio::spawn(postroom_imap::server::serve(
                a,
                true,
                imap_ctx.clone(),
                stopped.clone(),
            ));
            tokio::spawn(postroom_imap::server::serve(
                b,
                false,
                imap_ctx,
                stopped.clone(),
            ));
            tokio::spawn(postroom_pop3::server::serve(
                c,
                true,
                pop3_ctx.clone(),
                stopped.clone(),
            ));
            tokio::spawn(postroom_pop3::server::serve(d, false, pop3_ctx, stopped));
            addrs
        });
        let cert = dir.path().join("cert.pem");
        Servers {
            dir,
            store,
            imaps,
            imap,
            pop3s,
            pop3,
            cert,
            runtime: Some(rt),
            stop,
        }
    }

    /// Stops the servers, closes mail.redb and starts them again on the same files.
    fn restart(mut self) -> Servers {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        let dir = tempfile::TempDir::new().unwrap();
        let old = std::mem::replace(&mut self.dir, dir);
        drop(self);
        let tls = tls_config(old.path());
        Servers::start_in(old, tls)
    }

    fn deliver(&self, message: &[u8]) {
        self.store
            .deliver("alice", None, &mut &message[..], None)
            .unwrap();
    }
}

/// Whether a client program is installed; with CI set a missing one fails the test.
fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{program} is not installed, and CI is set");
        }
        eprintln!("skipping: {program} is not installed");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let program = cmd.get_program().to_string_lossy().into_owned();
    assert!(
        out.status.success(),
        "{program} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

fn curl(url: &str, extra: &[&str]) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-k", "--max-time", "20", "-u", "alice:secret"])
        .args(extra)
        .arg(url);
    run(&mut cmd)
}

const SAMPLE: &[u8] = b"From: Lena <lena@sender.example>\r\nTo: alice@office.example\r\nSubject: hello\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\nline one\r\n.hidden line\r\n";

#[test]
fn curl_imaps_lists_selects_and_fetches() {
    if !have("curl") {
        return;
    }
    let s = Servers::start();
    s.deliver(SAMPLE);
    let list = curl(&format!("imaps://127.0.0.1:{}/", s.imaps.port()), &[]);
    assert!(
        list.contains("\"INBOX\"") && list.contains("\\Sent"),
        "{list}"
    );
    let select = curl(
        &format!("imaps://127.0.0.1:{}/INBOX", s.imaps.port()),
        &["-X", "EXAMINE INBOX"],
    );
    assert!(select.contains("1 EXISTS"), "{select}");
    let body = curl(
        &format!("imaps://127.0.0.1:{}/INBOX;UID=1", s.imaps.port()),
        &[],
    );
    assert_eq!(body.as_bytes(), SAMPLE);
    // STARTTLS on the plain port.
    let body = curl(
        &format!("imap://127.0.0.1:{}/INBOX;UID=1", s.imap.port()),
        &["--ssl-reqd"],
    );
    assert_eq!(body.as_bytes(), SAMPLE);
}

#[test]
fn curl_pop3s_lists_and_retrieves() {
    if !have("curl") {
        return;
    }
    let s = Servers::start();
    s.deliver(SAMPLE);
    let list = curl(&format!("pop3s://127.0.0.1:{}/", s.pop3s.port()), &[]);
    assert_eq!(list, format!("1 {}\r\n", SAMPLE.len()));
    let body = curl(&format!("pop3s://127.0.0.1:{}/1", s.pop3s.port()), &[]);
    // curl undoes the dot-stuffing, so the message comes back as stored.
    assert_eq!(body.as_bytes(), SAMPLE);
    let body = curl(
        &format!("pop3://127.0.0.1:{}/1", s.pop3.port()),
        &["--ssl-reqd"],
    );
    assert_eq!(body.as_bytes(), SAMPLE);
}

fn python(script: &str, args: &[String]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    run(&mut cmd)
}

const IMAPLIB_SESSION: &str = include_str!("clients/imaplib_session.py");
const POPLIB_SESSION: &str = include_str!("clients/poplib_session.py");
const IDLE_CLIENT: &str = include_str!("clients/idle_client.py");

#[test]
fn python_imaplib_session_runs_every_command() {
    if !have("python3") {
        return;
    }
    let s = Servers::start();
    s.deliver(SAMPLE);
    s.deliver(include_bytes!(
        "../../../../shared/cases/mime-unterminated-multipart.eml"
    ));
    let out = python(
        IMAPLIB_SESSION,
        &[s.imaps.port().to_string(), s.imap.port().to_string()],
    );
    assert!(out.contains("imaplib session: all commands ok"), "{out}");
}

#[test]
fn python_poplib_session_runs_every_command() {
    if !have("python3") {
        return;
    }
    let s = Servers::start();
    s.deliver(SAMPLE);
    s.deliver(include_bytes!(
        "../../../../shared/cases/mime-no-headers.eml"
    ));
    let out = python(
        POPLIB_SESSION,
        &[s.pop3s.port().to_string(), s.pop3.port().to_string()],
    );
    assert!(out.contains("poplib session: all commands ok"), "{out}");
    // DELE 1 and QUIT removed one message.
    assert_eq!(
        s.store
            .mailbox("alice", "INBOX")
            .unwrap()
            .snapshot(false)
            .unwrap()
            .messages
            .len(),
        1
    );
}

#[test]
fn idling_client_sees_a_delivery_within_one_second() {
    if !have("python3") {
        return;
    }
    let s = Servers::start();
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(IDLE_CLIENT)
        .arg(s.imaps.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "idling", "{line}");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
    s.deliver(SAMPLE);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest}");
    let seconds: f64 = rest
        .trim()
        .strip_prefix("exists after ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds < 1.0, "EXISTS came after {seconds} s");
}

#[test]
fn uids_and_uidvalidity_survive_a_restart_as_clients_see_them() {
    if !have("python3") {
        return;
    }
    let script = r#"
import imaplib, ssl, sys
ctx = ssl._create_unverified_context()
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx)
m.login('alice', 'secret')
typ, data = m.select('INBOX')
print(m.untagged_responses.get('UIDVALIDITY'))
typ, data = m.uid('SEARCH', 'ALL')
print(data)
m.logout()
"#;
    let s = Servers::start();
    for _ in 0..3 {
        s.deliver(SAMPLE);
    }
    let before = python(script, &[s.imaps.port().to_string()]);
    let s = s.restart();
    let after = python(script, &[s.imaps.port().to_string()]);
    assert_eq!(before, after);
    assert!(before.contains("[b'1 2 3']"), "{before}");
}

fn mbsync_config(s: &Servers, local: &Path) -> PathBuf {
    let config = format!(
        "IMAPAccount alice\nHost 127.0.0.1\nPort {}\nUser alice\nPass secret\nSSLType IMAPS\n\
         SystemCertificates no\nCertificateFile {}\n\n\
         IMAPStore remote\nAccount alice\n\n\
         MaildirStore local\nPath {}/\nInbox {}/INBOX\nSubFolders Verbatim\n\n\
         Channel alice\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\n\
         SyncState *\nSync All\n",
        s.imaps.port(),
        s.cert.display(),
        local.display(),
        local.display()
    );
    let path = s.dir.path().join("mbsyncrc");
    std::fs::write(&path, config).unwrap();
    path
}

fn local_files(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries {
                names.push(format!(
                    "{sub}/{}",
                    e.unwrap().file_name().to_string_lossy()
                ));
            }
        }
    }
    names.sort();
    names
}

fn server_state(store: &Store) -> Vec<(String, Vec<(u32, String)>)> {
    let mut state = Vec::new();
    for name in store.list_mailboxes("alice").unwrap() {
        let snap = store
            .mailbox("alice", &name)
            .unwrap()
            .snapshot(false)
            .unwrap();
        let msgs = snap
            .messages
            .iter()
            .map(|m| (m.uid, m.flags.to_letters()))
            .collect();
        state.push((name, msgs));
    }
    state
}

#[test]
fn mbsync_syncs_both_ways_flags_and_moves_and_a_second_sync_changes_nothing() {
    if !have("mbsync") {
        return;
    }
    let s = Servers::start();
    s.deliver(SAMPLE);
    s.deliver(b"From: b@x.example\r\nSubject: second\r\n\r\nsecond\r\n");
    let local = s.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let config = mbsync_config(&s, &local);
    let sync = || run(Command::new("mbsync").arg("-c").arg(&config).arg("-a"));

    // Server to local.
    sync();
    let inbox = local.join("INBOX");
    let files = local_files(&inbox);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(local.join("Sent").is_dir() && local.join("Trash").is_dir());

    // A flag set locally reaches the server.
    let first = inbox.join(&files[0]);
    let flagged = if first.to_string_lossy().contains(":2,") {
        format!("{}F", first.display())
    } else {
        format!("{}:2,F", first.display())
    };
    std::fs::rename(&first, &flagged).unwrap();
    sync();
    let snap = s
        .store
        .mailbox("alice", "INBOX")
        .unwrap()
        .snapshot(false)
        .unwrap();
    assert_eq!(
        snap.messages.iter().filter(|m| m.flags.flagged).count(),
        1,
        "{snap:?}"
    );

    // A flag set on the server reaches the local side.
    let unflagged = snap.messages.iter().find(|m| !m.flags.flagged).unwrap();
    let inbox_box = s.store.mailbox("alice", "INBOX").unwrap();
    inbox_box
        .set_flags(
            &unflagged.unique,
            &postroom_maildir::Flags::from_letters("S"),
        )
        .unwrap();
    sync();
    let files = local_files(&inbox);
    assert!(files.iter().any(|f| f.ends_with(":2,S")), "{files:?}");

    // A message moved locally into Trash arrives in the server's Trash and leaves INBOX.
    let moving = files.iter().find(|f| f.ends_with(":2,S")).unwrap().clone();
    let name = Path::new(&moving)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let renamed = strip_uid(&name);
    std::fs::rename(inbox.join(&moving), local.join("Trash/cur").join(renamed)).unwrap();
    sync();
    let trash = s
        .store
        .mailbox("alice", "Trash")
        .unwrap()
        .snapshot(false)
        .unwrap();
    assert_eq!(trash.messages.len(), 1, "{trash:?}");
    let body = std::fs::read(&trash.messages[0].path).unwrap();
    assert!(
        body.ends_with(b"second\r\n"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let inbox_snap = s
        .store
        .mailbox("alice", "INBOX")
        .unwrap()
        .snapshot(false)
        .unwrap();
    assert_eq!(inbox_snap.messages.len(), 1);

    // A message moved on the server (as IMAP MOVE does: copy, then expunge) arrives in the
    // local Junk folder and leaves the local INBOX.
    let inbox_box = s.store.mailbox("alice", "INBOX").unwrap();
    let left = inbox_box.snapshot(false).unwrap().messages.remove(0);
    let bytes = std::fs::read(&left.path).unwrap();
    let junk = s.store.mailbox("alice", "Junk").unwrap();
    junk.append(&mut &bytes[..], &left.flags, None).unwrap();
    inbox_box.expunge(&[left.unique.clone()]).unwrap();
    sync();
    assert_eq!(local_files(&inbox).len(), 0, "{:?}", local_files(&inbox));
    let moved = local_files(&local.join("Junk"));
    assert_eq!(moved.len(), 1, "{moved:?}");
    let local_copy = std::fs::read(local.join("Junk").join(&moved[0])).unwrap();
    // mbsync stores LF line ends and adds its X-TUID header.
    let text = String::from_utf8_lossy(&local_copy);
    assert!(
        text.contains("Subject: hello\n") && text.ends_with(".hidden line\n"),
        "{text}"
    );

    // Nothing left to do: a second sync changes neither side.
    let before = (
        server_state(&s.store),
        local_files(&inbox),
        local_files(&local.join("Trash")),
    );
    sync();
    let after = (
        server_state(&s.store),
        local_files(&inbox),
        local_files(&local.join("Trash")),
    );
    assert_eq!(before, after);
}

/// mbsync keeps the far side's UID in local file names (`,U=7`); a file moved by hand to
/// another folder must lose it, as a mail client moving a file would.
fn strip_uid(name: &str) -> String {
    match name.find(",U=") {
        Some(start) => {
            let rest = &name[start + 3..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            format!("{}{}", &name[..start], &rest[end..])
        }
        None => name.to_owned(),
    }
}

#[test]
fn stopping_says_bye_to_open_sessions_and_ends_the_listeners() {
    use std::io::Read;
    let s = Servers::start();
    let mut imap = std::net::TcpStream::connect(s.imap).unwrap();
    let mut pop3 = std::net::TcpStream::connect(s.pop3).unwrap();
    imap.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    pop3.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = imap.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"* OK"));
    let n = pop3.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"+OK"));
    s.stop.send(true).unwrap();
    let mut rest = String::new();
    imap.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "* BYE server shutting down\r\n");
    rest.clear();
    pop3.read_to_string(&mut rest).unwrap();
    assert!(rest.starts_with("-ERR [SYS/TEMP]"), "{rest}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        std::net::TcpStream::connect(s.imaps).is_err(),
        "the listener is closed"
    );
}
