//! Removes partial files that interrupted deliveries left in the Maildirs' `tmp/`
//! (postroom_maildir::cleanup): once when the mail component starts, which is when a kill or a
//! power cut has just happened, then every [`EVERY`] for as long as it runs.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use postroom_maildir::cleanup::{STALE_AFTER, clean_store};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

/// How often the `tmp/` directories are looked at after the first time.
pub const EVERY: Duration = Duration::from_secs(6 * 3_600);

/// The cleanup task; stopped with [`TmpCleanup::stop`] or when dropped.
#[derive(Debug)]
pub struct TmpCleanup {
    task: JoinHandle<()>,
}

impl TmpCleanup {
    /// Starts cleaning the store under `mail_root` now and every `every`.
    pub fn start(mail_root: PathBuf, every: Duration) -> TmpCleanup {
        let task = tokio::spawn(
            async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let root = mail_root.clone();
                    // Walking every user's directories is file system work: off the runtime.
                    let done = tokio::task::spawn_blocking(move || {
                        clean_store(&root, SystemTime::now(), STALE_AFTER)
                    })
                    .await;
                    match done {
                        Ok(report) => log(&report),
                        Err(e) => warn!(error = %e, "Maildir tmp cleanup did not finish"),
                    }
                }
            }
            .instrument(info_span!("tmp_cleanup")),
        );
        TmpCleanup { task }
    }

    /// Stops the task; a walk under way finishes on its own thread.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for TmpCleanup {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn log(report: &postroom_maildir::cleanup::TmpCleanup) {
    for path in &report.removed {
        debug!(path = %path.display(), "removed a stale file from tmp");
    }
    for failure in &report.failures {
        warn!(error = %failure, "Maildir tmp cleanup");
    }
    if !report.removed.is_empty() {
        info!(
            removed = report.removed.len(),
            directories = report.directories,
            "removed partial deliveries left in Maildir tmp directories"
        );
    }
}
