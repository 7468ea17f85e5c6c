//! The queue and its runner with scripted transports: durability across reopen, retries,
//! notices, hold and flush, concurrency limits.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use mail_parser::{MessageParser, MimeHeaders};
use postroom_queue::{Destination, Envelope, OutcomeKind, Recipient, Status};

const MESSAGE: &[u8] = b"From: alice@office.example\r\nTo: bob@elsewhere.example\r\n\
Subject: test\r\n\r\nbody line\r\n.leading dot\r\n";

fn local(user: &str) -> Recipient {
    Recipient::new(
        format!("{user}@office.example"),
        Destination::Local {
            user: user.into(),
            folder: None,
        },
    )
}

#[tokio::test]
async fn queue_survives_reopen_with_every_entry_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    let mut ids = Vec::new();
    {
        let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
        for n in 0..20 {
            let body = format!("Subject: n{n}\r\n\r\nmessage {n}\r\n").into_bytes();
            let env = Envelope::new(
                "alice@office.example",
                vec![remote(&format!("r{n}@x.example"))],
            );
            ids.push((h.queue.enqueue(env, body.clone()).await.unwrap(), body));
        }
        // No runner was started, so nothing was delivered; the queue and db are dropped here
        // like a process that stops.
    }

    let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
    let listed = h.queue.list().unwrap();
    assert_eq!(listed.len(), 20);
    for (id, body) in &ids {
        let entry = h.queue.entry(*id).unwrap().expect("entry survives");
        assert_eq!(entry.recipients[0].status, Status::Pending);
        let spooled = std::fs::read(dir.path().join("spool/queue").join(id.to_string())).unwrap();
        assert_eq!(&spooled, body);
    }
}

#[tokio::test]
async fn concurrent_enqueues_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let h = open_queue(
        dir.path(),
        &config(60),
        Arc::new(ScriptedRemote::default()),
        None,
    );
    let mut tasks = Vec::new();
    for n in 0..64 {
        let q = h.queue.clone();
        tasks.push(tokio::spawn(async move {
            let env = Envelope::new("a@office.example", vec![remote(&format!("r{n}@x.example"))]);
            q.enqueue(env, MESSAGE).await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 64, "every enqueue got its own id");
    assert_eq!(h.queue.list().unwrap().len(), 64);
}

#[tokio::test]
async fn spool_file_without_record_is_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        open_queue(
            dir.path(),
            &config(60),
            Arc::new(ScriptedRemote::default()),
            None,
        );
    }
    let orphan = dir.path().join("spool/queue/00000000000000ff");
    std::fs::write(&orphan, b"half written").unwrap();
    let h = open_queue(
        dir.path(),
        &config(60),
        Arc::new(ScriptedRemote::default()),
        None,
    );
    assert!(!orphan.exists());
    assert!(h.queue.list().unwrap().is_empty());
}

#[tokio::test]
async fn duplicate_recipients_get_one_copy() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
    let (runner, stop) = spawn_runner(&h.queue);
    let env = Envelope::new(
        "c@x.example",
        vec![
            local("alice"),
            local("alice"),
            local("alice"),
            remote("b@y.example"),
            remote("b@Y.EXAMPLE"),
        ],
    );
    h.queue.enqueue(env, MESSAGE).await.unwrap();
    eventually("queue empty", 20, || h.queue.list().unwrap().is_empty()).await;
    assert_eq!(h.mailboxes.messages("alice").len(), 1);
    assert_eq!(h.mailboxes.messages("alice")[0], MESSAGE);
    assert_eq!(remote_t.attempts_for("b@y.example"), 1);
    assert_eq!(remote_t.attempts_for("b@Y.EXAMPLE"), 0);
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test]
async fn permanent_refusal_sends_a_failure_notice_with_the_remote_reply() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    let reply = "550 5.1.1 <nobody@y.example>: Recipient address rejected: User unknown";
    remote_t.set("nobody@y.example", OutcomeKind::Failed, reply);
    let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
    let (runner, stop) = spawn_runner(&h.queue);

    let env = Envelope::new(
        "alice@office.example",
        vec![remote("nobody@y.example"), remote("ok@y.example")],
    );
    h.queue.enqueue(env, MESSAGE).await.unwrap();
    eventually("notice delivered to alice", 20, || {
        h.mailboxes.messages("alice").len() == 1
    })
    .await;
    eventually("queue empty", 20, || h.queue.list().unwrap().is_empty()).await;

    let notice = &h.mailboxes.messages("alice")[0];
    let parsed = MessageParser::default().parse(notice).unwrap();
    let ct = parsed.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    let text = String::from_utf8_lossy(notice);
    assert!(
        text.contains(&format!("Diagnostic-Code: smtp; {reply}")),
        "{text}"
    );
    assert!(text.contains("Final-Recipient: rfc822; nobody@y.example"));
    assert!(
        !text.contains("Final-Recipient: rfc822; ok@y.example"),
        "only the failed one"
    );
    assert_eq!(remote_t.delivered_to("ok@y.example"), 1);
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test]
async fn null_sender_never_gets_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    remote_t.set("nobody@y.example", OutcomeKind::Failed, "550 5.1.1 unknown");
    let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
    let (runner, stop) = spawn_runner(&h.queue);
    h.queue
        .enqueue(Envelope::new("", vec![remote("nobody@y.example")]), MESSAGE)
        .await
        .unwrap();
    eventually("queue empty", 20, || h.queue.list().unwrap().is_empty()).await;
    // Give a wrongly queued notice time to show up, then check that none did.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(h.queue.list().unwrap().is_empty());
    assert_eq!(remote_t.attempts_for("nobody@y.example"), 1);
    assert_eq!(
        remote_t.jobs.lock().unwrap().len(),
        1,
        "no notice went out by SMTP either"
    );
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test]
async fn temporary_failure_is_retried_on_schedule_until_it_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    remote_t.set("b@y.example", OutcomeKind::Deferred, "451 4.3.0 try later");
    let h = open_queue(dir.path(), &config(1), remote_t.clone(), None);
    let (runner, stop) = spawn_runner(&h.queue);
    let id = h
        .queue
        .enqueue(
            Envelope::new("a@x.example", vec![remote("b@y.example")]),
            MESSAGE,
        )
        .await
        .unwrap();

    eventually("two attempts", 20, || {
        remote_t.attempts_for("b@y.example") >= 2
    })
    .await;
    let entry = h.queue.entry(id).unwrap().unwrap();
    assert!(entry.attempts >= 1);
    assert!(
        entry
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("451 4.3.0 try later")
    );
    remote_t.clear("b@y.example");
    eventually("queue empty", 20, || h.queue.list().unwrap().is_empty()).await;
    assert_eq!(remote_t.delivered_to("b@y.example"), 1);
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test]
async fn expired_message_bounces_with_the_last_reply() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    remote_t.set("b@y.example", OutcomeKind::Deferred, "451 4.3.0 try later");
    let mut cfg = config(1);
    cfg.expire_after = postroom_config::mail::Span(2);
    let h = open_queue(dir.path(), &cfg, remote_t.clone(), None);
    let (runner, stop) = spawn_runner(&h.queue);
    h.queue
        .enqueue(
            Envelope::new("alice@office.example", vec![remote("b@y.example")]),
            MESSAGE,
        )
        .await
        .unwrap();
    eventually("expiry notice to alice", 30, || {
        h.mailboxes.messages("alice").len() == 1
    })
    .await;
    let text = String::from_utf8_lossy(&h.mailboxes.messages("alice")[0]).into_owned();
    assert!(text.contains("Action: failed"));
    assert!(text.contains("Status: 4.4.7"));
    assert!(text.contains("451 4.3.0 try later"));
    eventually("queue empty", 20, || h.queue.list().unwrap().is_empty()).await;
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test]
async fn delay_notice_goes_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    remote_t.set("b@y.example", OutcomeKind::Deferred, "451 4.3.0 try later");
    let mut cfg = config(1);
    cfg.delay_notice_after = postroom_config::mail::Span(1);
    let h = open_queue(dir.path(), &cfg, remote_t.clone(), None);
    let (runner, stop) = spawn_runner(&h.queue);
    h.queue
        .enqueue(
            Envelope::new("alice@office.example", vec![remote("b@y.example")]),
            MESSAGE,
        )
        .await
        .unwrap();
    eventually("delay notice", 20, || {
        h.mailboxes.messages("alice").len() == 1
    })
    .await;
    eventually("more attempts", 20, || {
        remote_t.attempts_for("b@y.example") >= 4
    })
    .await;
    assert_eq!(
        h.mailboxes.messages("alice").len(),
        1,
        "the delay notice is sent once"
    );
    let text = String::from_utf8_lossy(&h.mailboxes.messages("alice")[0]).into_owned();
    assert!(text.contains("Action: delayed"));
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test]
async fn held_queue_delivers_locally_but_keeps_remote_until_flush() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    let h = open_queue(dir.path(), &config(1), remote_t.clone(), None);
    h.queue.hold();
    let (runner, stop) = spawn_runner(&h.queue);
    h.queue
        .enqueue(
            Envelope::new("c@x.example", vec![local("alice"), remote("b@y.example")]),
            MESSAGE,
        )
        .await
        .unwrap();
    eventually("local copy", 20, || {
        h.mailboxes.messages("alice").len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        remote_t.attempts_for("b@y.example"),
        0,
        "nothing leaves while held"
    );
    assert!(h.queue.wants_link().unwrap());

    h.queue.flush();
    eventually("queue empty", 20, || h.queue.list().unwrap().is_empty()).await;
    assert_eq!(remote_t.delivered_to("b@y.example"), 1);
    assert_eq!(h.mailboxes.messages("alice").len(), 1);
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test]
async fn deliveries_per_destination_stay_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    *remote_t.delay.lock().unwrap() = Duration::from_millis(200);
    let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
    for n in 0..8 {
        let env = Envelope::new("a@x.example", vec![remote(&format!("r{n}@same.example"))]);
        h.queue.enqueue(env, MESSAGE).await.unwrap();
    }
    let (runner, stop) = spawn_runner(&h.queue);
    eventually("queue empty", 30, || h.queue.list().unwrap().is_empty()).await;
    assert_eq!(remote_t.jobs.lock().unwrap().len(), 8);
    let max = remote_t.max_running.load(Ordering::SeqCst);
    assert!(max <= 2, "at most 2 at once to one destination, saw {max}");
    assert!(max == 2, "and the limit is used: saw {max}");
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test]
async fn local_delivery_repeated_after_a_crash_is_not_duplicated() {
    // A crash between the Maildir rename and the queue update: the entry is still pending on
    // restart, and delivering it again must find the earlier copy.
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
    let id = h
        .queue
        .enqueue(Envelope::new("c@x.example", vec![local("alice")]), MESSAGE)
        .await
        .unwrap();
    let entry = h.queue.entry(id).unwrap().unwrap();
    let name = postroom_queue::transport::local_unique_name(
        id,
        entry.arrived,
        &entry.recipients[0].recipient,
    );
    std::fs::create_dir_all(dir.path().join("mail/alice/new")).unwrap();
    std::fs::write(dir.path().join("mail/alice/new").join(&name), MESSAGE).unwrap();

    let (runner, stop) = spawn_runner(&h.queue);
    eventually("queue empty", 20, || h.queue.list().unwrap().is_empty()).await;
    assert_eq!(h.mailboxes.messages("alice").len(), 1);
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test]
async fn unknown_local_user_bounces_and_fax_goes_to_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let h = open_queue(
        dir.path(),
        &config(60),
        Arc::new(ScriptedRemote::default()),
        None,
    );
    let (runner, stop) = spawn_runner(&h.queue);
    let fax = Recipient::new(
        "5551234@fax.office.example",
        Destination::Fax {
            number: "5551234".into(),
        },
    );
    let id = h
        .queue
        .enqueue(
            Envelope::new("alice@office.example", vec![local("ghost"), fax]),
            MESSAGE,
        )
        .await
        .unwrap();
    eventually("notice to alice", 20, || {
        h.mailboxes.messages("alice").len() == 1
    })
    .await;
    let fax_file = dir.path().join(format!("spool/fax/{id}.5551234.eml"));
    eventually("fax spooled", 20, || fax_file.exists()).await;
    assert_eq!(std::fs::read(fax_file).unwrap(), MESSAGE);
    let notice = String::from_utf8_lossy(&h.mailboxes.messages("alice")[0]).into_owned();
    assert!(notice.contains("Status: 5.1.1"));
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test]
async fn many_recipients_of_one_domain_go_in_transactions_of_at_most_100() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    let h = open_queue(dir.path(), &config(60), remote_t.clone(), None);
    let recipients = (0..250)
        .map(|n| remote(&format!("r{n}@big.example")))
        .collect();
    h.queue
        .enqueue(Envelope::new("a@x.example", recipients), MESSAGE)
        .await
        .unwrap();
    let (runner, stop) = spawn_runner(&h.queue);
    eventually("queue empty", 30, || h.queue.list().unwrap().is_empty()).await;
    let sizes: Vec<usize> = remote_t
        .jobs
        .lock()
        .unwrap()
        .iter()
        .map(|j| j.recipients.len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 250, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n <= 100), "{sizes:?}");
    let _ = stop.send(());
    runner.await.unwrap();
}
