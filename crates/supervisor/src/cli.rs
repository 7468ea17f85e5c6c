//! Entry points for `postroom run` and `postroom ctl`.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use postroom_config::Config;

use crate::logs::{LogBook, OWN_LOG};
use crate::settings::Settings;

/// `postroom run`: start and watch every component.
#[derive(Debug, Parser)]
#[command(
    name = "postroom run",
    about = "Run the appliance: start and watch every component"
)]
struct RunArgs {
    /// The configuration file [default: /data/postroom/postroom.toml]. Its relative paths are
    /// taken from its own directory.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `postroom run [--config FILE]`. `built_in` names the subcommands of this binary: an enabled
/// component without a `command` in the configuration runs as `<this binary> NAME`.
pub fn run<'a>(
    args: Vec<OsString>,
    built_in: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<()> {
    let built_in: Vec<&str> = built_in.into_iter().collect();
    let args = RunArgs::parse_from(args);
    let (path, config) = Config::load_for_command(args.config.as_deref())?;
    // The components get it absolute, so that it names the same file whatever their directory.
    let path = std::path::absolute(&path)
        .with_context(|| format!("cannot make {} an absolute path", path.display()))?;
    let logs = LogBook::new(config.supervisor.log_lines);
    postroom_logging::init_with_own_lines(OWN_LOG, logs.own_lines())?;
    let program = std::env::current_exe()
        .context("cannot find this program's own path to start the components")?
        .into_os_string();
    let settings = Settings::new(&config, &path, program, &built_in);
    crate::supervise::run(settings, logs)?;
    Ok(())
}

/// `postroom ctl [--config FILE] ...`.
pub fn ctl(args: Vec<OsString>) -> anyhow::Result<()> {
    crate::ctl::main(args)
}
