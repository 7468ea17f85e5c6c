//! A blocking client for command-line tools (`postroom ctl`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Client, Error, Reply};

/// A [`Client`] with its own single-threaded runtime, for code that is not async. Do not use
/// it from inside a tokio runtime (tokio panics on nested `block_on`); use [`Client`] there.
#[derive(Debug)]
pub struct BlockingClient {
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl BlockingClient {
    /// A client for `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Result<BlockingClient, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|cause| Error::Runtime { cause })?;
        Ok(BlockingClient {
            client: Client::new(socket),
            runtime,
        })
    }

    /// Bounds every request; see [`Client::with_timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> BlockingClient {
        self.client = self.client.with_timeout(timeout);
        self
    }

    /// The socket this client calls.
    pub fn socket_path(&self) -> &Path {
        self.client.socket_path()
    }

    /// See [`Client::get_json`].
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.runtime.block_on(self.client.get_json(path))
    }

    /// See [`Client::post_json`].
    pub fn post_json<B, T>(&self, path: &str, body: &B) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.runtime.block_on(self.client.post_json(path, body))
    }

    /// See [`Client::delete`].
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        self.runtime.block_on(self.client.delete(path))
    }

    /// See [`Client::request`].
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, Error> {
        self.runtime
            .block_on(self.client.request(method, path, body))
    }

    /// Reads a streamed reply (see [`Client::stream_lines`]) and calls `each` with every line
    /// until the stream ends or `each` returns `false`.
    pub fn for_each_line(
        &self,
        path: &str,
        mut each: impl FnMut(&str) -> bool,
    ) -> Result<(), Error> {
        self.runtime.block_on(async {
            let mut lines = self.client.stream_lines(path).await?;
            while let Some(line) = lines.next_line().await? {
                if !each(&line) {
                    break;
                }
            }
            Ok(())
        })
    }
}
