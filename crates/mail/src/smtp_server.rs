//! The SMTP listeners: tokio and TLS around the sans-I/O session of postroom-smtp.
//!
//! Three kinds of listener share one driver: MX (port 25: STARTTLS offered, no AUTH),
//! submission (587: STARTTLS, AUTH required, RFC 6409) and submissions (465: implicit TLS, AUTH
//! required, RFC 8314).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use postroom_config::mail::Mail;
use postroom_maildir::access::LoginLimiter;
use postroom_smtp::{
    BareLineEndings, EnhancedStatus as S, Event, Reply, Session, SessionConfig, Wait,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::intake::{Accepted, Intake};
use crate::router::{Destination, Routed, Router};
use crate::senders;
use crate::trace;
use crate::users::Users;

/// Which SMTP service a listener provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Port 25: mail from the internet and the LAN.
    Mx,
    /// Port 587: submission with STARTTLS and AUTH.
    Submission,
    /// Port 465: submission over implicit TLS.
    Submissions,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Mx => "smtp",
            Kind::Submission => "submission",
            Kind::Submissions => "submissions",
        }
    }
}

/// Counters for `GET /status`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections open now.
    pub connections: AtomicU64,
    /// Messages accepted since start.
    pub accepted: AtomicU64,
    /// Connections turned away by the per-client or total limit.
    pub refused_connections: AtomicU64,
    /// Configurations applied by a reload (SIGHUP) since start.
    pub reloads: AtomicU64,
}

/// The parts of the configuration a reload (SIGHUP) replaces; each connection keeps the one
/// it started with.
#[derive(Debug)]
pub struct Policy {
    /// The `[mail]` section.
    pub config: Mail,
    /// The routing table.
    pub router: Router,
}

/// What every SMTP connection of this process shares.
pub struct Shared {
    policy: RwLock<Arc<Policy>>,
    /// Password checks.
    pub users: Users,
    /// Failed logins per client address, shared with IMAP and POP3.
    pub limiter: Arc<LoginLimiter>,
    /// Where accepted messages go.
    pub intake: Arc<dyn Intake>,
    /// TLS for STARTTLS and port 465.
    pub tls: Option<TlsAcceptor>,
    /// Counters for the control API.
    pub counters: Counters,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

impl Shared {
    /// Shared state for the SMTP listeners.
    pub fn new(
        config: Mail,
        users: Users,
        limiter: Arc<LoginLimiter>,
        intake: Arc<dyn Intake>,
        tls: Option<TlsAcceptor>,
    ) -> Shared {
        Shared {
            policy: RwLock::new(Arc::new(Policy {
                router: Router::new(config.clone()),
                config,
            })),
            users,
            limiter,
            intake,
            tls,
            counters: Counters::default(),
            per_client: Mutex::new(HashMap::new()),
        }
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Applies a reloaded `[mail]` section: users, routing, trusted networks and limits take
    /// effect for new connections. Listener addresses, TLS files and the queue settings need a
    /// restart.
    pub fn reload(&self, config: Mail) {
        self.users.replace(&config);
        let policy = Arc::new(Policy {
            router: Router::new(config.clone()),
            config,
        });
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    fn session_config(&self, policy: &Policy, kind: Kind) -> SessionConfig {
        let limits = &policy.config.limits;
        SessionConfig {
            hostname: policy.config.hostname.clone(),
            max_message_size: limits.max_message_size,
            max_recipients: limits.max_recipients,
            max_line_length: limits.max_line_length,
            max_command_line: 4096,
            max_errors: limits.max_errors,
            bare_line_endings: match policy.config.bare_line_endings {
                postroom_config::mail::BareLineEndings::Reject => BareLineEndings::Reject,
                postroom_config::mail::BareLineEndings::Normalize => BareLineEndings::Normalize,
            },
            starttls_available: self.tls.is_some() && kind != Kind::Submissions,
            implicit_tls: kind == Kind::Submissions,
            auth_enabled: kind != Kind::Mx,
            auth_required: kind != Kind::Mx,
            command_timeout: limits.command_timeout.duration(),
            data_timeout: limits.data_timeout.duration(),
        }
    }

    /// Takes a connection slot for `ip`, or None when a limit is reached.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let policy = self.policy();
        let limits = &policy.config.limits;
        let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = map.values().sum();
        let mine = map.entry(ip).or_insert(0);
        if *mine >= limits.max_connections_per_client || total >= limits.max_connections {
            return None;
        }
        *mine += 1;
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            shared: Arc::clone(self),
            ip,
        })
    }
}

/// A connection slot, given back when dropped.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .per_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.shared
            .counters
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts connections on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    kind: Kind,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        info!(service = kind.name(), %addr, "listening");
    }
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        // Forget sessions that have ended.
        while sessions.try_join_next().is_some() {}

        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: wait a moment rather than spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let shared = Arc::clone(&shared);
        let span = info_span!("smtp", service = kind.name(), peer = %peer);
        let stop = stop.clone();
        sessions.spawn(
            async move {
                if let Err(e) = connection(stream, peer, kind, shared, stop).await {
                    debug!(error = %e, "connection ended with an error");
                }
            }
            .instrument(span),
        );
    }

    // Open sessions have seen the stop too: idle ones answer 421 at once, one storing a message
    // finishes that first, so its client learns the outcome.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            service = kind.name(),
            open = sessions.len(),
            "sessions still open at shutdown"
        );
    }
    Ok(())
}

/// How long open sessions get to end at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    kind: Kind,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let Some(_slot) = shared.admit(peer.ip()) else {
        shared
            .counters
            .refused_connections
            .fetch_add(1, Ordering::Relaxed);
        info!("too many connections; refused");
        // On port 465 the client expects a TLS handshake first, so a plaintext 421 would read
        // as garbage, and a handshake per refused connection is the CPU the limit saves: close.
        if kind == Kind::Submissions {
            return Ok(());
        }
        let reply = Reply::new(421, S(4, 7, 0), "Too many connections, try again later");
        let mut out = Vec::new();
        reply.write_to(&mut out);
        stream.write_all(&out).await?;
        return stream.shutdown().await;
    };

    let policy = shared.policy();
    let mut conn = Connection {
        session: Session::new(shared.session_config(&policy, kind)),
        kind,
        senders: None,
        policy,
        shared: Arc::clone(&shared),
        peer,
        routes: HashMap::new(),
        stop,
        flushes: 0,
    };

    if kind == Kind::Submissions {
        let Some(acceptor) = shared.tls.clone() else {
            return Ok(());
        };
        let mut tls = handshake(&acceptor, stream, &conn.policy).await?;
        conn.drive(&mut tls).await?;
        return Ok(());
    }

    match conn.drive(&mut stream).await? {
        Outcome::Closed => Ok(()),
        Outcome::StartTls => {
            let Some(acceptor) = shared.tls.clone() else {
                return Ok(());
            };
            let mut tls = handshake(&acceptor, stream, &conn.policy).await?;
            debug!("TLS started");
            conn.session.tls_started();
            conn.senders = None;
            match conn.drive(&mut tls).await? {
                Outcome::Closed | Outcome::StartTls => Ok(()),
            }
        }
    }
}

/// The TLS handshake, bounded by the command timeout: a client that stalls halfway through it
/// (or never starts it) must not hold its connection slot forever.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    policy: &Policy,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    let limit = policy.config.limits.command_timeout.duration();
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(tls) => tls,
        Err(_elapsed) => {
            info!("TLS handshake timed out");
            Err(std::io::ErrorKind::TimedOut.into())
        }
    }
}

enum Outcome {
    Closed,
    StartTls,
}

struct Connection {
    session: Session,
    kind: Kind,
    /// What the authenticated user may send as, when senders are checked.
    senders: Option<postroom_smtp::AllowedSenders>,
    /// The configuration this connection started with.
    policy: Arc<Policy>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// The destinations of each accepted recipient of the current transaction, by address.
    routes: HashMap<String, Vec<Destination>>,
    stop: watch::Receiver<bool>,
    /// How many times replies were sent; a change means the client's last command was answered.
    flushes: u64,
}

impl Connection {
    async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
    ) -> std::io::Result<Outcome> {
        let mut buf = vec![0u8; 16 * 1024];
        // RFC 5321 section 4.5.3.2.7: the command timeout bounds the wait for a whole command,
        // so a client trickling a byte now and then cannot stretch it for ever (slowloris). It
        // starts again once a reply went out; in DATA each read has its own timeout.
        let mut command_deadline: Option<(tokio::time::Instant, u64)> = None;
        loop {
            match self.session.poll() {
                Event::NeedInput => {
                    self.log_refused_senders();
                    self.flush(io).await?;
                    let (wait, limit) = self.session.timeout();
                    let now = tokio::time::Instant::now();
                    let deadline = match (wait, command_deadline) {
                        (Wait::Data, _) => now + limit,
                        (Wait::Command, Some((at, flushes))) if flushes == self.flushes => at,
                        (Wait::Command, _) => {
                            command_deadline = Some((now + limit, self.flushes));
                            now + limit
                        }
                    };
                    let read = tokio::select! {
                        read = tokio::time::timeout_at(deadline, io.read(&mut buf)) => read,
                        _ = self.stop.changed() => {
                            self.session.shutdown();
                            continue;
                        }
                    };
                    match read {
                        Err(_elapsed) => {
                            let waiting_for = match wait {
                                Wait::Command => "a command",
                                Wait::Data => "message data",
                            };
                            info!(waiting_for, "timeout");
                            self.session.timed_out();
                        }
                        Ok(Ok(0)) => self.session.peer_closed(),
                        Ok(Ok(n)) => self.session.receive(&buf[..n]),
                        Ok(Err(e)) => return Err(e),
                    }
                }
                Event::Close => {
                    self.log_refused_senders();
                    self.flush(io).await?;
                    let _ = io.shutdown().await;
                    return Ok(Outcome::Closed);
                }
                Event::StartTls => {
                    self.flush(io).await?;
                    return Ok(Outcome::StartTls);
                }
                Event::Authenticate(credentials) => {
                    // Failed logins are counted per address together with IMAP and POP3, so
                    // guessing cannot move from one protocol to another.
                    let ip = self.peer.ip();
                    if let Some(wait) = self.shared.limiter.wait(ip) {
                        warn!("too many failed logins from this address; not checked");
                        let secs = postroom_maildir::access::whole_seconds(wait);
                        let text = format!(
                            "Too many failed logins from this address, try again in {secs} s"
                        );
                        let reply = Reply::new(454, S(4, 7, 0), text);
                        self.session.auth_refused(reply);
                        continue;
                    }
                    let user = credentials.username.clone();
                    let result = self.shared.users.verify(credentials).await;
                    self.shared.limiter.record(ip, result.is_some());
                    match &result {
                        Some(name) => info!(user = %name, "authenticated"),
                        None => warn!(user = %user, "authentication failed"),
                    }
                    let senders = match (&result, self.kind) {
                        // Port 25 authenticates nobody; its senders are never checked.
                        (_, Kind::Mx) | (None, _) => None,
                        (Some(name), _) => senders::allowed_senders(&self.policy.config, name),
                    };
                    self.session.auth_result(result);
                    if let Some(senders) = &senders {
                        self.session.restrict_senders(senders.clone());
                    }
                    self.senders = senders;
                }
                Event::CheckRecipient { address, envelope } => {
                    let ip = self.peer.ip();
                    let trusted = self
                        .policy
                        .config
                        .trusted_networks
                        .iter()
                        .any(|n| n.contains(ip));
                    let may_relay = envelope.authenticated.is_some() || trusted;
                    let verdict = self.policy.router.resolve(&address, may_relay);
                    let verdict = match verdict {
                        Ok(destinations) => {
                            self.routes
                                .insert(address.to_ascii_lowercase(), destinations);
                            Ok(())
                        }
                        Err(reply) => {
                            info!(recipient = %address, code = reply.code, "recipient refused");
                            Err(reply)
                        }
                    };
                    self.session.recipient_result(verdict);
                }
                Event::Message(message) => {
                    if let Some(reply) = self.from_header_refusal(&message) {
                        self.routes.clear();
                        self.session
                            .message_result(Err(reply), Some(message.content));
                        continue;
                    }
                    let result = self.store(*message).await;
                    self.session.message_result(result, None);
                }
            }
        }
    }

    /// With `[mail.submission] from_header_check`, the refusal of a message whose `From:`
    /// names an address the authenticated user does not own.
    fn from_header_refusal(&self, message: &postroom_smtp::Message) -> Option<Reply> {
        if !self.policy.config.submission.from_header_check {
            return None;
        }
        let senders = self.senders.as_ref()?;
        let user = self.session.authenticated_user().unwrap_or_default();
        let reply = senders::from_header_refusal(&message.content, senders, user)?;
        info!(user, "message refused: From: header not owned by the user");
        Some(reply)
    }

    /// Senders refused for not being the user's own: a policy decision for the journal.
    fn log_refused_senders(&mut self) {
        for path in self.session.take_refused_senders() {
            let user = self.session.authenticated_user().unwrap_or_default();
            info!(user, sender = %path.as_str(), "sender refused: not owned by the user");
        }
    }

    async fn store(&mut self, message: postroom_smtp::Message) -> Result<String, Reply> {
        let id = trace::new_message_id();
        let mut recipients: Vec<Routed> = Vec::new();
        for rcpt in &message.envelope.recipients {
            let Some(destinations) = self.routes.get(&rcpt.address.to_ascii_lowercase()) else {
                continue;
            };
            for destination in destinations {
                // One copy per distinct destination, whichever recipient led to it first.
                if !recipients.iter().any(|r| &r.destination == destination) {
                    recipients.push(Routed {
                        destination: destination.clone(),
                        recipient: rcpt.address.clone(),
                    });
                }
            }
        }
        self.routes.clear();

        let received = trace::received_header(
            &message.envelope,
            self.peer.ip(),
            &self.policy.config.hostname,
            &id,
            SystemTime::now(),
        );
        let size = received.len() + message.content.len();
        let from = message.envelope.reverse_path.as_str().to_owned();
        let count = recipients.len();
        let accepted = Accepted {
            id: id.clone(),
            envelope: message.envelope,
            recipients,
            received,
            content: message.content,
        };
        match self.shared.intake.accept(accepted).await {
            Ok(queue_id) => {
                self.shared
                    .counters
                    .accepted
                    .fetch_add(1, Ordering::Relaxed);
                info!(msg_id = %id, %queue_id, from = %from, recipients = count, size, "message accepted");
                Ok(queue_id)
            }
            Err(e) => {
                warn!(msg_id = %id, error = %e, "message could not be stored");
                // RFC 5321 section 4.2.5: a 451 leaves the message with the client.
                Err(Reply::new(
                    451,
                    S(4, 3, 0),
                    "Local error in processing; try again later",
                ))
            }
        }
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<()> {
        if !self.session.output().is_empty() {
            io.write_all(self.session.output()).await?;
            io.flush().await?;
            self.session.clear_output();
            self.flushes += 1;
        }
        Ok(())
    }
}
