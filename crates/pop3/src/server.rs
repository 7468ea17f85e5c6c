//! The POP3 listeners: tokio and rustls around [`Session`].

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

use crate::{Action, Session};

/// RFC 1939 section 3: an inactivity autologout timer of at least 10 minutes, here for each
/// command once logged in. (Before login, [`Context::login_timeout`].)
const AUTOLOGOUT: Duration = Duration::from_secs(10 * 60);

/// How long a TLS handshake may take. A client that stalls in the middle of one (or never
/// sends a byte to the implicit-TLS port) is dropped, instead of holding its connection until
/// the autologout timer, which only starts once the session runs.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// Everything a listener needs; shared by all connections.
pub struct Context {
    /// The message store.
    pub store: Store,
    /// The password check.
    pub auth: Arc<dyn Authenticator>,
    /// Failed-login limiter, shared with IMAP.
    pub limiter: Arc<LoginLimiter>,
    /// The TLS configuration (certificate and key).
    pub tls: Arc<rustls::ServerConfig>,
    /// Open connections per client address and in total, shared with IMAP.
    pub connections: Arc<ConnectionLimiter>,
    /// Before login, how long each command line may take (`[mail.access] login_timeout`).
    pub login_timeout: Duration,
}

/// Accepts connections for ever. With `implicit_tls` (port 995) TLS starts at once; otherwise
/// (port 110) the client may ask for STLS.
pub async fn serve(
    listener: TcpListener,
    implicit_tls: bool,
    ctx: Arc<Context>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // A negative greeting refuses a connection over the limit ([SYS/TEMP], RFC 3206). On port
    // 995 the refused client is closed without it, as it expects TLS first.
    let refusal: &[u8] = b"-ERR [SYS/TEMP] too many connections, try again later\r\n";
    accept_loop(
        listener,
        "pop3",
        &ctx.connections,
        (!implicit_tls).then_some(refusal),
        &stop,
        |tcp, peer, slot| {
            let ctx = ctx.clone();
            let stop = stop.clone();
            // `tls` is recorded once, when TLS is on (at once here, or after STARTTLS/STLS):
            // a value recorded over another shows both in the log line.
            let span = tracing::info_span!("pop3", %peer, tls = tracing::field::Empty);
            if implicit_tls {
                span.record("tls", true);
            }
            async move {
                if let Err(e) = connection(tcp, peer, implicit_tls, ctx, stop, slot).await {
                    tracing::debug!(error = %e, "pop3 connection ended with an error");
                }
            }
            .instrument(span)
        },
    )
    .await
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

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    implicit: bool,
    ctx: Arc<Context>,
    stop: watch::Receiver<bool>,
    _slot: ConnectionSlot,
) -> std::io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let session = Session::new(
        ctx.store.clone(),
        ctx.auth.clone(),
        ctx.limiter.clone(),
        peer_ip(peer),
        implicit,
    );
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
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => read,
            _ = stopped(&mut stop) => {
                // Not the UPDATE state: messages marked with DELE stay (RFC 1939 section 6).
                stream.write_all(b"-ERR [SYS/TEMP] server shutting down\r\n").await?;
                let _ = stream.shutdown().await;
                return Ok(None);
            }
        };
        let n = match read {
            Ok(read) => read?,
            // Autologout does not enter the UPDATE state: nothing is deleted.
            Err(_) => return Ok(None),
        };
        if n == 0 {
            return Ok(None);
        }
        let output = blocking(|| session.receive(&buf[..n]));
        if !output.bytes.is_empty() {
            stream.write_all(&output.bytes).await?;
            stream.flush().await?;
            deadline = tokio::time::Instant::now() + allowed(&session);
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

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
