//! `postroom`: one binary, one subcommand per component.
//!
//! The supervisor (`postroom run`) starts every component as a child process of this same
//! binary, so each component is one line in [`COMMANDS`].

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

/// One subcommand: its name, a line for `postroom help`, and its entry point, which gets the
/// arguments after the subcommand name.
struct Command {
    name: &'static str,
    about: &'static str,
    run: fn(Vec<OsString>) -> anyhow::Result<()>,
}

/// The command table. A component plugs in with one line here.
const COMMANDS: &[Command] = &[
    Command {
        name: "run",
        about: "run the appliance: start and watch every component",
        run: |args| postroom_supervisor::cli::run(args, COMMANDS.iter().map(|c| c.name)),
    },
    Command {
        name: "ctl",
        about: "talk to a running appliance: status, restart, reload, logs, queue, link",
        run: postroom_supervisor::cli::ctl,
    },
    Command {
        name: "mail",
        about: "SMTP, IMAP and POP3: receive, route, deliver",
        run: postroom_mail::cli::run,
    },
    Command {
        name: "link",
        about: "the link to the ISP: permanent, or a modem dialled on demand",
        run: postroom_link::run,
    },
];

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let _argv0 = args.next();
    let Some(name) = args.next() else {
        usage();
        return ExitCode::from(2);
    };
    let name = name.to_string_lossy();
    if matches!(name.as_ref(), "help" | "-h" | "--help") {
        usage();
        return ExitCode::SUCCESS;
    }
    if matches!(name.as_ref(), "-V" | "--version") {
        // Written, not println!: a reader that went away (`postroom -V | true`) is no panic.
        let _ = writeln!(std::io::stdout(), "postroom {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let Some(command) = COMMANDS.iter().find(|c| c.name == name) else {
        eprintln!("postroom: unknown command {name:?}; see `postroom help`");
        return ExitCode::from(2);
    };
    let rest: Vec<OsString> = std::iter::once(OsString::from(format!("postroom {}", command.name)))
        .chain(args)
        .collect();
    match (command.run)(rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("postroom {}: {err:#}", command.name);
            ExitCode::FAILURE
        }
    }
}

fn usage() {
    let mut text = String::from("usage: postroom COMMAND [ARGS]\n\ncommands:\n");
    for c in COMMANDS {
        text.push_str(&format!("  {:<10} {}\n", c.name, c.about));
    }
    // As for --version: a closed stdout ends the command quietly.
    let _ = std::io::stdout().write_all(text.as_bytes());
}
