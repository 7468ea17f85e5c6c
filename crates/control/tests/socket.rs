//! The control API over real Unix sockets in a temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::extract::Path as UrlPath;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use postroom_control::{
    ApiError, BlockingClient, Client, Error, Health, Method, Status, StatusCode, health_route,
    ndjson_stream, serve,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Change {
    seq: u32,
    state: String,
}

fn app() -> Router {
    let started = Instant::now();
    Router::new()
        .route("/health", health_route("mail"))
        .route(
            "/status",
            get(move || async move { Json(Status::new("mail", started, vec!["queue: 0"])) }),
        )
        .route(
            "/echo",
            post(|Json(v): Json<serde_json::Value>| async move { Json(v) }),
        )
        .route(
            "/items/{id}",
            delete(|UrlPath(id): UrlPath<u32>| async move {
                if id == 7 {
                    Ok(())
                } else if id == 500 {
                    Err(ApiError::internal("the store is broken"))
                } else {
                    Err(ApiError::not_found(format!("no item {id}")))
                }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/forever",
            get(|| async {
                let (tx, response) = ndjson_stream(1);
                tokio::spawn(async move {
                    let _ = tx.send(&"first").await;
                    // Holds the stream open until the reader goes.
                    tx.closed().await;
                });
                response
            }),
        )
        .route(
            "/endless-line",
            get(|| async {
                let (tx, response) = ndjson_stream(4);
                tokio::spawn(async move {
                    // A JSON string of 2 MiB is one line longer than the client accepts.
                    let long = "x".repeat(2 << 20);
                    let _ = tx.send(&long).await;
                });
                response
            }),
        )
        .route(
            "/changes",
            get(|| async {
                let (tx, response) = ndjson_stream(4);
                tokio::spawn(async move {
                    for (seq, state) in [(1, "dialling"), (2, "up"), (3, "down")] {
                        if tx
                            .send(&Change {
                                seq,
                                state: state.to_owned(),
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
                response
            }),
        )
}

#[tokio::test]
async fn round_trip_over_a_real_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mail.sock");
    let server = serve(&socket, app()).await.unwrap();
    let client = Client::new(&socket);

    let health: Health = client.get_json("/health").await.unwrap();
    assert_eq!(
        health,
        Health {
            component: "mail".into(),
            pid: std::process::id(),
            ok: true
        }
    );

    let status: Status<Vec<String>> = client.get_json("/status").await.unwrap();
    assert_eq!(status.component, "mail");
    assert_eq!(status.detail, vec!["queue: 0".to_owned()]);

    let echoed: serde_json::Value = client
        .post_json("/echo", &serde_json::json!({"a": [1, 2]}))
        .await
        .unwrap();
    assert_eq!(echoed, serde_json::json!({"a": [1, 2]}));

    client.delete("/items/7").await.unwrap();

    let reply = client.request(Method::GET, "/nowhere", None).await.unwrap();
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn socket_is_group_accessible_and_removed_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run").join("link.sock");
    let server = serve(&socket, app()).await.unwrap();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    server.shutdown().await.unwrap();
    assert!(!socket.exists());
}

#[tokio::test]
async fn stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mail.sock");
    // A socket file whose listener is gone, as a killed process leaves it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());

    let stale = Client::new(&socket)
        .get_json::<Health>("/health")
        .await
        .unwrap_err();
    assert!(matches!(stale, Error::Unreachable { .. }), "{stale}");
    assert_eq!(
        stale.to_string(),
        format!(
            "cannot reach the mail component at {}: connection refused",
            socket.display()
        )
    );

    let server = serve(&socket, app()).await.unwrap();
    let health: Health = Client::new(&socket).get_json("/health").await.unwrap();
    assert!(health.ok);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn live_socket_is_not_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mail.sock");
    let first = serve(&socket, app()).await.unwrap();
    let second = serve(&socket, app()).await.unwrap_err();
    assert!(matches!(second, Error::InUse { .. }), "{second}");
    // The first server still answers.
    let _: Health = Client::new(&socket).get_json("/health").await.unwrap();
    first.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_regular_file_at_the_socket_path_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mail.sock");
    std::fs::write(&socket, b"precious").unwrap();
    let err = serve(&socket, app()).await.unwrap_err();
    assert!(matches!(err, Error::NotASocket { .. }), "{err}");
    assert_eq!(std::fs::read(&socket).unwrap(), b"precious");
}

#[tokio::test]
async fn missing_socket_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mail.sock");
    let err = Client::new(&socket)
        .get_json::<Health>("/health")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot reach the mail component at {}: no such socket (is it running?)",
            socket.display()
        )
    );
}

#[tokio::test]
async fn error_status_carries_the_components_message() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mail.sock");
    let server = serve(&socket, app()).await.unwrap();
    let err = Client::new(&socket).delete("/items/3").await.unwrap_err();
    match &err {
        Error::Refused {
            status, message, ..
        } => {
            assert_eq!(*status, StatusCode::NOT_FOUND);
            assert_eq!(message, "no item 3");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(err.to_string(), "the mail component refused: no item 3");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failure_names_the_request_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mail.sock");
    let server = serve(&socket, app()).await.unwrap();
    let err = Client::new(&socket).delete("/items/500").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the mail component failed DELETE /items/500: 500 Internal Server Error: \
         the store is broken"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn wrong_json_shape_is_a_bad_reply() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mail.sock");
    let server = serve(&socket, app()).await.unwrap();
    let err = Client::new(&socket)
        .get_json::<Vec<u8>>("/health")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadReply { .. }), "{err}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_slow_component_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mail.sock");
    let server = serve(&socket, app()).await.unwrap();
    let client = Client::new(&socket).with_timeout(Duration::from_millis(200));
    let err = client.get_json::<String>("/slow").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn streamed_lines_arrive_in_order_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("link.sock");
    let server = serve(&socket, app()).await.unwrap();
    let mut lines = Client::new(&socket).stream_lines("/changes").await.unwrap();
    let mut seen = Vec::new();
    while let Some(change) = lines.next_json::<Change>().await.unwrap() {
        seen.push(change.state);
    }
    assert_eq!(seen, ["dialling", "up", "down"]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn relative_path_is_rejected_before_connecting() {
    let err = Client::new("/nonexistent/mail.sock")
        .get_json::<Health>("health")
        .await;
    assert!(matches!(err, Err(Error::InvalidPath { .. })), "{err:?}");
}

#[test]
fn blocking_client_works_outside_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("supervisor.sock");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(serve(&socket, app())).unwrap();

    let socket_for_thread = socket.clone();
    let (health, lines) = std::thread::spawn(move || {
        let client = BlockingClient::new(&socket_for_thread).unwrap();
        let health: Health = client.get_json("/health").unwrap();
        let mut lines = Vec::new();
        client
            .for_each_line("/changes", |line| {
                lines.push(line.to_owned());
                true
            })
            .unwrap();
        (health, lines)
    })
    .join()
    .unwrap();
    assert_eq!(health.component, "mail");
    assert_eq!(lines.len(), 3);

    runtime.block_on(server.shutdown()).unwrap();
    assert!(!Path::new(&socket).exists());
}

#[tokio::test]
async fn shutdown_does_not_wait_forever_for_an_open_stream() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("link.sock");
    let server = serve(&socket, app()).await.unwrap();
    let mut lines = Client::new(&socket).stream_lines("/forever").await.unwrap();
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("\"first\"")
    );

    // Generous bound for a loaded machine; the grace period is two seconds.
    tokio::time::timeout(Duration::from_secs(20), server.shutdown())
        .await
        .unwrap()
        .unwrap();
    assert!(!socket.exists());
    let err = Client::new(&socket).health().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn an_overlong_streamed_line_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("link.sock");
    let server = serve(&socket, app()).await.unwrap();
    let mut lines = Client::new(&socket)
        .stream_lines("/endless-line")
        .await
        .unwrap();
    let err = lines.next_line().await.unwrap_err();
    assert!(matches!(err, Error::LineTooLong { .. }), "{err}");
    server.shutdown().await.unwrap();
}
