//! A private Postfix instance: its own main.cf and master.cf, queue, data directory and log in a
//! temporary directory, `inet_interfaces = 127.0.0.1`, an smtpd on a loopback port. Needs the
//! Debian postfix package (user `postfix`, group `postdrop`).
//!
//! What it plays is chosen with [`PostfixOptions`]: the sending MTA (the default), the ISP's
//! smarthost ([`PostfixOptions::smarthost`]: STARTTLS, virtual Maildirs, a refused recipient,
//! AUTH with [`PostfixOptions::with_auth`]) or its backup MX ([`PostfixOptions::backup_mx`]:
//! deferred mail that only ETRN releases).

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::dovecot::SaslService;
use crate::message::maildir_new;
use crate::tls;
use crate::{account_ids, find_program, peer_dir, restart_safe_port, wait_for};

/// The one account of a smarthost [`PostfixOptions::with_auth`].
pub const SASL_USER: &str = "alice@office.example";
/// Its password.
pub const SASL_PASSWORD: &str = "s3cret";

/// How long starting or stopping may take on a loaded two-core machine.
const LIMIT: Duration = Duration::from_secs(30);

/// How to set up a [`Postfix`] instance.
#[derive(Debug, Clone)]
pub struct PostfixOptions {
    /// `myhostname`: its greeting, its EHLO name as a client, the `by` of its Received header.
    pub hostname: String,
    /// Relay all mail to this host (`relayhost = [ip]:port`).
    pub relayhost: Option<SocketAddr>,
    /// Offer STARTTLS with a fresh self-signed certificate for 127.0.0.1 ([`Postfix::ca_file`]).
    pub tls: bool,
    /// Relay only for clients that authenticated as (user, password) over TLS, checked by a
    /// private Dovecot; loopback is no longer trusted. Needs `tls`.
    pub auth: Option<(String, String)>,
    /// Deliver a domain into Maildirs ([`Postfix::delivered`]).
    pub mailboxes: Option<VirtualMailboxes>,
    /// Recipients refused at RCPT with `550 5.1.1 <address>: no such user here`.
    pub refuse: Vec<String>,
    /// More `main.cf` lines; later lines win.
    pub main_cf: Vec<String>,
    /// More `master.cf` lines.
    pub master_cf: Vec<String>,
}

/// A domain Postfix's virtual agent delivers into one Maildir per user, owned by `postfix`.
#[derive(Debug, Clone)]
pub struct VirtualMailboxes {
    /// The domain, e.g. `elsewhere.example`.
    pub domain: String,
    /// Its users (local parts); other addresses in the domain are unknown.
    pub users: Vec<String>,
}

impl Default for PostfixOptions {
    /// The sending MTA: `sender.test.example`, no TLS offered, relaying for loopback.
    fn default() -> PostfixOptions {
        PostfixOptions {
            hostname: "sender.test.example".into(),
            relayhost: None,
            tls: false,
            auth: None,
            mailboxes: None,
            refuse: vec![],
            main_cf: vec![],
            master_cf: vec![],
        }
    }
}

impl PostfixOptions {
    /// The ISP's smarthost `smarthost.test`: STARTTLS, Maildirs for bob, carol and refuse at
    /// `elsewhere.example`, where refuse is refused at RCPT; relaying for loopback.
    pub fn smarthost() -> PostfixOptions {
        PostfixOptions {
            hostname: "smarthost.test".into(),
            tls: true,
            mailboxes: Some(VirtualMailboxes {
                domain: "elsewhere.example".into(),
                users: ["bob", "carol", "refuse"].map(String::from).to_vec(),
            }),
            refuse: vec!["refuse@elsewhere.example".into()],
            main_cf: vec!["smtputf8_enable = no".into()],
            ..PostfixOptions::default()
        }
    }

    /// The same, relaying only for [`SASL_USER`] with [`SASL_PASSWORD`] (AUTH over TLS).
    pub fn with_auth(self) -> PostfixOptions {
        PostfixOptions {
            auth: Some((SASL_USER.into(), SASL_PASSWORD.into())),
            ..self
        }
    }

    /// The ISP's backup MX for `domain`: it takes the domain's mail and relays it to our MX on
    /// 127.0.0.1:`our_mx`. Its retry backoff is an hour, so within a test only ETRN (RFC 1985;
    /// `fast_flush_domains` covers the domain) makes it try again after the first failure.
    pub fn backup_mx(domain: &str, our_mx: u16) -> PostfixOptions {
        PostfixOptions {
            main_cf: vec![
                format!("relay_domains = {domain}"),
                "fast_flush_domains = $relay_domains".into(),
                format!("transport_maps = inline:{{ {domain}=smtp:[127.0.0.1]:{our_mx} }}"),
                "queue_run_delay = 1h".into(),
                "minimal_backoff_time = 1h".into(),
                "maximal_backoff_time = 2h".into(),
            ],
            ..PostfixOptions::default()
        }
    }
}

/// A private Postfix instance; stopped when dropped.
pub struct Postfix {
    /// The port of its smtpd on 127.0.0.1. Below the ephemeral range, so it is still free when
    /// the instance starts late or again ([`crate::restart_safe_port`]).
    pub smtp_port: u16,
    options: PostfixOptions,
    running: bool,
    /// Declared before `dir`: Postfix is stopped (in drop) before these go.
    _sasl: Option<SaslService>,
    dir: tempfile::TempDir,
}

impl Postfix {
    /// Writes the configuration and starts the instance.
    pub fn start(options: PostfixOptions) -> std::io::Result<Postfix> {
        let mut postfix = Postfix::configure(options)?;
        postfix.resume()?;
        Ok(postfix)
    }

    /// Writes the configuration (and starts the SASL service it asks) without starting Postfix:
    /// a smarthost that is down until [`Postfix::resume`].
    pub fn configure(options: PostfixOptions) -> std::io::Result<Postfix> {
        let dir = peer_dir("postroom-postfix-")?;
        let root = dir.path();
        for sub in ["etc", "queue", "data", "mail"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        // master's lock and the TLS caches live in data_directory, the virtual agent writes the
        // Maildirs; both as the postfix user.
        let (uid, gid) = account_ids("postfix")?;
        for sub in ["data", "mail"] {
            std::os::unix::fs::chown(root.join(sub), Some(uid), Some(gid))?;
        }
        if options.tls {
            write_certificate(&root.join("etc"))?;
        }
        let sasl = options
            .auth
            .as_ref()
            .map(|(user, password)| SaslService::start(user, password));
        let smtp_port = restart_safe_port();
        let main_cf = main_cf(root, &options, (uid, gid), sasl.as_ref());
        std::fs::write(root.join("etc/main.cf"), main_cf)?;
        std::fs::write(root.join("etc/master.cf"), master_cf(smtp_port, &options))?;
        if let Some(mailboxes) = &options.mailboxes {
            let d = &mailboxes.domain;
            let map: String = mailboxes
                .users
                .iter()
                .map(|u| format!("{u}@{d} {d}/{u}/\n"))
                .collect();
            std::fs::write(root.join("etc/vmailbox"), map)?;
        }
        let refused: String = options
            .refuse
            .iter()
            .map(|a| format!("{a} 550 5.1.1 {a}: no such user here\n"))
            .collect();
        std::fs::write(root.join("etc/rcpt_access"), refused)?;
        std::fs::write(root.join("maillog"), "")?;
        Ok(Postfix {
            smtp_port,
            options,
            running: false,
            _sasl: sasl,
            dir,
        })
    }

    /// Starts the configured instance (again, after [`Postfix::stop`]) and waits until its
    /// smtpd answers.
    pub fn resume(&mut self) -> std::io::Result<()> {
        if self.running {
            return Ok(());
        }
        self.postfix(&["check"])?;
        self.postfix(&["start"])?;
        self.running = true;
        let port = self.smtp_port;
        if !wait_for(LIMIT, || TcpStream::connect(("127.0.0.1", port)).is_ok()) {
            return Err(std::io::Error::other(format!(
                "postfix smtpd did not listen on {port}; log:\n{}",
                self.log()
            )));
        }
        Ok(())
    }

    /// Stops the instance and waits (bounded) until its master process has gone and the port
    /// is closed; also done on drop.
    pub fn stop(&mut self) -> std::io::Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let master = std::fs::read_to_string(self.dir().join("queue/pid/master.pid"))
            .ok()
            .map(|pid| Path::new("/proc").join(pid.trim()));
        let stopped = self.postfix_bounded("stop", LIMIT);
        let port = self.smtp_port;
        let gone = || {
            master.as_ref().is_none_or(|proc| !proc.exists())
                && TcpStream::connect(("127.0.0.1", port)).is_err()
        };
        if !wait_for(LIMIT, gone) {
            // Seen with several instances at once: `postfix stop` and the master's own
            // shutdown blocked on the log socket. The master's children end when it does.
            if let Some(pid) = master.as_ref().and_then(|proc| proc.file_name()) {
                let _ = Command::new("kill").arg("-KILL").arg(pid).status();
            }
            wait_for(LIMIT, gone);
        }
        stopped
    }

    /// `postfix COMMAND`, given at most `limit`: a `postfix` still running then is killed (its
    /// output goes to a file, so a helper it left behind holds no pipe of ours open).
    fn postfix_bounded(&self, command: &str, limit: Duration) -> std::io::Result<()> {
        let out_path = self.dir().join(format!("postfix-{command}.out"));
        let log = std::fs::File::create(&out_path)?;
        let mut child = Command::new(postfix_bin("postfix"))
            .arg("-c")
            .arg(self.config_dir())
            .arg(command)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                let out = std::fs::read_to_string(&out_path).unwrap_or_default();
                return Err(std::io::Error::other(format!(
                    "postfix {command}: {status}: {out}"
                )));
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::other(format!(
                    "postfix {command} did not finish within {} s",
                    limit.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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

    /// The certificate its smtpd offers, which is its own CA ([`PostfixOptions::tls`]).
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.options.tls, "this Postfix offers no TLS");
        self.config_dir().join("cert.pem")
    }

    /// The Maildir of `user` in [`PostfixOptions::mailboxes`].
    pub fn maildir(&self, user: &str) -> PathBuf {
        let mailboxes = self.options.mailboxes.as_ref();
        let domain = &mailboxes.expect("this Postfix has no Maildirs").domain;
        self.dir.path().join("mail").join(domain).join(user)
    }

    /// The messages delivered to `user` so far, sorted by file name.
    pub fn delivered(&self, user: &str) -> Vec<Vec<u8>> {
        maildir_new(&self.maildir(user))
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

    /// Flushes every half second until its queue is empty (everything it took is delivered),
    /// for at most `limit`. False when it did not empty.
    pub fn drain(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while !self.queue_is_empty() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            let _ = self.flush();
            std::thread::sleep(Duration::from_millis(500));
        }
        true
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
    }
}

/// A self-signed certificate for 127.0.0.1 and its key, as `cert.pem` and `key.pem` in `etc`.
fn write_certificate(etc: &Path) -> std::io::Result<()> {
    let certified = tls::self_signed_for_loopback().map_err(std::io::Error::other)?;
    std::fs::write(etc.join("cert.pem"), certified.cert)?;
    std::fs::write(etc.join("key.pem"), certified.key)
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

fn main_cf(
    root: &Path,
    options: &PostfixOptions,
    (uid, gid): (u32, u32),
    sasl: Option<&SaslService>,
) -> String {
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
         myhostname = {host}\n\
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
         smtp_connect_timeout = 5s\n",
        host = options.hostname,
    );
    // The refused recipients first, then who may relay.
    let refuse = if options.refuse.is_empty() {
        String::new()
    } else {
        format!("check_recipient_access texthash:{r}/etc/rcpt_access, ")
    };
    if sasl.is_none() && !refuse.is_empty() {
        let _ = writeln!(
            cf,
            "smtpd_recipient_restrictions = {refuse}permit_mynetworks, reject_unauth_destination"
        );
    }
    if let Some(relay) = options.relayhost {
        let _ = writeln!(cf, "relayhost = [{}]:{}", relay.ip(), relay.port());
    }
    if options.tls {
        let _ = write!(
            cf,
            "smtpd_tls_cert_file = {r}/etc/cert.pem\n\
             smtpd_tls_key_file = {r}/etc/key.pem\n\
             smtpd_tls_security_level = may\n"
        );
    }
    if let Some(mailboxes) = &options.mailboxes {
        let _ = write!(
            cf,
            "virtual_mailbox_domains = {domain}\n\
             virtual_mailbox_base = {r}/mail\n\
             virtual_mailbox_maps = texthash:{r}/etc/vmailbox\n\
             virtual_uid_maps = static:{uid}\n\
             virtual_gid_maps = static:{gid}\n\
             virtual_minimum_uid = 1\n",
            domain = mailboxes.domain
        );
    }
    if let Some(sasl) = sasl {
        // Nobody is trusted by address (192.0.2.1 is TEST-NET-1): only AUTH, only over TLS.
        let _ = write!(
            cf,
            "smtpd_sasl_auth_enable = yes\n\
             smtpd_sasl_type = dovecot\n\
             smtpd_sasl_path = {socket}\n\
             smtpd_tls_auth_only = yes\n\
             mynetworks = 192.0.2.1/32\n\
             smtpd_relay_restrictions = permit_sasl_authenticated, reject\n\
             smtpd_recipient_restrictions = {refuse}permit_sasl_authenticated, reject\n",
            socket = sasl.socket().display()
        );
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
