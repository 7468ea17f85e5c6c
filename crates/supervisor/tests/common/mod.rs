//! A supervisor under test: the harness binary running `run` on a configuration in a temporary
//! directory, with stand-in components, watched through `ctl --json`.

#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde_json::Value;

/// The harness: `run`, `ctl`, and stand-in components by name.
pub const HARNESS: &str = env!("CARGO_BIN_EXE_postroom-supervisor-harness");

/// How often a condition is checked while waiting.
const POLL: Duration = Duration::from_millis(150);

pub struct Appliance {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    log: PathBuf,
    supervisor: Option<Child>,
}

impl Appliance {
    /// Writes `[system]` and then `rest` as the configuration and starts the supervisor. The
    /// components `rest` does not name are disabled, so a test runs only the stand-ins it names.
    pub fn start(rest: &str) -> Appliance {
        Appliance::start_with_env(rest, &[])
    }

    /// Like [`Appliance::start`], but the components `rest` does not name keep their defaults
    /// (all of them run), as in a user's file.
    pub fn start_with_defaults(rest: &str) -> Appliance {
        Appliance::start_text(rest, &[], false)
    }

    /// Like [`Appliance::start`], but the file says `run_dir = "run"`, and the supervisor is
    /// started in the temporary directory with `--config postroom.toml`, both relative; `ctl`
    /// is still run from the test's own directory with the file's full path.
    pub fn start_relative(rest: &str) -> Appliance {
        Appliance::start_in(rest, &[], true, true)
    }

    /// Like [`Appliance::start`], with extra environment variables for the supervisor.
    pub fn start_with_env(rest: &str, env: &[(&str, &str)]) -> Appliance {
        Appliance::start_text(rest, env, true)
    }

    fn start_text(rest: &str, env: &[(&str, &str)], only_named: bool) -> Appliance {
        Appliance::start_in(rest, env, only_named, false)
    }

    fn start_in(rest: &str, env: &[(&str, &str)], only_named: bool, relative: bool) -> Appliance {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("postroom.toml");
        let mut text = config_text(dir.path(), rest, only_named);
        if relative {
            text = text.replace(&dir.path().join("run").display().to_string(), "run");
        }
        std::fs::write(&config, text).expect("write the configuration");
        let log = dir.path().join("supervisor.log");
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut command = Command::new(HARNESS);
        command.arg("run").arg("--config");
        if relative {
            command.current_dir(dir.path()).arg("postroom.toml");
        } else {
            command.arg(&config);
        }
        command
            .env("POSTROOM_LOG", "stderr")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (key, value) in env {
            command.env(key, value);
        }
        let supervisor = command.spawn().expect("start the supervisor");
        Appliance {
            dir,
            config,
            log,
            supervisor: Some(supervisor),
        }
    }

    /// Replaces the configuration file: `[system]` as at the start, then `rest`, with the
    /// components it does not name disabled.
    pub fn rewrite_config(&self, rest: &str) {
        self.rewrite_config_text(rest, true);
    }

    /// Like [`Appliance::rewrite_config`], the components not named keeping their defaults.
    pub fn rewrite_config_with_defaults(&self, rest: &str) {
        self.rewrite_config_text(rest, false);
    }

    fn rewrite_config_text(&self, rest: &str, only_named: bool) {
        let temporary = self.path("postroom.toml.new");
        let text = config_text(self.dir.path(), rest, only_named);
        std::fs::write(&temporary, text).expect("write");
        std::fs::rename(&temporary, &self.config).expect("replace the configuration");
    }

    /// A path inside the temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The supervisor's process id.
    pub fn pid(&self) -> i32 {
        self.supervisor
            .as_ref()
            .map(|c| c.id() as i32)
            .expect("supervisor running")
    }

    /// Runs `harness ctl --config FILE ARGS...`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(HARNESS)
            .arg("ctl")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run ctl")
    }

    /// Runs `harness ctl --config FILE ARGS...` with its standard output a pipe whose reading
    /// end is closed before ctl writes anything, as `ctl logs | head` leaves it; the output has
    /// stderr only.
    pub fn ctl_into_closed_pipe(&self, args: &[&str]) -> Output {
        let mut child = Command::new(HARNESS)
            .arg("ctl")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ctl");
        drop(child.stdout.take());
        child.wait_with_output().expect("ctl ends")
    }

    /// `ctl status --json`, or `None` while the supervisor does not answer.
    pub fn status(&self) -> Option<Value> {
        let output = self.ctl(&["status", "--json"]);
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// The status of one component from `ctl status --json`.
    pub fn component(&self, name: &str) -> Option<Value> {
        let status = self.status()?;
        component_in(&status, name).cloned()
    }

    /// Polls `ctl status --json` until `check` holds, and returns that status; fails the test
    /// with the last status and the supervisor's log after `deadline`.
    pub fn wait_for(
        &self,
        what: &str,
        deadline: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        let mut last = None;
        loop {
            if let Some(status) = self.status() {
                if check(&status) {
                    return status;
                }
                last = Some(status);
            }
            if start.elapsed() > deadline {
                panic!(
                    "{what}: not within {deadline:?}\nlast status: {}\n",
                    last.map(|s| serde_json::to_string_pretty(&s).unwrap_or_default())
                        .unwrap_or_else(|| "none".into()),
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until every named component is up, and returns their pids in that order.
    pub fn wait_up(&self, names: &[&str], deadline: Duration) -> Vec<i64> {
        let status = self.wait_for(&format!("{names:?} up"), deadline, |s| {
            names
                .iter()
                .all(|n| component_in(s, n).is_some_and(|c| c["state"] == "up"))
        });
        names
            .iter()
            .map(|n| component_in(&status, n).unwrap()["pid"].as_i64().unwrap())
            .collect()
    }

    /// Sends a signal to the supervisor.
    pub fn signal(&self, signal: Signal) {
        kill(signal, i64::from(self.pid()));
    }

    /// Waits for the supervisor to exit.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let child = self.supervisor.as_mut().expect("supervisor running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for the supervisor") {
                self.supervisor = None;
                return status;
            }
            assert!(
                start.elapsed() < deadline,
                "the supervisor did not exit within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The supervisor's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut child) = self.supervisor.take() {
            // SIGTERM first so the children go too; PDEATHSIG covers a supervisor that hangs.
            if let Some(pid) = Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, Signal::TERM);
            }
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(15) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if std::thread::panicking() {
            eprintln!("---- supervisor log ----\n{}", self.log());
        }
        // A failed test must not leave its stand-ins behind either.
        for pid in live_processes_mentioning(&self.dir.path().display().to_string()) {
            if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }
}

/// `[system]` for a test in `dir`, then `rest` with `@DIR@` and `@HARNESS@` filled in; with
/// `only_named`, a table disabling each component `rest` does not name.
fn config_text(dir: &Path, rest: &str, only_named: bool) -> String {
    let mut text = format!(
        "[system]\nrun_dir = \"{}\"\n\n{}",
        dir.join("run").display(),
        rest.replace("@DIR@", &dir.display().to_string())
            .replace("@HARNESS@", HARNESS)
    );
    if only_named {
        for name in postroom_config::supervisor::COMPONENTS {
            if !rest.contains(&format!("[supervisor.components.{name}]")) {
                text.push_str(&format!(
                    "\n[supervisor.components.{name}]\nenabled = false\n"
                ));
            }
        }
    }
    text
}

/// Runs `harness ctl ARGS...` without `--config`, from `dir`.
pub fn ctl_without_config(dir: &Path, args: &[&str]) -> Output {
    Command::new(HARNESS)
        .arg("ctl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ctl")
}

/// One component in a `ctl status --json` answer.
pub fn component_in<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["detail"]["components"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

/// Whether process `pid` has ended: gone, or a zombie nobody has collected yet.
pub fn process_ended(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// Whether process `pid` is gone from the process table (ended and collected).
pub fn process_gone(pid: i64) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// The live (not zombie) processes whose command line mentions `needle`.
pub fn live_processes_mentioning(needle: &str) -> Vec<i64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .filter(|pid| *pid != i64::from(std::process::id()))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(needle) && !process_ended(*pid)
        })
        .collect()
}

/// Waits until `check` holds, failing the test with `what` after `deadline`.
pub fn eventually(what: &str, deadline: Duration, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number of keepalive lines a stand-in watchdog file holds.
pub fn keepalives(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == "keepalive")
        .count()
}

/// Sends `signal` to process `pid`.
pub fn kill(signal: Signal, pid: i64) {
    let target = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .expect("a valid pid");
    rustix::process::kill_process(target, signal).expect("send a signal");
}
