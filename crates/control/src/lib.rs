//! Postroom's control API: HTTP/JSON over a Unix socket, one socket per component.
//!
//! Every component serves a small axum [`Router`](axum::Router) on `<run_dir>/<name>.sock` with
//! [`serve`], and answers at least `GET /health` (see [`health_route`]) and `GET /status` (shaped
//! as a [`Status`]). The supervisor, `postroom ctl`, the admin page, the console and the tests talk
//! to those sockets with a [`Client`] (async) or a [`BlockingClient`] (for command-line tools).
//!
//! Errors in a reply are JSON `{"error": "..."}` with a 4xx/5xx status ([`ApiError`]); the client
//! turns them into [`Error::Refused`] carrying that message. A handler that reports a stream of
//! changes answers newline-delimited JSON ([`ndjson_stream`]), read by [`Client::stream_lines`].

#![forbid(unsafe_code)]

mod api;
mod blocking;
mod client;
mod error;
mod server;

pub use api::{ApiError, Health, NdjsonSender, Status, StreamClosed, health_route, ndjson_stream};
pub use blocking::BlockingClient;
pub use client::{Client, LineStream, Reply, request};
pub use error::Error;
pub use server::{Server, bind, serve, serve_until};

/// Re-exported so callers name methods and status codes without depending on `http` themselves.
pub use http::{Method, StatusCode};
