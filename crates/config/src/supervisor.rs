//! The `[supervisor]` section: which components run, how they are restarted, the watchdog.
//!
//! Times are seconds, with a fraction if need be (`0.5`), or durations (`"500ms"`, `"5m"`).
//! The restart policy follows OpenWrt procd's `respawn threshold timeout retry`: a run shorter
//! than `respawn_threshold` is a crash, and after `respawn_retry` crashes in a row the component
//! counts as failing (procd gives up there; we keep trying every `failing_retry`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::check::{Check, Report, key};
use crate::values::Interval;

/// The `[supervisor]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Supervisor {
    /// The components to run, by name (`[supervisor.components.mail]`). All of Postroom's
    /// components run by default (mail critical); a `[supervisor.components.NAME]` table
    /// amends that component's defaults (only the keys it names change) and leaves the others
    /// as they are. A component not built into the binary is skipped.
    #[serde(deserialize_with = "amend_default_components")]
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
    /// How many recent log lines are kept per component, and of the supervisor's own.
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

/// What one `[supervisor.components.NAME]` table says: only the keys written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ComponentAmendment {
    enabled: Option<bool>,
    critical: Option<bool>,
    command: Option<Vec<String>>,
}

/// The default components with each table of the file laid over its component: a key the file
/// leaves out keeps its default, and a component the file does not name keeps all of them.
/// A name that is no component is kept (with default settings) so that [`Check`] reports it
/// with its line.
fn amend_default_components<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Component>, D::Error> {
    let amendments = BTreeMap::<String, ComponentAmendment>::deserialize(deserializer)?;
    let mut components = default_components();
    for (name, amendment) in amendments {
        let component = components.entry(name).or_default();
        if let Some(enabled) = amendment.enabled {
            component.enabled = enabled;
        }
        if let Some(critical) = amendment.critical {
            component.critical = critical;
        }
        if let Some(command) = amendment.command {
            component.command = command;
        }
    }
    Ok(components)
}

/// Every component of [`COMPONENTS`], enabled, mail critical.
fn default_components() -> BTreeMap<String, Component> {
    COMPONENTS
        .iter()
        .map(|name| {
            let component = Component {
                critical: *name == "mail",
                ..Component::default()
            };
            (name.to_string(), component)
        })
        .collect()
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
        Supervisor {
            components: default_components(),
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
        // A number of seconds (`0.5`) or a duration (`"500ms"`, `"5m"`), as in the rest of the
        // file; both are bounded (a year) so that deadline arithmetic cannot overflow.
        let interval = deserializer.deserialize_any(crate::values::IntervalVisitor)?;
        Ok(Seconds(interval.0))
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&crate::values::Interval(self.0))
    }
}

impl Check for Supervisor {
    fn check(&self, at: &str, report: &mut Report) {
        let components = key(at, "components");
        for (name, component) in &self.components {
            let path = key(&components, name);
            if !COMPONENTS.contains(&name.as_str()) {
                report.add(
                    &path,
                    format!(
                        "there is no component {name:?} (there are {})",
                        COMPONENTS.join(", ")
                    ),
                );
            }
            if component
                .command
                .first()
                .is_some_and(|program| program.trim().is_empty())
            {
                report.add(key(&path, "command"), "the program name is empty");
            }
        }

        for (field, value) in [
            ("health_interval", self.health_interval),
            ("health_timeout", self.health_timeout),
            ("start_timeout", self.start_timeout),
            ("unhealthy_timeout", self.unhealthy_timeout),
            ("stop_timeout", self.stop_timeout),
        ] {
            if value.0.is_zero() {
                report.add(key(at, field), "must be longer than 0s");
            }
        }
        if self.unhealthy_timeout < self.health_interval {
            report.add(
                key(at, "unhealthy_timeout"),
                format!(
                    "{} is shorter than health_interval ({}): a component would be killed \
                     between two checks",
                    Interval(self.unhealthy_timeout.0),
                    Interval(self.health_interval.0)
                ),
            );
        }
        if self.restart_delay > self.restart_delay_max {
            report.add(
                key(at, "restart_delay"),
                format!(
                    "{} is longer than restart_delay_max ({})",
                    Interval(self.restart_delay.0),
                    Interval(self.restart_delay_max.0)
                ),
            );
        }

        let watchdog = key(at, "watchdog");
        let w = &self.watchdog;
        if w.device.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            report.add(
                key(&watchdog, "device"),
                "is empty; leave it out for no watchdog",
            );
        }
        if w.timeout == 0 {
            report.add(key(&watchdog, "timeout"), "must be at least 1 second");
        }
        if w.interval.0.is_zero() {
            report.add(key(&watchdog, "interval"), "must be longer than 0s");
        } else if w.interval.0 >= Duration::from_secs(u64::from(w.timeout)) && w.timeout > 0 {
            report.add(
                key(&watchdog, "interval"),
                format!(
                    "{} is not shorter than the watchdog timeout ({}s): the box would reset \
                     while healthy",
                    Interval(w.interval.0),
                    w.timeout
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn a_component_table_amends_its_defaults_and_leaves_the_others_running() {
        let config = Config::parse("[supervisor.components.link]\nenabled = false\n").unwrap();
        let components = &config.supervisor.components;
        assert!(!components["link"].enabled);
        assert!(components["mail"].enabled && components["mail"].critical);
        for name in ["fax", "admin", "console"] {
            assert!(components[name].enabled, "{name}");
        }
    }

    #[test]
    fn naming_only_mail_s_command_keeps_it_critical_and_keeps_link() {
        let config =
            Config::parse("[supervisor.components.mail]\ncommand = [\"/bin/mail-stand-in\"]\n")
                .unwrap();
        let components = &config.supervisor.components;
        assert_eq!(components["mail"].command, ["/bin/mail-stand-in"]);
        assert!(components["mail"].enabled && components["mail"].critical);
        assert!(components["link"].enabled && !components["link"].critical);
    }

    #[test]
    fn a_component_table_can_turn_mail_s_critical_flag_off() {
        let config = Config::parse("[supervisor.components.mail]\ncritical = false\n").unwrap();
        assert!(!config.supervisor.components["mail"].critical);
        assert!(config.supervisor.components["mail"].enabled);
    }

    #[test]
    fn an_unknown_component_is_a_mistake_with_its_line_even_with_a_command() {
        let found = Config::parse(
            "[supervisor]\nrespawn_retry = 3\n\n[supervisor.components.lnik]\n\
             command = [\"/bin/true\"]\n",
        )
        .unwrap_err();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("line 4: supervisor.components.lnik: there is no component"),
            "{found:?}"
        );
        let disabled =
            Config::parse("[supervisor.components.lnik]\nenabled = false\n").unwrap_err();
        assert_eq!(disabled.len(), 1, "{disabled:?}");
    }

    #[test]
    fn an_unknown_key_in_a_component_table_is_named() {
        let found = Config::parse("[supervisor.components.link]\nenable = false\n").unwrap_err();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("line 2: supervisor.components.link.enable: unknown key"),
            "{found:?}"
        );
    }
}
