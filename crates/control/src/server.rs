//! Serving a router on a Unix socket.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Error;

/// How long [`Server::shutdown`] lets open requests finish before it drops them. Streaming
/// replies never finish on their own, so this bounds them.
const GRACE: Duration = Duration::from_secs(2);

/// Access for the owner and the group (the admin and console processes run in it).
const SOCKET_MODE: u32 = 0o660;

/// A running control server. Dropping it stops the server and removes the socket file; call
/// [`Server::shutdown`] to let requests in flight finish first.
#[must_use = "dropping the Server stops it"]
#[derive(Debug)]
pub struct Server {
    socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

/// Prepares `socket` for listening: creates its directory, replaces a stale socket file left by
/// a dead process, binds, and sets mode 0660.
///
/// A socket on which a live process still answers is left alone ([`Error::InUse`]), and so is
/// anything that is not a socket ([`Error::NotASocket`]). Must be called inside a tokio runtime.
pub fn bind(socket: &Path) -> Result<UnixListener, Error> {
    let listen_err = |cause| Error::Listen {
        socket: socket.to_owned(),
        cause,
    };

    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(listen_err)?;
    }

    match std::fs::symlink_metadata(socket) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(Error::NotASocket {
                socket: socket.to_owned(),
            });
        }
        Ok(_) => {
            // Connecting to a Unix socket answers at once: refused means nobody owns it.
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                return Err(Error::InUse {
                    socket: socket.to_owned(),
                });
            }
            tracing::debug!(socket = %socket.display(), "removing stale control socket");
            match std::fs::remove_file(socket) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(listen_err(e)),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(listen_err(e)),
    }

    let listener = UnixListener::bind(socket).map_err(listen_err)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(listen_err)?;
    Ok(listener)
}

/// Binds `socket` (see [`bind`]) and serves `router` on it in a background task until the
/// returned [`Server`] is shut down or dropped. When this returns, the socket accepts
/// connections.
pub async fn serve(socket: impl AsRef<Path>, router: Router) -> Result<Server, Error> {
    let socket = socket.as_ref().to_owned();
    let listener = bind(&socket)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                // Either a stop message or a dropped sender ends the server.
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(socket = %socket.display(), "control socket listening");
    Ok(Server {
        socket,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Serves `router` on `socket` until `signal` completes, then shuts down (see
/// [`Server::shutdown`]). For a component's main: `serve_until(path, app, ctrl_c_or_term)`.
pub async fn serve_until(
    socket: impl AsRef<Path>,
    router: Router,
    signal: impl Future<Output = ()>,
) -> Result<(), Error> {
    let mut server = serve(socket, router).await?;
    tokio::select! {
        () = signal => server.shutdown().await,
        result = server.stopped() => result,
    }
}

impl Server {
    /// The socket this server listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Stops accepting, lets requests in flight finish for up to two seconds, then drops what
    /// is left and removes the socket file.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.task.take() {
            Some(mut task) => match tokio::time::timeout(GRACE, &mut task).await {
                Ok(joined) => self.flatten(joined),
                Err(_elapsed) => {
                    tracing::debug!(socket = %self.socket.display(), "dropping open requests");
                    task.abort();
                    Ok(())
                }
            },
            None => Ok(()),
        };
        remove_socket(&self.socket);
        result
    }

    /// Resolves only if the server stops by itself, which means it failed.
    async fn stopped(&mut self) -> Result<(), Error> {
        match self.task.as_mut() {
            Some(task) => {
                let joined = task.await;
                self.task = None;
                self.flatten(joined)
            }
            None => std::future::pending().await,
        }
    }

    fn flatten(&self, joined: Result<io::Result<()>, tokio::task::JoinError>) -> Result<(), Error> {
        match joined {
            Ok(Ok(())) => Ok(()),
            Ok(Err(cause)) => Err(Error::Serve {
                socket: self.socket.clone(),
                cause,
            }),
            Err(join) => Err(Error::Serve {
                socket: self.socket.clone(),
                cause: io::Error::other(format!("server task ended abnormally: {join}")),
            }),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            remove_socket(&self.socket);
        }
    }
}

fn remove_socket(socket: &Path) {
    if let Err(e) = std::fs::remove_file(socket)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(socket = %socket.display(), error = %e, "cannot remove control socket");
    }
}
