//! Real peers for end-to-end tests, started on loopback and stopped when dropped.
//!
//! - [`require`]: a test that needs a program fails under CI (`CI` set) when it is missing, and
//!   is skipped with a message otherwise (TEAM.md).
//! - [`Postfix`]: a private Postfix instance in a temporary directory: its own main.cf and
//!   master.cf, queue and log, `inet_interfaces = 127.0.0.1`, an smtpd on a free port. It needs
//!   root (as CI and the dev machines run) and the Debian postfix package (user `postfix`, group
//!   `postdrop`). It never touches /etc/postfix or the system's instance.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

/// Waits until `check` is true, polling, for at most `limit`. Returns the last result.
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

/// How to set up a [`Postfix`] instance.
#[derive(Debug, Clone, Default)]
pub struct PostfixOptions {
    /// Relay all mail to this host (`relayhost = [ip]:port`).
    pub relayhost: Option<SocketAddr>,
    /// More `main.cf` lines, e.g. `mydestination = ...`; later lines win.
    pub main_cf: Vec<String>,
    /// More `master.cf` lines.
    pub master_cf: Vec<String>,
}

/// A private Postfix instance; stopped when dropped.
#[derive(Debug)]
pub struct Postfix {
    dir: tempfile::TempDir,
    /// The port of its smtpd on 127.0.0.1.
    pub smtp_port: u16,
    running: bool,
}

impl Postfix {
    /// Writes the configuration and starts the instance.
    pub fn start(options: PostfixOptions) -> std::io::Result<Postfix> {
        let dir = tempfile::Builder::new()
            .prefix("postroom-postfix-")
            .tempdir()?;
        // Postfix's daemons run as the postfix user and must reach the queue below this.
        set_mode(dir.path(), 0o755)?;
        let smtp_port = free_port();
        let root = dir.path();
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        // master's lock and the TLS caches live in data_directory, written as the postfix user.
        let (uid, gid) = account_ids("postfix")?;
        std::os::unix::fs::chown(root.join("data"), Some(uid), Some(gid))?;
        std::fs::write(root.join("etc/main.cf"), main_cf(root, &options))?;
        std::fs::write(root.join("etc/master.cf"), master_cf(smtp_port, &options))?;
        std::fs::write(root.join("maillog"), "")?;

        let mut postfix = Postfix {
            dir,
            smtp_port,
            running: false,
        };
        postfix.postfix(&["check"])?;
        postfix.postfix(&["start"])?;
        postfix.running = true;
        let port = smtp_port;
        let up = wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up {
            return Err(std::io::Error::other(format!(
                "postfix smtpd did not listen on {port}; log:\n{}",
                postfix.log()
            )));
        }
        Ok(postfix)
    }

    /// The instance's configuration directory (for `postfix -c`, `postqueue -c`).
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// The instance's top directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log so far (`maillog_file`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Asks the queue manager to try every deferred message now.
    pub fn flush(&self) -> std::io::Result<()> {
        let out = Command::new(postfix_bin("postqueue"))
            .arg("-c")
            .arg(self.config_dir())
            .arg("-f")
            .output()?;
        check(out, "postqueue -f")
    }

    /// True when its queue holds no message.
    pub fn queue_is_empty(&self) -> bool {
        let queue = self.dir.path().join("queue");
        ["incoming", "active", "deferred", "maildrop", "hold"]
            .iter()
            .all(|q| dir_is_empty(&queue.join(q)))
    }

    /// Stops the instance (also done on drop).
    pub fn stop(&mut self) -> std::io::Result<()> {
        if self.running {
            self.running = false;
            self.postfix(&["stop"])?;
        }
        Ok(())
    }

    fn postfix(&self, args: &[&str]) -> std::io::Result<()> {
        let out = Command::new(postfix_bin("postfix"))
            .arg("-c")
            .arg(self.config_dir())
            .args(args)
            .output()?;
        check(out, &format!("postfix {}", args.join(" ")))
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("stopping the test postfix failed: {e}");
        }
        // `postfix stop` returns once master is told; give it a moment to go, so the
        // temporary directory can be removed.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The uid and gid of an account, from /etc/passwd.
fn account_ids(user: &str) -> std::io::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| std::io::Error::other(format!("no user {user} in /etc/passwd")))
}

fn postfix_bin(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| PathBuf::from(name))
}

fn check(out: std::process::Output, what: &str) -> std::io::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

fn dir_is_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .all(|e| e.path().is_dir() && dir_is_empty(&e.path())),
        Err(_) => true,
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn main_cf(root: &Path, options: &PostfixOptions) -> String {
    let r = root.display();
    let mut cf = format!(
        "compatibility_level = 3.6\n\
         queue_directory = {r}/queue\n\
         data_directory = {r}/data\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         syslog_name = postfix-postroom-test\n\
         maillog_file_prefixes = {r}\n\
         maillog_file = {r}/maillog\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         myhostname = sender.test.example\n\
         mydomain = test.example\n\
         myorigin = $myhostname\n\
         mydestination =\n\
         mynetworks = 127.0.0.0/8\n\
         smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
         alias_maps =\n\
         alias_database =\n\
         local_recipient_maps =\n\
         biff = no\n\
         smtp_dns_support_level = disabled\n\
         smtp_host_lookup = native\n\
         smtp_tls_security_level = may\n\
         smtpd_tls_security_level = none\n\
         queue_run_delay = 2s\n\
         minimal_backoff_time = 2s\n\
         maximal_backoff_time = 4s\n\
         smtp_connect_timeout = 5s\n"
    );
    if let Some(relay) = options.relayhost {
        let _ = writeln!(cf, "relayhost = [{}]:{}", relay.ip(), relay.port());
    }
    for line in &options.main_cf {
        let _ = writeln!(cf, "{line}");
    }
    cf
}

fn master_cf(port: u16, options: &PostfixOptions) -> String {
    // Column 5 (chroot) is n everywhere: the temporary directory has no chroot tree.
    let mut cf = format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n\
         pickup unix n - n 60 1 pickup\n\
         cleanup unix n - n - 0 cleanup\n\
         qmgr unix n - n 300 1 qmgr\n\
         tlsmgr unix - - n 1000? 1 tlsmgr\n\
         rewrite unix - - n - - trivial-rewrite\n\
         bounce unix - - n - 0 bounce\n\
         defer unix - - n - 0 bounce\n\
         trace unix - - n - 0 bounce\n\
         verify unix - - n - 1 verify\n\
         flush unix n - n 1000? 0 flush\n\
         proxymap unix - - n - - proxymap\n\
         proxywrite unix - - n - 1 proxymap\n\
         smtp unix - - n - - smtp\n\
         relay unix - - n - - smtp\n\
         showq unix n - n - - showq\n\
         error unix - - n - - error\n\
         retry unix - - n - - error\n\
         discard unix - - n - - discard\n\
         local unix - n n - - local\n\
         virtual unix - n n - - virtual\n\
         lmtp unix - - n - - lmtp\n\
         anvil unix - - n - 1 anvil\n\
         scache unix - - n - 1 scache\n\
         postlog unix-dgram n - n - 1 postlogd\n"
    );
    for line in &options.master_cf {
        let _ = writeln!(cf, "{line}");
    }
    cf
}
