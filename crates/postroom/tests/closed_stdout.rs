//! `postroom help` and `postroom --version` into a reader that went away (`postroom help |
//! head -0`) end quietly: no panic message, success.

use std::process::{Command, Stdio};

fn run_with_stdout_closed(arg: &str) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    // Nobody reads: every write to the pipe fails with EPIPE.
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_postroom"))
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run postroom")
}

#[test]
fn help_and_version_into_a_closed_pipe_end_quietly() {
    for arg in ["help", "--version"] {
        let out = run_with_stdout_closed(arg);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "postroom {arg}: {:?}, stderr: {stderr}",
            out.status
        );
        assert!(
            stderr.is_empty(),
            "postroom {arg} wrote to stderr: {stderr}"
        );
    }
}
