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
    /// IMAP with STARTTLS, port 143.
    pub imap: StdListener,
    /// IMAP over TLS, port 993.
    pub imaps: StdListener,
    /// POP3 with STLS, port 110.
    pub pop3: StdListener,
    /// POP3 over TLS, port 995.
    pub pop3s: StdListener,
}

impl Listeners {
    /// Binds every listener of `[mail.listen]` that this component serves.
    pub fn bind(config: &Mail) -> Result<Listeners, Error> {
        Ok(Listeners {
            smtp: bind("smtp", config.listen.smtp)?,
            submission: bind("submission", config.listen.submission)?,
            submissions: bind("submissions", config.listen.submissions)?,
            imap: bind("imap", config.listen.imap)?,
            imaps: bind("imaps", config.listen.imaps)?,
            pop3: bind("pop3", config.listen.pop3)?,
            pop3s: bind("pop3s", config.listen.pop3s)?,
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

/// What the mailbox access servers (crates/imap, crates/pop3) share.
pub struct MailboxAccess {
    /// IMAP's store, password check, limits and TLS.
    pub imap: Arc<postroom_imap::server::Context>,
    /// POP3's.
    pub pop3: Arc<postroom_pop3::server::Context>,
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
        access: MailboxAccess,
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

        // IMAP and POP3: implicit TLS on imaps/pop3s, STARTTLS/STLS on imap/pop3.
        for (listener, name, implicit) in [
            (listeners.imap, "imap", false),
            (listeners.imaps, "imaps", true),
            (listeners.pop3, "pop3", false),
            (listeners.pop3s, "pop3s", true),
        ] {
            let addr = listener
                .local_addr()
                .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
            let listener =
                tokio::net::TcpListener::from_std(listener).map_err(|source| Error::Bind {
                    service: name,
                    addr,
                    source,
                })?;
            // The SMTP listeners say this in smtp_server::serve; an administrator reading the
            // journal should see all seven.
            tracing::info!(service = name, %addr, "listening");
            let stopped = stopped.clone();
            if name.starts_with("imap") {
                let ctx = Arc::clone(&access.imap);
                services.tasks.spawn(async move {
                    let result = postroom_imap::server::serve(listener, implicit, ctx, stopped);
                    (name, result.await)
                });
            } else {
                let ctx = Arc::clone(&access.pop3);
                services.tasks.spawn(async move {
                    let result = postroom_pop3::server::serve(listener, implicit, ctx, stopped);
                    (name, result.await)
                });
            }
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
