//! When to start a component again after it stopped: the restart policy, without any I/O.
//!
//! The model is OpenWrt procd's `respawn threshold timeout retry` (procd `service/instance.c`,
//! `instance_exit`): a run shorter than `threshold` counts as a crash, a longer run forgets
//! earlier crashes, and after more than `retry` crashes in a row the instance is in a crash loop.
//! Two things differ on purpose. procd waits a fixed `timeout` before each respawn; we double the
//! wait after each crash in a row (from `first_delay` up to `max_delay`), so a component that
//! crashes once comes back at once and one that keeps crashing does not burn the CPU. And procd
//! gives up on a crash loop for good; an appliance has nobody to start it by hand, so we mark the
//! component failing and keep trying at a slow pace (`failing_delay`).

use std::time::Duration;

/// The restart policy of one component.
#[derive(Debug, Clone, PartialEq)]
pub struct RespawnPolicy {
    /// A run shorter than this counts as a crash (procd's `respawn_threshold`).
    pub threshold: Duration,
    /// The wait before the first restart after a crash.
    pub first_delay: Duration,
    /// The longest wait between restarts while not yet failing.
    pub max_delay: Duration,
    /// Crashes in a row allowed before the component counts as failing (procd's
    /// `respawn_retry`); 0 means it never counts as failing.
    pub retry: u32,
    /// The slow retry interval of a failing component.
    pub failing_delay: Duration,
}

/// What to do after a component stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Respawn {
    /// Wait this long, then start it again.
    pub delay: Duration,
    /// The component is in a crash loop.
    pub failing: bool,
}

/// The crashes in a row of one component; the only state the policy keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashCount(pub u32);

impl RespawnPolicy {
    /// Decides when to start a component again after a run of `ran_for`, and updates `crashes`.
    pub fn after_exit(&self, crashes: &mut CrashCount, ran_for: Duration) -> Respawn {
        if ran_for < self.threshold {
            crashes.0 = crashes.0.saturating_add(1);
        } else {
            crashes.0 = 0;
        }

        if self.retry > 0 && crashes.0 > self.retry {
            return Respawn {
                delay: self.failing_delay,
                failing: true,
            };
        }

        // Crash n waits first_delay * 2^(n-1); a run that outlived the threshold waits
        // first_delay, like a first crash.
        let doublings = crashes.0.saturating_sub(1).min(30);
        let delay = self
            .first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        Respawn {
            delay,
            failing: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RespawnPolicy {
        RespawnPolicy {
            threshold: Duration::from_secs(60),
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(4),
            retry: 5,
            failing_delay: Duration::from_secs(300),
        }
    }

    #[test]
    fn crashes_in_a_row_double_the_delay_up_to_the_maximum() {
        let policy = policy();
        let mut crashes = CrashCount::default();
        let delays: Vec<u128> = (0..5)
            .map(|_| {
                policy
                    .after_exit(&mut crashes, Duration::from_secs(1))
                    .delay
                    .as_millis()
            })
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 4000]);
    }

    #[test]
    fn more_crashes_than_retry_mark_the_component_failing_with_the_slow_retry() {
        let policy = policy();
        let mut crashes = CrashCount::default();
        for _ in 0..5 {
            assert!(!policy.after_exit(&mut crashes, Duration::ZERO).failing);
        }
        let sixth = policy.after_exit(&mut crashes, Duration::ZERO);
        assert_eq!(
            sixth,
            Respawn {
                delay: Duration::from_secs(300),
                failing: true
            }
        );
    }

    #[test]
    fn a_run_longer_than_the_threshold_forgets_earlier_crashes() {
        let policy = policy();
        let mut crashes = CrashCount::default();
        for _ in 0..6 {
            policy.after_exit(&mut crashes, Duration::ZERO);
        }
        let after_long_run = policy.after_exit(&mut crashes, Duration::from_secs(61));
        assert_eq!(
            after_long_run,
            Respawn {
                delay: Duration::from_millis(500),
                failing: false
            }
        );
        assert_eq!(crashes, CrashCount(0));
    }

    #[test]
    fn retry_zero_never_marks_a_component_failing() {
        let policy = RespawnPolicy {
            retry: 0,
            ..policy()
        };
        let mut crashes = CrashCount::default();
        for _ in 0..100 {
            assert!(!policy.after_exit(&mut crashes, Duration::ZERO).failing);
        }
    }
}
