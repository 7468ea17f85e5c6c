//! The control API on `link.sock`.
//!
//! | request | answer |
//! |---|---|
//! | `GET /health` | `{"component":"link","pid":..,"ok":true}` |
//! | `GET /status` | the policy's status in `detail`: state, since, current call, next scheduled call, holds |
//! | `POST /hold` `{"reason":".."}` | once the link is up: `{"id":n,"state":"up"}`; on failure 503 `{"error":".."}` |
//! | `DELETE /hold/{id}` | 204, or 404 for an unknown hold |
//! | `POST /dial`, `POST /hangup` | 202 `{"accepted":true}`; 409 in permanent mode |
//! | `GET /calls?limit=n` | the call log, oldest first |
//! | `GET /events` | newline-delimited JSON: the current state, then every change |

use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use postroom_control::{ApiError, Status, health_route, ndjson_stream};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};

use crate::policy::{HoldId, PolicyStatus, StateChange};
use crate::service::{Handle, Request};
use crate::store::LoggedCall;

#[derive(Clone)]
struct App {
    handle: Handle,
    started: Instant,
    on_demand: bool,
    device: String,
}

/// `GET /status` detail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkStatus {
    /// `permanent` or `on-demand`.
    pub mode: String,
    /// The modem device (on demand).
    pub device: String,
    /// The policy's view.
    #[serde(flatten)]
    pub policy: PolicyStatus,
}

/// `POST /hold` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HoldRequest {
    /// Who holds and why (`mail: 3 messages queued`).
    pub reason: String,
}

/// `POST /hold` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldReply {
    /// The hold, to release with `DELETE /hold/{id}`.
    pub id: HoldId,
    /// Always `up`: a failed hold is an error reply.
    pub state: String,
}

/// `GET /calls` query.
#[derive(Debug, Clone, Deserialize)]
struct CallsQuery {
    limit: Option<usize>,
}

/// The router for `link.sock`.
pub fn router(handle: Handle, on_demand: bool, device: String) -> Router {
    let app = App {
        handle,
        started: Instant::now(),
        on_demand,
        device,
    };
    Router::new()
        .route("/health", health_route("link"))
        .route("/status", get(status))
        .route("/hold", post(hold))
        .route("/hold/{id}", delete(release))
        .route("/dial", post(dial))
        .route("/hangup", post(hangup))
        .route("/calls", get(calls))
        .route("/events", get(events))
        .with_state(app)
}

async fn status(State(app): State<App>) -> Result<Json<Status<LinkStatus>>, ApiError> {
    let policy = app.handle.status().await.ok_or_else(stopped)?;
    let mode = if app.on_demand {
        "on-demand"
    } else {
        "permanent"
    };
    let detail = LinkStatus {
        mode: mode.into(),
        device: app.device.clone(),
        policy,
    };
    Ok(Json(Status::new("link", app.started, detail)))
}

async fn hold(
    State(app): State<App>,
    body: Option<Json<HoldRequest>>,
) -> Result<Json<HoldReply>, ApiError> {
    let reason = body.map(|Json(b)| b.reason).unwrap_or_default();
    let reason = if reason.is_empty() {
        "unnamed".to_owned()
    } else {
        reason
    };
    let (reply, answer) = oneshot::channel();
    if !app.handle.send(Request::Hold { reason, reply }) {
        return Err(stopped());
    }
    // From here until the answer is sent, a client that goes away (and with it this future)
    // takes its hold along; otherwise the line would stay up for nobody until max_call_secs.
    let mut guard = HoldGuard {
        handle: app.handle.clone(),
        state: Pending::Asked(answer),
    };
    let (id, up) = guard.id().await.ok_or_else(stopped)?;
    let up = up.await;
    // Up or failed, the answer is about to go out: the hold is the client's from now on.
    guard.state = Pending::Answered;
    match up {
        Ok(Ok(())) => Ok(Json(HoldReply {
            id,
            state: "up".into(),
        })),
        Ok(Err(why)) => Err(ApiError::unavailable(format!(
            "hold {id}: the link failed: {why}"
        ))),
        Err(_) => Err(ApiError::unavailable(format!(
            "hold {id} was released before the link came up"
        ))),
    }
}

/// Where a `POST /hold` stands, for [`HoldGuard`].
enum Pending {
    /// The hold was asked for; its id is on the way.
    Asked(oneshot::Receiver<(HoldId, oneshot::Receiver<crate::service::HoldAnswer>)>),
    /// The hold exists and the client waits for the link.
    Held(HoldId),
    /// The client has (or is about to have) its answer; nothing to undo.
    Answered,
}

/// Releases the hold of a `POST /hold` whose client went away before the answer: axum drops
/// the handler's future when the connection closes.
struct HoldGuard {
    handle: Handle,
    state: Pending,
}

impl HoldGuard {
    /// Waits for the service to make the hold; from then on a drop releases it by its id.
    async fn id(&mut self) -> Option<(HoldId, oneshot::Receiver<crate::service::HoldAnswer>)> {
        let Pending::Asked(answer) = &mut self.state else {
            return None;
        };
        let (id, up) = answer.await.ok()?;
        self.state = Pending::Held(id);
        Some((id, up))
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, Pending::Answered) {
            Pending::Answered => {}
            Pending::Held(id) => release_abandoned(&self.handle, id),
            Pending::Asked(mut answer) => match answer.try_recv() {
                Ok((id, _)) => release_abandoned(&self.handle, id),
                Err(oneshot::error::TryRecvError::Closed) => {}
                // The service has not answered yet: wait for the id elsewhere, then release.
                Err(oneshot::error::TryRecvError::Empty) => {
                    let handle = self.handle.clone();
                    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                        runtime.spawn(async move {
                            if let Ok((id, _)) = answer.await {
                                release_abandoned(&handle, id);
                            }
                        });
                    }
                }
            },
        }
    }
}

fn release_abandoned(handle: &Handle, id: HoldId) {
    tracing::info!(
        hold = id,
        "hold released: its client went away before the link came up"
    );
    // Nobody waits for the reply; the service ignores a reply channel that is gone.
    let (reply, _) = oneshot::channel();
    handle.send(Request::Release { id, reply });
}

async fn release(State(app): State<App>, Path(id): Path<HoldId>) -> Result<StatusCode, ApiError> {
    let (reply, answer) = oneshot::channel();
    if !app.handle.send(Request::Release { id, reply }) {
        return Err(stopped());
    }
    if answer.await.map_err(|_| stopped())? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no hold {id}")))
    }
}

async fn dial(State(app): State<App>) -> Result<Response, ApiError> {
    by_hand(&app, Request::Dial)
}

async fn hangup(State(app): State<App>) -> Result<Response, ApiError> {
    by_hand(&app, Request::Hangup)
}

fn by_hand(app: &App, request: Request) -> Result<Response, ApiError> {
    if !app.on_demand {
        return Err(ApiError::conflict(
            "the link is permanent: there is nothing to dial or hang up",
        ));
    }
    if !app.handle.send(request) {
        return Err(stopped());
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "accepted": true })),
    )
        .into_response())
}

async fn calls(
    State(app): State<App>,
    Query(q): Query<CallsQuery>,
) -> Result<Json<Vec<LoggedCall>>, ApiError> {
    let log = app.handle.log.clone();
    let limit = q.limit.unwrap_or(100);
    let calls = tokio::task::spawn_blocking(move || log.recent(limit))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(calls))
}

async fn events(State(app): State<App>) -> Result<Response, ApiError> {
    let mut changes = app.handle.subscribe();
    let now = app.handle.status().await.ok_or_else(stopped)?;
    let (sender, response) = ndjson_stream(16);
    tokio::spawn(async move {
        let first = StateChange {
            state: now.state,
            at: now.since,
            detail: "current state".into(),
        };
        if sender.send(&first).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => {
                        if sender.send(&change).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "events reader lagging");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = sender.closed() => return,
            }
        }
    });
    Ok(response)
}

fn stopped() -> ApiError {
    ApiError::unavailable("the link service has stopped")
}
