//! The IMAP listeners: tokio and rustls around [`Session`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postroom_maildir::Store;
use postroom_maildir::access::{Authenticator, ConnectionLimiter, ConnectionSlot, LoginLimiter};
use postroom_maildir::listener::{accept_loop, peer_ip, stopped};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::{Action, Limits, Session};

/// How long a logged-in client may take over a command outside IDLE: RFC 3501 section 5.4 asks
/// for at least 30 minutes before an autologout. (Before login, [`Context::login_timeout`].)
const AUTOLOGOUT: Duration = Duration::from_secs(31 * 60);

/// How long a TLS handshake may take. A client that stalls in the middle of one (or never
/// sends a byte to the implicit-TLS port) is dropped, instead of holding its connection until
/// the autologout timer, which only starts once the session runs.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// How often an idling session rescans its mailbox even without a notice, so mail delivered by
/// another process (or straight into the Maildir) is announced within a second.
const IDLE_RESCAN: Duration = Duration::from_millis(400);

/// How many bytes of a large FETCH answer are made before they are written out.
const OUTPUT_CHUNK: usize = 256 * 1024;

/// Everything a listener needs; shared by all connections.
pub struct Context {
    /// The message store.
    pub store: Store,
    /// The password check.
    pub auth: Arc<dyn Authenticator>,
    /// Failed-login limiter, shared with POP3 so both count failures together.
    pub limiter: Arc<LoginLimiter>,
    /// Literal and line limits.
    pub limits: Limits,
    /// The TLS configuration (certificate and key).
    pub tls: Arc<rustls::ServerConfig>,
    /// Open connections per client address and in total, shared with POP3.
    pub connections: Arc<ConnectionLimiter>,
    /// Before login, how long each command line may take (`[mail.access] login_timeout`):
    /// the 30-minute autologout is for authenticated sessions only.
    pub login_timeout: Duration,
}

/// Accepts connections for ever. With `implicit_tls` (port 993) TLS starts at once; otherwise
/// (port 143) the client may ask for STARTTLS.
pub async fn serve(
    listener: TcpListener,
    implicit_tls: bool,
    ctx: Arc<Context>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // RFC 3501 section 7.1.5: BYE as the greeting refuses a connection over the limit. On
    // port 993 the refused client is closed without it, as it expects TLS first.
    let refusal: &[u8] = b"* BYE too many connections, try again later\r\n";
    accept_loop(
        listener,
        "imap",
        &ctx.connections,
        (!implicit_tls).then_some(refusal),
        &stop,
        |tcp, peer, slot| {
            let ctx = ctx.clone();
            let stop = stop.clone();
            // `tls` is recorded once, when TLS is on (at once here, or after STARTTLS/STLS):
            // a value recorded over another shows both in the log line.
            let span = tracing::info_span!("imap", %peer, tls = tracing::field::Empty);
            if implicit_tls {
                span.record("tls", true);
            }
            async move {
                if let Err(e) = connection(tcp, peer, implicit_tls, ctx, stop, slot).await {
                    tracing::debug!(error = %e, "imap connection ended with an error");
                }
            }
            .instrument(span)
        },
    )
    .await
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    implicit: bool,
    ctx: Arc<Context>,
    stop: watch::Receiver<bool>,
    _slot: ConnectionSlot,
) -> std::io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let mut session = Session::new(
        ctx.store.clone(),
        ctx.auth.clone(),
        ctx.limiter.clone(),
        ctx.limits.clone(),
        peer_ip(peer),
        implicit,
    );
    session.set_output_chunk(OUTPUT_CHUNK);
    let acceptor = TlsAcceptor::from(ctx.tls.clone());
    if implicit {
        let tls = handshake(&acceptor, tcp).await?;
        drive(tls, session, true, &ctx, stop).await?;
        return Ok(());
    }
    if let Some((tcp, mut session)) = drive(tcp, session, true, &ctx, stop.clone()).await? {
        let tls = handshake(&acceptor, tcp).await?;
        tracing::Span::current().record("tls", true);
        session.tls_started();
        drive(tls, session, false, &ctx, stop).await?;
    }
    Ok(())
}

/// The TLS handshake, bounded by [`HANDSHAKE`].
async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp))
        .await
        .unwrap_or_else(|_elapsed| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Runs the session on a stream until it closes, or until STARTTLS hands the stream back.
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut session: Session,
    greet: bool,
    ctx: &Context,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<Option<(S, Session)>> {
    if greet {
        stream.write_all(&session.greeting()).await?;
        stream.flush().await?;
    }
    // The time allowed for the next command, counted from the last answer: bytes trickling in
    // without completing a command do not move it.
    let allowed = |session: &Session| {
        if session.is_authenticated() {
            AUTOLOGOUT
        } else {
            ctx.login_timeout
        }
    };
    let mut deadline = tokio::time::Instant::now() + allowed(&session);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = if session.is_idle() {
            let mut tick = tokio::time::interval(IDLE_RESCAN);
            tick.tick().await;
            // RFC 2177 section 3: clients re-issue IDLE at least every 29 minutes, so one that
            // stays silent longer is gone (a half-open connection) and is logged out.
            let give_up = tokio::time::Instant::now() + AUTOLOGOUT;
            loop {
                let changed = async {
                    match session.watch() {
                        Some(w) => {
                            let _ = w.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    read = stream.read(&mut buf) => break read?,
                    _ = changed => {}
                    _ = tick.tick() => {}
                    _ = stopped(&mut stop) => return shut_down(stream).await,
                    _ = tokio::time::sleep_until(give_up) => {
                        stream.write_all(b"* BYE autologout\r\n").await?;
                        return Ok(None);
                    }
                }
                let updates = blocking(|| session.poll_idle());
                if !updates.is_empty() {
                    stream.write_all(&updates).await?;
                    stream.flush().await?;
                }
            }
        } else {
            let read = tokio::select! {
                read = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => read,
                _ = stopped(&mut stop) => return shut_down(stream).await,
            };
            match read {
                Ok(read) => read?,
                Err(_) => {
                    stream.write_all(b"* BYE autologout\r\n").await?;
                    return Ok(None);
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let mut output = blocking(|| session.receive(&buf[..n]));
        // A large FETCH comes in chunks: each goes out before the next is read from the disk,
        // so the client works on the first messages while the server reads the next ones, and
        // the answer to `FETCH 1:*` never sits in memory whole.
        loop {
            if !output.bytes.is_empty() {
                stream.write_all(&output.bytes).await?;
                stream.flush().await?;
                deadline = tokio::time::Instant::now() + allowed(&session);
            }
            if output.action != Action::Continue || !session.has_more() {
                break;
            }
            output = blocking(|| session.receive(&[]));
        }
        match output.action {
            Action::Continue => {}
            Action::Close => {
                let _ = stream.shutdown().await;
                return Ok(None);
            }
            Action::StartTls => return Ok(Some((stream, session))),
        }
    }
}

/// Says goodbye when `postroom mail` stops (RFC 3501 section 7.1.5: BYE before closing).
async fn shut_down<S: AsyncWrite + Unpin>(mut stream: S) -> std::io::Result<Option<(S, Session)>> {
    stream.write_all(b"* BYE server shutting down\r\n").await?;
    let _ = stream.shutdown().await;
    Ok(None)
}

/// Runs file-system and password-hash work without stalling other connections on a
/// multi-threaded runtime.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
