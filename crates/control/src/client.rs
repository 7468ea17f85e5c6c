//! Calling a component's control socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::Error;

/// The longest line [`LineStream`] accepts.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// How much of a non-JSON error body goes into [`Error::Refused`].
const MAX_QUOTED: usize = 200;

/// The default bound on a whole request, from connect to the last byte of the reply.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one component's control socket. Each request uses its own connection, so a
/// `Client` is cheap to clone and never holds a component's resources between calls.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

/// A complete reply of any status.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
}

/// Calls `method path` on `socket` once with an optional JSON body and returns the reply,
/// whatever its status. A shorthand for [`Client::request`].
pub async fn request(
    socket: impl Into<PathBuf>,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<Reply, Error> {
    Client::new(socket).request(method, path, body).await
}

impl Client {
    /// A client for the socket at `socket`; nothing is connected until a request is made.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Bounds every request (connect, send, whole reply; for streams, up to the reply's head).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The socket this client calls.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// `GET /health`: whether the component answers, and what it says about itself.
    pub async fn health(&self) -> Result<crate::Health, Error> {
        self.get_json("/health").await
    }

    /// `GET path`, expecting a 2xx reply with a JSON body of type `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let reply = self.call(Method::GET, path, None).await?;
        self.success(Method::GET, path, reply)?
            .decode(&self.socket, path)
    }

    /// `POST path` with `body` as JSON, expecting a 2xx reply with a JSON body of type `T`.
    /// Use `T = serde_json::Value` when the reply does not matter.
    pub async fn post_json<B, T>(&self, path: &str, body: &B) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let bytes = serde_json::to_vec(body).map_err(|cause| Error::Encode {
            path: path.to_owned(),
            cause,
        })?;
        let reply = self
            .call(Method::POST, path, Some(Bytes::from(bytes)))
            .await?;
        let reply = self.success(Method::POST, path, reply)?;
        if reply.body.is_empty() {
            // An empty body is `null`, so `()` and `Option<_>` replies work without content.
            return serde_json::from_slice(b"null").map_err(|cause| Error::BadReply {
                socket: self.socket.clone(),
                path: path.to_owned(),
                cause,
            });
        }
        reply.decode(&self.socket, path)
    }

    /// `DELETE path`, expecting a 2xx reply; its body is ignored.
    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        let reply = self.call(Method::DELETE, path, None).await?;
        self.success(Method::DELETE, path, reply).map(drop)
    }

    /// Any request with an optional JSON body. Returns the reply whatever its status.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, Error> {
        let bytes = match body {
            Some(value) => Some(Bytes::from(serde_json::to_vec(value).map_err(|cause| {
                Error::Encode {
                    path: path.to_owned(),
                    cause,
                }
            })?)),
            None => None,
        };
        self.call(method, path, bytes).await
    }

    /// `GET path` on an endpoint that answers a stream of lines (newline-delimited JSON), and
    /// returns the open stream once a 2xx head has arrived. The timeout bounds only the head.
    pub async fn stream_lines(&self, path: &str) -> Result<LineStream, Error> {
        let response = tokio::time::timeout(self.timeout, self.send(Method::GET, path, None))
            .await
            .map_err(|_| self.timeout_error(path))??;
        let status = response.status();
        let body = response.into_body();
        if !status.is_success() {
            let collected = tokio::time::timeout(self.timeout, body.collect())
                .await
                .map_err(|_| self.timeout_error(path))?
                .map_err(|cause| self.exchange_error(path, cause))?;
            let reply = Reply {
                status,
                body: collected.to_bytes(),
            };
            return Err(self.refused(Method::GET, path, &reply));
        }
        Ok(LineStream {
            socket: self.socket.clone(),
            path: path.to_owned(),
            body,
            buf: Vec::new(),
            ended: false,
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Bytes>) -> Result<Reply, Error> {
        let exchange = async {
            let response = self.send(method, path, body).await?;
            let status = response.status();
            let collected = response
                .into_body()
                .collect()
                .await
                .map_err(|cause| self.exchange_error(path, cause))?;
            Ok(Reply {
                status,
                body: collected.to_bytes(),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.timeout_error(path))?
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<http::Response<Incoming>, Error> {
        if !path.starts_with('/') {
            return Err(Error::InvalidPath {
                path: path.to_owned(),
            });
        }
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "localhost")
            .header(ACCEPT, "application/json, application/x-ndjson");
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|_| Error::InvalidPath {
                path: path.to_owned(),
            })?;

        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|cause| Error::Unreachable {
                    socket: self.socket.clone(),
                    cause,
                })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|cause| self.exchange_error(path, cause))?;
        let socket = self.socket.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(socket = %socket.display(), error = %e, "control connection ended");
            }
        });
        sender
            .send_request(request)
            .await
            .map_err(|cause| self.exchange_error(path, cause))
    }

    fn success(&self, method: Method, path: &str, reply: Reply) -> Result<Reply, Error> {
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(self.refused(method, path, &reply))
        }
    }

    fn refused(&self, method: Method, path: &str, reply: &Reply) -> Error {
        Error::Refused {
            socket: self.socket.clone(),
            method,
            path: path.to_owned(),
            status: reply.status,
            message: reply.error_message(),
        }
    }

    fn timeout_error(&self, path: &str) -> Error {
        Error::Timeout {
            socket: self.socket.clone(),
            path: path.to_owned(),
            after: self.timeout,
        }
    }

    fn exchange_error(&self, path: &str, cause: hyper::Error) -> Error {
        Error::Exchange {
            socket: self.socket.clone(),
            path: path.to_owned(),
            cause,
        }
    }
}

impl Reply {
    /// The body as JSON of type `T`; `socket` and `path` only label the error.
    pub fn decode<T: DeserializeOwned>(&self, socket: &Path, path: &str) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|cause| Error::BadReply {
            socket: socket.to_owned(),
            path: path.to_owned(),
            cause,
        })
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error` field of a JSON error body, or the start of the body as text.
    fn error_message(&self) -> String {
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            error: String,
        }
        if let Ok(body) = serde_json::from_slice::<ErrorBody>(&self.body) {
            return body.error;
        }
        let text = self.text();
        let text = text.trim();
        if text.is_empty() {
            return self
                .status
                .canonical_reason()
                .unwrap_or("no reason given")
                .to_owned();
        }
        match text.char_indices().nth(MAX_QUOTED) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.to_owned(),
        }
    }
}

/// The open body of a streamed reply, read a line at a time.
#[derive(Debug)]
pub struct LineStream {
    socket: PathBuf,
    path: String,
    body: Incoming,
    buf: Vec<u8>,
    ended: bool,
}

impl LineStream {
    /// The next non-empty line without its line ending, or `None` once the component has ended
    /// the stream. Waits as long as the component sends nothing.
    pub async fn next_line(&mut self) -> Result<Option<String>, Error> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.is_empty() {
                    continue;
                }
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.ended {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let rest = std::mem::take(&mut self.buf);
                return Ok(Some(String::from_utf8_lossy(&rest).into_owned()));
            }
            if self.buf.len() > MAX_LINE {
                return Err(Error::LineTooLong {
                    socket: self.socket.clone(),
                    path: self.path.clone(),
                    limit: MAX_LINE,
                });
            }
            match self.body.frame().await {
                None => self.ended = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(cause)) => {
                    return Err(Error::Exchange {
                        socket: self.socket.clone(),
                        path: self.path.clone(),
                        cause,
                    });
                }
            }
        }
    }

    /// The next line decoded as JSON of type `T`, or `None` at the end of the stream.
    pub async fn next_json<T: DeserializeOwned>(&mut self) -> Result<Option<T>, Error> {
        match self.next_line().await? {
            None => Ok(None),
            Some(line) => serde_json::from_str(&line)
                .map(Some)
                .map_err(|cause| Error::BadReply {
                    socket: self.socket.clone(),
                    path: self.path.clone(),
                    cause,
                }),
        }
    }
}
