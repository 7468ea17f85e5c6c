//! `postroom mail --config FILE` and `postroom mail hash-password`.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use postroom_config::Config;

use crate::app::{App, Prepared};

/// `postroom mail`.
#[derive(Debug, Parser)]
#[command(
    name = "postroom mail",
    about = "Run the mail component: SMTP, IMAP, POP3"
)]
struct Args {
    /// The configuration file [default: /data/postroom/postroom.toml]. Its relative paths are
    /// taken from its own directory.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the argon2 hash of a password (read from stdin) for `password_hash` in the config.
    HashPassword,
}

/// The entry point in the binary's command table.
pub fn run(args: Vec<OsString>) -> anyhow::Result<()> {
    let args = Args::parse_from(args);
    if let Some(Command::HashPassword) = args.command {
        let password = read_new_password()?;
        let hash = crate::users::hash_password(&password).map_err(anyhow::Error::msg)?;
        println!("{hash}");
        return Ok(());
    }
    let (path, config) = Config::load_for_command(args.config.as_deref())?;
    let _ = postroom_logging::init("mail");
    serve(config, &path)
}

/// The password for `hash-password`: typed twice without echo at a terminal, else the first
/// line of standard input (for scripts). An empty one is refused: it would let anyone in.
fn read_new_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New password: ")
            .context("cannot read the password from the terminal")?;
        let again = rpassword::prompt_password("Again: ")
            .context("cannot read the password from the terminal")?;
        anyhow::ensure!(
            first == again,
            "the two passwords differ; nothing was hashed"
        );
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    anyhow::ensure!(
        !password.is_empty(),
        "the password is empty; nothing was hashed"
    );
    Ok(password)
}

fn serve(config: Config, path: &std::path::Path) -> anyhow::Result<()> {
    let started = Instant::now();

    // Ports first, while we may be root; then the files; then give up root, still with one
    // thread (see privileges.rs).
    // Mail, keys and the queue are private: what this process creates is for its own user
    // alone (files 0600, directories 0700), whatever umask it was started with.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let prepared = Prepared::new(&config)?;
    // The data is ours alone; the run directory is shared with the other components, so only
    // the directory itself is handed over, for the control socket.
    crate::privileges::drop_root(
        config.system.user.as_deref(),
        config.system.group.as_deref(),
        &[prepared.paths.data_dir.as_path()],
        &[config.system.run_dir.as_path()],
    )?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let app = App::start(prepared, started).await?;
        app.run_until_signal(path).await
    })
}
