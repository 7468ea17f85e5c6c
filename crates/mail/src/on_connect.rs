//! Mail on connect, for a link dialled on demand.
//!
//! While the link is down the queue holds remote mail. When remote mail is due, this task asks
//! the link for a hold (`POST /hold` on `<run_dir>/link.sock`, which answers once the link is
//! up or the call has failed). With the link up it flushes the queue, waits until every
//! waiting message has had its try, asks the ISP for the mail it keeps for us (ETRN to the
//! backup MX, POP3 multidrop fetches, `[mail.on_connect]`), and releases the hold, so the link
//! hangs up after its idle time. A link that comes up by itself (its schedule, or by hand) is
//! seen on the link's `/events` stream and used the same way. When the link goes down again
//! the queue is held.
//!
//! In permanent mode none of this runs: the queue is never held and mail goes straight out.
//! [`Periodic`] fetches the ISP's POP3 mailboxes there instead, when the component starts and
//! then every `[mail.on_connect] fetch_interval`; ETRN is not needed with a permanent link, as
//! the backup MX delivers by itself.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postroom_config::mail::{Mail, Pop3Tls};
use postroom_control::Client;
use postroom_fetch::{FetchConfig, Pull};
use postroom_queue::Queue;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

/// How often the queue is looked at for mail that wants the link.
const QUEUE_POLL: Duration = Duration::from_secs(1);

/// How long a hold may wait for the link: dialling with redials takes minutes.
const HOLD_WAIT: Duration = Duration::from_secs(30 * 60);

/// A link that cannot be reached (not started yet, restarting) is asked again this soon.
const UNREACHABLE_RETRY: Duration = Duration::from_secs(5);

/// What is done on connect, from `[mail]`; replaced on a reload.
#[derive(Debug, Clone)]
pub struct Plan {
    /// ETRN and the POP3 mailboxes.
    pub pull: Pull,
    /// How long the flush may keep the link.
    pub flush_timeout: Duration,
    /// The pause before queued mail asks again after a failed call.
    pub redial_after: Duration,
    /// Permanent mode: how often the mailboxes are fetched; zero for never.
    pub fetch_interval: Duration,
}

impl Plan {
    /// The plan of an effective `[mail]` section. `mx` is our own MX listener, where fetched
    /// mail is delivered; `data_dir` holds the store of fetched UIDs.
    pub fn new(mail: &Mail, mx: SocketAddr, data_dir: &std::path::Path) -> Plan {
        let c = &mail.on_connect;
        let timeout = c.timeout.duration().max(Duration::from_secs(1));
        let domains = if c.etrn_domains.is_empty() {
            mail.domains.clone()
        } else {
            c.etrn_domains.clone()
        };
        let etrn = (!c.etrn_host.is_empty())
            .then(|| (format!("{}:{}", c.etrn_host, c.etrn_port), domains));
        let primary = mail.domains.first().cloned().unwrap_or_default();
        let mailboxes = c
            .pop3
            .iter()
            .map(|m| FetchConfig {
                pop3: format!("{}:{}", m.host, m.effective_port()),
                user: m.user.clone(),
                password: m.password.clone(),
                tls: match m.tls {
                    Pop3Tls::Implicit => postroom_fetch::Pop3Tls::Implicit,
                    Pop3Tls::StartTls => postroom_fetch::Pop3Tls::StartTls,
                    Pop3Tls::None => postroom_fetch::Pop3Tls::None,
                },
                ca_file: m.ca_file.clone(),
                mx: loopback_of(mx).to_string(),
                helo: mail.hostname.clone(),
                domains: mail.domains.clone(),
                postmaster: format!("postmaster@{primary}"),
                delete: !m.keep,
                // mail.redb is held open by this process; redb allows one handle per file.
                seen_db: data_dir.join("fetched.redb"),
                timeout,
            })
            .collect();
        Plan {
            pull: Pull {
                etrn,
                helo: mail.hostname.clone(),
                mailboxes,
                timeout,
            },
            flush_timeout: c.flush_timeout.duration(),
            redial_after: c.redial_after.duration(),
            fetch_interval: c.fetch_interval.duration(),
        }
    }
}

/// A listener on every address is reached on loopback.
fn loopback_of(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// The running task; [`Running::stop`] ends it and releases a hold it has.
pub struct Running {
    plan: watch::Sender<Plan>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    held: Arc<Mutex<Option<u64>>>,
    link: Client,
}

impl Running {
    /// Starts mail on connect. Must run inside the tokio runtime.
    pub fn start(queue: Queue, link_socket: PathBuf, plan: Plan, hold_when_down: bool) -> Running {
        let (plan, plans) = watch::channel(plan);
        let (stop, stopped) = watch::channel(false);
        let held = Arc::new(Mutex::new(None));
        let link = Client::new(link_socket).with_timeout(HOLD_WAIT);
        let task = tokio::spawn(
            Coordinator {
                queue,
                link: link.clone(),
                plans,
                hold_when_down,
                held: Arc::clone(&held),
            }
            .run(stopped)
            .instrument(info_span!("on_connect")),
        );
        Running {
            plan,
            stop,
            task,
            held,
            link,
        }
    }

    /// Uses a new plan from the next connect on.
    pub fn reload(&self, plan: Plan) {
        self.plan.send_replace(plan);
    }

    /// Ends the task; a hold it has is released so the link can hang up.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let id = self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(id) = id {
            let link = self.link.with_timeout(Duration::from_secs(5));
            if let Err(e) = link.delete(&format!("/hold/{id}")).await {
                warn!(hold = id, error = %e, "could not release the link hold at shutdown");
            }
        }
    }
}

/// Permanent mode: the POP3 mailboxes fetched when the component starts and then every
/// `fetch_interval`, with no link to hold. [`Periodic::stop`] ends it; a fetch cut short
/// deletes nothing at the ISP (POP3 deletes only at QUIT, RFC 1939 section 6) and the UIDs
/// already delivered are recorded, so the next fetch brings nothing twice.
pub struct Periodic {
    plan: watch::Sender<Plan>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Periodic {
    /// Starts the fetches. Must run inside the tokio runtime.
    pub fn start(plan: Plan) -> Periodic {
        let (plan, plans) = watch::channel(plan);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(fetch_periodically(plans, stopped).instrument(info_span!("fetch")));
        Periodic { plan, stop, task }
    }

    /// Uses a new plan: its mailboxes from the next fetch on, its interval counted from the
    /// last fetch.
    pub fn reload(&self, plan: Plan) {
        self.plan.send_replace(plan);
    }

    /// Ends the task, cutting a running fetch short.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn fetch_periodically(mut plans: watch::Receiver<Plan>, mut stopped: watch::Receiver<bool>) {
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        let plan = plans.borrow_and_update().clone();
        let active = !plan.pull.mailboxes.is_empty() && !plan.fetch_interval.is_zero();
        let due = match (active, last) {
            (false, _) => None,
            (true, None) => Some(tokio::time::Instant::now()),
            (true, Some(at)) => Some(at + plan.fetch_interval),
        };
        let wait = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            changed = plans.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            () = wait => {}
        }

        last = Some(tokio::time::Instant::now());
        // No ETRN: with a permanent link the backup MX delivers by itself.
        let pull = Pull {
            etrn: None,
            ..plan.pull
        };
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            report = postroom_fetch::pull(&pull) => log_fetched(&report),
        }
    }
}

/// One line per mailbox fetched; failures were logged by the fetch itself.
fn log_fetched(report: &postroom_fetch::PullReport) {
    for fetched in report.fetched.iter().flatten() {
        info!(
            delivered = fetched.delivered.len(),
            kept = fetched.kept.len(),
            "POP3 mailbox fetched"
        );
    }
}

struct Coordinator {
    queue: Queue,
    link: Client,
    plans: watch::Receiver<Plan>,
    hold_when_down: bool,
    held: Arc<Mutex<Option<u64>>>,
}

/// Why a connect session ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Remote mail is due: we asked for the link.
    Queue,
    /// The link came up by itself (schedule, by hand, another component's hold).
    LinkUp,
}

/// How a session ended.
#[derive(Debug)]
enum Ended {
    /// The link was up and the work done.
    Done,
    /// The call failed (busy, no answer...): the link said so.
    CallFailed,
    /// The link's socket did not answer.
    Unreachable,
}

impl Coordinator {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let (states_tx, mut states) = mpsc::channel(16);
        let watcher = tokio::spawn(watch_link(self.link.clone(), states_tx));
        let this = Arc::new(self);
        let mut session: Option<JoinHandle<Ended>> = None;
        let mut not_before: Option<Instant> = None;
        let mut link_up = false;
        let mut poll = tokio::time::interval(QUEUE_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => break,
                Some(state) = states.recv() => {
                    debug!(state = %state, "link state");
                    link_up = state == "up";
                    if !link_up && this.hold_when_down && state != "connecting" {
                        this.queue.hold();
                    }
                    if link_up && session.is_none() {
                        info!("the link is up: flushing the queue and pulling mail");
                        session = Some(this.clone().spawn_session(Trigger::LinkUp));
                    }
                }
                ended = async { session.as_mut().expect("guarded by the if").await },
                    if session.is_some() =>
                {
                    session = None;
                    let redial_after = this.plans.borrow().redial_after;
                    not_before = match ended {
                        Ok(Ended::Done) => None,
                        Ok(Ended::CallFailed) => Some(Instant::now() + redial_after),
                        Ok(Ended::Unreachable) | Err(_) => Some(Instant::now() + UNREACHABLE_RETRY),
                    };
                }
                _ = poll.tick() => {
                    if session.is_some() || not_before.is_some_and(|t| Instant::now() < t) {
                        continue;
                    }
                    if remote_mail_due(&this.queue) {
                        let why = if link_up { "the link is up" } else { "asking for the link" };
                        info!("remote mail is waiting: {why}");
                        session = Some(this.clone().spawn_session(Trigger::Queue));
                    }
                }
            }
        }
        watcher.abort();
        if let Some(session) = session {
            session.abort();
            let _ = session.await;
        }
    }

    fn spawn_session(self: Arc<Self>, trigger: Trigger) -> JoinHandle<Ended> {
        let span = info_span!("connect", trigger = ?trigger);
        tokio::spawn(async move { self.session(trigger).await }.instrument(span))
    }

    /// Holds the link, flushes, pulls, releases.
    async fn session(&self, trigger: Trigger) -> Ended {
        let reason = match trigger {
            Trigger::Queue => "mail: queued mail to send",
            Trigger::LinkUp => "mail: flush and pull on connect",
        };
        let body = serde_json::json!({ "reason": reason });
        let asked = self.link.post_json::<_, HoldReply>("/hold", &body);
        // Mail deleted or bounced by hand while the link dials: the request is dropped, which
        // releases the hold, and the link cancels a call that nobody needs any more.
        let answer = tokio::select! {
            answer = asked => answer,
            () = no_mail_wants_the_link(&self.queue), if trigger == Trigger::Queue => {
                info!("no queued mail waits for the link any more: hold given up");
                return Ended::Done;
            }
        };
        let hold = match answer {
            Ok(hold) => hold,
            Err(postroom_control::Error::Unreachable { .. }) => {
                debug!("the link component does not answer yet");
                return Ended::Unreachable;
            }
            Err(e) => {
                warn!(error = %e, "the link did not come up: queued mail stays queued");
                return Ended::CallFailed;
            }
        };
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(hold.id);
        info!(hold = hold.id, "link held");

        let plan = self.plans.borrow().clone();
        flush_and_wait(&self.queue, plan.flush_timeout).await;
        if plan.pull.etrn.is_some() || !plan.pull.mailboxes.is_empty() {
            let report = postroom_fetch::pull(&plan.pull).await;
            for outcome in &report.etrn {
                info!(
                    domain = %outcome.domain,
                    code = outcome.reply.code,
                    reply = outcome.reply.lines.join(" ").as_str(),
                    "ETRN"
                );
            }
            log_fetched(&report);
        }

        let id = self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(id) = id {
            match self.link.delete(&format!("/hold/{id}")).await {
                Ok(()) => info!(hold = id, "link hold released"),
                Err(e) => warn!(hold = id, error = %e, "could not release the link hold"),
            }
        }
        Ended::Done
    }
}

#[derive(Debug, Deserialize)]
struct HoldReply {
    id: u64,
}

/// Follows the link's `/events` stream and sends each state's name (`up`, `down`,
/// `dialling`...); reconnects when the stream breaks (the link restarted).
async fn watch_link(link: Client, states: mpsc::Sender<String>) {
    #[derive(Deserialize)]
    struct Change {
        state: String,
    }
    loop {
        match link.stream_lines("/events").await {
            Ok(mut stream) => loop {
                match stream.next_json::<Change>().await {
                    Ok(Some(change)) => {
                        if states.send(change.state).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        debug!(error = %e, "link events stream broke");
                        break;
                    }
                }
            },
            Err(e) => debug!(error = %e, "link events not available"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a remote recipient is pending in `entry`.
fn waits_for_link(entry: &postroom_queue::EntryView) -> bool {
    entry
        .recipients
        .iter()
        .any(|r| r.destination == "remote" && r.status == "pending")
}

/// Remote mail whose next try is due. Mail deferred by the smarthost waits for its retry time
/// rather than dialling again at once.
fn remote_mail_due(queue: &Queue) -> bool {
    // The cheap in-memory check first; the listing reads records.
    if !queue.wants_link().unwrap_or(false) {
        return false;
    }
    let now = unix_now();
    match queue.list() {
        Ok(entries) => entries
            .iter()
            .any(|e| waits_for_link(e) && e.next_attempt <= now),
        Err(e) => {
            warn!(error = %e, "cannot read the queue");
            false
        }
    }
}

/// Returns once no queued message is due to go out over the link.
async fn no_mail_wants_the_link(queue: &Queue) {
    let mut poll = tokio::time::interval(QUEUE_POLL);
    loop {
        poll.tick().await;
        if !remote_mail_due(queue) {
            return;
        }
    }
}

/// Flushes the queue and waits until every message with remote recipients waiting at the
/// flush, and every one queued since, has had a delivery attempt; at most `limit`.
async fn flush_and_wait(queue: &Queue, limit: Duration) {
    let attempts_before: HashMap<String, u32> = match queue.list() {
        Ok(entries) => entries
            .into_iter()
            .filter(waits_for_link)
            .map(|e| (e.id, e.attempts))
            .collect(),
        Err(e) => {
            warn!(error = %e, "cannot read the queue");
            HashMap::new()
        }
    };
    queue.flush();
    let deadline = Instant::now() + limit;
    loop {
        let waiting = match queue.list() {
            Ok(entries) => entries
                .iter()
                .filter(|e| waits_for_link(e))
                .filter(|e| e.attempts <= attempts_before.get(&e.id).copied().unwrap_or(0))
                .count(),
            Err(e) => {
                warn!(error = %e, "cannot read the queue");
                0
            }
        };
        if waiting == 0 {
            info!(messages = attempts_before.len(), "queue flushed");
            return;
        }
        if Instant::now() >= deadline {
            warn!(
                waiting,
                "the queue flush took too long: releasing the link anyway"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetched_mail_goes_to_our_mx_on_loopback_when_it_listens_everywhere() {
        assert_eq!(
            loopback_of("0.0.0.0:25".parse().unwrap()),
            "127.0.0.1:25".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            loopback_of("[::]:2525".parse().unwrap()),
            "[::1]:2525".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            loopback_of("192.0.2.7:25".parse().unwrap()),
            "192.0.2.7:25".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn plan_asks_etrn_for_the_mail_domains_and_fetches_every_mailbox_in_its_tls_mode() {
        use postroom_config::mail::Pop3Mailbox;
        let mut mail = Mail {
            hostname: "mail.office.example".into(),
            domains: vec!["office.example".into()],
            ..Mail::default()
        };
        mail.on_connect.etrn_host = "mx2.isp.example".into();
        mail.on_connect.pop3 = vec![
            Pop3Mailbox {
                host: "pops.isp.example".into(),
                user: "office".into(),
                ..Default::default()
            },
            Pop3Mailbox {
                host: "pop.isp.example".into(),
                tls: Pop3Tls::StartTls,
                ca_file: Some("/etc/isp-ca.pem".into()),
                ..Default::default()
            },
            Pop3Mailbox {
                host: "old.isp.example".into(),
                port: Some(1110),
                tls: Pop3Tls::None,
                keep: true,
                ..Default::default()
            },
        ];
        let plan = Plan::new(&mail, "0.0.0.0:25".parse().unwrap(), "/d".as_ref());
        assert_eq!(
            plan.pull.etrn,
            Some((
                "mx2.isp.example:25".to_owned(),
                vec!["office.example".to_owned()]
            ))
        );
        let boxes = &plan.pull.mailboxes;
        let summary: Vec<(&str, postroom_fetch::Pop3Tls, bool)> = boxes
            .iter()
            .map(|m| (m.pop3.as_str(), m.tls, m.delete))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "pops.isp.example:995",
                    postroom_fetch::Pop3Tls::Implicit,
                    true
                ),
                (
                    "pop.isp.example:110",
                    postroom_fetch::Pop3Tls::StartTls,
                    true
                ),
                ("old.isp.example:1110", postroom_fetch::Pop3Tls::None, false),
            ]
        );
        assert_eq!(
            boxes[1].ca_file.as_deref(),
            Some("/etc/isp-ca.pem".as_ref())
        );
        assert_eq!(boxes[0].mx, "127.0.0.1:25");
        assert_eq!(boxes[0].postmaster, "postmaster@office.example");
        assert_eq!(plan.redial_after, Duration::from_secs(900));
        assert_eq!(plan.fetch_interval, Duration::from_secs(300));
    }
}
