//! The `[supervisor]` section: which components run, how they are restarted, the watchdog.
//!
//! Times are in seconds and may have a fraction (`0.5`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `[supervisor]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Supervisor {
    /// The components to run, by name (`[supervisor.components.mail]`). Without this table all
    /// of Postroom's components run; a component not built into the binary is skipped.
    pub components: BTreeMap<String, Component>,
    /// How often a running component's `/health` is asked.
    pub health_interval: Seconds,
    /// How long one `/health` call may take.
    pub health_timeout: Seconds,
    /// How long a newly started component may take to answer `/health` the first time.
    pub start_timeout: Seconds,
    /// How long `/health` may stay unanswered once a component was up; then it is killed.
    pub unhealthy_timeout: Seconds,
    /// A run shorter than this counts as a crash (procd's `respawn_threshold`).
    pub respawn_threshold: Seconds,
    /// The wait before the first restart after a crash; it doubles with each crash in a row.
    pub restart_delay: Seconds,
    /// The longest wait between restarts before a component counts as failing.
    pub restart_delay_max: Seconds,
    /// Crashes in a row before a component counts as failing (procd's `respawn_retry`);
    /// 0 never marks it failing.
    pub respawn_retry: u32,
    /// How often a failing component is tried again.
    pub failing_retry: Seconds,
    /// On shutdown, how long components get after SIGTERM before SIGKILL.
    pub stop_timeout: Seconds,
    /// How many recent log lines are kept per component.
    pub log_lines: usize,
    /// The hardware watchdog.
    pub watchdog: Watchdog,
    /// Enables test-only control endpoints (`POST /debug/stall`). Never set this on a device.
    pub debug_hooks: bool,
}

/// One component under `[supervisor.components.NAME]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Component {
    /// Whether the supervisor runs it.
    pub enabled: bool,
    /// A critical component that keeps failing stops the watchdog petting, so the box resets.
    pub critical: bool,
    /// A program and arguments to run instead of `postroom NAME` (for tests and stand-ins);
    /// `--config FILE` is appended. Empty runs the built-in component.
    pub command: Vec<String>,
}

/// The `[supervisor.watchdog]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Watchdog {
    /// The watchdog device, e.g. `/dev/watchdog`; none means no hardware watchdog. A path that
    /// is not a character device (a file or a FIFO) is a stand-in: each keepalive is written
    /// to it as a line.
    pub device: Option<PathBuf>,
    /// The timeout set on the device (WDIOC_SETTIMEOUT), in whole seconds.
    pub timeout: u32,
    /// How often the device is petted.
    pub interval: Seconds,
    /// Petting stops once a critical component has been failing this long.
    pub critical_failing_limit: Seconds,
    /// Petting stops once the supervisor's own loop has not run for this long.
    pub loop_stall_limit: Seconds,
}

/// A duration written as a number of seconds, `5` or `0.25`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub Duration);

/// The components of Postroom (docs/ARCHITECTURE.md), all enabled, mail critical.
pub const COMPONENTS: &[&str] = &["mail", "link", "fax", "admin", "console"];

impl Default for Supervisor {
    fn default() -> Supervisor {
        let components = COMPONENTS
            .iter()
            .map(|name| {
                let critical = *name == "mail";
                (
                    name.to_string(),
                    Component {
                        critical,
                        ..Component::default()
                    },
                )
            })
            .collect();
        Supervisor {
            components,
            health_interval: Seconds::secs(2.0),
            health_timeout: Seconds::secs(2.0),
            start_timeout: Seconds::secs(30.0),
            unhealthy_timeout: Seconds::secs(15.0),
            respawn_threshold: Seconds::secs(300.0),
            restart_delay: Seconds::secs(0.5),
            restart_delay_max: Seconds::secs(30.0),
            respawn_retry: 5,
            failing_retry: Seconds::secs(300.0),
            stop_timeout: Seconds::secs(10.0),
            log_lines: 200,
            watchdog: Watchdog::default(),
            debug_hooks: false,
        }
    }
}

impl Default for Component {
    fn default() -> Component {
        Component {
            enabled: true,
            critical: false,
            command: Vec::new(),
        }
    }
}

impl Default for Watchdog {
    fn default() -> Watchdog {
        Watchdog {
            device: None,
            timeout: 30,
            interval: Seconds::secs(5.0),
            critical_failing_limit: Seconds::secs(600.0),
            loop_stall_limit: Seconds::secs(20.0),
        }
    }
}

impl Seconds {
    /// `secs` seconds; only for constants known to be valid.
    fn secs(secs: f64) -> Seconds {
        Seconds(Duration::from_secs_f64(secs))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Seconds, D::Error> {
        let secs = f64::deserialize(deserializer)?;
        // A day is far beyond any timeout here; the bound also keeps Duration from overflowing.
        if !(0.0..=86_400.0).contains(&secs) {
            return Err(serde::de::Error::custom(format!(
                "{secs} is not a number of seconds between 0 and 86400"
            )));
        }
        Ok(Seconds(Duration::from_secs_f64(secs)))
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0.as_secs_f64())
    }
}
