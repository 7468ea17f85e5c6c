//! The running link: the policy fed by the control API, the clock and the line, and its
//! actions carried out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::line::{self, Line, LineConfig};
use crate::policy::{Action, HoldId, Input, LinkState, Policy, PolicyStatus, StateChange};
use crate::store::CallLog;

/// The answer a hold waits for: up, or why not.
pub type HoldAnswer = Result<(), String>;

/// A request from the control API.
#[derive(Debug)]
pub enum Request {
    /// Hold the link; the first reply is the hold's id, the second says up or failed.
    Hold {
        reason: String,
        reply: oneshot::Sender<(HoldId, oneshot::Receiver<HoldAnswer>)>,
    },
    /// Release a hold; replies whether it existed.
    Release {
        id: HoldId,
        reply: oneshot::Sender<bool>,
    },
    /// Dial by hand.
    Dial,
    /// Hang up by hand.
    Hangup,
    /// The policy's status.
    Status {
        reply: oneshot::Sender<PolicyStatus>,
    },
    /// Stop: hang up if connected, then end the service task.
    Shutdown,
}

/// A handle to the running service, for the control API.
#[derive(Debug, Clone)]
pub struct Handle {
    requests: mpsc::UnboundedSender<Request>,
    events: broadcast::Sender<StateChange>,
    /// The call log, read directly by `GET /calls`.
    pub log: Arc<CallLog>,
}

impl Handle {
    /// Sends a request; false when the service has stopped.
    pub fn send(&self, request: Request) -> bool {
        self.requests.send(request).is_ok()
    }

    /// Subscribes to state changes.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.events.subscribe()
    }

    /// The policy's status.
    pub async fn status(&self) -> Option<PolicyStatus> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Status { reply });
        answer.await.ok()
    }
}

struct Service {
    policy: Policy,
    line_cfg: Arc<LineConfig>,
    line: Option<Line>,
    log: Arc<CallLog>,
    events: broadcast::Sender<StateChange>,
    waiters: HashMap<HoldId, oneshot::Sender<HoldAnswer>>,
    inputs: mpsc::UnboundedSender<LineEvent>,
    /// Abandons the dial in progress, if any.
    abandon_dial: Option<oneshot::Sender<()>>,
}

/// What the line's tasks report.
enum LineEvent {
    Input(Input),
    Dialled(crate::policy::DialReport, Option<Line>),
}

/// Starts the service task; it runs until every [`Handle`] is dropped, then hangs up.
pub fn start(
    policy: Policy,
    line_cfg: LineConfig,
    log: CallLog,
) -> (Handle, tokio::task::JoinHandle<()>) {
    let (requests, mut request_rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(64);
    let (inputs, mut input_rx) = mpsc::unbounded_channel();
    let log = Arc::new(log);
    let mut service = Service {
        policy,
        line_cfg: Arc::new(line_cfg),
        line: None,
        log: Arc::clone(&log),
        events: events.clone(),
        waiters: HashMap::new(),
        inputs,
        abandon_dial: None,
    };
    let task = tokio::spawn(async move {
        let mut stopping = false;
        loop {
            let sleep = match service.policy.next_deadline() {
                Some(at) => {
                    let d = Timestamp::now().duration_until(at);
                    Duration::try_from(d).unwrap_or(Duration::ZERO)
                }
                None => Duration::from_secs(3600),
            };
            if stopping {
                // Bring the line down through the policy, so the call is logged as usual. A
                // dial in progress is abandoned rather than waited for (a dial timeout is
                // longer than the supervisor waits before SIGKILL, which would leave the modem
                // dialling and a PPP program started after a late CONNECT without its parent).
                match service.policy.state() {
                    LinkState::Connecting | LinkState::Up | LinkState::Waiting => {
                        service.feed(Input::Hangup);
                    }
                    LinkState::Down | LinkState::Permanent => break,
                    LinkState::Dialling => {
                        if let Some(abandon) = service.abandon_dial.take() {
                            tracing::info!("stopping: abandoning the dial");
                            let _ = abandon.send(());
                        }
                    }
                    LinkState::HangingUp => {}
                }
            }
            tokio::select! {
                request = request_rx.recv(), if !stopping => match request {
                    Some(Request::Shutdown) | None => {
                        stopping = true;
                        // Holders still waiting learn that the link is going away.
                        for (_, waiter) in service.waiters.drain() {
                            let _ = waiter.send(Err("the link service is stopping".into()));
                        }
                    }
                    Some(request) => service.request(request),
                },
                Some(event) = input_rx.recv() => match event {
                    LineEvent::Input(input) => service.feed(input),
                    LineEvent::Dialled(report, line) => {
                        service.abandon_dial = None;
                        service.line = line;
                        service.feed(Input::DialDone(report));
                    }
                },
                () = tokio::time::sleep(sleep) => service.feed(Input::Tick),
            }
        }
        if let Some(line) = service.line.take() {
            tracing::info!("stopping: hanging up");
            line.hang_up(&service.line_cfg).await;
        }
    });
    (
        Handle {
            requests,
            events,
            log,
        },
        task,
    )
}

impl Service {
    fn request(&mut self, request: Request) {
        match request {
            Request::Hold { reason, reply } => {
                let id = self.policy.new_hold_id();
                let (tx, rx) = oneshot::channel();
                self.waiters.insert(id, tx);
                let _ = reply.send((id, rx));
                tracing::info!(hold = id, reason = %reason, "link held");
                self.feed(Input::Hold { id, reason });
            }
            Request::Release { id, reply } => {
                let known = self.policy.has_hold(id);
                self.waiters.remove(&id);
                if known {
                    tracing::info!(hold = id, "hold released");
                    self.feed(Input::Release(id));
                }
                let _ = reply.send(known);
            }
            Request::Dial => self.feed(Input::Dial),
            Request::Hangup => self.feed(Input::Hangup),
            Request::Status { reply } => {
                let _ = reply.send(self.policy.status());
            }
            Request::Shutdown => {}
        }
    }

    fn feed(&mut self, input: Input) {
        let actions = self.policy.handle(Timestamp::now(), input);
        for action in actions {
            self.act(action);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Dial { attempt } => {
                let cfg = Arc::clone(&self.line_cfg);
                let inputs = self.inputs.clone();
                let (abandon, abandoned) = oneshot::channel();
                self.abandon_dial = Some(abandon);
                tokio::spawn(async move {
                    let (report, line) = line::dial(&cfg, attempt, abandoned).await;
                    let _ = inputs.send(LineEvent::Dialled(report, line));
                });
            }
            Action::StartPpp => {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let inputs = self.inputs.clone();
                tokio::spawn(async move {
                    while let Some(input) = rx.recv().await {
                        if inputs.send(LineEvent::Input(input)).is_err() {
                            break;
                        }
                    }
                });
                match self.line.as_mut() {
                    Some(line) => line.start_ppp(&self.line_cfg, tx),
                    None => {
                        let _ = tx.send(Input::PppDown("no line after CONNECT".into()));
                    }
                }
            }
            Action::Hangup(cause) => {
                tracing::info!(cause = %cause, "hanging up");
                let line = self.line.take();
                let cfg = Arc::clone(&self.line_cfg);
                let inputs = self.inputs.clone();
                tokio::spawn(async move {
                    if let Some(line) = line {
                        line.hang_up(&cfg).await;
                    }
                    let _ = inputs.send(LineEvent::Input(Input::HangupDone));
                });
            }
            Action::HoldsUp(ids) => {
                for id in ids {
                    if let Some(waiter) = self.waiters.remove(&id) {
                        let _ = waiter.send(Ok(()));
                    }
                }
            }
            Action::HoldsFailed { ids, error } => {
                for id in ids {
                    if let Some(waiter) = self.waiters.remove(&id) {
                        let _ = waiter.send(Err(error.clone()));
                    }
                }
            }
            Action::LogCall(record) => {
                tracing::info!(
                    result = %record.result,
                    duration_secs = record.duration_secs,
                    cost = record.cost,
                    "call logged"
                );
                if let Err(e) = self.log.append(&record) {
                    tracing::warn!(error = %e, "call not logged");
                }
            }
            Action::Changed(change) => {
                let _ = self.events.send(change);
            }
        }
    }
}
