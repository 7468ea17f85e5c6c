//! The dialling policy: a deterministic state machine, fed inputs with the time they happened
//! and answering with actions. It never sleeps, reads a clock or touches a port, so the
//! simulation tests in this module run days of calls in microseconds.

use std::collections::BTreeMap;
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use postroom_modem::ResultCode;
use serde::{Deserialize, Serialize};

use crate::calendar::{Schedule, Tariff};

/// Where the link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkState {
    /// Permanent mode: always up.
    Permanent,
    /// On demand, not connected, nothing to do.
    Down,
    /// A dial is in progress.
    Dialling,
    /// Waiting to redial after a failed attempt.
    Waiting,
    /// CONNECT came; PPP is starting and its check has not passed yet.
    Connecting,
    /// Connected and checked.
    Up,
    /// Hanging up.
    HangingUp,
}

/// Why a call was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallReason {
    /// A component holds the link.
    Hold,
    /// The schedule.
    Schedule,
    /// By hand (`POST /dial`).
    Manual,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HangupCause {
    /// Up with no holds for the idle time.
    Idle,
    /// The call reached its maximum length.
    MaxCallLength,
    /// By hand (`POST /hangup`).
    Manual,
    /// PPP ended, or its check did not pass.
    PppDown,
}

/// How a dial attempt ended, as the modem driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialReport {
    /// The modem answered; `answer` is its text, for the log.
    Answered { code: ResultCode, answer: String },
    /// No result within the dial timeout.
    TimedOut,
    /// The modem could not be used at all (port locked, not there, init refused).
    ModemFailed(String),
    /// The link is stopping: the dial was aborted and the modem put on hook.
    Abandoned,
}

/// A hold's number.
pub type HoldId = u64;

// The names the status API and `ctl link` use (the serde names), so a log line and the status
// say the same word.

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkState::Permanent => "permanent",
            LinkState::Down => "down",
            LinkState::Dialling => "dialling",
            LinkState::Waiting => "waiting",
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::HangingUp => "hanging-up",
        })
    }
}

impl fmt::Display for CallReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallReason::Hold => "hold",
            CallReason::Schedule => "schedule",
            CallReason::Manual => "manual",
        })
    }
}

impl fmt::Display for HangupCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HangupCause::Idle => "idle",
            HangupCause::MaxCallLength => "max-call-length",
            HangupCause::Manual => "manual",
            HangupCause::PppDown => "ppp-down",
        })
    }
}

/// Something that happens to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A component wants the link up (`POST /hold`). The id comes from [`Policy::new_hold_id`].
    Hold { id: HoldId, reason: String },
    /// A hold is released.
    Release(HoldId),
    /// Dial by hand.
    Dial,
    /// Hang up by hand.
    Hangup,
    /// The dial ended.
    DialDone(DialReport),
    /// The PPP check passed.
    PppUp,
    /// PPP ended or its check failed.
    PppDown(String),
    /// The hang-up is done: the line is on hook and the port free.
    HangupDone,
    /// Time passed; deadlines due are handled.
    Tick,
}

/// What the policy asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Lock the port, initialise the modem and dial.
    Dial { attempt: u32 },
    /// Start PPP on the line and run the up check.
    StartPpp,
    /// Stop PPP and hang up.
    Hangup(HangupCause),
    /// Tell these holds the link is up.
    HoldsUp(Vec<HoldId>),
    /// Tell these holds the link failed; they are dropped.
    HoldsFailed { ids: Vec<HoldId>, error: String },
    /// Write a call to the call log.
    LogCall(CallRecord),
    /// The state changed (for `GET /events`).
    Changed(StateChange),
}

/// One line of the call log: one dial attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// When the dial began.
    pub start: Timestamp,
    /// When CONNECT came, for connected calls.
    pub connected: Option<Timestamp>,
    /// When the call ended (the failed result, or the hang-up).
    pub end: Timestamp,
    /// Seconds connected (zero for a failed attempt).
    pub duration_secs: u64,
    /// `connected`, or the failure: `BUSY`, `NO ANSWER`, `ERROR`, `timeout`...
    pub result: String,
    /// Everything the modem said to the dial.
    pub answer: String,
    /// Why a connected call ended.
    pub hangup: Option<HangupCause>,
    /// The estimated cost in the tariff's smallest unit.
    pub cost: u64,
    /// Which attempt of this call it was (1 for the first dial).
    pub attempt: u32,
    /// Why the call was made.
    pub reason: CallReason,
    /// True on the last attempt of a call given up.
    pub gave_up: bool,
}

/// A state change, as streamed by `GET /events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    /// The new state.
    pub state: LinkState,
    /// When it changed.
    pub at: Timestamp,
    /// A sentence for people (`BUSY, redial 2 of 5 in 60 s`).
    pub detail: String,
}

/// The current call, for `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentCall {
    /// When the current attempt began dialling.
    pub start: Timestamp,
    /// When it connected.
    pub connected: Option<Timestamp>,
    /// Which attempt.
    pub attempt: u32,
    /// Why.
    pub reason: CallReason,
}

/// A hold, for `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldView {
    /// Its id.
    pub id: HoldId,
    /// Who holds and why.
    pub reason: String,
    /// Since when.
    pub since: Timestamp,
}

/// The policy's part of `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// Where the link is.
    pub state: LinkState,
    /// Since when.
    pub since: Timestamp,
    /// The call in progress.
    pub current_call: Option<CurrentCall>,
    /// The next scheduled call.
    pub next_scheduled_call: Option<Timestamp>,
    /// When the next redial happens, while waiting.
    pub redial_at: Option<Timestamp>,
    /// Holds on the link.
    pub holds: Vec<HoldView>,
    /// The last failure, in words.
    pub last_failure: Option<String>,
}

/// The numbers the policy works with (from `[link.dial]`).
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// On demand (false: permanent).
    pub on_demand: bool,
    /// Attempts per call.
    pub max_attempts: u32,
    /// First redial pause; doubles each attempt.
    pub backoff_initial: SignedDuration,
    /// Longest redial pause.
    pub backoff_max: SignedDuration,
    /// NO DIALTONE this soon after a hang-up is the line resting.
    pub line_rest_window: SignedDuration,
    /// Then wait this long.
    pub line_rest: SignedDuration,
    /// At most this often per call.
    pub line_rest_retries: u32,
    /// Hang up when up this long with no holds.
    pub idle_timeout: SignedDuration,
    /// Hang up when connected this long.
    pub max_call: SignedDuration,
    /// PPP must be up this soon after CONNECT.
    pub up_timeout: SignedDuration,
    /// The schedule, if any.
    pub schedule: Option<Schedule>,
    /// The tariff.
    pub tariff: Tariff,
}

#[derive(Debug, Clone)]
struct Call {
    reason: CallReason,
    attempt: u32,
    rest_retries: u32,
    start: Timestamp,
    connected: Option<Timestamp>,
    answer: String,
}

#[derive(Debug, Clone)]
struct Hold {
    reason: String,
    since: Timestamp,
    answered: bool,
}

/// Why a call being dialled is to end as soon as its dial does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    /// `POST /hangup` (`ctl link hangup`).
    ByHand,
    /// Every hold of a call placed for holds was released.
    Unneeded,
}

impl Cancel {
    fn hangup_cause(self) -> HangupCause {
        match self {
            Cancel::ByHand => HangupCause::Manual,
            Cancel::Unneeded => HangupCause::Idle,
        }
    }
}

impl fmt::Display for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cancel::ByHand => "call cancelled by hand",
            Cancel::Unneeded => "call no longer needed: every hold was released",
        })
    }
}

/// The dialling policy.
#[derive(Debug)]
pub struct Policy {
    cfg: PolicyConfig,
    state: LinkState,
    since: Timestamp,
    holds: BTreeMap<HoldId, Hold>,
    next_hold_id: HoldId,
    call: Option<Call>,
    redial_at: Option<Timestamp>,
    next_scheduled: Option<Timestamp>,
    idle_since: Option<Timestamp>,
    last_hangup: Option<Timestamp>,
    hangup_cause: Option<HangupCause>,
    /// Why the call being dialled is to end when its dial does.
    cancel: Option<Cancel>,
    last_failure: Option<String>,
}

impl Policy {
    /// A policy starting at `now`: down (or permanent), the first scheduled call planned.
    pub fn new(cfg: PolicyConfig, now: Timestamp) -> Policy {
        let state = if cfg.on_demand {
            LinkState::Down
        } else {
            LinkState::Permanent
        };
        let next_scheduled = if cfg.on_demand {
            cfg.schedule.as_ref().and_then(|s| s.next_call(now))
        } else {
            None
        };
        Policy {
            cfg,
            state,
            since: now,
            holds: BTreeMap::new(),
            next_hold_id: 1,
            call: None,
            redial_at: None,
            next_scheduled,
            idle_since: None,
            last_hangup: None,
            hangup_cause: None,
            cancel: None,
            last_failure: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> LinkState {
        self.state
    }

    /// A fresh hold id.
    pub fn new_hold_id(&mut self) -> HoldId {
        let id = self.next_hold_id;
        self.next_hold_id += 1;
        id
    }

    /// Whether a hold is known.
    pub fn has_hold(&self, id: HoldId) -> bool {
        self.holds.contains_key(&id)
    }

    /// What `GET /status` shows.
    pub fn status(&self) -> PolicyStatus {
        PolicyStatus {
            state: self.state,
            since: self.since,
            current_call: self.call.as_ref().map(|c| CurrentCall {
                start: c.start,
                connected: c.connected,
                attempt: c.attempt,
                reason: c.reason,
            }),
            next_scheduled_call: self.next_scheduled,
            redial_at: self.redial_at,
            holds: self
                .holds
                .iter()
                .map(|(id, h)| HoldView {
                    id: *id,
                    reason: h.reason.clone(),
                    since: h.since,
                })
                .collect(),
            last_failure: self.last_failure.clone(),
        }
    }

    /// The next moment a [`Input::Tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let mut deadlines = Vec::new();
        match self.state {
            LinkState::Down => deadlines.extend(self.next_scheduled),
            LinkState::Waiting => deadlines.extend(self.redial_at),
            LinkState::Connecting => {
                deadlines.extend(self.connected_at().map(|t| t + self.cfg.up_timeout));
            }
            LinkState::Up => {
                deadlines.extend(self.idle_since.map(|t| t + self.cfg.idle_timeout));
                deadlines.extend(self.connected_at().map(|t| t + self.cfg.max_call));
            }
            _ => {}
        }
        deadlines.into_iter().min()
    }

    /// Handles one input at `now`.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Hold { id, reason } => self.hold(now, id, reason, &mut out),
            Input::Release(id) => {
                self.holds.remove(&id);
                if self.holds.is_empty() {
                    self.last_hold_released(now, &mut out);
                }
            }
            Input::Dial => {
                if self.state == LinkState::Down {
                    self.start_call(now, CallReason::Manual, &mut out);
                }
            }
            Input::Hangup => self.manual_hangup(now, &mut out),
            Input::DialDone(report) => self.dial_done(now, report, &mut out),
            Input::PppUp => {
                if self.state == LinkState::Connecting {
                    self.set_state(now, LinkState::Up, "link up".into(), &mut out);
                    self.answer_holds(&mut out);
                    self.idle_since = self.holds.is_empty().then_some(now);
                }
            }
            Input::PppDown(why) => {
                if matches!(self.state, LinkState::Connecting | LinkState::Up) {
                    self.last_failure = Some(format!("PPP ended: {why}"));
                    self.hang_up(now, HangupCause::PppDown, &mut out);
                }
            }
            Input::HangupDone => self.hangup_done(now, &mut out),
            Input::Tick => self.tick(now, &mut out),
        }
        out
    }

    fn hold(&mut self, now: Timestamp, id: HoldId, reason: String, out: &mut Vec<Action>) {
        let up = matches!(self.state, LinkState::Up | LinkState::Permanent);
        self.holds.insert(
            id,
            Hold {
                reason,
                since: now,
                answered: up,
            },
        );
        if up {
            self.idle_since = None;
            out.push(Action::HoldsUp(vec![id]));
        } else if self.state == LinkState::Down {
            self.start_call(now, CallReason::Hold, out);
        }
    }

    /// Nobody holds the link any more. Up, it idles towards its hang-up. A call placed only
    /// for the holds (not by hand or the schedule) that is not up yet is no longer needed: the
    /// queue was emptied by hand while the link dialled, say. Redialling or connecting it
    /// would only cost money.
    fn last_hold_released(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.state == LinkState::Up {
            self.idle_since = Some(now);
            return;
        }
        if self.call.as_ref().map(|c| c.reason) != Some(CallReason::Hold) {
            return;
        }
        match self.state {
            LinkState::Waiting => {
                self.redial_at = None;
                self.call = None;
                let detail = format!("redial cancelled: {}", Cancel::Unneeded);
                self.set_state(now, LinkState::Down, detail, out);
            }
            LinkState::Dialling => self.cancel = Some(Cancel::Unneeded),
            _ => {}
        }
    }

    fn manual_hangup(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        match self.state {
            LinkState::Connecting | LinkState::Up => self.hang_up(now, HangupCause::Manual, out),
            LinkState::Waiting => {
                self.redial_at = None;
                self.call = None;
                self.fail_holds("redial cancelled by hand".into(), out);
                self.set_state(now, LinkState::Down, "redial cancelled by hand".into(), out);
            }
            // A dial in progress is left to finish (its timeout bounds it); hanging up then
            // would race the modem's own result. The call ends when the dial does.
            LinkState::Dialling => self.cancel = Some(Cancel::ByHand),
            _ => {}
        }
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        match self.state {
            LinkState::Down => {
                if let Some(at) = self.next_scheduled
                    && now >= at
                {
                    self.start_call(now, CallReason::Schedule, out);
                }
            }
            LinkState::Waiting if self.redial_at.is_some_and(|at| now >= at) => {
                self.redial_at = None;
                self.dial(now, out);
            }
            LinkState::Connecting
                if self
                    .connected_at()
                    .is_some_and(|t| now >= t + self.cfg.up_timeout) =>
            {
                self.last_failure = Some("PPP did not come up in time".into());
                self.hang_up(now, HangupCause::PppDown, out);
            }
            LinkState::Up => {
                if self
                    .connected_at()
                    .is_some_and(|t| now >= t + self.cfg.max_call)
                {
                    self.hang_up(now, HangupCause::MaxCallLength, out);
                } else if self
                    .idle_since
                    .is_some_and(|t| now >= t + self.cfg.idle_timeout)
                {
                    self.hang_up(now, HangupCause::Idle, out);
                }
            }
            _ => {}
        }
    }

    fn start_call(&mut self, now: Timestamp, reason: CallReason, out: &mut Vec<Action>) {
        if reason == CallReason::Schedule || self.next_scheduled.is_some_and(|t| now >= t) {
            self.next_scheduled = self.cfg.schedule.as_ref().and_then(|s| s.next_call(now));
        }
        self.cancel = None;
        self.call = Some(Call {
            reason,
            attempt: 0,
            rest_retries: 0,
            start: now,
            connected: None,
            answer: String::new(),
        });
        self.dial(now, out);
    }

    fn dial(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        call.attempt += 1;
        call.start = now;
        let attempt = call.attempt;
        let reason = call.reason;
        self.set_state(
            now,
            LinkState::Dialling,
            format!("dialling ({reason}), attempt {attempt}"),
            out,
        );
        out.push(Action::Dial { attempt });
    }

    fn dial_done(&mut self, now: Timestamp, report: DialReport, out: &mut Vec<Action>) {
        if self.state != LinkState::Dialling {
            return;
        }
        let cancel = self.cancel.take();
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let (code, answer) = match report {
            DialReport::Answered { code, answer } => (Some(code), answer),
            DialReport::TimedOut => (
                None,
                "no answer from the modem before the dial timeout".into(),
            ),
            DialReport::ModemFailed(why) => {
                let record = failed_record(call, now, "modem failed", &why, true);
                out.push(Action::LogCall(record));
                self.give_up(now, format!("modem failed: {why}"), out);
                return;
            }
            DialReport::Abandoned => {
                let why = "the link is stopping";
                let record = failed_record(call, now, "abandoned", why, true);
                out.push(Action::LogCall(record));
                self.give_up(now, why.to_owned(), out);
                return;
            }
        };
        call.answer = answer.clone();

        if let Some(cancel) = cancel
            && !matches!(code, Some(ResultCode::Connect(_)))
        {
            let result = code.map_or_else(|| "timeout".to_owned(), |c| c.to_string());
            out.push(Action::LogCall(failed_record(
                call, now, &result, &answer, true,
            )));
            self.call = None;
            self.redial_at = None;
            self.fail_holds(cancel.to_string(), out);
            let detail = format!("{result}; {cancel}, no redial");
            self.set_state(now, LinkState::Down, detail, out);
            return;
        }

        match code {
            Some(ResultCode::Connect(rate)) => {
                call.connected = Some(now);
                let rate = rate.map(|r| format!(" {r}")).unwrap_or_default();
                if let Some(cancel) = cancel {
                    // The line is connected and costs money: hang up before PPP starts.
                    let detail = format!("CONNECT{rate}, hanging up: {cancel}");
                    self.set_state(now, LinkState::Connecting, detail, out);
                    self.fail_holds(cancel.to_string(), out);
                    self.hang_up(now, cancel.hangup_cause(), out);
                    return;
                }
                self.set_state(
                    now,
                    LinkState::Connecting,
                    format!("CONNECT{rate}, starting PPP"),
                    out,
                );
                out.push(Action::StartPpp);
            }
            Some(ResultCode::NoDialtone) => {
                // Many exchanges take a few seconds to give a line back after a hang-up: a
                // dial too soon finds no dial tone. That is a rest, not a fault.
                let dialled_at = call.start;
                let resting = self
                    .last_hangup
                    .is_some_and(|t| dialled_at.duration_since(t) <= self.cfg.line_rest_window);
                if resting && call.rest_retries < self.cfg.line_rest_retries {
                    call.rest_retries += 1;
                    // The rest does not use up an attempt: the number was never dialled.
                    call.attempt -= 1;
                    let record = failed_record(call, now, "NO DIALTONE", &answer, false);
                    out.push(Action::LogCall(record));
                    let at = now + self.cfg.line_rest;
                    self.redial_at = Some(at);
                    let detail = format!(
                        "NO DIALTONE right after a hang-up: line resting, dialling again in {} s",
                        self.cfg.line_rest.as_secs()
                    );
                    self.set_state(now, LinkState::Waiting, detail, out);
                } else {
                    let record = failed_record(call, now, "NO DIALTONE", &answer, true);
                    out.push(Action::LogCall(record));
                    self.give_up(
                        now,
                        "no dial tone: is the phone line plugged in?".into(),
                        out,
                    );
                }
            }
            Some(code @ (ResultCode::Busy | ResultCode::NoAnswer | ResultCode::NoCarrier))
            | Some(code @ ResultCode::Ring) => self.retry(now, &code.to_string(), &answer, out),
            None => self.retry(now, "timeout", &answer, out),
            Some(code) => {
                // ERROR, DELAYED, BLACKLISTED, or OK where a dial result was expected: the
                // modem will not place this call; redialling would only repeat it.
                let result = code.to_string();
                let record = failed_record(call, now, &result, &answer, true);
                out.push(Action::LogCall(record));
                tracing::warn!(answer = %answer, "modem refused the dial");
                self.give_up(
                    now,
                    format!("the modem answered the dial with {answer:?}"),
                    out,
                );
            }
        }
    }

    fn retry(&mut self, now: Timestamp, result: &str, answer: &str, out: &mut Vec<Action>) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let attempt = call.attempt;
        let last = attempt >= self.cfg.max_attempts;
        out.push(Action::LogCall(failed_record(
            call, now, result, answer, last,
        )));
        if last {
            self.give_up(
                now,
                format!("{result} on all {attempt} attempts; giving up"),
                out,
            );
            return;
        }
        let pause = self.backoff(attempt);
        self.redial_at = Some(now + pause);
        let detail = format!(
            "{result}; redial {} of {} in {} s",
            attempt + 1,
            self.cfg.max_attempts,
            pause.as_secs()
        );
        self.set_state(now, LinkState::Waiting, detail, out);
    }

    /// The pause after attempt `n` (1-based): the initial pause doubled each time, capped.
    pub fn backoff(&self, attempt: u32) -> SignedDuration {
        let factor = 1i32
            .checked_shl(attempt.saturating_sub(1).min(30))
            .unwrap_or(i32::MAX);
        self.cfg
            .backoff_initial
            .checked_mul(factor)
            .unwrap_or(self.cfg.backoff_max)
            .min(self.cfg.backoff_max)
    }

    fn give_up(&mut self, now: Timestamp, why: String, out: &mut Vec<Action>) {
        tracing::warn!(reason = %why, "giving up the call");
        self.call = None;
        self.redial_at = None;
        self.last_failure = Some(why.clone());
        self.fail_holds(why.clone(), out);
        self.set_state(now, LinkState::Down, format!("call failed: {why}"), out);
    }

    fn fail_holds(&mut self, error: String, out: &mut Vec<Action>) {
        let ids: Vec<HoldId> = self
            .holds
            .iter()
            .filter(|(_, h)| !h.answered)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.holds.remove(id);
        }
        if !ids.is_empty() {
            out.push(Action::HoldsFailed { ids, error });
        }
    }

    fn answer_holds(&mut self, out: &mut Vec<Action>) {
        let mut ids = Vec::new();
        for (id, hold) in self.holds.iter_mut().filter(|(_, h)| !h.answered) {
            hold.answered = true;
            ids.push(*id);
        }
        if !ids.is_empty() {
            out.push(Action::HoldsUp(ids));
        }
    }

    fn hang_up(&mut self, now: Timestamp, cause: HangupCause, out: &mut Vec<Action>) {
        if self.state == LinkState::Connecting {
            let why = self
                .last_failure
                .clone()
                .unwrap_or_else(|| "hung up before PPP was up".into());
            self.fail_holds(why, out);
        }
        self.hangup_cause = Some(cause);
        self.idle_since = None;
        self.set_state(
            now,
            LinkState::HangingUp,
            format!("hanging up ({cause})"),
            out,
        );
        out.push(Action::Hangup(cause));
    }

    fn hangup_done(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.state != LinkState::HangingUp {
            return;
        }
        self.last_hangup = Some(now);
        if let Some(call) = self.call.take() {
            let connected = call.connected.unwrap_or(now);
            let secs = u64::try_from(now.duration_since(connected).as_secs()).unwrap_or(0);
            let cost = self.cfg.tariff.cost(connected, secs);
            out.push(Action::LogCall(CallRecord {
                start: call.start,
                connected: call.connected,
                end: now,
                duration_secs: secs,
                result: "connected".into(),
                answer: call.answer,
                hangup: self.hangup_cause,
                cost,
                attempt: call.attempt,
                reason: call.reason,
                gave_up: false,
            }));
        }
        self.hangup_cause = None;
        self.set_state(now, LinkState::Down, "on hook".into(), out);

        // Holds that outlived the call (a manual hang-up, the call-length cap, PPP dropping)
        // stay registered and answered: their holders learn from /events, and a new hold or
        // the schedule brings the link back. Holds that came while hanging up still wait for
        // an answer, so they get a new call.
        if self.holds.values().any(|h| !h.answered) {
            self.start_call(now, CallReason::Hold, out);
        }
    }

    fn connected_at(&self) -> Option<Timestamp> {
        self.call.as_ref().and_then(|c| c.connected)
    }

    fn set_state(
        &mut self,
        now: Timestamp,
        state: LinkState,
        detail: String,
        out: &mut Vec<Action>,
    ) {
        tracing::info!(state = %state, "{detail}");
        self.state = state;
        self.since = now;
        out.push(Action::Changed(StateChange {
            state,
            at: now,
            detail,
        }));
    }
}

fn failed_record(
    call: &Call,
    now: Timestamp,
    result: &str,
    answer: &str,
    gave_up: bool,
) -> CallRecord {
    CallRecord {
        start: call.start,
        connected: None,
        end: now,
        duration_secs: 0,
        result: result.to_owned(),
        answer: answer.to_owned(),
        hangup: None,
        cost: 0,
        attempt: call.attempt,
        reason: call.reason,
        gave_up,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
