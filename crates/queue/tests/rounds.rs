//! The runner's bookkeeping of entries: one round per entry at a time, and every entry in the
//! table known to the runner, whoever committed it and whether or not they waited for it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use postroom_queue::{Destination, Envelope, Recipient};

const MESSAGE: &[u8] = b"From: alice@office.example\r\nSubject: t\r\n\r\nbody\r\n";

fn remote(address: &str) -> Recipient {
    Recipient::new(
        address,
        Destination::Remote {
            address: address.into(),
        },
    )
}

fn start_runner(
    h: &Harness,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let queue = h.queue.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(async move {
        queue
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });
    (stop, runner)
}

/// An enqueue whose caller stops waiting after its record went to the committer (an SMTP
/// session dropped at shutdown) is committed all the same; the runner must know of it then,
/// not only after a restart.
#[tokio::test]
async fn message_committed_after_its_caller_stopped_waiting_is_still_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
    let (stop, runner) = start_runner(&h);

    // Poll the enqueue by hand and drop it as soon as its record is in the table, before it
    // is polled again to hear of the commit. If it finished within one poll (possible, not
    // likely: a commit takes an fsync), try another message.
    let mut abandoned = None;
    for n in 0..20 {
        let address = format!("r{n}@y.example");
        let envelope = Envelope::new("alice@office.example", vec![remote(&address)]);
        let enqueue = h.queue.enqueue(envelope, MESSAGE);
        tokio::pin!(enqueue);
        let mut finished = false;
        for _ in 0..2_000 {
            // The table first, then a poll: once the commit is in, the table shows it before
            // the enqueue is polled again to hear of it.
            let listed = h.queue.list().unwrap();
            if let Some(entry) = listed.iter().find(|e| e.recipients[0].address == address) {
                abandoned = Some((entry.id.clone(), address.clone()));
                break;
            }
            if tokio::time::timeout(Duration::ZERO, &mut enqueue)
                .await
                .is_ok()
            {
                finished = true;
                break;
            }
            // Not polled meanwhile: the body write and the commit go on by themselves.
            std::thread::sleep(Duration::from_millis(1));
        }
        if abandoned.is_some() {
            break;
        }
        assert!(finished, "the enqueue neither finished nor committed");
    }
    let (id, address) = abandoned.expect("no enqueue was caught between commit and return");

    eventually("the abandoned message is delivered", 20, || {
        remote_t.delivered_to(&address) == 1
    })
    .await;
    eventually("and removed from the queue", 20, || {
        h.queue.list().unwrap().iter().all(|e| e.id != id)
    })
    .await;
    let _ = stop.send(());
    runner.await.unwrap();
}

/// Flushes while an entry's round is under way start no second round of the same entry: two
/// rounds at once would send it twice, and the one that ends last would record its older copy
/// over the other's outcome.
#[tokio::test]
async fn flush_during_a_round_does_not_start_a_second_round_of_the_same_entry() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    *remote_t.delay.lock().unwrap() = Duration::from_millis(600);
    let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
    let envelope = Envelope::new("alice@office.example", vec![remote("slow@y.example")]);
    let id = h.queue.enqueue(envelope, MESSAGE).await.unwrap();
    let (stop, runner) = start_runner(&h);

    eventually("the round starts", 20, || {
        remote_t.running.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    for _ in 0..10 {
        h.queue.flush();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually("the entry is delivered and removed", 20, || {
        h.queue.entry(id).unwrap().is_none()
    })
    .await;
    assert_eq!(remote_t.attempts_for("slow@y.example"), 1);
    assert_eq!(
        remote_t
            .max_running
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let _ = stop.send(());
    runner.await.unwrap();
}
