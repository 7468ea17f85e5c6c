//! When to try a message again, when to give up, when to tell the sender it is late.
//!
//! Pure arithmetic on Unix seconds, so it is tested without waiting.

use postroom_config::mail::Queue as QueueConfig;

/// The retry schedule and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Pauses after the 1st, 2nd, ... failed attempt; the last repeats. Never empty.
    pub pauses: Vec<u64>,
    /// Seconds after arrival when the message is given up (RFC 5321 section 4.5.4.1).
    pub expire_after: u64,
    /// Seconds after arrival when the sender is told of the delay; None for never.
    pub delay_notice_after: Option<u64>,
}

/// What to do after an attempt left recipients undelivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterDeferral {
    /// Try again at this time.
    RetryAt(u64),
    /// The message has been in the queue too long: fail what is left.
    Expire,
}

impl RetryPolicy {
    /// From the `[mail.queue]` section. An empty schedule becomes one pause of 5 minutes; a
    /// pause of 0 becomes 1 second, so a bad config cannot make the queue spin.
    pub fn from_config(config: &QueueConfig) -> RetryPolicy {
        let mut pauses: Vec<u64> = config.retry_schedule.iter().map(|s| s.0.max(1)).collect();
        if pauses.is_empty() {
            pauses.push(300);
        }
        RetryPolicy {
            pauses,
            expire_after: config.expire_after.0,
            delay_notice_after: (config.delay_notice_after.0 > 0)
                .then_some(config.delay_notice_after.0),
        }
    }

    /// The pause after `attempts` failed attempts (1 for the first failure).
    pub fn pause(&self, attempts: u32) -> u64 {
        let i = (attempts.max(1) - 1) as usize;
        self.pauses[i.min(self.pauses.len() - 1)]
    }

    /// Decides after the `attempts`-th attempt at `now` left recipients deferred. The last
    /// retry is placed at the expiry time rather than past it, so a message gets its last
    /// chance at five days, not five days and some hours.
    pub fn after_deferral(&self, arrived: u64, attempts: u32, now: u64) -> AfterDeferral {
        let expires = arrived.saturating_add(self.expire_after);
        if now >= expires {
            return AfterDeferral::Expire;
        }
        AfterDeferral::RetryAt(now.saturating_add(self.pause(attempts)).min(expires))
    }

    /// Whether a delay notice is due now (and was not sent before).
    pub fn delay_notice_due(&self, arrived: u64, now: u64, already_sent: bool) -> bool {
        match self.delay_notice_after {
            Some(after) => !already_sent && now >= arrived.saturating_add(after),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postroom_config::mail::Span;

    fn policy() -> RetryPolicy {
        let config = QueueConfig {
            retry_schedule: vec![Span(300), Span(600), Span(3_600)],
            expire_after: Span(5 * 86_400),
            delay_notice_after: Span(4 * 3_600),
            ..QueueConfig::default()
        };
        RetryPolicy::from_config(&config)
    }

    #[test]
    fn pauses_follow_the_schedule_then_repeat_the_last() {
        let p = policy();
        assert_eq!(
            [1, 2, 3, 4, 50].map(|n| p.pause(n)),
            [300, 600, 3_600, 3_600, 3_600]
        );
        assert_eq!(
            p.after_deferral(1_000, 1, 1_000),
            AfterDeferral::RetryAt(1_300)
        );
        assert_eq!(
            p.after_deferral(1_000, 2, 1_300),
            AfterDeferral::RetryAt(1_900)
        );
    }

    #[test]
    fn message_expires_after_five_days_with_a_last_try_at_the_deadline() {
        let p = policy();
        let arrived = 10_000;
        let deadline = arrived + 5 * 86_400;
        assert_eq!(
            p.after_deferral(arrived, 90, deadline - 60),
            AfterDeferral::RetryAt(deadline)
        );
        assert_eq!(
            p.after_deferral(arrived, 91, deadline),
            AfterDeferral::Expire
        );
        assert_eq!(
            p.after_deferral(arrived, 91, deadline + 1),
            AfterDeferral::Expire
        );
    }

    #[test]
    fn delay_notice_is_due_once_after_four_hours() {
        let p = policy();
        assert!(!p.delay_notice_due(0, 4 * 3_600 - 1, false));
        assert!(p.delay_notice_due(0, 4 * 3_600, false));
        assert!(!p.delay_notice_due(0, 5 * 3_600, true));
        let never = RetryPolicy {
            delay_notice_after: None,
            ..p
        };
        assert!(!never.delay_notice_due(0, 100 * 3_600, false));
    }

    #[test]
    fn empty_or_zero_schedule_cannot_spin() {
        let config = QueueConfig {
            retry_schedule: vec![],
            ..QueueConfig::default()
        };
        assert_eq!(RetryPolicy::from_config(&config).pauses, [300]);
        let config = QueueConfig {
            retry_schedule: vec![Span(0)],
            ..QueueConfig::default()
        };
        assert_eq!(RetryPolicy::from_config(&config).pauses, [1]);
    }
}
