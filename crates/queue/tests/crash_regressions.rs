//! Bugs found by the crash-safety test (tests/crash-safety), each pinned without a crash: the
//! state a SIGKILL left on disk is written directly, then the queue is opened on it.

mod common;

use std::sync::Arc;

use common::*;
use postroom_queue::spool::Spool;
use postroom_queue::store::{Op, Store};
use postroom_queue::{Envelope, Status};

const MESSAGE: &[u8] =
    b"From: alice@office.example\r\nTo: ok@y.example\r\nSubject: t\r\n\r\nbody\r\n";

/// Killed after a round recorded its last outcomes and before it removed the entry: nothing is
/// pending, so the entry never came due again. It stayed in the queue for ever with its body,
/// and a failure notice it owed was never sent.
#[tokio::test]
async fn entry_whose_round_was_cut_off_after_its_outcomes_is_finished_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
    let envelope = Envelope::new(
        "alice@office.example",
        vec![remote("ok@y.example"), remote("nobody@y.example")],
    );
    let id = h.queue.enqueue(envelope, MESSAGE).await.unwrap();
    let mut entry = h.queue.entry(id).unwrap().unwrap();
    let db = h.db.clone();
    drop(h);

    // What the round had committed when the process died: one recipient accepted by the
    // smarthost, one refused for good, its notice not yet sent.
    entry.recipients[0].status = Status::Delivered;
    entry.recipients[1].status = Status::Failed;
    entry.recipients[1].last_reply = Some("550 5.1.1 no such user".into());
    entry.recipients[1].status_code = Some("5.1.1".into());
    entry.attempts = 1;
    {
        let store = Store::open(db.clone(), Spool::open(dir.path()).unwrap()).unwrap();
        store.apply(vec![Op::Put(entry)], false).await.unwrap();
    }

    let h = open_queue(dir.path(), &config(60), remote_t.clone(), Some(db));
    let queue = h.queue.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(async move {
        queue
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });
    eventually("the failure notice reaches alice", 20, || {
        h.mailboxes.messages("alice").len() == 1
    })
    .await;
    eventually("the finished entry leaves the queue", 20, || {
        h.queue.entry(id).unwrap().is_none()
    })
    .await;
    assert!(
        !dir.path().join("spool/queue").join(id.to_string()).exists(),
        "its body is removed with it"
    );
    let notice = String::from_utf8_lossy(&h.mailboxes.messages("alice")[0]).into_owned();
    assert!(
        notice.contains("Final-Recipient: rfc822; nobody@y.example"),
        "{notice}"
    );
    assert_eq!(
        remote_t.attempts_for("ok@y.example"),
        0,
        "the accepted recipient is not sent again"
    );
    let _ = stop.send(());
    runner.await.unwrap();
}

/// A finished entry (nothing pending) whose body cannot be read: the round recorded the entry
/// again with a later attempt instead of finishing it, and with nothing pending that took it
/// out of the schedule, so it stayed in the queue for ever and its failure notice was never
/// sent. Nothing needs the body but the notice, which then goes without the original.
#[tokio::test]
async fn finished_entry_whose_body_cannot_be_read_is_still_finished_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
    let envelope = Envelope::new(
        "alice@office.example",
        vec![remote("ok@y.example"), remote("nobody@y.example")],
    );
    let id = h.queue.enqueue(envelope, MESSAGE).await.unwrap();
    let mut entry = h.queue.entry(id).unwrap().unwrap();
    let db = h.db.clone();
    drop(h);

    entry.recipients[0].status = Status::Delivered;
    entry.recipients[1].status = Status::Failed;
    entry.recipients[1].last_reply = Some("550 5.1.1 no such user".into());
    entry.recipients[1].status_code = Some("5.1.1".into());
    entry.attempts = 1;
    {
        let store = Store::open(db.clone(), Spool::open(dir.path()).unwrap()).unwrap();
        store.apply(vec![Op::Put(entry)], false).await.unwrap();
    }
    // The body cannot be read: gone (by hand, or a disk error).
    std::fs::remove_file(dir.path().join("spool/queue").join(id.to_string())).unwrap();

    let h = open_queue(dir.path(), &config(60), remote_t.clone(), Some(db));
    let queue = h.queue.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(async move {
        queue
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });
    eventually("the finished entry leaves the queue", 20, || {
        h.queue.entry(id).unwrap().is_none()
    })
    .await;
    eventually("the failure notice reaches alice", 20, || {
        h.mailboxes.messages("alice").len() == 1
    })
    .await;
    let notice = String::from_utf8_lossy(&h.mailboxes.messages("alice")[0]).into_owned();
    assert!(
        notice.contains("Final-Recipient: rfc822; nobody@y.example"),
        "{notice}"
    );
    assert_eq!(remote_t.attempts_for("ok@y.example"), 0);
    let _ = stop.send(());
    runner.await.unwrap();
}
