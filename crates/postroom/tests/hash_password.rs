//! `postroom mail hash-password` as an administrator runs it from a script: the password on
//! standard input, the hash on standard output. An empty password used to be hashed, and the
//! account could then be logged into with no password at all.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn hash_password(input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_postroom"))
        .args(["mail", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start postroom");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write the password");
    child.wait_with_output().expect("wait for postroom")
}

#[test]
fn an_empty_password_is_refused_with_a_reason_and_no_hash() {
    for input in [&b""[..], b"\n", b"\r\n"] {
        let out = hash_password(input);
        assert!(!out.status.success(), "input {input:?} was hashed");
        assert!(
            out.stdout.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("the password is empty"), "{err}");
    }
}

#[test]
fn a_password_on_standard_input_is_printed_as_an_argon2id_hash() {
    let out = hash_password(b"correct horse\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).expect("utf-8");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert_eq!(hash.lines().count(), 1, "{hash}");
}
