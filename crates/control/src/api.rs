//! The shapes every control API shares: `/health`, `/status`, error bodies, streams.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Json;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use http_body::Frame;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The body of `GET /health`. Answering at all is what counts; `ok: false` lets a component
/// say it is alive but degraded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The component's name, e.g. `mail`.
    pub component: String,
    /// Its process id, so the supervisor can tell a stale socket from its own child.
    pub pid: u32,
    /// Whether it considers itself healthy.
    pub ok: bool,
}

impl Health {
    /// A healthy answer from this process.
    pub fn ok(component: &str) -> Health {
        Health {
            component: component.to_owned(),
            pid: std::process::id(),
            ok: true,
        }
    }
}

/// A `GET /health` handler answering [`Health::ok`]:
/// `Router::new().route("/health", health_route("mail"))`.
pub fn health_route<S>(component: &'static str) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    get(move || async move { Json(Health::ok(component)) })
}

/// The convention for `GET /status`: the same four fields from every component, and the
/// component's own `detail` (queue lengths, link state, children...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status<D = serde_json::Value> {
    /// The component's name.
    pub component: String,
    /// Its process id.
    pub pid: u32,
    /// The postroom version it runs.
    pub version: String,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// What this component has to say.
    pub detail: D,
}

impl<D> Status<D> {
    /// A status for this process, which started at `started`.
    pub fn new(component: &str, started: Instant, detail: D) -> Status<D> {
        Status {
            component: component.to_owned(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_secs: started.elapsed().as_secs(),
            detail,
        }
    }
}

/// An error reply: `{"error": message}` with a 4xx or 5xx status. Return it from handlers as
/// `Result<Json<T>, ApiError>`; the client shows the message in [`crate::Error::Refused`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, in the administrator's words.
    pub message: String,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request makes no sense.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such thing (component, message, job).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: not possible in the current state.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 500: our own failure.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 503: temporarily unable (link down, modem busy).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (
            self.status,
            Json(Body {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Starts a newline-delimited JSON reply (`application/x-ndjson`): return the [`Response`] from
/// the handler and feed the [`NdjsonSender`] from a task. The reply ends when the sender is
/// dropped; `send` fails once the client has gone. `buffer` is how many items may wait.
pub fn ndjson_stream(buffer: usize) -> (NdjsonSender, Response) {
    let (tx, rx) = mpsc::channel(buffer.max(1));
    let body = axum::body::Body::new(ChannelBody { rx });
    let response = ([(CONTENT_TYPE, "application/x-ndjson")], body).into_response();
    (NdjsonSender { tx }, response)
}

/// The feeding end of an [`ndjson_stream`].
#[derive(Debug, Clone)]
pub struct NdjsonSender {
    tx: mpsc::Sender<Bytes>,
}

/// The client of an [`ndjson_stream`] has gone, or the item could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stream's reader has gone")]
pub struct StreamClosed;

impl NdjsonSender {
    /// Sends `item` as one JSON line, waiting while the buffer is full.
    pub async fn send<T: Serialize + ?Sized>(&self, item: &T) -> Result<(), StreamClosed> {
        // serde_json never writes a raw newline inside a value, so one value is one line.
        let mut line = serde_json::to_vec(item).map_err(|_| StreamClosed)?;
        line.push(b'\n');
        self.tx
            .send(Bytes::from(line))
            .await
            .map_err(|_| StreamClosed)
    }

    /// Whether the client has gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the client has gone, so a feeding task can stop without a next item.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// A response body fed from a channel; it ends when every sender is dropped.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|bytes| Ok(Frame::data(bytes))))
    }
}
