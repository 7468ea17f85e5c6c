//! A private Postfix instance for tests: its own config, queue and data directories in a temp
//! dir, listening on a loopback port, delivering `elsewhere.example` into virtual Maildirs that
//! the test reads back. Stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Whether Postfix is installed. Under CI a missing Postfix fails the test, elsewhere it skips.
pub fn available() -> bool {
    let found = Path::new("/usr/sbin/postfix").exists();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but Postfix is not installed"
        );
        eprintln!("skipping: Postfix is not installed");
    }
    found
}

/// A free loopback port (bound and released; Postfix takes it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Postfix {
    pub root: tempfile::TempDir,
    pub port: u16,
    pub ca_file: PathBuf,
    running: bool,
    /// A private Dovecot that answers Postfix's SASL questions (AUTH PLAIN/LOGIN).
    sasl: bool,
    dovecot_running: bool,
}

/// The one account of the SASL smarthost.
pub const SASL_USER: &str = "alice@office.example";
pub const SASL_PASSWORD: &str = "s3cret";

impl Postfix {
    /// Writes the configuration (with a TLS certificate for 127.0.0.1) without starting.
    pub fn configure(port: u16) -> Postfix {
        Postfix::build(port, false)
    }

    /// Like [`Postfix::configure`], but relaying only for clients that authenticated with
    /// AUTH over TLS (Dovecot SASL); loopback is not trusted.
    pub fn configure_with_sasl(port: u16) -> Postfix {
        Postfix::build(port, true)
    }

    fn build(port: u16, sasl: bool) -> Postfix {
        let root = tempfile::Builder::new()
            .prefix("postfix-")
            .tempdir()
            .unwrap();
        let r = root.path();
        for d in ["etc", "queue", "data", "mail"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        // Postfix's virtual delivery agent writes as this uid; the Maildir root must let it.
        let status = Command::new("chown")
            .args(["-R", "postfix:postfix"])
            .arg(r.join("mail"))
            .arg(r.join("data"))
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::set_permissions(r, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::NoCa;
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(r.join("etc/cert.pem"), cert.pem()).unwrap();
        std::fs::write(r.join("etc/key.pem"), key.serialize_pem()).unwrap();
        let ca_file = r.join("etc/cert.pem");

        let uid = id("-u");
        let gid = id("-g");
        let mut main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {q}\n\
             data_directory = {d}\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = smarthost.test\n\
             mydomain = smarthost.test\n\
             mydestination =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             alias_maps =\n\
             alias_database =\n\
             local_recipient_maps =\n\
             maillog_file = {r}/maillog\n\
             maillog_file_prefixes = {r}\n\
             smtpd_tls_cert_file = {r}/etc/cert.pem\n\
             smtpd_tls_key_file = {r}/etc/key.pem\n\
             smtpd_tls_security_level = may\n\
             smtpd_recipient_restrictions = check_recipient_access texthash:{r}/etc/rcpt_access, \
                permit_mynetworks, reject_unauth_destination\n\
             virtual_mailbox_domains = elsewhere.example\n\
             virtual_mailbox_base = {r}/mail\n\
             virtual_mailbox_maps = texthash:{r}/etc/vmailbox\n\
             virtual_uid_maps = static:{uid}\n\
             virtual_gid_maps = static:{gid}\n\
             virtual_minimum_uid = 1\n\
             smtputf8_enable = no\n",
            q = r.join("queue").display(),
            d = r.join("data").display(),
            r = r.display(),
        );
        if sasl {
            let dv = r.join("dovecot");
            std::fs::create_dir_all(dv.join("run")).unwrap();
            std::fs::create_dir_all(dv.join("state")).unwrap();
            std::fs::write(
                dv.join("dovecot.conf"),
                format!(
                    "protocols =\nbase_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/log\n\
                     auth_mechanisms = plain login\nssl = no\n\
                     passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {d}/passwd\n}}\n\
                     userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}\n}}\n\
                     service auth {{\n  unix_listener auth-client {{\n    path = {d}/auth-client\n\
                         mode = 0666\n  }}\n}}\n",
                    d = dv.display()
                ),
            )
            .unwrap();
            std::fs::write(
                dv.join("passwd"),
                format!("{SASL_USER}:{{PLAIN}}{SASL_PASSWORD}\n"),
            )
            .unwrap();
            main_cf.push_str(&format!(
                "smtpd_sasl_auth_enable = yes\n\
                 smtpd_sasl_type = dovecot\n\
                 smtpd_sasl_path = {}/auth-client\n\
                 smtpd_tls_auth_only = yes\n\
                 mynetworks = 192.0.2.1/32\n\
                 smtpd_relay_restrictions = permit_sasl_authenticated, reject\n\
                 smtpd_recipient_restrictions = check_recipient_access texthash:{}/etc/rcpt_access, \
                    permit_sasl_authenticated, reject\n",
                dv.display(),
                r.display()
            ));
        }
        std::fs::write(r.join("etc/main.cf"), main_cf).unwrap();
        std::fs::write(
            r.join("etc/vmailbox"),
            "bob@elsewhere.example elsewhere.example/bob/\n\
             carol@elsewhere.example elsewhere.example/carol/\n\
             refuse@elsewhere.example elsewhere.example/refuse/\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/rcpt_access"),
            "refuse@elsewhere.example 550 5.1.1 refuse@elsewhere.example: no such user here\n",
        )
        .unwrap();
        let services = [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "local unix - n n - - local",
            "virtual unix - n n - - virtual",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ];
        let mut master = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
        for s in services {
            master.push_str(s);
            master.push('\n');
        }
        std::fs::write(r.join("etc/master.cf"), master).unwrap();
        Postfix {
            root,
            port,
            ca_file,
            running: false,
            sasl,
            dovecot_running: false,
        }
    }

    pub fn start(&mut self) {
        if self.sasl && !self.dovecot_running {
            let dv = self.root.path().join("dovecot");
            // The daemon keeps the fds it was given: no pipes, or waiting for their end hangs.
            let status = Command::new("/usr/sbin/dovecot")
                .arg("-c")
                .arg(dv.join("dovecot.conf"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("dovecot (for SASL) is installed");
            assert!(
                status.success(),
                "dovecot did not start: {}",
                self.dovecot_log()
            );
            self.dovecot_running = true;
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !dv.join("auth-client").exists() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "dovecot auth did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let out = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.root.path().join("etc"))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postfix start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = true;
        // Wait (bounded) until smtpd answers.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "postfix did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if self.running {
            let _ = Command::new("/usr/sbin/postfix")
                .arg("-c")
                .arg(self.root.path().join("etc"))
                .arg("stop")
                .output();
            self.running = false;
            // master exits asynchronously; wait until the port is free again (bounded).
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The messages delivered to `user@elsewhere.example`, sorted by file name.
    pub fn delivered(&self, user: &str) -> Vec<Vec<u8>> {
        let new = self
            .root
            .path()
            .join("mail/elsewhere.example")
            .join(user)
            .join("new");
        let Ok(dir) = std::fs::read_dir(new) else {
            return vec![];
        };
        let mut paths: Vec<_> = dir.map(|e| e.unwrap().path()).collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    }

    fn dovecot_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("dovecot/log")).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
        if self.dovecot_running {
            let dv = self.root.path().join("dovecot");
            let _ = Command::new("/usr/bin/doveadm")
                .arg("-c")
                .arg(dv.join("dovecot.conf"))
                .arg("stop")
                .output();
            // doveadm stop signals the master; wait (bounded) until it has gone.
            let pid_file = dv.join("run/master.pid");
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while let Ok(pid) = std::fs::read_to_string(&pid_file) {
                let alive = Path::new("/proc").join(pid.trim()).exists();
                if !alive || std::time::Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn id(flag: &str) -> String {
    let out = Command::new("id")
        .arg(flag)
        .arg("postfix")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Splits what Postfix's virtual agent wrote into the headers it added on top (Return-Path,
/// X-Original-To, Delivered-To, its own Received) and the rest, which must be our message with LF line ends.
pub fn strip_postfix_headers(delivered: &[u8]) -> (Vec<String>, Vec<u8>) {
    let mut added = Vec::new();
    let mut rest = delivered;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        let is_ours = line.starts_with("Return-Path:")
            || line.starts_with("X-Original-To:")
            || line.starts_with("Delivered-To:")
            || (line.starts_with("Received:")
                && added.iter().all(|l: &String| !l.starts_with("Received:")));
        let is_continuation = line.starts_with(' ') || line.starts_with('\t');
        if is_ours
            || (is_continuation
                && added
                    .last()
                    .is_some_and(|l: &String| l.starts_with("Received:")))
        {
            if is_continuation {
                let last = added.last_mut().unwrap();
                last.push('\n');
                last.push_str(&line);
            } else {
                added.push(line);
            }
            rest = &rest[end + 1..];
        } else {
            break;
        }
    }
    (added, rest.to_vec())
}
