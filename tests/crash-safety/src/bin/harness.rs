//! `postroom` in miniature for the crash-safety test: `run`, `ctl` and `mail`, the same library
//! entry points as the command table of crates/postroom. The supervisor starts its components
//! as `<this program> mail --config FILE`, so `mail` must be one of its subcommands.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::process::ExitCode;

/// The subcommands the supervisor may start: only the mail component is under test.
const COMPONENTS: &[&str] = &["mail"];

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let Some(name) = args.get(1).and_then(|a| a.to_str()).map(str::to_owned) else {
        eprintln!("usage: postroom-crash-harness run|ctl|mail ...");
        return ExitCode::from(2);
    };
    let rest: Vec<OsString> = std::iter::once(OsString::from(format!("postroom {name}")))
        .chain(args[2..].iter().cloned())
        .collect();
    let result = match name.as_str() {
        "run" => postroom_supervisor::cli::run(rest, COMPONENTS.iter().copied()),
        "ctl" => postroom_supervisor::cli::ctl(rest),
        "mail" => postroom_mail::cli::run(rest),
        _ => {
            eprintln!("postroom-crash-harness: unknown command {name:?}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postroom {name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
