//! A private Dovecot POP3 server in a temporary directory, standing in for the ISP's domain
//! mailbox. Its own dovecot.conf, passwd-file and Maildir; POP3 on a free loopback port; stopped
//! when dropped. Needs root (as CI and the dev machines run) and Debian's dovecot-pop3d.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use postroom_testpeers::{find_program, free_port, wait_for};

pub struct Dovecot {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

pub const USER: &str = "isp-office";
pub const PASSWORD: &str = "isp-secret";

impl Dovecot {
    pub fn start() -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix("postroom-dovecot-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        for sub in [
            "run",
            "state",
            "home",
            "mail/isp-office/new",
            "mail/isp-office/cur",
            "mail/isp-office/tmp",
        ] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let port = free_port();
        std::fs::write(
            d.join("passwd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
        )
        .unwrap();
        // Dovecot never runs mail processes as root: the mailbox belongs to `nobody`.
        let (uid, gid) = (65534, 65534);
        for sub in [
            "home",
            "mail",
            "mail/isp-office",
            "mail/isp-office/new",
            "mail/isp-office/cur",
            "mail/isp-office/tmp",
        ] {
            std::os::unix::fs::chown(d.join(sub), Some(uid), Some(gid)).unwrap();
        }
        let r = d.display();
        let conf = format!(
            "base_dir = {r}/run\n\
             state_dir = {r}/state\n\
             log_path = {r}/dovecot.log\n\
             protocols = pop3\n\
             listen = 127.0.0.1\n\
             ssl = no\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain\n\
             mail_location = maildir:{r}/mail/%u\n\
             pop3_uidl_format = %08Xu%08Xv\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {r}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={r}/home/%u\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n"
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        let program = find_program("dovecot").unwrap_or_else(|| PathBuf::from("dovecot"));
        let child = Command::new(program)
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let dovecot = Dovecot { dir, port, child };
        let up = wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            up,
            "dovecot did not listen on {port}; log:\n{}",
            dovecot.log()
        );
        dovecot
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail").join(USER)
    }

    /// Drops a message into the mailbox, as the ISP's delivery agent would.
    pub fn deliver(&self, name: &str, message: &str) {
        let tmp = self.maildir().join("tmp").join(name);
        std::fs::write(
            &tmp,
            message.replace('\n', "\r\n").replace("\r\r\n", "\r\n"),
        )
        .unwrap();
        std::os::unix::fs::chown(&tmp, Some(65534), Some(65534)).unwrap();
        std::fs::rename(&tmp, self.maildir().join("new").join(name)).unwrap();
    }

    /// How many messages the mailbox holds.
    pub fn count(&self) -> usize {
        ["new", "cur"]
            .iter()
            .map(|s| count_files(&self.maildir().join(s)))
            .sum()
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|e| e.flatten().count())
        .unwrap_or(0)
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let program = find_program("dovecot").unwrap_or_else(|| PathBuf::from("dovecot"));
        let _ = Command::new(program)
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
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
