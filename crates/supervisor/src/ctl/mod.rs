//! `postroom ctl`: talk to a running appliance through the supervisor's control socket.
//!
//! Each subcommand is one variant of [`Command`] and one arm in [`Command::run`]; a new one
//! (`ctl queue`, `ctl link`) adds a variant and a module beside `supervisor.rs`. Every
//! subcommand gets a [`Ctl`]: the configuration and the `--json` choice, and prints only
//! through `output`'s `out!` and `outln!`, so that every one of them ends quietly when its
//! reader goes away (`postroom ctl logs | head`).

mod link;
mod output;
mod queue;
mod supervisor;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use postroom_config::Config;
use postroom_control::BlockingClient;

/// How long ctl waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `postroom ctl`.
#[derive(Debug, Parser)]
#[command(name = "postroom ctl", about = "Talk to a running appliance")]
struct Args {
    /// The configuration file of the running appliance, which says where the sockets are
    /// [default: /data/postroom/postroom.toml].
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The subcommands of `postroom ctl`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show every component: state, pid, uptime, restarts, last exit.
    Status,
    /// Stop a component and start it again, forgetting its crashes.
    Restart {
        /// The component, e.g. `mail`.
        name: String,
    },
    /// Tell every component to re-read the configuration (SIGHUP).
    Reload,
    /// Show the recent log lines of every component, or of one.
    Logs {
        /// Only this component.
        name: Option<String>,
        /// How many lines per component.
        #[arg(long, short = 'n', default_value_t = 50)]
        lines: usize,
    },
    /// The link to the ISP: status (the default), calls, events, hold, release, dial, hangup.
    Link {
        #[command(subcommand)]
        command: Option<link::LinkCommand>,
    },
    /// The outbound mail queue: list (the default), flush, delete ID, bounce ID.
    Queue {
        #[command(subcommand)]
        command: Option<queue::QueueCommand>,
    },
}

/// What every subcommand gets.
#[derive(Debug)]
pub struct Ctl {
    /// The loaded configuration; if the file has mistakes, the defaults with its
    /// `system.run_dir` (see `load`).
    pub config: Config,
    /// Print JSON rather than text.
    pub json: bool,
}

impl Ctl {
    /// A client for the control socket of `component` (`supervisor`, `mail`, ...).
    pub fn client(&self, component: &str) -> anyhow::Result<BlockingClient> {
        let socket = self.config.system.run_dir.join(format!("{component}.sock"));
        Ok(BlockingClient::new(socket)?.with_timeout(TIMEOUT))
    }
}

impl Command {
    /// Runs the subcommand.
    pub fn run(self, ctl: &Ctl) -> anyhow::Result<()> {
        match self {
            Command::Status => supervisor::status(ctl),
            Command::Restart { name } => supervisor::restart(ctl, &name),
            Command::Reload => supervisor::reload(ctl),
            Command::Logs { name, lines } => supervisor::logs(ctl, name.as_deref(), lines),
            Command::Link { command } => link::run(ctl, command),
            Command::Queue { command } => queue::run(ctl, command),
        }
    }
}

/// `postroom ctl [--config FILE] [--json] COMMAND`.
pub fn main(args: Vec<OsString>) -> anyhow::Result<()> {
    let args = Args::parse_from(args);
    let ctl = Ctl {
        config: load(args.config.as_deref())?,
        json: args.json,
    };
    match args.command.run(&ctl) {
        // The reader has all it wanted (`| head`); like other Unix tools, that is no failure.
        Err(e) if e.is::<output::StdoutClosed>() => Ok(()),
        result => result,
    }
}

/// Loads the configuration. One with mistakes still says where the sockets are, and ctl is
/// most needed just then (to see what a bad reload did), so it is used leniently: the
/// defaults, with its `system.run_dir`, and a warning.
fn load(given: Option<&Path>) -> anyhow::Result<Config> {
    match Config::load_for_command(given) {
        Ok((_, config)) => Ok(config),
        Err(e @ postroom_config::Error::Invalid { .. }) => {
            let path = given.unwrap_or(Path::new(postroom_config::DEFAULT_PATH));
            eprintln!("warning: using only system.run_dir of a file with mistakes:\n{e}");
            let mut config = Config::default();
            if let Some(run_dir) = lenient_run_dir(path) {
                config.system.run_dir = run_dir;
            }
            Ok(config)
        }
        Err(e) => Err(e.into()),
    }
}

/// `system.run_dir` from a file that may have mistakes elsewhere, taken from the file's
/// directory when relative, as [`Config::load`] does.
fn lenient_run_dir(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let run_dir = table.get("system")?.get("run_dir")?.as_str()?;
    Some(postroom_config::paths::resolve(
        &postroom_config::paths::base_dir(path),
        Path::new(run_dir),
    ))
}
