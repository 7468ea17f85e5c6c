//! A private Dovecot: as the ISP's POP3 domain mailbox ([`Dovecot`], with STLS and POP3S when
//! started with TLS), or only as the SASL service a Postfix smarthost asks about AUTH
//! ([`SaslService`]). Its own dovecot.conf, passwd-file and directories in a temporary
//! directory, run in the foreground (`dovecot -F`) as our child, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::tls::ca_signed_for_loopback;
use crate::{find_program, free_port, peer_dir, wait_for};

pub use crate::tls::unrelated_ca;

/// The one account of the ISP's domain mailbox.
pub const USER: &str = "isp-office";
/// Its password.
pub const PASSWORD: &str = "isp-secret";

/// Dovecot never runs mail processes as root: mailboxes belong to `nobody`.
const NOBODY: (u32, u32) = (65_534, 65_534);

/// A Dovecot POP3 server on a free loopback port with one Maildir, [`USER`]'s, standing in for
/// the ISP's domain mailbox. Stopped when dropped.
pub struct Dovecot {
    process: Process,
    /// POP3 on 127.0.0.1; it offers STLS when started with TLS.
    pub port: u16,
    /// POP3S (implicit TLS) on 127.0.0.1, when started with TLS.
    pub pop3s_port: Option<u16>,
}

impl Dovecot {
    /// Plain POP3 only (no STLS, no POP3S), with an empty mailbox; panics when it does not
    /// come up.
    pub fn start() -> Dovecot {
        Dovecot::launch(false)
    }

    /// POP3 with STLS (RFC 2595) and POP3S, with a certificate for 127.0.0.1 from a private CA
    /// ([`Dovecot::ca_file`]).
    pub fn start_tls() -> Dovecot {
        Dovecot::launch(true)
    }

    fn launch(tls: bool) -> Dovecot {
        let dir = peer_dir("postroom-dovecot-").expect("temporary directory");
        let d = dir.path();
        let maildir = d.join("mail").join(USER);
        for sub in ["home", "mail", "mail/isp-office"] {
            make_nobodys(&d.join(sub));
        }
        for sub in ["new", "cur", "tmp"] {
            make_nobodys(&maildir.join(sub));
        }
        let port = free_port();
        let r = d.display();
        let (ssl, pop3s_port, pop3s_listener) = if tls {
            let (ca, server) =
                ca_signed_for_loopback("ISP private CA", "pop.isp.test").expect("certificates");
            std::fs::write(d.join("ca.pem"), ca).expect("write the CA");
            std::fs::write(d.join("cert.pem"), server.cert).expect("write the certificate");
            std::fs::write(d.join("key.pem"), server.key).expect("write the key");
            let pop3s = free_port();
            (
                format!("ssl = yes\nssl_cert = <{r}/cert.pem\nssl_key = <{r}/key.pem\n"),
                Some(pop3s),
                format!(
                    "  inet_listener pop3s {{\n    address = 127.0.0.1\n    port = {pop3s}\n    \
                     ssl = yes\n  }}\n"
                ),
            )
        } else {
            ("ssl = no\n".to_owned(), None, String::new())
        };
        let (uid, gid) = NOBODY;
        let conf = format!(
            "protocols = pop3\n\
             listen = 127.0.0.1\n\
             {ssl}\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain\n\
             mail_location = maildir:{r}/mail/%u\n\
             pop3_uidl_format = %08Xu%08Xv\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={r}/home/%u\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    \
             port = {port}\n  }}\n{pop3s_listener}}}\n"
        );
        let process = Process::start(dir, USER, PASSWORD, &conf);
        let up = wait_for(Duration::from_secs(20), || {
            [Some(port), pop3s_port]
                .into_iter()
                .flatten()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok())
        });
        assert!(
            up,
            "dovecot did not listen on {port}; log:\n{}",
            process.log()
        );
        Dovecot {
            process,
            port,
            pop3s_port,
        }
    }

    /// The certificate (PEM) of the CA that signed the server's, when started with TLS.
    pub fn ca_file(&self) -> PathBuf {
        self.process.dir().join("ca.pem")
    }

    /// How many logins it logged, and how many of them were over TLS.
    pub fn logins(&self) -> (usize, usize) {
        let log = self.log();
        let logins: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("Login: user=<"))
            .collect();
        let over_tls = logins.iter().filter(|l| l.contains(", TLS")).count();
        (logins.len(), over_tls)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    fn maildir(&self) -> PathBuf {
        self.process.dir().join("mail").join(USER)
    }

    /// Drops a message (LF or CRLF line ends) into the mailbox as `name`, as the ISP's
    /// delivery agent would: written in `tmp`, then moved to `new`.
    pub fn deliver(&self, name: &str, message: &str) {
        let tmp = self.maildir().join("tmp").join(name);
        let crlf = message.replace('\n', "\r\n").replace("\r\r\n", "\r\n");
        std::fs::write(&tmp, crlf).expect("write into the mailbox");
        std::os::unix::fs::chown(&tmp, Some(NOBODY.0), Some(NOBODY.1)).expect("chown");
        std::fs::rename(&tmp, self.maildir().join("new").join(name)).expect("move to new");
    }

    /// How many messages the mailbox holds.
    pub fn count(&self) -> usize {
        ["new", "cur"]
            .iter()
            .map(|s| count_files(&self.maildir().join(s)))
            .sum()
    }
}

/// Dovecot as a SASL server only (no mail protocol): Postfix asks it over a Unix socket whether
/// AUTH PLAIN or LOGIN credentials are right. One account. Stopped when dropped.
pub struct SaslService {
    process: Process,
}

impl SaslService {
    /// Starts it for `user` with `password`; panics when it does not come up.
    pub fn start(user: &str, password: &str) -> SaslService {
        let dir = peer_dir("postroom-dovecot-sasl-").expect("temporary directory");
        let r = dir.path().display();
        let conf = format!(
            "protocols =\n\
             ssl = no\n\
             auth_mechanisms = plain login\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={r}\n}}\n\
             service auth {{\n  unix_listener auth-client {{\n    path = {r}/auth-client\n    \
             mode = 0666\n  }}\n}}\n"
        );
        let process = Process::start(dir, user, password, &conf);
        let socket = process.dir().join("auth-client");
        let up = wait_for(Duration::from_secs(20), || socket.exists());
        assert!(up, "dovecot auth did not start; log:\n{}", process.log());
        SaslService { process }
    }

    /// The socket for Postfix's `smtpd_sasl_path` (type dovecot).
    pub fn socket(&self) -> PathBuf {
        self.process.dir().join("auth-client")
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// A `dovecot -F` child with its configuration directory.
struct Process {
    child: Child,
    conf: PathBuf,
    // Declared last: removed after the child has gone.
    dir: tempfile::TempDir,
}

impl Process {
    /// Writes `conf` with the settings every instance shares (directories, log, the passwd-file
    /// with one account, anvil without chroot) and starts Dovecot in the foreground.
    fn start(dir: tempfile::TempDir, user: &str, password: &str, conf: &str) -> Process {
        let d = dir.path();
        for sub in ["run", "state"] {
            std::fs::create_dir_all(d.join(sub)).expect("dovecot directories");
        }
        std::fs::write(
            d.join("passwd"),
            format!("{user}:{{PLAIN}}{password}::::::\n"),
        )
        .expect("write the passwd-file");
        let r = d.display();
        let shared = format!(
            "base_dir = {r}/run\n\
             state_dir = {r}/state\n\
             log_path = {r}/dovecot.log\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {r}/passwd\n}}\n\
             service anvil {{\n  chroot =\n}}\n"
        );
        let path = d.join("dovecot.conf");
        std::fs::write(&path, format!("{shared}{conf}")).expect("write dovecot.conf");
        let child = Command::new(dovecot())
            .arg("-F")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dovecot starts");
        Process {
            child,
            conf: path,
            dir,
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new(dovecot())
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
        if !wait_for(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn dovecot() -> PathBuf {
    find_program("dovecot").unwrap_or_else(|| PathBuf::from("dovecot"))
}

fn make_nobodys(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mailbox directory");
    std::os::unix::fs::chown(dir, Some(NOBODY.0), Some(NOBODY.1)).expect("chown to nobody");
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|e| e.flatten().count())
        .unwrap_or(0)
}
