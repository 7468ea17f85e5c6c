//! The supervisor's view of the configuration: which processes to run, and its timings.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postroom_config::Config;

use crate::policy::RespawnPolicy;
use crate::watchdog::Petting;

/// Everything the supervisor takes from the configuration file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration file, passed on to every component.
    pub config_path: PathBuf,
    /// This binary, which runs the built-in components.
    pub program: OsString,
    /// The subcommands of this binary.
    pub built_in: Vec<String>,
    /// Where the control sockets are.
    pub run_dir: PathBuf,
    /// The components to run, in name order.
    pub components: Vec<Spec>,
    /// How often `/health` is asked once a component is up.
    pub health_interval: Duration,
    /// The bound of one `/health` call.
    pub health_timeout: Duration,
    /// How long a starting component may take to answer `/health` first.
    pub start_timeout: Duration,
    /// How long `/health` may stay unanswered once up.
    pub unhealthy_timeout: Duration,
    /// When to restart.
    pub policy: RespawnPolicy,
    /// Between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// The watchdog thread's settings.
    pub petting: Petting,
    /// A critical component failing this long stops the petting.
    pub critical_failing_limit: Duration,
    /// Test-only control endpoints.
    pub debug_hooks: bool,
}

/// How to run one component.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Its name; its socket is `<run_dir>/<name>.sock`.
    pub name: String,
    /// The program.
    pub program: OsString,
    /// Its arguments, before `--config FILE`.
    pub args: Vec<OsString>,
    /// Whether its failing stops the watchdog.
    pub critical: bool,
}

impl Settings {
    /// Takes the supervisor's settings from `config`. `program` is this binary and `built_in`
    /// its subcommands: an enabled component without a `command` runs as `program NAME` if
    /// NAME is built in, and is skipped with a notice otherwise.
    pub fn new(config: &Config, config_path: &Path, program: OsString, built_in: &[&str]) -> Self {
        let section = &config.supervisor;
        let mut components = Vec::new();
        for (name, component) in &section.components {
            if !component.enabled {
                tracing::info!(component = %name, "disabled in the configuration");
                continue;
            }
            let spec = match component.command.split_first() {
                Some((first, rest)) => Spec {
                    name: name.clone(),
                    program: first.into(),
                    args: rest.iter().map(OsString::from).collect(),
                    critical: component.critical,
                },
                None if built_in.contains(&name.as_str()) => Spec {
                    name: name.clone(),
                    program: program.clone(),
                    args: vec![name.into()],
                    critical: component.critical,
                },
                None => {
                    tracing::info!(component = %name, "not built into this binary yet; skipped");
                    continue;
                }
            };
            components.push(spec);
        }

        Settings {
            config_path: config_path.to_owned(),
            program,
            built_in: built_in.iter().map(|name| name.to_string()).collect(),
            run_dir: config.system.run_dir.clone(),
            components,
            health_interval: section.health_interval.0,
            health_timeout: section.health_timeout.0,
            start_timeout: section.start_timeout.0,
            unhealthy_timeout: section.unhealthy_timeout.0,
            policy: RespawnPolicy {
                threshold: section.respawn_threshold.0,
                first_delay: section.restart_delay.0,
                max_delay: section.restart_delay_max.0,
                retry: section.respawn_retry,
                failing_delay: section.failing_retry.0,
            },
            stop_timeout: section.stop_timeout.0,
            petting: Petting {
                device: section.watchdog.device.clone(),
                timeout_secs: section.watchdog.timeout,
                interval: section.watchdog.interval.0,
                stall_limit: section.watchdog.loop_stall_limit.0,
            },
            critical_failing_limit: section.watchdog.critical_failing_limit.0,
            debug_hooks: section.debug_hooks,
        }
    }

    /// Reads the configuration file again, for a reload.
    pub fn reload(&self) -> Result<Settings, postroom_config::Error> {
        let config = Config::load(&self.config_path)?;
        let built_in: Vec<&str> = self.built_in.iter().map(String::as_str).collect();
        Ok(Settings::new(
            &config,
            &self.config_path,
            self.program.clone(),
            &built_in,
        ))
    }

    /// The control socket of `component`.
    pub fn socket(&self, component: &str) -> PathBuf {
        self.run_dir.join(format!("{component}.sock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_enabled_components_that_are_built_in_or_have_a_command_are_run() {
        let mut config = Config::default();
        let components = &mut config.supervisor.components;
        components.get_mut("link").unwrap().enabled = false;
        components.get_mut("fax").unwrap().command = vec!["/bin/fax-stand-in".into(), "-v".into()];

        let settings = Settings::new(
            &config,
            Path::new("/etc/p.toml"),
            "/bin/postroom".into(),
            &["mail"],
        );

        let run: Vec<(&str, &OsString, &[OsString])> = settings
            .components
            .iter()
            .map(|s| (s.name.as_str(), &s.program, s.args.as_slice()))
            .collect();
        assert_eq!(
            run,
            [
                (
                    "fax",
                    &OsString::from("/bin/fax-stand-in"),
                    &[OsString::from("-v")][..]
                ),
                (
                    "mail",
                    &OsString::from("/bin/postroom"),
                    &[OsString::from("mail")][..]
                ),
            ]
        );
    }
}
