//! The control API of `postroom mail` on `<run_dir>/mail.sock`: GET /health and GET /status.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use postroom_control::{Status, health_route};
use serde::Serialize;

use crate::app::Addresses;
use crate::smtp_server::Shared;

/// What `GET /status` says in its `detail`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct MailStatus {
    /// The SMTP listener addresses: smtp, submission, submissions.
    pub listeners: Vec<(String, String)>,
    /// SMTP connections open now.
    pub connections: u64,
    /// Messages accepted since start.
    pub accepted: u64,
    /// Connections turned away by a connection limit.
    pub refused_connections: u64,
    /// Configurations applied by a reload since start (`ctl reload` waits for it to move).
    #[serde(default)]
    pub reloads: u64,
}

#[derive(Clone)]
struct AppState {
    smtp: Arc<Shared>,
    addresses: Addresses,
    started: Instant,
}

/// The router of the control socket.
pub fn router(smtp: Arc<Shared>, addresses: Addresses, started: Instant) -> Router {
    Router::new()
        .route("/health", health_route("mail"))
        .route("/status", get(status))
        .with_state(AppState {
            smtp,
            addresses,
            started,
        })
}

async fn status(State(state): State<AppState>) -> Json<Status<MailStatus>> {
    let c = &state.smtp.counters;
    let a = &state.addresses;
    let detail = MailStatus {
        listeners: vec![
            ("smtp".into(), a.smtp.to_string()),
            ("submission".into(), a.submission.to_string()),
            ("submissions".into(), a.submissions.to_string()),
        ],
        connections: c.connections.load(Ordering::Relaxed),
        accepted: c.accepted.load(Ordering::Relaxed),
        refused_connections: c.refused_connections.load(Ordering::Relaxed),
        reloads: c.reloads.load(Ordering::Relaxed),
    };
    Json(Status::new("mail", state.started, detail))
}
