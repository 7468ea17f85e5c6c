//! The crash-safety test of issue 6, item 4: `postroom mail` is killed with SIGKILL at random
//! moments under continuous SMTP load, the supervisor starts it again, and afterwards every
//! message that got its 250 must be in its Maildir exactly once (or at the smarthost at least
//! once), and none that got no 250 may be there twice.
//!
//! This library holds the parts that do not need a running appliance, so that each can be
//! tested on its own: the seeded random numbers ([`rng`]), the SMTP load clients and their
//! record of what was sent and answered ([`load`]), reading delivered messages back
//! ([`mailbox`]), and the comparison of the two ([`verdict`]). The test itself, which starts
//! the supervisor and a Postfix smarthost and does the killing, is `tests/crash_safety.rs`.

#![forbid(unsafe_code)]

pub mod load;
pub mod mailbox;
pub mod rng;
pub mod verdict;
