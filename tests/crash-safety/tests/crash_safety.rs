//! Crash safety (issue 6, item 4): `postroom mail` is killed with SIGKILL at random moments
//! while load clients send mail to local users and through a Postfix smarthost; the supervisor
//! (`postroom run`) starts it again each time. Afterwards every message that got its 250 must
//! be in each local recipient's Maildir exactly once and at the smarthost at least once (or
//! still in our queue), no local copy of any message may be there twice, and every copy must be
//! whole. Remote copies that arrive twice are counted and printed: SMTP cannot avoid them when
//! the kill falls after the smarthost's 250 and before our queue recorded it.
//!
//! Settings from the environment (each printed at the start, so a run can be repeated):
//! - `POSTROOM_CRASH_SEED` (decimal or 0x-hex; default 0x5eed): the kill moments, the message
//!   plan (recipients, sizes, messages per session) follow from it. The interleaving with the
//!   scheduler does not, so two runs of one seed meet the same plan, not the same instants.
//! - `POSTROOM_CRASH_KILLS`: kills in the run (default 25; the ignored long test 200).
//! - `POSTROOM_CRASH_CLIENTS`: concurrent SMTP sessions (default 6).
//!
//! The long run: `cargo nextest run -p postroom-crash-tests --run-ignored only --no-capture`
//! (or `POSTROOM_CRASH_KILLS=200` on the short one).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postroom_control::BlockingClient;
use postroom_crash_tests::load::{self, Destination, LoadPlan, LoadRecord};
use postroom_crash_tests::mailbox::read_maildir;
use postroom_crash_tests::rng::Rng;
use postroom_crash_tests::verdict::Report;
use postroom_testpeers::{Postfix, PostfixOptions, free_port, require};
use rustix::process::{Pid, Signal};
use serde_json::Value;

/// `postroom` in miniature (src/bin/harness.rs): `run`, `ctl`, `mail`.
const HARNESS: &str = env!("CARGO_BIN_EXE_postroom-crash-harness");

/// The remote recipient; the smarthost delivers its domain into one Maildir.
const REMOTE: &str = "carol@elsewhere.example";

/// Bounds on waiting; generous for a loaded 2-core machine. None of them is what is tested.
const START_LIMIT: Duration = Duration::from_secs(120);
const DRAIN_LIMIT: Duration = Duration::from_secs(240);

#[test]
fn acknowledged_mail_survives_sigkills_of_the_mail_component_under_load() {
    crash_run(25);
}

/// The long version: 200 kills, several minutes.
#[test]
#[ignore = "long: run with --run-ignored only"]
fn acknowledged_mail_survives_200_sigkills_of_the_mail_component_under_load() {
    crash_run(200);
}

/// The settings of one run.
#[derive(Debug)]
struct RunSettings {
    seed: u64,
    kills: u32,
    clients: u32,
}

impl RunSettings {
    fn from_env(default_kills: u32) -> RunSettings {
        let number = |name: &str| {
            let text = std::env::var(name).ok()?;
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            Some(parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number")))
        };
        RunSettings {
            seed: number("POSTROOM_CRASH_SEED").unwrap_or(0x5eed),
            kills: number("POSTROOM_CRASH_KILLS").map_or(default_kills, |n| n as u32),
            clients: number("POSTROOM_CRASH_CLIENTS").map_or(6, |n| n.max(1) as u32),
        }
    }
}

fn crash_run(default_kills: u32) {
    if !require("postfix") {
        return;
    }
    let settings = RunSettings::from_env(default_kills);
    println!(
        "crash safety: POSTROOM_CRASH_SEED={:#x} POSTROOM_CRASH_KILLS={} POSTROOM_CRASH_CLIENTS={}",
        settings.seed, settings.kills, settings.clients
    );
    let started = Instant::now();

    let smarthost = Smarthost::start();
    let appliance = Appliance::start(smarthost.postfix.smtp_port);
    let first_pid = appliance.wait_for_mail("the first start", None, true);

    // The load.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..settings.clients)
        .map(|client| {
            let plan = LoadPlan {
                client,
                seed: settings.seed,
                server: appliance.smtp,
                local_users: vec!["alice".into(), "bob".into()],
                domain: "office.example".into(),
                remote: vec![REMOTE.into()],
                max_body: 24 * 1024,
            };
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || load::run(&plan, &stop))
        })
        .collect();

    // The kills. Most fall at a random moment after the component answers /health (serving
    // mail); some while it is still starting (opening the database, recovering the queue).
    let mut rng = Rng::new(settings.seed);
    let mut pid = first_pid;
    let mut early_kills = 0;
    for kill in 0..settings.kills {
        let early = rng.percent(15);
        let delay = if early {
            rng.between(0, 300)
        } else {
            rng.between(50, 1500)
        };
        if kill > 0 {
            pid = appliance.wait_for_mail(&format!("restart {kill}"), Some(pid), !early);
        }
        early_kills += u32::from(early);
        std::thread::sleep(Duration::from_millis(delay));
        send_kill(pid);
    }
    let last_pid = appliance.wait_for_mail("the last restart", Some(pid), true);
    std::thread::sleep(Duration::from_secs(1));

    stop.store(true, Ordering::SeqCst);
    let records: Vec<LoadRecord> = clients
        .into_iter()
        .map(|c| c.join().expect("a load client panicked"))
        .collect();
    let load_ended = started.elapsed();

    // The component that runs now is the one after the last kill: none died on its own.
    let mail = appliance.mail_status().expect("the supervisor answers");
    assert_eq!(mail["pid"].as_i64(), Some(i64::from(last_pid)), "{mail}");
    assert_eq!(mail["failing"], false, "{mail}");
    let restarts = mail["restarts"].as_u64().unwrap_or(0);
    assert!(
        restarts >= u64::from(settings.kills),
        "{restarts} restarts for {} kills",
        settings.kills
    );

    // Let everything queued go out, and the smarthost deliver what it took.
    let queued = appliance.wait_for_queue_to_drain();
    let entries_left = appliance.entries_left();
    smarthost.wait_until_delivered();

    let sent: Vec<_> = records
        .iter()
        .flat_map(|r| r.sent.iter().cloned())
        .collect();
    let connections: u64 = records.iter().map(|r| r.connections).sum();
    let mut delivered = BTreeMap::new();
    for user in ["alice", "bob"] {
        let maildir = appliance.data.join("mail").join(user);
        delivered.insert(
            Destination::Local(user.into()),
            read_maildir(&maildir).expect("read a Maildir"),
        );
    }
    delivered.insert(
        Destination::Remote(REMOTE.into()),
        read_maildir(&smarthost.maildir()).expect("read the smarthost's Maildir"),
    );
    let report = Report::new(&sent, &delivered, &queued);
    let spool = appliance.data.join("spool").join("queue");
    // The runner removes a body right after its record; give the last removals a moment.
    wait_until(Duration::from_secs(10), || list_files(&spool).is_empty());
    let spool_left = list_files(&spool);
    let tmp_left: usize = ["alice", "bob"]
        .iter()
        .map(|user| count_files(&appliance.data.join("mail").join(user).join("tmp")))
        .sum();

    println!(
        "kills: {} ({} while starting), restarts seen by the supervisor: {restarts}",
        settings.kills, early_kills
    );
    println!("SMTP sessions opened: {connections}; load ran {load_ended:.1?}");
    print!("{}", report.summary());
    println!(
        "queue entries left with nothing pending: {}",
        entries_left.len()
    );
    println!(
        "queue bodies left in the spool after it drained: {}",
        spool_left.len()
    );
    println!("Maildir tmp files left by kills (never delivered): {tmp_left}");
    println!("whole run: {:.1?}", started.elapsed());
    appliance.print_errors_logged();

    let mut failures = report.failures();
    // Leftovers in the queue are a leak, not a lost or doubled message, but a leak that can
    // hold back an owed failure notice and fills the spool: once the queue has drained, no
    // entry and no body may be left (docs/RELIABILITY.md, Crash safety, found and fixed).
    if !entries_left.is_empty() {
        failures.push(format!(
            "{} queue entries left after the queue drained (nothing pending, never removed): {}",
            entries_left.len(),
            entries_left.join("; ")
        ));
    }
    if queued.is_empty() && !spool_left.is_empty() {
        failures.push(format!(
            "{} queue bodies left in the spool after the queue drained: {}",
            spool_left.len(),
            spool_left.join(", ")
        ));
    }
    if !entries_left.is_empty() || (queued.is_empty() && !spool_left.is_empty()) {
        let mut ids: Vec<String> = entries_left
            .iter()
            .filter_map(|e| e.split_whitespace().next().map(str::to_owned))
            .collect();
        ids.extend(spool_left.iter().cloned());
        appliance.print_log_lines_with(&ids);
    }
    if !failures.is_empty() {
        appliance.dump_log();
        panic!(
            "crash safety broken (seed {:#x}):\n{}",
            settings.seed,
            failures.join("\n")
        );
    }
    assert!(report.accepted > 0, "no message was accepted at all");
    assert!(
        report.remote_delivered > 0,
        "no message reached the smarthost"
    );
}

/// Polls `check` until it holds or `limit` passes.
fn wait_until(limit: Duration, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Files in `dir` (0 for a missing directory).
fn count_files(dir: &Path) -> usize {
    list_files(dir).len()
}

/// The names of the files in `dir` (none for a missing directory), sorted.
fn list_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn send_kill(pid: i32) {
    if let Some(pid) = Pid::from_raw(pid) {
        // ESRCH: it ended on its own in the meantime; the supervisor sees that too.
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

/// The supervisor with `postroom mail` under it, in a temporary directory.
struct Appliance {
    _dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    smtp: SocketAddr,
    supervisor_api: BlockingClient,
    mail_api: BlockingClient,
    supervisor: RefCell<Option<Child>>,
}

impl Appliance {
    fn start(smarthost_port: u16) -> Appliance {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path();
        let smtp: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let config = root.join("postroom.toml");
        std::fs::write(&config, config_text(root, smtp, smarthost_port)).expect("config");
        let log = root.join("appliance.log");
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let supervisor = Command::new(HARNESS)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("POSTROOM_LOG", "stderr")
            // POSTROOM_CRASH_LOG, e.g. "warn,postroom_queue=info", to follow queue entries.
            .env(
                "RUST_LOG",
                std::env::var("POSTROOM_CRASH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the supervisor");
        let run = root.join("run");
        let client = |name: &str| {
            BlockingClient::new(run.join(format!("{name}.sock")))
                .expect("control client")
                .with_timeout(Duration::from_secs(10))
        };
        Appliance {
            data: root.join("data"),
            log,
            smtp,
            supervisor_api: client("supervisor"),
            mail_api: client("mail"),
            supervisor: RefCell::new(Some(supervisor)),
            _dir: dir,
        }
    }

    /// The mail component in the supervisor's `GET /status`.
    fn mail_status(&self) -> Option<Value> {
        let status: Value = self.supervisor_api.get_json("/status").ok()?;
        status["detail"]["components"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "mail")
            .cloned()
    }

    /// Waits for a mail process other than `previous`, up (answering /health) if `up`; its pid.
    fn wait_for_mail(&self, what: &str, previous: Option<i32>, up: bool) -> i32 {
        let start = Instant::now();
        let mut last = None;
        loop {
            if let Some(mail) = self.mail_status() {
                let pid = mail["pid"].as_i64().map(|p| p as i32);
                let state_ok = !up || mail["state"] == "up";
                if let Some(pid) = pid.filter(|&p| Some(p) != previous && state_ok) {
                    return pid;
                }
                assert_ne!(mail["failing"], true, "{what}: mail is failing: {mail}");
                last = Some(mail);
            }
            let exited = self
                .supervisor
                .borrow_mut()
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.dump_log();
                panic!("{what}: the supervisor exited ({status})");
            }
            if start.elapsed() > START_LIMIT {
                self.dump_log();
                panic!("{what}: no new mail process within {START_LIMIT:?}; last: {last:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until our queue is empty (the runner retries every second). Returns the copies
    /// still pending if it does not empty within the limit.
    fn wait_for_queue_to_drain(&self) -> BTreeSet<(String, Destination)> {
        let start = Instant::now();
        loop {
            let listing: Option<Value> = self.mail_api.get_json("/queue").ok();
            if let Some(listing) = &listing {
                let pending = pending_copies(listing);
                if pending.is_empty() || start.elapsed() > DRAIN_LIMIT {
                    if !pending.is_empty() {
                        println!("the queue did not drain: {listing}");
                    }
                    return pending;
                }
            }
            assert!(
                start.elapsed() < DRAIN_LIMIT * 2,
                "the mail component does not answer"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Entries still listed once nothing is pending (given a moment for the last removals),
    /// each as its id and its recipients' states.
    fn entries_left(&self) -> Vec<String> {
        let listing = || -> Option<Vec<Value>> {
            let listing: Value = self.mail_api.get_json("/queue").ok()?;
            Some(listing["entries"].as_array().cloned().unwrap_or_default())
        };
        wait_until(Duration::from_secs(10), || {
            listing().is_some_and(|l| l.is_empty())
        });
        let Some(entries) = listing() else {
            return vec!["(the mail component does not answer GET /queue)".into()];
        };
        entries
            .iter()
            .map(|e| {
                let recipients: Vec<String> = e["recipients"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| format!("{} {}", r["address"], r["status"]))
                    .collect();
                format!(
                    "{} (attempts {}, subject {}, recipients {})",
                    e["id"].as_str().unwrap_or("?"),
                    e["attempts"],
                    e["subject"],
                    recipients.join(", ")
                )
            })
            .collect()
    }

    /// Prints how many ERROR lines the appliance logged, and the first few: none is expected,
    /// but a kill may cut off a delivery (the smarthost's log), so they are shown, not failed.
    fn print_errors_logged(&self) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
        println!("ERROR lines in the appliance log: {}", errors.len());
        for line in errors.iter().take(10) {
            println!("  {line}");
        }
        let finished = log
            .lines()
            .filter(|l| l.contains("nothing pending: finishing it"))
            .count();
        if finished > 0 {
            println!("entries found finished but not removed, then removed: {finished}");
        }
    }

    /// Prints the lines of the appliance's log that name any of `ids` (queue ids), to see what
    /// became of them; `POSTROOM_CRASH_LOG=warn,postroom_queue=info` gives the most.
    fn print_log_lines_with(&self, ids: &[String]) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        println!("---- appliance log lines naming {ids:?} ----");
        for line in log
            .lines()
            .filter(|l| ids.iter().any(|id| l.contains(id.as_str())))
        {
            println!("{line}");
        }
    }

    fn dump_log(&self) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        eprintln!("---- appliance log (last lines) ----");
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let Some(mut child) = self.supervisor.get_mut().take() else {
            return;
        };
        // SIGTERM stops the supervisor and its component; SIGKILL only if it hangs (the
        // component then dies with it through PR_SET_PDEATHSIG).
        if let Some(pid) = Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
        let start = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The copies still pending in a `GET /queue` listing, by Message-ID and destination (the
/// Subject `crash cC nN` names the message).
fn pending_copies(listing: &Value) -> BTreeSet<(String, Destination)> {
    let mut pending = BTreeSet::new();
    let seed = RunSettings::from_env(0).seed;
    for entry in listing["entries"].as_array().into_iter().flatten() {
        let subject = entry["subject"].as_str().unwrap_or_default();
        let id = subject
            .strip_prefix("crash ")
            .and_then(|rest| rest.split_once(' '))
            .map(|(c, n)| format!("crash-{seed:x}-{c}-{n}@client.test"))
            .unwrap_or_else(|| format!("(not a test message: {subject:?})"));
        for recipient in entry["recipients"].as_array().into_iter().flatten() {
            if recipient["status"] != "pending" {
                continue;
            }
            let address = recipient["address"].as_str().unwrap_or_default();
            let destination = match recipient["destination"].as_str() {
                Some("local") => {
                    Destination::Local(address.split('@').next().unwrap_or_default().into())
                }
                _ => Destination::Remote(address.into()),
            };
            pending.insert((id.clone(), destination));
        }
    }
    pending
}

fn config_text(root: &Path, smtp: SocketAddr, smarthost_port: u16) -> String {
    let r = root.display();
    // The dev password "dev-password" (examples/dev.toml); nobody logs in here.
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$r+7rcmc2TpePj6WKp0SYXw$\
                9uJKR6QOoodJj/54qQpq+XjbqMt3tLHLkHe33AS8+Kg";
    let [p1, p2, p3, p4, p5, p6] = std::array::from_fn(|_| free_port());
    format!(
        r#"[system]
data_dir = "{r}/data"
run_dir = "{r}/run"
hostname = "mail.office.example"
domains = ["office.example"]

[supervisor]
health_interval = "100ms"
health_timeout = "5s"
start_timeout = "120s"
unhealthy_timeout = "120s"
respawn_threshold = "1s"
restart_delay = "50ms"
restart_delay_max = "200ms"
# 0: never counted as failing, however many kills in a row.
respawn_retry = 0
failing_retry = "1s"
stop_timeout = "20s"

[supervisor.components.mail]
critical = true

[mail]
# Loopback may relay, so the load clients can send to the smarthost without AUTH.
trusted_networks = ["127.0.0.0/8"]

[mail.listen]
smtp = "{smtp}"
submission = "127.0.0.1:{p1}"
submissions = "127.0.0.1:{p2}"
imap = "127.0.0.1:{p3}"
imaps = "127.0.0.1:{p4}"
pop3 = "127.0.0.1:{p5}"
pop3s = "127.0.0.1:{p6}"

[mail.limits]
max_connections_per_client = 1000

[mail.queue]
retry_schedule = ["1s"]
hold_when_link_down = false

[mail.relay]
mode = "smarthost"
host = "127.0.0.1"
port = {smarthost_port}
tls = "none"
verify_certificate = false

[[mail.users]]
name = "alice"
password_hash = "{hash}"

[[mail.users]]
name = "bob"
password_hash = "{hash}"
"#
    )
}

/// A private Postfix that takes `elsewhere.example` and delivers all of it into one Maildir.
struct Smarthost {
    postfix: Postfix,
    _dir: tempfile::TempDir,
    base: PathBuf,
}

impl Smarthost {
    fn start() -> Smarthost {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("postroom-crash-vmail-")
            .tempdir()
            .expect("temporary directory");
        // Postfix's virtual delivery agent writes as the postfix user.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let base = dir.path().join("vmail");
        std::fs::create_dir(&base).expect("mkdir");
        let (uid, gid) = postfix_ids();
        std::os::unix::fs::chown(&base, Some(uid), Some(gid)).expect("chown to postfix");
        let postfix = Postfix::start(PostfixOptions {
            main_cf: vec![
                "virtual_mailbox_domains = elsewhere.example".into(),
                format!("virtual_mailbox_base = {}", base.display()),
                "virtual_mailbox_maps = static:relayed/".into(),
                format!("virtual_uid_maps = static:{uid}"),
                format!("virtual_gid_maps = static:{gid}"),
                "virtual_minimum_uid = 1".into(),
            ],
            ..PostfixOptions::default()
        })
        .expect("start the smarthost Postfix");
        Smarthost {
            postfix,
            _dir: dir,
            base,
        }
    }

    fn maildir(&self) -> PathBuf {
        self.base.join("relayed")
    }

    /// Waits until Postfix's queue is empty: everything it took is in the Maildir.
    fn wait_until_delivered(&self) {
        let start = Instant::now();
        while !self.postfix.queue_is_empty() {
            if start.elapsed() > DRAIN_LIMIT {
                panic!(
                    "the smarthost's queue did not empty; its log:\n{}",
                    self.postfix.log()
                );
            }
            let _ = self.postfix.flush();
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The uid and gid of the postfix account.
fn postfix_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() > 3 && fields[0] == "postfix")
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .expect("a postfix user in /etc/passwd")
}
