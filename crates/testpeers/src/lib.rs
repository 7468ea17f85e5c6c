//! Real peers for end-to-end tests, started on loopback and stopped when dropped.
//!
//! - [`require`]: a test that needs a program fails under CI (`CI` set) when it is missing, and
//!   is skipped with a message otherwise (TEAM.md).
//! - [`Postfix`]: a private Postfix instance in a temporary directory, as the sending MTA, the
//!   ISP's smarthost (STARTTLS, AUTH through a private Dovecot, virtual Maildirs) or its backup
//!   MX (ETRN): see [`PostfixOptions`].
//! - [`Dovecot`]: a private Dovecot POP3 server (with STLS and POP3S if asked), the ISP's domain
//!   mailbox.
//! - [`message`]: reading what a peer delivered.
//!
//! The peers need root (as CI and the dev machines run) and the Debian packages postfix and
//! dovecot-pop3d. They never touch /etc/postfix, /etc/dovecot or the system's instances.

#![forbid(unsafe_code)]

pub mod dovecot;
pub mod message;
pub mod postfix;
mod tls;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use dovecot::Dovecot;
pub use postfix::{Postfix, PostfixOptions, SASL_PASSWORD, SASL_USER, VirtualMailboxes};
pub use tls::unrelated_ca;

/// True when `program` can be run. When it cannot: panics under CI, else prints why the test
/// is skipped and returns false.
pub fn require(program: &str) -> bool {
    if find_program(program).is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{program} is needed by this test and is not installed (CI is set)");
    }
    eprintln!("skipping: {program} is not installed");
    false
}

/// The full path of `program`, searched in PATH and the sbin directories.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A free port on 127.0.0.1 below the kernel's ephemeral range. A port that must still be free
/// when a process restarts (or when a peer comes up late) cannot come from the ephemeral range:
/// while it is closed, any outgoing connection on the machine may get it as its source port,
/// and the bind then fails with EADDRINUSE.
pub fn restart_safe_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
        .clamp(12_000, 65_535);
    let seed = std::process::id()
        ^ SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    for _ in 0..1_000 {
        let n = seed.wrapping_add(COUNTER.fetch_add(7_919, Ordering::Relaxed));
        let port = 10_000 + n % (low - 10_000);
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 below {low}");
}

/// Waits until `check` is true, polling every 100 ms, for at most `limit`. Returns the last
/// result.
pub fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a program with `input` on its stdin; returns (success, stdout then stderr). Panics when
/// the program cannot be started.
pub fn run(program: &str, args: &[&str], input: &[u8]) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // Written from a thread: a program that answers before reading all of it must not block us.
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for the program");
    let _ = writer.join();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The uid and gid of an account, from /etc/passwd.
pub(crate) fn account_ids(user: &str) -> std::io::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| std::io::Error::other(format!("no user {user} in /etc/passwd")))
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// A temporary directory the peers' own users (postfix, nobody) can enter.
pub(crate) fn peer_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    set_mode(dir.path(), 0o755)?;
    Ok(dir)
}
