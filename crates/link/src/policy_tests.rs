//! A deterministic simulation of the dialler under modem faults: simulated time, a scripted
//! modem, every action answered after a fixed delay.

use std::collections::VecDeque;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use postroom_modem::ResultCode;

use super::*;
use crate::calendar::{Schedule, Tariff};

const DIAL_TAKES: SignedDuration = SignedDuration::from_secs(20);
const PPP_TAKES: SignedDuration = SignedDuration::from_secs(5);
const HANGUP_TAKES: SignedDuration = SignedDuration::from_secs(2);

fn config() -> PolicyConfig {
    let tariff = postroom_config::link::Tariff {
        per_call: 9,
        per_minute: 4,
        ..Default::default()
    };
    PolicyConfig {
        on_demand: true,
        max_attempts: 4,
        backoff_initial: SignedDuration::from_secs(30),
        backoff_max: SignedDuration::from_secs(100),
        line_rest_window: SignedDuration::from_secs(10),
        line_rest: SignedDuration::from_secs(5),
        line_rest_retries: 2,
        idle_timeout: SignedDuration::from_secs(120),
        max_call: SignedDuration::from_secs(3600),
        up_timeout: SignedDuration::from_secs(60),
        schedule: None,
        tariff: Tariff::from_config(&tariff, TimeZone::UTC).unwrap(),
    }
}

fn answered(code: ResultCode) -> DialReport {
    DialReport::Answered {
        code,
        answer: code.to_string(),
    }
}

/// The world around the policy: a modem that answers dials from a script, PPP that comes up,
/// hang-ups that finish, all after fixed delays in simulated time.
struct World {
    policy: Policy,
    now: Timestamp,
    script: VecDeque<DialReport>,
    pending: Vec<(Timestamp, Input)>,
    dials: Vec<Timestamp>,
    calls: Vec<CallRecord>,
    up: Vec<HoldId>,
    failed: Vec<(HoldId, String)>,
    changes: Vec<StateChange>,
    hangups: Vec<HangupCause>,
}

impl World {
    fn new(cfg: PolicyConfig, script: impl IntoIterator<Item = DialReport>) -> World {
        let now: Timestamp = "2026-12-03T09:00:00Z".parse().unwrap();
        World {
            policy: Policy::new(cfg, now),
            now,
            script: script.into_iter().collect(),
            pending: Vec::new(),
            dials: Vec::new(),
            calls: Vec::new(),
            up: Vec::new(),
            failed: Vec::new(),
            changes: Vec::new(),
            hangups: Vec::new(),
        }
    }

    fn input(&mut self, input: Input) {
        let actions = self.policy.handle(self.now, input);
        for action in actions {
            match action {
                Action::Dial { .. } => {
                    self.dials.push(self.now);
                    let report = self
                        .script
                        .pop_front()
                        .expect("a dial the script did not expect");
                    self.pending
                        .push((self.now + DIAL_TAKES, Input::DialDone(report)));
                }
                Action::StartPpp => self.pending.push((self.now + PPP_TAKES, Input::PppUp)),
                Action::Hangup(cause) => {
                    self.hangups.push(cause);
                    self.pending
                        .push((self.now + HANGUP_TAKES, Input::HangupDone));
                }
                Action::HoldsUp(ids) => self.up.extend(ids),
                Action::HoldsFailed { ids, error } => {
                    self.failed
                        .extend(ids.into_iter().map(|id| (id, error.clone())));
                }
                Action::LogCall(record) => self.calls.push(record),
                Action::Changed(change) => self.changes.push(change),
            }
        }
    }

    fn hold(&mut self, reason: &str) -> HoldId {
        let id = self.policy.new_hold_id();
        self.input(Input::Hold {
            id,
            reason: reason.into(),
        });
        id
    }

    /// Runs until `until`, delivering pending inputs and ticks in time order.
    fn run_until(&mut self, until: Timestamp) {
        loop {
            self.pending.sort_by_key(|(t, _)| *t);
            let next_pending = self.pending.first().map(|(t, _)| *t);
            let next_tick = self.policy.next_deadline();
            let next = match (next_pending, next_tick) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            assert!(next >= self.now, "time never runs backwards");
            self.now = next;
            if next_pending == Some(next) {
                let (_, input) = self.pending.remove(0);
                self.input(input);
            } else {
                self.input(Input::Tick);
            }
        }
        self.now = self.now.max(until);
    }

    fn run_for(&mut self, d: SignedDuration) {
        let until = self.now + d;
        self.run_until(until);
    }
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

#[test]
fn hold_dials_connects_and_idle_hangs_up_with_cost() {
    let mut w = World::new(config(), [answered(ResultCode::Connect(Some(33600)))]);
    let id = w.hold("mail: queue not empty");
    w.run_for(secs(30));
    assert_eq!(w.policy.state(), LinkState::Up);
    assert_eq!(w.up, vec![id]);

    // Held for 100 s, then released: idle for 120 s, then hung up.
    w.run_for(secs(100));
    assert_eq!(
        w.policy.state(),
        LinkState::Up,
        "no idle hang-up while held"
    );
    w.input(Input::Release(id));
    w.run_for(secs(119));
    assert_eq!(w.policy.state(), LinkState::Up);
    w.run_for(secs(10));
    assert_eq!(w.policy.state(), LinkState::Down);
    assert_eq!(w.hangups, vec![HangupCause::Idle]);

    assert_eq!(w.calls.len(), 1);
    let call = &w.calls[0];
    assert_eq!(call.result, "connected");
    assert_eq!(call.hangup, Some(HangupCause::Idle));
    // Connected at 20 s, released at 130 s, idle until 250 s, on hook at 252 s: 232 s.
    assert_eq!(call.duration_secs, 232);
    assert_eq!(call.cost, 9 + 4 * 4);
    assert_eq!(w.dials.len(), 1);
}

/// Case modem-busy-backoff: BUSY every time, growing pauses, a bounded number of attempts,
/// then a failure that says so.
#[test]
fn modem_busy_backoff() {
    let busy = std::iter::repeat_with(|| answered(ResultCode::Busy)).take(10);
    let mut w = World::new(config(), busy);
    let id = w.hold("mail");
    w.run_for(secs(24 * 3600));

    assert_eq!(
        w.dials.len(),
        4,
        "max_attempts dials, never an endless redial"
    );
    let pauses: Vec<i64> = w
        .dials
        .windows(2)
        .map(|p| (p[1].duration_since(p[0]) - DIAL_TAKES).as_secs())
        .collect();
    assert_eq!(pauses, vec![30, 60, 100], "doubling, capped at backoff_max");
    assert_eq!(w.policy.state(), LinkState::Down);
    assert_eq!(w.failed.len(), 1);
    assert_eq!(w.failed[0].0, id);
    assert!(w.failed[0].1.contains("giving up"), "{}", w.failed[0].1);
    assert_eq!(w.calls.len(), 4);
    assert!(w.calls.iter().all(|c| c.result == "BUSY" && c.cost == 0));
    assert!(w.calls[3].gave_up && !w.calls[2].gave_up);
    assert!(w.policy.status().last_failure.unwrap().contains("BUSY"));
    assert!(
        !w.policy.has_hold(id),
        "a failed hold is dropped, so nothing redials it"
    );
}

#[test]
fn no_answer_and_no_carrier_are_redialled_too() {
    let script = [
        answered(ResultCode::NoAnswer),
        DialReport::TimedOut,
        answered(ResultCode::NoCarrier),
        answered(ResultCode::Connect(None)),
    ];
    let mut w = World::new(config(), script);
    w.hold("mail");
    w.run_for(secs(600));
    assert_eq!(w.policy.state(), LinkState::Up);
    let results: Vec<&str> = w.calls.iter().map(|c| c.result.as_str()).collect();
    assert_eq!(results, ["NO ANSWER", "timeout", "NO CARRIER"]);
}

/// Case modem-error-after-dial: ERROR where NO ANSWER was expected is a failed call, with the
/// modem's answer in the log; no redial.
#[test]
fn modem_error_after_dial() {
    let script = [DialReport::Answered {
        code: ResultCode::Error,
        answer: "+CME: 30\nERROR".into(),
    }];
    let mut w = World::new(config(), script);
    w.hold("mail");
    w.run_for(secs(3600));
    assert_eq!(w.dials.len(), 1);
    assert_eq!(w.policy.state(), LinkState::Down);
    assert_eq!(w.calls.len(), 1);
    assert_eq!(w.calls[0].result, "ERROR");
    assert_eq!(w.calls[0].answer, "+CME: 30\nERROR");
    assert!(w.calls[0].gave_up);
    assert!(w.failed[0].1.contains("ERROR"));
}

/// Case modem-line-needs-rest: a dial within seconds of the last hang-up gets NO DIALTONE;
/// the dialler waits a guard time and dials again.
#[test]
fn modem_line_needs_rest() {
    let script = [
        answered(ResultCode::Connect(Some(33600))),
        answered(ResultCode::NoDialtone),
        answered(ResultCode::Connect(Some(33600))),
    ];
    let mut w = World::new(config(), script);
    w.hold("first");
    w.run_for(secs(30));
    w.input(Input::Hangup);
    w.run_for(secs(2));
    assert_eq!(w.policy.state(), LinkState::Down);

    // Right after the hang-up, a new hold: the dial finds no dial tone.
    let second = w.hold("second");
    w.run_for(secs(120));
    assert_eq!(w.policy.state(), LinkState::Up);
    assert!(w.up.contains(&second));
    assert_eq!(w.dials.len(), 3);
    let rest = (w.dials[2].duration_since(w.dials[1]) - DIAL_TAKES).as_secs();
    assert_eq!(rest, 5, "waited the line_rest guard time");
    assert!(w.changes.iter().any(|c| c.detail.contains("line resting")));
}

#[test]
fn no_dialtone_long_after_a_hangup_is_a_fault() {
    let mut w = World::new(config(), [answered(ResultCode::NoDialtone)]);
    w.hold("mail");
    w.run_for(secs(600));
    assert_eq!(w.dials.len(), 1);
    assert_eq!(w.policy.state(), LinkState::Down);
    assert!(w.failed[0].1.contains("no dial tone"));
}

#[test]
fn holds_while_up_are_answered_at_once_and_keep_the_line() {
    let mut w = World::new(config(), [answered(ResultCode::Connect(None))]);
    w.input(Input::Dial);
    w.run_for(secs(100));
    assert_eq!(w.policy.state(), LinkState::Up);
    let id = w.hold("fetch");
    assert_eq!(w.up, vec![id]);
    w.run_for(secs(1000));
    assert_eq!(w.policy.state(), LinkState::Up);
    w.input(Input::Release(id));
    w.run_for(secs(200));
    assert_eq!(w.policy.state(), LinkState::Down);
}

#[test]
fn call_length_is_capped_even_while_held() {
    let mut cfg = config();
    cfg.max_call = secs(600);
    let mut w = World::new(cfg, [answered(ResultCode::Connect(None))]);
    w.hold("forever");
    w.run_for(secs(3600));
    assert_eq!(w.hangups, vec![HangupCause::MaxCallLength]);
    assert_eq!(w.calls[0].duration_secs, 602);
    assert_eq!(
        w.dials.len(),
        1,
        "a hold that outlived its call does not redial by itself"
    );
}

#[test]
fn ppp_that_never_comes_up_fails_the_holds() {
    let mut w = World::new(config(), [answered(ResultCode::Connect(None))]);
    let id = w.hold("mail");
    w.run_for(secs(21));
    w.pending.clear(); // PPP never reports up.
    w.run_for(secs(120));
    assert_eq!(w.hangups, vec![HangupCause::PppDown]);
    assert_eq!(w.failed[0].0, id);
    assert_eq!(w.policy.state(), LinkState::Down);
}

#[test]
fn schedule_dials_without_being_asked() {
    let mut cfg = config();
    let schedule = postroom_config::link::Schedule {
        office_interval_mins: 60,
        off_hours_interval_mins: 0,
        weekend_interval_mins: 0,
        ..Default::default()
    };
    cfg.schedule = Some(Schedule::from_config(&schedule, TimeZone::UTC).unwrap());
    let connects = std::iter::repeat_with(|| answered(ResultCode::Connect(None))).take(20);
    let mut w = World::new(cfg, connects);
    assert_eq!(
        w.policy.status().next_scheduled_call,
        Some("2026-12-03T10:00:00Z".parse().unwrap())
    );
    // 09:00 to 20:00 on a Thursday: calls at 10:00 .. 18:00 (office hours end at 18:00).
    w.run_until("2026-12-03T20:00:00Z".parse().unwrap());
    assert_eq!(w.dials.len(), 9);
    assert!(w.calls.iter().all(|c| c.reason == CallReason::Schedule));
    assert!(w.hangups.iter().all(|h| *h == HangupCause::Idle));
    // Nothing more until the next office day, Friday 08:00.
    assert_eq!(
        w.policy.status().next_scheduled_call,
        Some("2026-12-04T08:00:00Z".parse().unwrap())
    );
}

#[test]
fn permanent_mode_never_dials() {
    let mut cfg = config();
    cfg.on_demand = false;
    let mut w = World::new(cfg, []);
    let id = w.hold("mail");
    w.input(Input::Dial);
    w.run_for(secs(7 * 24 * 3600));
    assert!(w.dials.is_empty());
    assert_eq!(w.up, vec![id]);
    assert_eq!(w.policy.state(), LinkState::Permanent);
}

#[test]
fn manual_hangup_while_waiting_cancels_the_redial() {
    let mut w = World::new(config(), [answered(ResultCode::Busy)]);
    let id = w.hold("mail");
    w.run_for(secs(21));
    assert_eq!(w.policy.state(), LinkState::Waiting);
    w.input(Input::Hangup);
    w.run_for(secs(3600));
    assert_eq!(w.dials.len(), 1);
    assert_eq!(w.failed[0].0, id);
}

/// `ctl link hangup` while the modem dials: the call that then connects is hung up at once
/// instead of coming up and staying up until the idle timeout.
#[test]
fn manual_hangup_while_dialling_hangs_up_when_the_call_connects() {
    let mut w = World::new(config(), [answered(ResultCode::Connect(Some(33600)))]);
    let id = w.hold("mail");
    w.run_for(secs(5));
    assert_eq!(w.policy.state(), LinkState::Dialling);
    w.input(Input::Hangup);
    w.run_for(secs(60));
    assert_eq!(w.policy.state(), LinkState::Down);
    assert_eq!(w.hangups, vec![HangupCause::Manual]);
    assert!(w.up.is_empty(), "the link never came up");
    assert_eq!(w.failed, vec![(id, "call cancelled by hand".to_owned())]);
    assert_eq!(
        w.policy.status().last_failure,
        None,
        "asked for, not a failure"
    );
    assert_eq!(w.calls.len(), 1);
    assert_eq!(w.calls[0].hangup, Some(HangupCause::Manual));
    assert_eq!(w.dials.len(), 1);
}

/// `ctl link hangup` while the modem dials and then hears BUSY: no redial.
#[test]
fn manual_hangup_while_dialling_cancels_the_redial() {
    let mut w = World::new(config(), [answered(ResultCode::Busy)]);
    let id = w.hold("mail");
    w.run_for(secs(5));
    w.input(Input::Hangup);
    w.run_for(secs(3600));
    assert_eq!(w.policy.state(), LinkState::Down);
    assert_eq!(w.dials.len(), 1);
    assert_eq!(w.failed[0].0, id);
    assert!(w.calls[0].gave_up);
}

/// The tester's case: every queued message deleted by hand while the link dialled for them.
/// Mail releases its hold; the call, placed only for it, must not connect and cost money.
#[test]
fn last_hold_released_while_dialling_ends_the_call_when_it_connects() {
    let mut w = World::new(config(), [answered(ResultCode::Connect(Some(33600)))]);
    let id = w.hold("mail");
    w.run_for(secs(5));
    assert_eq!(w.policy.state(), LinkState::Dialling);
    w.input(Input::Release(id));
    w.run_for(secs(60));
    assert_eq!(w.policy.state(), LinkState::Down);
    assert_eq!(w.hangups, vec![HangupCause::Idle]);
    assert!(w.up.is_empty());
    assert_eq!(w.calls.len(), 1);
    assert_eq!(w.policy.status().last_failure, None);
}

#[test]
fn last_hold_released_while_waiting_cancels_the_redial() {
    let mut w = World::new(config(), [answered(ResultCode::Busy)]);
    let id = w.hold("mail");
    w.run_for(secs(21));
    assert_eq!(w.policy.state(), LinkState::Waiting);
    w.input(Input::Release(id));
    assert_eq!(w.policy.state(), LinkState::Down);
    w.run_for(secs(3600));
    assert_eq!(w.dials.len(), 1);
}

/// A call dialled by hand is the administrator's: a hold that comes and goes meanwhile does
/// not cancel it.
#[test]
fn a_hold_released_during_a_call_dialled_by_hand_leaves_it_alone() {
    let mut w = World::new(config(), [answered(ResultCode::Connect(None))]);
    w.input(Input::Dial);
    w.run_for(secs(5));
    let id = w.hold("mail");
    w.input(Input::Release(id));
    w.run_for(secs(30));
    assert_eq!(w.policy.state(), LinkState::Up);
}
