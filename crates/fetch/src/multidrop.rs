//! The multidrop fetch: every new message in the ISP's domain mailbox is delivered to our own
//! MX over SMTP on loopback (as fetchmail does), to the recipients its envelope headers name,
//! and deleted at the ISP only after our MX accepted it (250 after DATA, which Postroom sends
//! only once the message is on disk) and its UID is recorded.

use std::path::PathBuf;
use std::time::Duration;

use tracing::Instrument;

use crate::Error;
use crate::pop3::Pop3;
use crate::recipients::{Source, recipients, return_path};
use crate::seen::Seen;
use crate::smtp::Session;
use crate::tls::{Pop3Tls, client_config};
use crate::wire::Conn;

/// What to fetch and where to deliver it.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// The ISP's POP3 server, `host:port`.
    pub pop3: String,
    /// The mailbox's user name.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Implicit TLS, STLS, or plain text.
    pub tls: Pop3Tls,
    /// Extra CA certificates (PEM) trusted for the POP3 server, besides the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// Our MX, `127.0.0.1:25`.
    pub mx: String,
    /// The name we give in EHLO.
    pub helo: String,
    /// Our domains: only recipients in them are delivered.
    pub domains: Vec<String>,
    /// Where mail with no deliverable recipient goes.
    pub postmaster: String,
    /// Delete delivered messages at the ISP (else they stay, and UIDs keep them from coming
    /// twice).
    pub delete: bool,
    /// The redb file of seen UIDs.
    pub seen_db: PathBuf,
    /// Network timeout for each step.
    pub timeout: Duration,
}

/// What a fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// UID and the recipients it was delivered to.
    pub delivered: Vec<(String, Vec<String>)>,
    /// Messages skipped because their UID was delivered before.
    pub already_seen: usize,
    /// Messages marked for deletion at the ISP.
    pub deleted: usize,
    /// UID and why a message was kept at the ISP for the next fetch.
    pub kept: Vec<(String, String)>,
}

/// Fetches once.
pub async fn fetch(cfg: &FetchConfig) -> Result<FetchReport, Error> {
    let account = format!("{}@{}", cfg.user, cfg.pop3);
    let span = tracing::info_span!("fetch", account = %account, tls = ?cfg.tls);
    fetch_account(cfg, &account).instrument(span).await
}

async fn fetch_account(cfg: &FetchConfig, account: &str) -> Result<FetchReport, Error> {
    let seen = Seen::open(&cfg.seen_db)?;

    let tls = match cfg.tls {
        Pop3Tls::Implicit | Pop3Tls::StartTls => Some(client_config(cfg.ca_file.as_deref())?),
        Pop3Tls::None => None,
    };
    let mut pop = Pop3::connect(&cfg.pop3, cfg.tls, tls, cfg.timeout).await?;
    pop.login(&cfg.user, &cfg.password).await?;
    let list = pop.uidl().await?;
    let mut report = FetchReport::default();
    let mut mx: Option<Session> = None;

    for (n, uid) in list {
        if seen.contains(account, &uid)? {
            report.already_seen += 1;
            if cfg.delete {
                pop.dele(n).await?;
                report.deleted += 1;
            }
            continue;
        }
        let message = pop.retr(n).await?;
        if mx.is_none() {
            let conn = Conn::connect(&cfg.mx, cfg.timeout).await?;
            mx = Some(Session::open(conn, &cfg.helo).await?);
        }
        let Some(session) = mx.as_mut() else { continue };
        match deliver(session, cfg, &message).await? {
            Ok(to) => {
                seen.insert(account, &uid)?;
                tracing::info!(uid = %uid, recipients = to.join(",").as_str(), "fetched message delivered");
                report.delivered.push((uid, to));
                if cfg.delete {
                    pop.dele(n).await?;
                    report.deleted += 1;
                }
            }
            Err(why) => {
                tracing::warn!(uid = %uid, reason = %why, "fetched message kept at the ISP");
                report.kept.push((uid, why));
            }
        }
    }
    if let Some(session) = mx {
        session.quit().await;
    }
    pop.quit().await?;
    Ok(report)
}

/// One message into our MX. The outer error is the connection failing; the inner one a
/// refusal that keeps the message at the ISP for another try.
async fn deliver(
    session: &mut Session,
    cfg: &FetchConfig,
    message: &[u8],
) -> Result<Result<Vec<String>, String>, Error> {
    let found = recipients(message, &cfg.domains);
    match found.source {
        Source::Envelope => {}
        Source::ToCc => tracing::warn!(
            recipients = found.addresses.join(",").as_str(),
            "no envelope header (X-Original-To, Delivered-To, X-Envelope-To): guessing from To/Cc"
        ),
        Source::Nothing => tracing::warn!("no recipient in our domains: to the postmaster"),
    }

    let from = return_path(message);
    let reply = session.call(&format!("MAIL FROM:<{from}>")).await?;
    if !reply.is_positive() {
        let _ = session.call("RSET").await?;
        return Ok(Err(format!(
            "MAIL FROM refused: {} {}",
            reply.code,
            reply.text()
        )));
    }

    let mut accepted = Vec::new();
    let mut to_postmaster = found.addresses.is_empty();
    for address in &found.addresses {
        let reply = session.call(&format!("RCPT TO:<{address}>")).await?;
        if reply.is_positive() {
            accepted.push(address.clone());
        } else if reply.code >= 500 {
            tracing::warn!(recipient = %address, reply = %reply.text(), "unroutable: to the postmaster");
            to_postmaster = true;
        } else {
            let _ = session.call("RSET").await?;
            return Ok(Err(format!(
                "RCPT TO:<{address}> deferred: {} {}",
                reply.code,
                reply.text()
            )));
        }
    }
    if to_postmaster && !accepted.contains(&cfg.postmaster) {
        let reply = session
            .call(&format!("RCPT TO:<{}>", cfg.postmaster))
            .await?;
        if !reply.is_positive() {
            let _ = session.call("RSET").await?;
            return Ok(Err(format!(
                "postmaster refused: {} {}",
                reply.code,
                reply.text()
            )));
        }
        accepted.push(cfg.postmaster.clone());
    }

    let reply = session.data(message).await?;
    if reply.code != 250 {
        return Ok(Err(format!(
            "DATA refused: {} {}",
            reply.code,
            reply.text()
        )));
    }
    Ok(Ok(accepted))
}
