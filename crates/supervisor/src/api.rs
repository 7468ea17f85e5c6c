//! The supervisor's control socket, `<run_dir>/supervisor.sock`.
//!
//! | request | answer |
//! |---|---|
//! | `GET /health` | [`Health`]; 503 while the main loop is stuck |
//! | `GET /status` | [`Status`] with a [`SupervisorDetail`] |
//! | `POST /components/{name}/restart` | [`RestartReply`]; 404 for an unknown component |
//! | `POST /reload` | [`ReloadReply`]: the configuration read again and applied, SIGHUP to |
//! | | the running components; 400 with the mistakes if it has any |
//! | `GET /logs?component=NAME&lines=N` | [`LogsReply`]: NAME a component or `supervisor`; 404 |
//! | | naming the valid names for another |
//! | `POST /debug/stall` | only with `supervisor.debug_hooks`: blocks the main loop |
//!
//! The server runs on the runtime's worker thread, apart from the main loop, so `/status` and
//! `/logs` still answer while the loop is stuck (with the state it last published).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use postroom_control::{ApiError, Health, Status};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::logs::{LogBook, OWN_LOG};
use crate::status::{
    ComponentStatus, LogsReply, ReloadReply, RestartReply, StallRequest, SupervisorDetail,
};
use crate::watchdog::Gate;

/// How long a request waits for the main loop to act on it.
const LOOP_ANSWER: Duration = Duration::from_secs(5);

/// The lines `GET /logs` returns per component when not told.
const DEFAULT_LINES: usize = 100;

/// What the control server asks of the main loop.
#[derive(Debug)]
pub enum Request {
    /// Stop a component and start it again at once, forgetting its crashes.
    Restart {
        name: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Read the configuration again, apply it, and send SIGHUP to the running components.
    Reload {
        reply: oneshot::Sender<Result<ReloadReply, String>>,
    },
    /// Block the main loop (test hook).
    Stall { for_: Duration },
}

/// What the handlers share with the main loop.
#[derive(Debug)]
pub struct Shared {
    /// The component table as the main loop last published it.
    pub components: Mutex<Vec<ComponentStatus>>,
    /// The components' recent output.
    pub logs: LogBook,
    /// Requests to the main loop.
    pub requests: mpsc::Sender<Request>,
    /// The watchdog's view of the main loop.
    pub gate: Arc<Gate>,
    /// The watchdog device, for `/status`.
    pub device: Option<std::path::PathBuf>,
    /// Whether systemd watches us.
    pub systemd: bool,
    /// A loop silent this long is stuck.
    pub stall_limit: Duration,
    /// When the supervisor started.
    pub started: Instant,
    /// Whether the test-only endpoints answer.
    pub debug_hooks: bool,
}

/// The router of `supervisor.sock`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/components/{name}/restart", post(restart))
        .route("/reload", post(reload))
        .route("/logs", get(logs))
        .route("/debug/stall", post(stall))
        .with_state(shared)
}

async fn health(State(shared): State<Arc<Shared>>) -> Result<Json<Health>, ApiError> {
    let since = shared.gate.since_beat();
    if since > shared.stall_limit {
        return Err(ApiError::unavailable(format!(
            "the supervisor loop has not run for {}s",
            since.as_secs()
        )));
    }
    Ok(Json(Health::ok("supervisor")))
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<Status<SupervisorDetail>> {
    let components = lock(&shared.components).clone();
    let watchdog = shared.gate.status(shared.device.clone(), shared.systemd);
    Json(Status::new(
        "supervisor",
        shared.started,
        SupervisorDetail {
            components,
            watchdog,
        },
    ))
}

async fn restart(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<RestartReply>, ApiError> {
    let (reply, answer) = oneshot::channel();
    ask(
        &shared,
        Request::Restart {
            name: name.clone(),
            reply,
        },
    )
    .await?;
    match wait(answer).await? {
        Ok(()) => Ok(Json(RestartReply { restarting: name })),
        Err(message) => Err(ApiError::not_found(message)),
    }
}

async fn reload(State(shared): State<Arc<Shared>>) -> Result<Json<ReloadReply>, ApiError> {
    let (reply, answer) = oneshot::channel();
    ask(&shared, Request::Reload { reply }).await?;
    match wait(answer).await? {
        Ok(reloaded) => Ok(Json(reloaded)),
        Err(mistakes) => Err(ApiError::bad_request(mistakes)),
    }
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    component: Option<String>,
    lines: Option<usize>,
}

async fn logs(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<LogsReply>, ApiError> {
    let lines = query.lines.unwrap_or(DEFAULT_LINES);
    let components = match query.component {
        None => shared.logs.tails(lines),
        Some(name) => {
            let names = log_names(&shared);
            if !names.contains(&name) {
                return Err(ApiError::not_found(format!(
                    "no log named {name:?}; the logs are: {}",
                    names.join(", ")
                )));
            }
            let tail = shared.logs.tail(&name, lines);
            [(name, tail)].into_iter().collect()
        }
    };
    Ok(Json(LogsReply { components }))
}

/// The names `GET /logs` knows: the supervisor's own, the configured components, and those
/// removed by a reload whose lines are still kept; in name order.
fn log_names(shared: &Shared) -> Vec<String> {
    let mut names = shared.logs.names();
    names.push(OWN_LOG.to_owned());
    names.extend(lock(&shared.components).iter().map(|c| c.name.clone()));
    names.sort();
    names.dedup();
    names
}

async fn stall(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<StallRequest>,
) -> Result<Json<StallRequest>, ApiError> {
    if !shared.debug_hooks {
        return Err(ApiError::not_found(
            "debug hooks are off (supervisor.debug_hooks)",
        ));
    }
    let for_ = Duration::try_from_secs_f64(body.secs)
        .map_err(|_| ApiError::bad_request("secs must be a non-negative number"))?;
    ask(&shared, Request::Stall { for_ }).await?;
    Ok(Json(body))
}

async fn ask(shared: &Shared, request: Request) -> Result<(), ApiError> {
    shared
        .requests
        .send_timeout(request, LOOP_ANSWER)
        .await
        .map_err(|_| ApiError::unavailable("the supervisor loop does not take requests"))
}

async fn wait<T>(answer: oneshot::Receiver<T>) -> Result<T, ApiError> {
    match tokio::time::timeout(LOOP_ANSWER, answer).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(ApiError::internal(
            "the supervisor loop dropped the request",
        )),
        Err(_) => Err(ApiError::unavailable(
            "the supervisor loop did not answer in time",
        )),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
