//! The queue's control routes, called as the control socket's HTTP server would call them.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use postroom_queue::control::{FlushReply, QueueListing, router};
use postroom_queue::{Envelope, OutcomeKind};
use tower::ServiceExt;

async fn call(app: &axum::Router, method: &str, uri: &str) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn queue_list_shows_recipients_attempts_and_decoded_latin2_headers() {
    let dir = tempfile::tempdir().unwrap();
    let h = open_queue(
        dir.path(),
        &config(60),
        Arc::new(ScriptedRemote::default()),
        None,
    );
    let eml = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/cases/mime-latin2-encoded-words.eml"
    ))
    .unwrap();
    let id = h
        .queue
        .enqueue(
            Envelope::new("k.d@sender.example", vec![remote("bob@elsewhere.example")]),
            eml,
        )
        .await
        .unwrap();
    h.queue.hold();

    let app = router(h.queue.clone());
    let (status, body) = call(&app, "GET", "/queue").await;
    assert_eq!(status, StatusCode::OK);
    let listing: QueueListing = serde_json::from_value(body).unwrap();
    assert!(listing.held);
    assert_eq!(listing.entries.len(), 1);
    let e = &listing.entries[0];
    assert_eq!(e.id, id.to_string());
    assert_eq!(
        e.from.as_deref(),
        Some("Kristýna Dvořáková <k.d@sender.example>")
    );
    assert_eq!(e.subject.as_deref(), Some("Objednávka"));
    assert_eq!(e.attempts, 0);
    assert_eq!(e.recipients[0].address, "bob@elsewhere.example");
    assert_eq!(e.recipients[0].status, "pending");
    assert_eq!(e.recipients[0].destination, "remote");
}

#[tokio::test]
async fn delete_removes_the_entry_and_its_body_without_notice() {
    let dir = tempfile::tempdir().unwrap();
    let h = open_queue(
        dir.path(),
        &config(60),
        Arc::new(ScriptedRemote::default()),
        None,
    );
    let id = h
        .queue
        .enqueue(
            Envelope::new("alice@office.example", vec![remote("b@y.example")]),
            b"Subject: x\r\n\r\nx\r\n".to_vec(),
        )
        .await
        .unwrap();
    let app = router(h.queue.clone());
    let (status, _) = call(&app, "DELETE", &format!("/queue/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.queue.list().unwrap().is_empty());
    assert!(!dir.path().join("spool/queue").join(id.to_string()).exists());
    assert!(h.mailboxes.messages("alice").is_empty());

    let (status, _) = call(&app, "DELETE", &format!("/queue/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, "DELETE", "/queue/not-an-id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bounce_returns_the_message_to_its_sender() {
    let dir = tempfile::tempdir().unwrap();
    let h = open_queue(
        dir.path(),
        &config(60),
        Arc::new(ScriptedRemote::default()),
        None,
    );
    let id = h
        .queue
        .enqueue(
            Envelope::new("alice@office.example", vec![remote("b@y.example")]),
            b"Subject: stuck\r\n\r\nx\r\n".to_vec(),
        )
        .await
        .unwrap();
    let app = router(h.queue.clone());
    let (status, _) = call(&app, "POST", &format!("/queue/{id}/bounce")).await;
    assert_eq!(status, StatusCode::OK);

    // The notice is itself queued (null sender) for alice; a runner delivers it.
    let listing = h.queue.list().unwrap();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].sender, "");
    assert_eq!(listing[0].recipients[0].destination, "local");
    let (runner, stop) = {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let q = h.queue.clone();
        (
            tokio::spawn(async move {
                q.run(async move {
                    let _ = stopped.await;
                })
                .await
            }),
            stop,
        )
    };
    eventually("notice delivered", 20, || {
        h.mailboxes.messages("alice").len() == 1
    })
    .await;
    let text = String::from_utf8_lossy(&h.mailboxes.messages("alice")[0]).into_owned();
    assert!(text.contains("returned to sender by the administrator"));
    assert!(text.contains("Subject: stuck"));
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test]
async fn flush_sends_now_what_waits_for_its_next_try() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    remote_t.set("b@y.example", OutcomeKind::Deferred, "451 4.3.0 later");
    let h = open_queue(dir.path(), &config(3_600), remote_t.clone(), None);
    h.queue
        .enqueue(
            Envelope::new("a@x.example", vec![remote("b@y.example")]),
            b"x\r\n".to_vec(),
        )
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let q = h.queue.clone();
    let runner = tokio::spawn(async move {
        q.run(async move {
            let _ = stopped.await;
        })
        .await
    });
    eventually("first attempt", 20, || {
        remote_t.attempts_for("b@y.example") == 1
    })
    .await;

    // The next try is an hour away; a flush makes it now.
    remote_t.clear("b@y.example");
    let app = router(h.queue.clone());
    let (status, _) = call(&app, "POST", "/queue/flush").await;
    assert_eq!(status, StatusCode::OK);
    eventually("delivered after flush", 20, || {
        h.queue.list().unwrap().is_empty()
    })
    .await;
    assert_eq!(remote_t.delivered_to("b@y.example"), 1);
    let _ = stop.send(());
    runner.await.unwrap();
}

/// The tester's case: `ctl queue flush` with the link down released the hold, so remote mail
/// was tried without a link (failing, and its next try pushed out) while the answer looked like
/// plain success. Now the hold stays, and the answer says how many messages wait for the link.
#[tokio::test]
async fn flush_while_the_link_is_down_leaves_remote_mail_waiting_for_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let remote_t = Arc::new(ScriptedRemote::default());
    let h = open_queue(dir.path(), &config(3_600), remote_t.clone(), None);
    h.queue.hold();
    for to in ["b@y.example", "c@z.example"] {
        h.queue
            .enqueue(
                Envelope::new("a@x.example", vec![remote(to)]),
                b"x\r\n".to_vec(),
            )
            .await
            .unwrap();
    }
    let (runner, stop) = spawn_runner(&h.queue);

    let app = router(h.queue.clone());
    let (status, body) = call(&app, "POST", "/queue/flush").await;
    assert_eq!(status, StatusCode::OK);
    let reply: FlushReply = serde_json::from_value(body).unwrap();
    assert_eq!(
        reply,
        FlushReply {
            flushed: true,
            held: true,
            waiting_for_link: 2
        }
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(h.queue.is_held());
    assert_eq!(remote_t.attempts_for("b@y.example"), 0);

    // The link comes up: the mail component's flush releases the hold.
    h.queue.flush();
    eventually("delivered once the link is up", 20, || {
        h.queue.list().unwrap().is_empty()
    })
    .await;
    assert_eq!(remote_t.delivered_to("b@y.example"), 1);
    let _ = stop.send(());
    runner.await.unwrap();
}
