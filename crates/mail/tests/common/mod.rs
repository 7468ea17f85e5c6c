//! A mail component running in-process on loopback ports, with alice and bob (password
//! `dev-password`) at office.example, for end-to-end tests with real clients.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use postroom_config::Config;
use postroom_config::mail::User;
use postroom_mail::app::{Addresses, App, Prepared};

pub const PASSWORD: &str = "dev-password";

/// The argon2 hash of [`PASSWORD`], made once per test binary.
pub fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| postroom_mail::users::hash_password(PASSWORD).expect("hash"))
        .clone()
}

/// A running mail component; stopped when dropped.
pub struct Server {
    pub addresses: Addresses,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
    pub config: Config,
    app: Option<App>,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    pub fn start(customize: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.system.data_dir = dir.path().join("data");
        config.system.run_dir = dir.path().join("run");
        let mail = &mut config.mail;
        mail.hostname = "mx.office.example".into();
        mail.domains = vec!["office.example".into()];
        mail.fax_domain = "fax.office.example".into();
        let loopback = "127.0.0.1:0".parse().expect("address");
        mail.listen.smtp = loopback;
        mail.listen.submission = loopback;
        mail.listen.submissions = loopback;
        mail.listen.imap = loopback;
        mail.listen.imaps = loopback;
        mail.listen.pop3 = loopback;
        mail.listen.pop3s = loopback;
        for name in ["alice", "bob"] {
            mail.users.push(User {
                name: name.into(),
                password_hash: password_hash(),
                ..Default::default()
            });
        }
        // Remote mail waits in the queue (an on-demand link that is down), so tests can see it
        // there instead of racing a delivery attempt.
        config.link.mode = postroom_config::link::Mode::OnDemand;
        config.mail.queue.hold_when_link_down = true;
        customize(&mut config);

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let prepared = Prepared::new(&config).expect("prepare");
        let app = runtime
            .block_on(App::start(prepared, Instant::now()))
            .expect("start");
        Server {
            addresses: app.addresses,
            socket: app.socket.clone(),
            dir,
            config,
            app: Some(app),
            runtime,
        }
    }

    /// Changes the configuration and applies it as a SIGHUP would.
    pub fn reload(&mut self, change: impl FnOnce(&mut Config)) {
        change(&mut self.config);
        let _guard = self.runtime.enter();
        self.app
            .as_ref()
            .expect("running")
            .reload(&self.config)
            .expect("reload");
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The files in a user's `new` directory.
    pub fn inbox(&self, user: &str) -> Vec<PathBuf> {
        files_in(&self.data().join("mail").join(user).join("new"))
    }

    /// Waits until the user's inbox holds `n` messages; returns them.
    pub fn wait_inbox(&self, user: &str, n: usize, limit: Duration) -> Vec<PathBuf> {
        let deadline = Instant::now() + limit;
        loop {
            let files = self.inbox(user);
            if files.len() >= n || Instant::now() >= deadline {
                return files;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The queue as `GET /queue` on the control socket shows it.
    pub fn queue(&self) -> postroom_queue::control::QueueListing {
        let client = postroom_control::Client::new(&self.socket);
        self.block_on(client.get_json("/queue"))
            .expect("GET /queue")
    }

    /// The addresses of queued recipients with a remote destination.
    pub fn queued_remote(&self) -> Vec<String> {
        self.queue()
            .entries
            .iter()
            .flat_map(|e| e.recipients.iter())
            .filter(|r| r.destination == "remote")
            .map(|r| r.address.clone())
            .collect()
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(app) = self.app.take() {
            self.runtime.block_on(app.stop());
        }
    }
}

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Runs a program with `stdin` as its input; returns (success, stdout + stderr).
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    postroom_testpeers::run(program, args, stdin.unwrap_or_default().as_bytes())
}
