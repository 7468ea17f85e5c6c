//! The servers that run inside `postroom mail`, each spawned as its own task.
//!
//! SMTP lives here; IMAP and POP3 (crates/imap, crates/pop3) add their listeners the same way:
//! bind in [`Listeners::bind`] (before root is dropped), then spawn in [`Services::start`].

use std::net::TcpListener as StdListener;
use std::sync::Arc;

use postroom_config::mail::Mail;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Error;
use crate::smtp_server::{self, Kind};

/// The listening sockets, bound while the process may still be root (ports below 1024).
#[derive(Debug)]
pub struct Listeners {
    /// MX, port 25.
    pub smtp: StdListener,
    /// Submission, port 587.
    pub submission: StdListener,
    /// Submissions, port 465.
    pub submissions: StdListener,
}

impl Listeners {
    /// Binds every listener of `[mail.listen]` that this component serves.
    pub fn bind(config: &Mail) -> Result<Listeners, Error> {
        Ok(Listeners {
            smtp: bind("smtp", config.listen.smtp)?,
            submission: bind("submission", config.listen.submission)?,
            submissions: bind("submissions", config.listen.submissions)?,
        })
    }
}

fn bind(service: &'static str, addr: std::net::SocketAddr) -> Result<StdListener, Error> {
    let listener = StdListener::bind(addr).map_err(|source| Error::Bind {
        service,
        addr,
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| Error::Bind {
            service,
            addr,
            source,
        })?;
    Ok(listener)
}

/// The running servers.
pub struct Services {
    tasks: JoinSet<(&'static str, std::io::Result<()>)>,
    stop: watch::Sender<bool>,
}

impl Services {
    /// Starts every server on its listener. Must run inside the tokio runtime.
    pub fn start(
        listeners: Listeners,
        smtp: Arc<smtp_server::Shared>,
        queue: postroom_queue::Queue,
    ) -> Result<Services, Error> {
        let (stop, stopped) = watch::channel(false);
        let mut services = Services {
            tasks: JoinSet::new(),
            stop,
        };

        // The queue runner: deliveries, retries, notices. At shutdown it lets deliveries under
        // way finish, within the queue's grace time.
        let mut queue_stop = stopped.clone();
        services.tasks.spawn(async move {
            let shutdown = async move {
                let _ = queue_stop.wait_for(|stop| *stop).await;
            };
            queue.run(shutdown).await;
            ("queue", Ok(()))
        });
        for (listener, kind, name) in [
            (listeners.smtp, Kind::Mx, "smtp"),
            (listeners.submission, Kind::Submission, "submission"),
            (listeners.submissions, Kind::Submissions, "submissions"),
        ] {
            // Only for the error message: the socket is bound already.
            let addr = listener
                .local_addr()
                .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
            let listener =
                tokio::net::TcpListener::from_std(listener).map_err(|source| Error::Bind {
                    service: name,
                    addr,
                    source,
                })?;
            let shared = Arc::clone(&smtp);
            let stopped = stopped.clone();
            services.tasks.spawn(async move {
                (
                    name,
                    smtp_server::serve(listener, kind, shared, stopped).await,
                )
            });
        }
        Ok(services)
    }

    /// Waits until a server ends on its own (an error), returning its name and result.
    pub async fn join_next(&mut self) -> Option<(&'static str, std::io::Result<()>)> {
        match self.tasks.join_next().await? {
            Ok(done) => Some(done),
            Err(e) => Some(("task", Err(std::io::Error::other(e.to_string())))),
        }
    }

    /// Tells every server and session to stop (sessions answer 421), and waits for the
    /// listeners to close.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
