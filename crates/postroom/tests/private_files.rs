//! The mail component keeps what it writes to itself: a colleague found delivered messages
//! world-readable (0644) when the box was started under the usual umask 022. The test starts
//! `postroom mail` with that umask, delivers a message by SMTP, and checks the modes of the
//! message, its Maildir and the files beside it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `postroom mail` child, killed when dropped.
struct Mail(Child);

impl Drop for Mail {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn connect(port: u16, within: Duration) -> TcpStream {
    let start = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => return stream,
            Err(e) if start.elapsed() > within => panic!("port {port} never opened: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Sends one line (unless empty) and reads one reply, which must start with `code`.
fn exchange(stream: &mut TcpStream, reader: &mut impl BufRead, line: &str, code: &str) {
    if !line.is_empty() {
        stream.write_all(line.as_bytes()).expect("send");
    }
    loop {
        let mut reply = String::new();
        reader.read_line(&mut reply).expect("read a reply");
        assert!(reply.starts_with(code), "sent {line:?}, got {reply:?}");
        // A multi-line reply continues while the fourth character is '-'.
        if reply.as_bytes().get(3) != Some(&b'-') {
            return;
        }
    }
}

fn every_file_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().expect("file type").is_dir() {
            every_file_under(&path, out);
        }
    }
}

#[test]
fn mail_and_data_written_under_umask_022_are_readable_by_their_owner_only() {
    let dir = tempfile_dir();
    let data = dir.join("data");
    let smtp = free_port();
    let listen: Vec<String> = [
        "smtp",
        "submission",
        "submissions",
        "imap",
        "imaps",
        "pop3",
        "pop3s",
    ]
    .iter()
    .map(|name| {
        let port = if *name == "smtp" { smtp } else { free_port() };
        format!("{name} = \"127.0.0.1:{port}\"\n")
    })
    .collect();
    let config = dir.join("postroom.toml");
    std::fs::write(
        &config,
        format!(
            "[system]\ndata_dir = \"{}\"\nrun_dir = \"{}\"\nhostname = \"mx.office.example\"\n\
             domains = [\"office.example\"]\n[mail.listen]\n{}[[mail.users]]\nname = \"alice\"\n",
            data.display(),
            dir.join("run").display(),
            listen.concat()
        ),
    )
    .expect("write the config");

    // The shell sets the umask a box's init would typically leave, then becomes the component.
    let child = Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" mail --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_postroom"))
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .expect("start postroom mail");
    let _mail = Mail(child);

    let mut stream = connect(smtp, Duration::from_secs(60));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    exchange(&mut stream, &mut reader, "", "220");
    exchange(&mut stream, &mut reader, "EHLO client.example\r\n", "250");
    exchange(
        &mut stream,
        &mut reader,
        "MAIL FROM:<carol@example.net>\r\n",
        "250",
    );
    exchange(
        &mut stream,
        &mut reader,
        "RCPT TO:<alice@office.example>\r\n",
        "250",
    );
    exchange(&mut stream, &mut reader, "DATA\r\n", "354");
    exchange(
        &mut stream,
        &mut reader,
        "Subject: private\r\n\r\nfor alice only\r\n.\r\n",
        "250",
    );
    exchange(&mut stream, &mut reader, "QUIT\r\n", "221");

    let mut files = Vec::new();
    every_file_under(&data, &mut files);
    let delivered = data.join("mail/alice/new");
    assert!(
        files
            .iter()
            .any(|f| f.parent() == Some(delivered.as_path())),
        "no message in {}: {files:?}",
        delivered.display()
    );
    for path in &files {
        let mode = std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{} has mode {:o}: others can read it",
            path.display(),
            mode & 0o777
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system's temp dir (this crate has no tempfile dependency).
fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "postroom-private-files-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("create the test dir");
    dir
}
