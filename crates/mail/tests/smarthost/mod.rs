//! The real `postroom mail` process for end-to-end tests: the built `postroom` binary started as
//! `postroom mail --config <temp config>`, with its data and run directories kept across
//! restarts (SIGTERM, SIGKILL), its control socket read with the blocking client, and its
//! stderr kept in a log file for failure messages.
//!
//! The Postfix smarthost is postroom-testpeers' [`Postfix`](postroom_testpeers::Postfix).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use postroom_config::Config;
use postroom_config::mail::{RelayTls, Span, User};
use postroom_control::BlockingClient;
use postroom_mail::control::MailStatus;
use postroom_queue::control::QueueListing;
use postroom_testpeers::restart_safe_port;

/// alice's (and bob's) password at Postroom, and its hash, as the in-process tests have them.
pub use crate::common::{PASSWORD, password_hash};

/// The `postroom` binary. `POSTROOM_BIN` names one; otherwise `cargo build -p postroom` is run
/// once per test process (a no-op when it is fresh) into the target directory this test binary
/// was built in, so the process under test is always built from the tree being tested.
pub fn postroom_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("POSTROOM_BIN") {
                return PathBuf::from(path);
            }
            // <target>/<profile>/deps/<this test>
            let exe = std::env::current_exe().expect("the test binary's path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("the test binary lives in <target>/<profile>/deps");
            let target_dir = profile_dir.parent().expect("<target>");
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => "dev",
                Some(other) => other,
            };
            let out = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "postroom", "--bin", "postroom"])
                .args(["--profile", profile])
                .arg("--target-dir")
                .arg(target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .expect("cargo runs");
            assert!(
                out.status.success(),
                "cargo build -p postroom failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let binary = profile_dir.join("postroom");
            assert!(
                binary.is_file(),
                "no {} after the build; set POSTROOM_BIN",
                binary.display()
            );
            binary
        })
        .clone()
}

/// A `postroom mail` installation: a configuration file and its data, which outlive each run of
/// the process. The process is stopped (SIGKILL) when this is dropped.
pub struct Instance {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: Config,
    process: Option<Child>,
    runs: u32,
}

/// The configuration every test starts from: alice and bob at office.example, every listener on
/// a free loopback port, a permanent link (no hold), relaying through the
/// smarthost at `smarthost_port` on 127.0.0.1 with STARTTLS required, its certificate checked
/// against `ca_file`, and AUTH with `auth` when given.
pub fn config(
    dir: &Path,
    smarthost_port: u16,
    ca_file: &Path,
    auth: Option<(&str, &str)>,
) -> Config {
    let mut config = Config::default();
    config.system.data_dir = dir.join("data");
    config.system.run_dir = dir.join("run");
    config.link.mode = postroom_config::link::Mode::Permanent;
    let mail = &mut config.mail;
    mail.hostname = "mx.office.example".into();
    mail.domains = vec!["office.example".into()];
    mail.fax_domain = "fax.office.example".into();
    // The file must name real ports (port 0 is refused); they stay the same across restarts.
    let loopback = || SocketAddr::from(([127, 0, 0, 1], restart_safe_port()));
    mail.listen.smtp = loopback();
    mail.listen.submission = loopback();
    mail.listen.submissions = loopback();
    mail.listen.imap = loopback();
    mail.listen.imaps = loopback();
    mail.listen.pop3 = loopback();
    mail.listen.pop3s = loopback();
    for name in ["alice", "bob"] {
        mail.users.push(User {
            name: name.into(),
            password_hash: password_hash(),
            ..Default::default()
        });
    }
    mail.relay.host = "127.0.0.1".into();
    mail.relay.port = smarthost_port;
    mail.relay.tls = RelayTls::Required;
    mail.relay.verify_certificate = true;
    mail.relay.ca_file = Some(ca_file.to_owned());
    if let Some((user, password)) = auth {
        mail.relay.username = user.into();
        mail.relay.password = password.into();
    }
    mail.queue.retry_schedule = vec![Span(2)];
    mail.queue.hold_when_link_down = false;
    config
}

impl Instance {
    /// Writes `config` (its data and run directories must be under `dir`) without starting.
    pub fn new(dir: tempfile::TempDir, config: Config) -> Instance {
        let config_path = dir.path().join("postroom.toml");
        config.save(&config_path).expect("write the config");
        Instance {
            dir,
            config_path,
            config,
            process: None,
            runs: 0,
        }
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.config.system.socket("mail")
    }

    /// The log (stderr) of run `n` (1 for the first start).
    pub fn log_of(&self, n: u32) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("mail-{n}.log"))).unwrap_or_default()
    }

    /// The logs of every run so far, for failure messages.
    pub fn logs(&self) -> String {
        (1..=self.runs)
            .map(|n| format!("--- run {n}\n{}", self.log_of(n)))
            .collect()
    }

    /// Starts `postroom mail --config FILE` and waits until its control socket answers; returns
    /// the SMTP listener addresses from GET /status.
    pub fn start(&mut self) -> Listeners {
        assert!(self.process.is_none(), "already running");
        self.runs += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("mail-{}.log", self.runs)))
            .expect("log file");
        let child = Command::new(postroom_binary())
            .arg("mail")
            .arg("--config")
            .arg(&self.config_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("postroom mail starts");
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.exited() {
                panic!("postroom mail exited at start ({status}):\n{}", self.logs());
            }
            if let Ok(status) = self.client().get_json::<StatusReply>("/status") {
                return Listeners::from_status(&status.detail);
            }
            assert!(
                Instant::now() < deadline,
                "postroom mail did not answer on its socket:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process has ended (and how).
    fn exited(&mut self) -> Option<ExitStatus> {
        let child = self.process.as_mut()?;
        child.try_wait().expect("wait for postroom mail")
    }

    /// Sends SIGTERM and waits (bounded) for the process to end; returns how it ended.
    pub fn terminate(&mut self) -> ExitStatus {
        let child = self.process.as_mut().expect("running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid} failed");
        // Deliveries under way get 20 s at shutdown; leave room for a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.exited() {
                self.process = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "postroom mail did not stop after SIGTERM:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub fn kill(&mut self) {
        let mut child = self.process.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// A client for the control socket.
    pub fn client(&self) -> BlockingClient {
        BlockingClient::new(self.socket())
            .expect("control client")
            .with_timeout(Duration::from_secs(10))
    }

    /// GET /queue.
    pub fn queue(&self) -> QueueListing {
        self.client()
            .get_json("/queue")
            .unwrap_or_else(|e| panic!("GET /queue: {e}\n{}", self.logs()))
    }

    /// `postroom ctl --config FILE --json queue ARGS...`: (success, stdout).
    pub fn ctl_queue(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(postroom_binary())
            .arg("ctl")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--json")
            .arg("queue")
            .args(args)
            .output()
            .expect("postroom ctl runs");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// The files in a user's Maildir `new`.
    pub fn inbox(&self, user: &str) -> Vec<PathBuf> {
        let dir = self
            .config
            .system
            .data_dir
            .join("mail")
            .join(user)
            .join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(serde::Deserialize)]
struct StatusReply {
    detail: MailStatus,
}

/// Where the running process listens for SMTP.
#[derive(Debug, Clone, Copy)]
pub struct Listeners {
    pub smtp: SocketAddr,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
}

impl Listeners {
    fn from_status(status: &MailStatus) -> Listeners {
        let find = |name: &str| -> SocketAddr {
            status
                .listeners
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, a)| a.parse().ok())
                .unwrap_or_else(|| panic!("no {name} listener in {status:?}"))
        };
        Listeners {
            smtp: find("smtp"),
            submission: find("submission"),
            submissions: find("submissions"),
        }
    }
}

/// The Message-ID of a message (the value inside the angle brackets), if it has one.
pub fn message_id(message: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    for line in text.lines() {
        if line.is_empty() {
            return None;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("message-id") {
            return Some(value.trim().trim_matches(['<', '>']).to_owned());
        }
    }
    None
}

/// Submits messages as alice through the submission port with Python's smtplib: STARTTLS (the
/// self-signed certificate is not checked), AUTH LOGIN, then one transaction per message on the
/// same connection. `messages` are (recipients, message with CRLF line ends).
pub fn submit_with_smtplib(port: u16, messages: &[(Vec<String>, Vec<u8>)]) -> (bool, String) {
    let script = String::from(
        "import smtplib, sys\n\
         s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='pc1.office.example', \
         timeout=60)\n\
         s.starttls()\n\
         s.ehlo('pc1.office.example')\n\
         s.login('alice', sys.argv[2])\n\
         data = sys.stdin.buffer.read()\n\
         for chunk in data.split(b'\\0\\0\\0\\n')[:-1]:\n\
         \x20   rcpts, msg = chunk.split(b'\\n', 1)\n\
         \x20   refused = s.sendmail('alice@office.example', rcpts.decode().split(','), msg)\n\
         \x20   print('sent, refused:', refused)\n\
         s.quit()\n\
         print('ok')\n",
    );
    let mut input = Vec::new();
    for (rcpts, message) in messages {
        input.extend_from_slice(rcpts.join(",").as_bytes());
        input.push(b'\n');
        input.extend_from_slice(message);
        input.extend_from_slice(b"\0\0\0\n");
    }
    postroom_testpeers::run(
        "python3",
        &["-c", &script, &port.to_string(), PASSWORD],
        &input,
    )
}
