//! The mail component as a whole: prepared (ports bound, directories and certificate made)
//! while it may still be root, then started inside the tokio runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use postroom_config::Config;
use postroom_config::mail::Mail;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info, warn};

use crate::Error;
use crate::delivery::{self, QueueIntake};
use crate::router::Router;
use crate::services::{Listeners, Services};
use crate::smtp_server::Shared;
use crate::users::Users;

/// Where this component keeps its files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `[system] data_dir`.
    pub data_dir: PathBuf,
    /// `<run_dir>/mail.sock`.
    pub socket: PathBuf,
    /// `<run_dir>/link.sock`: the link is asked for by its control socket.
    pub link_socket: PathBuf,
}

impl Paths {
    /// The paths of this configuration.
    pub fn new(config: &Config) -> Paths {
        Paths {
            data_dir: config.system.data_dir.clone(),
            socket: config.system.socket("mail"),
            link_socket: config.system.socket("link"),
        }
    }

    /// The Maildir++ roots of the users: `<data_dir>/mail`.
    pub fn mail_root(&self) -> PathBuf {
        self.data_dir.join("mail")
    }

    /// The spools: `<data_dir>/spool`.
    pub fn spool(&self) -> PathBuf {
        self.data_dir.join("spool")
    }

    /// The process's one redb file.
    pub fn database(&self) -> PathBuf {
        self.data_dir.join("mail.redb")
    }
}

/// `[mail]` with the box-wide settings filled in: the host name (`[mail] hostname`, else
/// `[system] hostname`, else the kernel's) and the domains (`[mail] domains`, else
/// `[system] domains`).
pub fn effective(config: &Config) -> Mail {
    let mut mail = config.mail.clone();
    if mail.hostname.is_empty() {
        mail.hostname = config.system.hostname.clone();
    }
    if mail.hostname.is_empty() {
        mail.hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
    }
    if mail.hostname.is_empty() {
        mail.hostname = "localhost".into();
    }
    if mail.domains.is_empty() {
        mail.domains = config.system.domains.clone();
    }
    mail
}

/// Everything done before the runtime starts and before root is dropped.
#[derive(Debug)]
pub struct Prepared {
    /// The effective `[mail]` section.
    pub mail: Mail,
    /// Where the files go.
    pub paths: Paths,
    /// The bound listeners.
    pub listeners: Listeners,
    tls: Arc<ServerConfig>,
    /// The link is dialled on demand: remote mail waits in the queue while it is down.
    link_on_demand: bool,
}

impl Prepared {
    /// Binds the ports, makes the directories, loads or makes the certificate.
    pub fn new(config: &Config) -> Result<Prepared, Error> {
        let mail = effective(config);
        let paths = Paths::new(config);
        let listeners = Listeners::bind(&mail)?;
        for dir in [&paths.data_dir, &paths.mail_root(), &paths.spool()] {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        if let Some(run_dir) = paths.socket.parent() {
            std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        }
        let tls = crate::tls::server_config(&mail.tls, &paths.data_dir, &mail.hostname)?;
        let link_on_demand = config.link.mode == postroom_config::link::Mode::OnDemand;
        Ok(Prepared {
            mail,
            paths,
            listeners,
            tls,
            link_on_demand,
        })
    }
}

/// The addresses the SMTP listeners really got (port 0 in tests).
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    /// MX.
    pub smtp: SocketAddr,
    /// Submission (STARTTLS).
    pub submission: SocketAddr,
    /// Submissions (implicit TLS).
    pub submissions: SocketAddr,
    /// IMAP (STARTTLS).
    pub imap: SocketAddr,
    /// IMAP over TLS.
    pub imaps: SocketAddr,
    /// POP3 (STLS).
    pub pop3: SocketAddr,
    /// POP3 over TLS.
    pub pop3s: SocketAddr,
}

/// The running component.
pub struct App {
    /// Where the SMTP listeners are.
    pub addresses: Addresses,
    /// The control socket's path.
    pub socket: PathBuf,
    services: Services,
    control: postroom_control::Server,
    shared: Arc<Shared>,
    store: postroom_maildir::Store,
    /// Mail on connect (flush, ETRN, POP3) when the link is dialled on demand.
    on_connect: Option<crate::on_connect::Running>,
    /// The ISP's POP3 mailboxes fetched on an interval when the link is permanent.
    fetching: Option<crate::on_connect::Periodic>,
    /// Removes stale files from the Maildirs' tmp/.
    tmp_cleanup: crate::tmp_cleanup::TmpCleanup,
    data_dir: PathBuf,
    /// The effective `[mail]` at start, to tell on a reload what only a restart applies.
    started_with: Mail,
}

impl App {
    /// Opens the store, starts every server and the control socket.
    pub async fn start(prepared: Prepared, started: Instant) -> Result<App, anyhow::Error> {
        let Prepared {
            mail,
            paths,
            listeners,
            tls,
            link_on_demand,
        } = prepared;
        let local =
            |l: &std::net::TcpListener| l.local_addr().map_err(|e| Error::io(&paths.data_dir, e));
        let addresses = Addresses {
            smtp: local(&listeners.smtp)?,
            submission: local(&listeners.submission)?,
            submissions: local(&listeners.submissions)?,
            imap: local(&listeners.imap)?,
            imaps: local(&listeners.imaps)?,
            pop3: local(&listeners.pop3)?,
            pop3s: local(&listeners.pop3s)?,
        };

        // One mail.redb per process, shared by the queue and the IMAP UID index.
        let db = Arc::new(redb::Database::create(paths.database()).map_err(redb::Error::from)?);
        let store = postroom_maildir::Store::open(paths.mail_root(), Arc::clone(&db))?;
        for user in &mail.users {
            store.create_user(&user.name)?;
        }
        // Partial deliveries a kill or power cut left in tmp/: now, then every few hours.
        let tmp_cleanup =
            crate::tmp_cleanup::TmpCleanup::start(paths.mail_root(), crate::tmp_cleanup::EVERY);
        let router = Router::new(mail.clone());
        let mut settings = postroom_queue::QueueSettings::from_config(
            paths.data_dir.clone(),
            mail.hostname.clone(),
            &mail.queue,
        );
        // Holding remote mail only makes sense when the link comes and goes.
        settings.start_held = mail.queue.hold_when_link_down && link_on_demand;
        let queue = postroom_queue::Queue::open(
            Arc::clone(&db),
            settings,
            delivery::transports(&mail, store.clone(), paths.spool().join("fax")),
            delivery::sender_route(router),
        )
        .map_err(|e| Error::Queue(e.to_string()))?;
        // One user table for SMTP, IMAP and POP3, replaced in place on a reload.
        let users = Users::new(&mail);
        let users_for_access = Arc::new(users.clone());
        let limiter = Arc::new(postroom_imap::login_limiter(&mail.access));
        let smtp_limiter = Arc::clone(&limiter);
        // One connection limit for the four IMAP and POP3 listeners together.
        let connections = Arc::new(postroom_imap::connection_limiter(&mail.access));
        let access = crate::services::MailboxAccess {
            imap: Arc::new(postroom_imap::server::Context {
                store: store.clone(),
                auth: users_for_access.clone(),
                limiter: Arc::clone(&limiter),
                limits: postroom_imap::Limits::from_config(&mail.access),
                tls: Arc::clone(&tls),
                connections: Arc::clone(&connections),
                login_timeout: mail.access.login_timeout.duration(),
            }),
            pop3: Arc::new(postroom_pop3::server::Context {
                store: store.clone(),
                auth: users_for_access,
                limiter,
                tls: Arc::clone(&tls),
                connections,
                login_timeout: mail.access.login_timeout.duration(),
            }),
        };
        let shared = Arc::new(Shared::new(
            mail.clone(),
            users,
            Arc::clone(&smtp_limiter),
            Arc::new(QueueIntake::new(queue.clone(), store.clone())),
            Some(TlsAcceptor::from(tls)),
        ));
        let services = Services::start(listeners, Arc::clone(&shared), queue.clone(), access)?;
        // On demand, the queue asks for the link and is flushed when it comes up; a permanent
        // link needs none of it: mail goes straight out.
        let on_connect = link_on_demand.then(|| {
            crate::on_connect::Running::start(
                queue.clone(),
                paths.link_socket.clone(),
                crate::on_connect::Plan::new(&mail, addresses.smtp, &paths.data_dir),
                mail.queue.hold_when_link_down,
            )
        });
        let fetching = (!link_on_demand).then(|| {
            crate::on_connect::Periodic::start(crate::on_connect::Plan::new(
                &mail,
                addresses.smtp,
                &paths.data_dir,
            ))
        });
        let control = postroom_control::serve(
            &paths.socket,
            crate::control::router(Arc::clone(&shared), addresses, started)
                .merge(postroom_queue::control::router(queue)),
        )
        .await?;
        info!(socket = %paths.socket.display(), smtp = %addresses.smtp, "mail component ready");
        Ok(App {
            addresses,
            socket: paths.socket,
            services,
            control,
            shared,
            store,
            on_connect,
            fetching,
            tmp_cleanup,
            data_dir: paths.data_dir,
            started_with: mail,
        })
    }

    /// Applies a changed configuration (the supervisor sends SIGHUP after `ctl reload`):
    /// users, passwords, aliases, routing, trusted networks and limits apply to new
    /// connections at once; new users get their Maildir; `[mail.on_connect]` applies from the
    /// next connect. Listener addresses, TLS files, queue settings and the link mode need a
    /// restart.
    pub fn reload(&self, config: &Config) -> Result<(), Error> {
        let mail = effective(config);
        let was = &self.started_with;
        let on_demand = config.link.mode == postroom_config::link::Mode::OnDemand;
        for (section, changed) in [
            ("[mail.listen]", mail.listen != was.listen),
            ("[mail.tls]", mail.tls != was.tls),
            ("[mail.queue]", mail.queue != was.queue),
            ("[mail.relay]", mail.relay != was.relay),
            ("[link] mode", on_demand != self.on_connect.is_some()),
        ] {
            if changed {
                warn!(
                    section,
                    "changed: applies only when the mail component is restarted"
                );
            }
        }
        for user in &mail.users {
            self.store.create_user(&user.name).map_err(Error::Maildir)?;
        }
        if let Some(fetching) = &self.fetching {
            fetching.reload(crate::on_connect::Plan::new(
                &mail,
                self.addresses.smtp,
                &self.data_dir,
            ));
        }
        if let Some(on_connect) = &self.on_connect {
            on_connect.reload(crate::on_connect::Plan::new(
                &mail,
                self.addresses.smtp,
                &self.data_dir,
            ));
        }
        self.shared.reload(mail);
        // Last, so that `ctl reload`, which waits for this count to move, returns only once
        // everything above applies.
        self.shared.counters.reloads.fetch_add(1, Ordering::Relaxed);
        info!("configuration reloaded");
        Ok(())
    }

    /// Runs until SIGTERM or SIGINT, or until a server fails; SIGHUP reads `config_path` again
    /// and applies it ([`App::reload`]).
    pub async fn run_until_signal(mut self, config_path: &std::path::Path) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let failed = loop {
            tokio::select! {
                _ = int.recv() => break None,
                _ = term.recv() => break None,
                _ = hup.recv() => {
                    // A broken file keeps the running configuration; the supervisor has
                    // checked it before sending SIGHUP, so this is rare.
                    match Config::load(config_path) {
                        Ok(config) => {
                            if let Err(e) = self.reload(&config) {
                                warn!(error = %e, "reload failed");
                            }
                        }
                        Err(e) => warn!(error = %e, "reload: configuration not read"),
                    }
                }
                ended = self.services.join_next() => break ended,
            }
        };
        match &failed {
            Some((name, Err(e))) => error!(service = name, error = %e, "a server stopped"),
            Some((name, Ok(()))) => error!(service = name, "a server stopped without an error"),
            None => {}
        }
        self.stop().await;
        match failed {
            Some((name, _)) => anyhow::bail!("the {name} server stopped"),
            None => Ok(()),
        }
    }

    /// Stops every server (open sessions get 421) and the control socket.
    pub async fn stop(self) {
        info!("shutting down");
        if let Some(on_connect) = self.on_connect {
            on_connect.stop().await;
        }
        if let Some(fetching) = self.fetching {
            fetching.stop().await;
        }
        self.tmp_cleanup.stop();
        self.services.shutdown().await;
        let _ = self.control.shutdown().await;
    }
}
