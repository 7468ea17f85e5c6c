//! The queue's routes on the mail component's control socket:
//!
//! - `GET /queue`: every entry with its recipients, attempts, next try and last error;
//! - `POST /queue/flush`: try everything now; while remote delivery is held (the link is
//!   down) remote recipients keep waiting for the link, and the answer says how many messages;
//! - `DELETE /queue/{id}`: remove an entry without notice;
//! - `POST /queue/{id}/bounce`: give up on an entry; the sender gets a failure notice.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};

use crate::queue::{EntryView, Queue};
use crate::{Error, QueueId};

/// The answer of `GET /queue`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueueListing {
    /// Whether remote delivery is held (link down in on-demand mode).
    pub held: bool,
    /// The entries, oldest first.
    pub entries: Vec<EntryView>,
}

/// The routes, ready to be merged into the mail component's control router.
pub fn router(queue: Queue) -> Router {
    Router::new()
        .route("/queue", get(list))
        .route("/queue/flush", post(flush))
        .route("/queue/{id}", delete(remove))
        .route("/queue/{id}/bounce", post(bounce))
        .with_state(queue)
}

async fn list(State(queue): State<Queue>) -> Response {
    let q = queue.clone();
    match tokio::task::spawn_blocking(move || q.list()).await {
        Ok(Ok(entries)) => Json(QueueListing {
            held: queue.is_held(),
            entries,
        })
        .into_response(),
        Ok(Err(e)) => failure(e),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, json_error(e.to_string())).into_response(),
    }
}

/// The answer of `POST /queue/flush`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FlushReply {
    /// Always true: every entry that may go now is being tried.
    pub flushed: bool,
    /// Remote delivery is held (the link is down): remote recipients were not tried.
    pub held: bool,
    /// With `held`, how many messages have remote recipients waiting for the link.
    pub waiting_for_link: usize,
}

async fn flush(State(queue): State<Queue>) -> Response {
    if !queue.is_held() {
        queue.flush();
        return Json(FlushReply {
            flushed: true,
            held: false,
            waiting_for_link: 0,
        })
        .into_response();
    }

    // Trying remote recipients without a link would only fail them and push their next try
    // out; the link's coming up flushes them.
    queue.retry_now();
    let q = queue.clone();
    match tokio::task::spawn_blocking(move || q.list()).await {
        Ok(Ok(entries)) => Json(FlushReply {
            flushed: true,
            held: true,
            waiting_for_link: entries.iter().filter(|e| waits_for_link(e)).count(),
        })
        .into_response(),
        Ok(Err(e)) => failure(e),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, json_error(e.to_string())).into_response(),
    }
}

/// Whether a remote recipient of `entry` is still pending.
fn waits_for_link(entry: &EntryView) -> bool {
    entry
        .recipients
        .iter()
        .any(|r| r.destination == "remote" && r.status == "pending")
}

async fn remove(State(queue): State<Queue>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<QueueId>() else {
        return bad_id(&id);
    };
    match queue.delete(id).await {
        Ok(()) => Json(serde_json::json!({ "deleted": id.to_string() })).into_response(),
        Err(e) => failure(e),
    }
}

async fn bounce(State(queue): State<Queue>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<QueueId>() else {
        return bad_id(&id);
    };
    match queue.bounce(id).await {
        Ok(()) => Json(serde_json::json!({ "bounced": id.to_string() })).into_response(),
        Err(e) => failure(e),
    }
}

fn bad_id(id: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        json_error(format!("{id:?} is not a queue id")),
    )
        .into_response()
}

fn json_error(message: String) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "error": message }))
}

fn failure(e: Error) -> Response {
    let status = match e {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Busy(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, json_error(e.to_string())).into_response()
}
