//! What the mail component does when the link comes up: hold the link, ask the ISP for the
//! waiting mail (ETRN, POP3 multidrop), release the hold so the link can hang up when idle.

use std::path::Path;
use std::time::Duration;

use postroom_control::Client;
use serde::Deserialize;

use crate::Error;
use crate::multidrop::{FetchConfig, FetchReport, fetch};
use crate::smtp::{EtrnOutcome, etrn};

/// How long a hold may wait for the link: dialling with redials takes minutes.
const HOLD_WAIT: Duration = Duration::from_secs(30 * 60);

/// Where the waiting mail is.
#[derive(Debug, Clone, Default)]
pub struct Pull {
    /// The ISP's backup MX (`host:port`) and our domains, for ETRN; none to skip.
    pub etrn: Option<(String, Vec<String>)>,
    /// The name we give in EHLO.
    pub helo: String,
    /// POP3 domain mailboxes to empty.
    pub mailboxes: Vec<FetchConfig>,
    /// Network timeout for each step.
    pub timeout: Duration,
}

/// What a pull did; one failing source does not stop the others.
#[derive(Debug, Default)]
pub struct PullReport {
    /// ETRN answers per domain.
    pub etrn: Vec<EtrnOutcome>,
    /// One report per mailbox, in order.
    pub fetched: Vec<Result<FetchReport, Error>>,
    /// ETRN as a whole failed (connection, greeting).
    pub etrn_error: Option<Error>,
}

/// Asks for the waiting mail: ETRN first (the backup MX then connects to us on its own), then
/// each POP3 mailbox.
pub async fn pull(p: &Pull) -> PullReport {
    let mut report = PullReport::default();
    if let Some((addr, domains)) = &p.etrn {
        match etrn(addr, &p.helo, domains, p.timeout).await {
            Ok(outcomes) => report.etrn = outcomes,
            Err(e) => {
                tracing::warn!(error = %e, "ETRN failed");
                report.etrn_error = Some(e);
            }
        }
    }
    for mailbox in &p.mailboxes {
        let result = fetch(mailbox).await;
        if let Err(e) = &result {
            tracing::warn!(mailbox = %mailbox.pop3, error = %e, "POP3 fetch failed");
        }
        report.fetched.push(result);
    }
    report
}

#[derive(Debug, Deserialize)]
struct HoldReply {
    id: u64,
}

/// Holds the link (`POST /hold` on the link's control socket, which answers once it is up),
/// runs `work`, and releases the hold whatever `work` returned.
pub async fn while_held<F, T>(link_socket: &Path, reason: &str, work: F) -> Result<T, Error>
where
    F: Future<Output = T>,
{
    let peer = link_socket.display().to_string();
    let client = Client::new(link_socket).with_timeout(HOLD_WAIT);
    let body = serde_json::json!({ "reason": reason });
    let hold: HoldReply = client
        .post_json("/hold", &body)
        .await
        .map_err(|e| Error::Refused {
            peer: peer.clone(),
            during: "hold".into(),
            reply: e.to_string(),
        })?;
    let result = work.await;
    if let Err(e) = client.delete(&format!("/hold/{}", hold.id)).await {
        tracing::warn!(hold = hold.id, error = %e, "could not release the link hold");
    }
    Ok(result)
}
