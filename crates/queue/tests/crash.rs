//! A process that is killed (SIGKILL) while sessions are queueing loses no message it had
//! acknowledged: every id `enqueue` returned is there after a restart, with its body.
//! (This kills the process, not the power: the page cache survives it. fsync is what covers
//! power loss, and it is called on every path.)

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::*;
use postroom_queue::{Destination, Envelope, QueueId, Recipient};

fn body(n: u64) -> Vec<u8> {
    format!("Subject: n{n}\r\n\r\nmessage number {n}\r\n").into_bytes()
}

/// Not a test of its own: the child process of the test below, which runs this test binary
/// again with the variable set. Without it, it returns at once. It queues from 16 sessions
/// until it is killed, printing each acknowledged id.
#[test]
fn child_enqueuer() {
    let Some(dir) = std::env::var_os("POSTROOM_CRASH_CHILD_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let h = open_queue(
            &dir,
            &config(3_600),
            Arc::new(ScriptedRemote::default()),
            None,
        );
        let mut tasks = Vec::new();
        for s in 0..16u64 {
            let q = h.queue.clone();
            tasks.push(tokio::spawn(async move {
                // Bounded, in case the parent dies without killing it.
                let start = std::time::Instant::now();
                for k in 0..20_000 {
                    if start.elapsed() > std::time::Duration::from_secs(30) {
                        break;
                    }
                    let n = s * 1_000_000 + k;
                    let rcpt = format!("r{n}@x.example");
                    let env = Envelope::new(
                        "a@office.example",
                        vec![Recipient::new(
                            rcpt.clone(),
                            Destination::Remote { address: rcpt },
                        )],
                    );
                    let id = q.enqueue(env, body(n)).await.unwrap();
                    println!("ACK {} {n}", id.0);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn killed_process_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_enqueuer",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("POSTROOM_CRASH_CHILD_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut acked: Vec<(QueueId, u64)> = Vec::new();
    let stdout = child.0.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        if words.next() != Some("ACK") {
            continue;
        }
        let id: u64 = words.next().unwrap().parse().unwrap();
        let n: u64 = words.next().unwrap().parse().unwrap();
        acked.push((QueueId(id), n));
        if acked.len() >= 300 {
            break;
        }
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(
        acked.len() >= 300,
        "the child queued too little before it was killed"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let h = open_queue(
            dir.path(),
            &config(3_600),
            Arc::new(ScriptedRemote::default()),
            None,
        );
        for (id, n) in &acked {
            let entry = h.queue.entry(*id).unwrap();
            assert!(
                entry.is_some(),
                "acknowledged {id} is missing after the kill"
            );
            let spooled = std::fs::read(dir.path().join("spool/queue").join(id.to_string()));
            assert_eq!(spooled.unwrap(), body(*n), "body of {id}");
        }
        // Every record left has its body; files without a record were cleared at open.
        let listed = h.queue.list().unwrap();
        assert!(listed.len() >= acked.len());
        let files = std::fs::read_dir(dir.path().join("spool/queue"))
            .unwrap()
            .count();
        assert_eq!(files, listed.len(), "one spool file per record, no orphans");
    });
}

/// Kills the child also when the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
