//! Runs a [`Session`] over a TCP connection with tokio, upgrading to TLS on STARTTLS, against
//! a smarthost or each MX host of a domain in turn.

use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::client::{Action, Credentials, RecipientOutcome, Session, SessionConfig, TlsMode};
use crate::dot::DotStuffer;
use crate::reply::{Reply, ReplyParser};
use crate::tls::{CertCheck, client_config};
use crate::{Error, Transaction, mx};

/// Where outbound mail goes.
#[derive(Debug, Clone)]
pub enum Relay {
    /// Everything to one relay, the ISP's smarthost (usually port 587 with STARTTLS and AUTH).
    Smarthost {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// STARTTLS policy; usually [`TlsMode::Required`].
        tls: TlsMode,
        /// Certificate check; verified unless the administrator turned it off.
        cert: CertCheck,
        /// AUTH credentials.
        auth: Option<Credentials>,
    },
    /// Straight to each recipient domain's MX hosts with opportunistic, unverified STARTTLS.
    Mx {
        /// The port, 25 except in tests.
        port: u16,
    },
}

impl Relay {
    /// The concurrency key for a recipient domain: the one smarthost, or the domain itself.
    pub fn destination_key(&self, domain: &str) -> String {
        match self {
            Relay::Smarthost { host, port, .. } => format!("{host}:{port}"),
            Relay::Mx { .. } => domain.to_ascii_lowercase(),
        }
    }
}

/// RFC 5321 section 4.5.3.2 timeouts, shortened only in tests.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Establishing the TCP connection.
    pub connect: Duration,
    /// The greeting and every command reply (5 minutes in the RFC; DATA initiation 2).
    pub command: Duration,
    /// Writing one block of data (3 minutes).
    pub data_block: Duration,
    /// The reply to the final dot (10 minutes).
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(300),
            data_block: Duration::from_secs(180),
            data_end: Duration::from_secs(600),
        }
    }
}

/// Settings that do not depend on the destination.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Our name in EHLO.
    pub helo_name: String,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// DNS resolver for MX lookups; built from the system's settings on first use if `None`.
    pub resolver: Option<Arc<TokioResolver>>,
}

/// What became of one message sent to one destination.
#[derive(Debug, Clone)]
pub struct Sent {
    /// An outcome per recipient, in the order of `transaction.recipients`.
    pub outcomes: Vec<RecipientOutcome>,
    /// The server that gave the outcomes (DSN Remote-MTA), when one was reached.
    pub server: Option<String>,
}

/// Sends one message to the recipients of one domain. Never fails as a whole: a failure to
/// connect is a deferral of every recipient, with the reason as its reply.
pub async fn send(
    relay: &Relay,
    options: &SendOptions,
    domain: &str,
    transaction: Transaction,
    body: &[u8],
) -> Sent {
    match relay {
        Relay::Smarthost {
            host,
            port,
            tls,
            cert,
            auth,
        } => {
            let config = SessionConfig {
                helo_name: options.helo_name.clone(),
                tls: *tls,
                auth: auth.clone(),
            };
            let attempt = HostAttempt {
                host,
                port: *port,
                config,
                cert,
                options,
            };
            let (outcomes, reached) = attempt.run(&transaction, body).await;
            Sent {
                outcomes,
                server: reached.then(|| host.clone()),
            }
        }
        Relay::Mx { port } => send_mx(*port, options, domain, transaction, body).await,
    }
}

async fn send_mx(
    port: u16,
    options: &SendOptions,
    domain: &str,
    transaction: Transaction,
    body: &[u8],
) -> Sent {
    let every = |reply: Reply| {
        let outcome = if reply.is_permanent() {
            RecipientOutcome::Failed(reply)
        } else {
            RecipientOutcome::Deferred(reply)
        };
        Sent {
            outcomes: vec![outcome; transaction.recipients.len()],
            server: None,
        }
    };
    let resolver = match &options.resolver {
        Some(r) => r.clone(),
        None => match TokioResolver::builder_tokio() {
            Ok(b) => Arc::new(b.build()),
            Err(e) => return every(Reply::local(451, format!("4.4.3 DNS resolver: {e}"))),
        },
    };
    let hosts = match mx::mail_hosts(&resolver, domain).await {
        Ok(hosts) => hosts,
        Err(Error::NoRoute {
            reason,
            permanent: true,
            ..
        }) => {
            return every(Reply::local(550, format!("5.1.2 {domain}: {reason}")));
        }
        Err(e) => return every(Reply::local(451, format!("4.4.3 {e}"))),
    };

    // RFC 5321 section 5.1: try each MX in order until one takes responsibility; opportunistic
    // TLS without a certificate check (RFC 7435).
    let cert = CertCheck::None;
    let mut last = None;
    for host in &hosts {
        let config = SessionConfig {
            helo_name: options.helo_name.clone(),
            tls: TlsMode::Opportunistic,
            auth: None,
        };
        let attempt = HostAttempt {
            host,
            port,
            config,
            cert: &cert,
            options,
        };
        let (outcomes, decided) = attempt.run(&transaction, body).await;
        if decided {
            return Sent {
                outcomes,
                server: Some(host.clone()),
            };
        }
        last = Some(Sent {
            outcomes,
            server: None,
        });
    }
    last.unwrap_or_else(|| every(Reply::local(451, format!("4.4.3 no server for {domain}"))))
}

/// One attempt at one host.
struct HostAttempt<'a> {
    host: &'a str,
    port: u16,
    config: SessionConfig,
    cert: &'a CertCheck,
    options: &'a SendOptions,
}

impl HostAttempt<'_> {
    /// Returns the outcomes and whether the server decided anything (false: try another host).
    async fn run(&self, transaction: &Transaction, body: &[u8]) -> (Vec<RecipientOutcome>, bool) {
        let span = info_span!("smtp_out", host = self.host, port = self.port);
        async {
            let mut session = Session::new(self.config.clone(), transaction.clone());
            let result = self.drive(&mut session, body).await;
            let failure = match &result {
                Ok(()) => None,
                Err(e) => {
                    warn!(error = %e, "delivery attempt failed");
                    Some(Reply::local(451, format!("4.4.2 {e}")))
                }
            };
            let decided = !session.nothing_decided();
            if let Some(reply) = session.session_failure() {
                info!(reply = %reply, "server refused the session");
            }

            // Opportunistic TLS that fails its handshake is retried in plain text, as the point
            // of it is to deliver (RFC 7435 section 3).
            if !decided
                && self.config.tls == TlsMode::Opportunistic
                && matches!(result, Err(Error::Tls(_)))
            {
                let mut config = self.config.clone();
                config.tls = TlsMode::Never;
                let mut plain = Session::new(config, transaction.clone());
                let result = self.drive(&mut plain, body).await;
                let failure = result
                    .err()
                    .map(|e| Reply::local(451, format!("4.4.2 {e}")));
                return (plain.outcomes(failure.as_ref()), !plain.nothing_decided());
            }
            (session.outcomes(failure.as_ref()), decided)
        }
        .instrument(span)
        .await
    }

    async fn drive(&self, session: &mut Session, body: &[u8]) -> Result<(), Error> {
        let name = format!("{}:{}", self.host, self.port);
        let t = self.options.timeouts;
        let io = |source| Error::Io {
            host: name.clone(),
            source,
        };
        let timeout = |d: Duration| Error::Timeout {
            host: name.clone(),
            secs: d.as_secs(),
        };

        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::time::timeout(t.connect, TcpStream::connect((host, self.port)))
            .await
            .map_err(|_| timeout(t.connect))?
            .map_err(io)?;
        let _ = tcp.set_nodelay(true);
        let mut conn = Conn::Plain(tcp);
        let mut parser = ReplyParser::new();
        let mut buf = vec![0u8; 8192];
        let mut wait = t.command;

        loop {
            match session.next_action() {
                Action::Send(bytes) => {
                    debug!(command = %redact(&bytes), "sending");
                    tokio::time::timeout(t.command, conn.write_all(&bytes))
                        .await
                        .map_err(|_| timeout(t.command))?
                        .map_err(io)?;
                }
                Action::ReadReply => {
                    let reply = loop {
                        if let Some(reply) = parser.next_reply()? {
                            break reply;
                        }
                        let n = tokio::time::timeout(wait, conn.read(&mut buf))
                            .await
                            .map_err(|_| timeout(wait))?
                            .map_err(io)?;
                        if n == 0 {
                            return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
                        }
                        parser.feed(&buf[..n]);
                    };
                    wait = t.command;
                    debug!(reply = %reply, "reply");
                    session.on_reply(reply)?;
                }
                Action::StartTls => {
                    if parser.has_pending() {
                        return Err(Error::Protocol(
                            "the server sent data after its STARTTLS reply".into(),
                        ));
                    }
                    let check = if self.config.tls == TlsMode::Opportunistic {
                        &CertCheck::None
                    } else {
                        self.cert
                    };
                    let connector = TlsConnector::from(client_config(check)?);
                    let server_name = ServerName::try_from(host.to_owned())
                        .map_err(|e| Error::Tls(format!("{host} is not a valid TLS name: {e}")))?;
                    let Conn::Plain(tcp) = std::mem::replace(&mut conn, Conn::Closed) else {
                        return Err(Error::Protocol("STARTTLS offered twice".into()));
                    };
                    let tls = tokio::time::timeout(t.command, connector.connect(server_name, tcp))
                        .await
                        .map_err(|_| timeout(t.command))?
                        .map_err(|e| Error::Tls(format!("handshake with {name}: {e}")))?;
                    conn = Conn::Tls(Box::new(tls));
                    session.on_tls_established();
                }
                Action::SendBody => {
                    let mut stuffer = DotStuffer::new();
                    let mut out = Vec::with_capacity(66 * 1024);
                    for chunk in body.chunks(64 * 1024) {
                        out.clear();
                        stuffer.push(chunk, &mut out);
                        tokio::time::timeout(t.data_block, conn.write_all(&out))
                            .await
                            .map_err(|_| timeout(t.data_block))?
                            .map_err(io)?;
                    }
                    out.clear();
                    stuffer.finish(&mut out);
                    conn.write_all(&out).await.map_err(io)?;
                    wait = t.data_end;
                }
                Action::Close => {
                    let _ = conn.shutdown().await;
                    return Ok(());
                }
            }
        }
    }
}

/// A command line for the debug log, without AUTH secrets: the AUTH command and the bare
/// base64 lines of AUTH LOGIN are not shown.
fn redact(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let first = text.lines().next().unwrap_or("");
    let verb = first.split(' ').next().unwrap_or("").to_ascii_uppercase();
    if verb == "AUTH"
        || (!first.contains(' ')
            && !matches!(verb.as_str(), "QUIT" | "DATA" | "STARTTLS" | "RSET" | "."))
    {
        return "<credentials>".into();
    }
    text.trim_end().replace("\r\n", " | ")
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Closed,
}

impl Conn {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
            Conn::Closed => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(bytes).await,
            Conn::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Closed => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s) => s.shutdown().await,
            Conn::Closed => Ok(()),
        }
    }
}
