//! What the supervisor's control socket answers, shared by the server and `postroom ctl`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::logs::LogLine;
use crate::reap::Ending;
use crate::watchdog::WatchdogStatus;

/// The `detail` of the supervisor's `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorDetail {
    /// Every component the supervisor runs, in name order.
    pub components: Vec<ComponentStatus>,
    /// The hardware and systemd watchdogs.
    pub watchdog: WatchdogStatus,
}

/// Where a component is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Started; its control socket has not answered `/health` yet.
    Starting,
    /// Running and answering `/health`.
    Up,
    /// Signalled to stop (restart, health timeout, shutdown); not yet ended.
    Stopping,
    /// Ended; waiting for its restart delay to pass.
    Waiting,
    /// Ended, and not started again (the supervisor is shutting down).
    Stopped,
}

/// One component in the supervisor's `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentStatus {
    /// Its name, e.g. `mail`.
    pub name: String,
    /// Where it is in its life.
    pub state: State,
    /// Its process id while it runs.
    pub pid: Option<i32>,
    /// Seconds since its current process started.
    pub uptime_secs: Option<u64>,
    /// How often it was started again after its first start.
    pub restarts: u32,
    /// Crashes in a row (runs shorter than the respawn threshold).
    pub crashes: u32,
    /// In a crash loop: retried only slowly.
    pub failing: bool,
    /// Whether its failing stops the watchdog.
    pub critical: bool,
    /// How its last process ended.
    pub last_exit: Option<LastExit>,
    /// Milliseconds until the next start, while waiting.
    pub next_start_in_ms: Option<u64>,
    /// Its last log lines, while failing.
    pub last_lines: Vec<String>,
}

/// How a component's process ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastExit {
    /// Exit code or signal.
    pub ending: Ending,
    /// The same, in words: `exit code 3`, `killed by SIGKILL`.
    pub description: String,
    /// Why the supervisor killed it, if it did.
    pub reason: Option<String>,
    /// How long that process ran, in seconds.
    pub ran_for_secs: f64,
    /// When it ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// The reply of `GET /logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsReply {
    /// Recent lines per component, oldest first.
    pub components: BTreeMap<String, Vec<LogLine>>,
}

/// The reply of `POST /reload`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadReply {
    /// The running components that were sent SIGHUP to re-read the configuration.
    pub signalled: Vec<String>,
    /// Components newly in the configuration, started.
    #[serde(default)]
    pub started: Vec<String>,
    /// Components removed or disabled in the configuration, stopped.
    #[serde(default)]
    pub stopped: Vec<String>,
    /// Components whose command changed, restarted.
    #[serde(default)]
    pub restarted: Vec<String>,
}

/// The reply of `POST /components/{name}/restart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartReply {
    /// The component being restarted.
    pub restarting: String,
}

/// The body of `POST /debug/stall` (only with `supervisor.debug_hooks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StallRequest {
    /// How long the main loop blocks, in seconds.
    pub secs: f64,
}
