//! End-to-end: the mail component removes partial deliveries left in Maildir `tmp/`
//! directories (files untouched for 36 hours) when it starts, in INBOX and folders, and leaves
//! fresh files and everything in `new/` and `cur/` alone.

mod common;

use std::fs::{self, File, FileTimes};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::Server;

fn aged(path: &Path, age: Duration) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b"Subject: cut off by a power fai").unwrap();
    let then = SystemTime::now() - age;
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(FileTimes::new().set_accessed(then).set_modified(then))
        .unwrap();
}

#[test]
fn stale_tmp_files_are_removed_at_start_and_nothing_else_is() {
    let hours = |h: u64| Duration::from_secs(h * 3_600);
    let mut stale: Vec<PathBuf> = Vec::new();
    let mut kept: Vec<PathBuf> = Vec::new();
    let server = Server::start(|config| {
        // Left behind by the last run, before the component starts.
        let mail = config.system.data_dir.join("mail");
        for (path, age, gone) in [
            ("alice/tmp/1700000000.P1.crashed", hours(40), true),
            ("alice/.Sent/tmp/1700000001.P1.crashed", hours(72), true),
            ("bob/tmp/1700000002.P1.crashed", hours(37), true),
            ("bob/tmp/1700000003.P1.writing", hours(1), false),
            ("alice/new/1600000000.P1.old", hours(1000), false),
            ("alice/cur/1600000001.P1.old:2,S", hours(1000), false),
        ] {
            aged(&mail.join(path), age);
            if gone {
                stale.push(mail.join(path));
            } else {
                kept.push(mail.join(path));
            }
        }
    });

    // The first cleanup runs in the background right after start.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stale.iter().any(|p| p.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for path in &stale {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    for path in &kept {
        assert!(path.exists(), "{} was removed", path.display());
    }
    // The Maildirs themselves are intact and still take mail.
    assert!(server.data().join("mail/alice/.Sent/tmp").is_dir());
    assert!(server.data().join("mail/bob/tmp").is_dir());
}
