//! What IMAP and POP3 share to let a user in: a password check supplied by `postroom mail`
//! (its user table), SASL PLAIN decoding, and a per-address limit on failed logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Checks a user's password. `postroom mail` implements this over its user table (argon2
/// hashes); tests use a fixed table.
pub trait Authenticator: Send + Sync {
    /// Returns the mailbox owner's name (the store's user directory) when the password is
    /// right, None otherwise. Implementations must never log the password.
    fn authenticate(&self, user: &str, password: &str) -> Option<String>;
}

/// A fixed user table with plain-text passwords, for tests and development.
#[derive(Debug, Default, Clone)]
pub struct StaticUsers(pub Vec<(String, String)>);

impl Authenticator for StaticUsers {
    fn authenticate(&self, user: &str, password: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(u, p)| u == user && p == password)
            .map(|(u, _)| u.clone())
    }
}

/// Credentials from SASL PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`, base64-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// The authentication identity.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for PlainCredentials {
    // The password is never printed, also not in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Decodes a SASL PLAIN response. An authorization identity other than the user is refused.
pub fn decode_plain(encoded: &[u8]) -> Option<PlainCredentials> {
    let raw = decode_base64(encoded)?;
    let mut parts = raw.split(|&b| b == 0);
    let authzid = parts.next()?;
    let user = parts.next()?;
    let password = parts.next()?;
    if parts.next().is_some() || user.is_empty() || !(authzid.is_empty() || authzid == user) {
        return None;
    }
    Some(PlainCredentials {
        user: String::from_utf8(user.to_vec()).ok()?,
        password: String::from_utf8(password.to_vec()).ok()?,
    })
}

/// Standard base64 with padding (RFC 4648 section 4); surrounding whitespace is ignored.
pub fn decode_base64(encoded: &[u8]) -> Option<Vec<u8>> {
    let encoded = encoded.trim_ascii();
    if !encoded.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(encoded.len() / 4 * 3);
    for chunk in encoded.chunks(4) {
        let mut n: u32 = 0;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' if i >= 2 => {
                    pad += 1;
                    0
                }
                _ => return None,
            };
            if pad > 0 && c != b'=' {
                return None;
            }
            n = (n << 6) | u32::from(v);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

/// Limits failed logins per client address: after `free` failures, each further attempt must
/// wait a delay that doubles per failure, up to `max_delay`. A success clears the record.
#[derive(Debug)]
pub struct LoginLimiter {
    free: u32,
    base_delay: Duration,
    max_delay: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    /// A limiter letting `free` failures through without delay.
    pub fn new(free: u32, base_delay: Duration, max_delay: Duration) -> LoginLimiter {
        LoginLimiter {
            free,
            base_delay,
            max_delay,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the address may try a login now.
    pub fn allowed(&self, peer: IpAddr) -> bool {
        self.allowed_at(peer, Instant::now())
    }

    /// [`LoginLimiter::allowed`] at a given instant.
    pub fn allowed_at(&self, peer: IpAddr, now: Instant) -> bool {
        self.wait_at(peer, now).is_none()
    }

    /// How long the address must still wait before its next login may be tried, or `None`
    /// if it may try now: the refusal says so, so a person knows when to try again.
    pub fn wait(&self, peer: IpAddr) -> Option<Duration> {
        self.wait_at(peer, Instant::now())
    }

    /// [`LoginLimiter::wait`] at a given instant.
    pub fn wait_at(&self, peer: IpAddr, now: Instant) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let &(count, last) = map.get(&peer)?;
        if count < self.free {
            return None;
        }
        let waited = now.saturating_duration_since(last);
        self.delay(count)
            .checked_sub(waited)
            .filter(|d| !d.is_zero())
    }

    fn delay(&self, count: u32) -> Duration {
        let doublings = (count - self.free).min(16);
        self.base_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }

    /// Records a login result.
    pub fn record(&self, peer: IpAddr, success: bool) {
        self.record_at(peer, success, Instant::now());
    }

    /// [`LoginLimiter::record`] at a given instant.
    pub fn record_at(&self, peer: IpAddr, success: bool, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if success {
            map.remove(&peer);
            return;
        }
        // Old records go, so a scan of many addresses cannot grow the map for ever.
        if map.len() > 10_000 {
            let horizon = self.max_delay;
            map.retain(|_, (_, last)| now.saturating_duration_since(*last) < horizon);
        }
        let entry = map.entry(peer).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
    }
}

/// A wait in whole seconds, rounded up, for a message to a person: 0.3 s is "1 s".
pub fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(3, Duration::from_secs(2), Duration::from_secs(300))
    }
}

/// Limits simultaneous connections per client address and in total. One limiter is shared by
/// the IMAP and POP3 listeners of `postroom mail`, so a single client cannot take every file
/// descriptor of the process (which SMTP needs too).
#[derive(Debug)]
pub struct ConnectionLimiter {
    per_client: usize,
    total: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl ConnectionLimiter {
    /// At most `per_client` connections from one address and `total` in all.
    pub fn new(per_client: usize, total: usize) -> ConnectionLimiter {
        ConnectionLimiter {
            per_client,
            total,
            open: Mutex::new((0, HashMap::new())),
        }
    }

    /// Takes a connection slot for `peer`, given back when the slot is dropped; `None` when
    /// the address or the whole server is at its limit.
    pub fn admit(self: &std::sync::Arc<Self>, peer: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_client) = &mut *open;
        let mine = per_client.get(&peer).copied().unwrap_or(0);
        if mine >= self.per_client || *total >= self.total {
            return None;
        }
        per_client.insert(peer, mine + 1);
        *total += 1;
        Some(ConnectionSlot {
            limiter: std::sync::Arc::clone(self),
            peer,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    limiter: std::sync::Arc<ConnectionLimiter>,
    peer: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_client) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_client.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limiter_counts_per_address_and_in_total_and_frees_dropped_slots() {
        let limiter = std::sync::Arc::new(ConnectionLimiter::new(2, 3));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limiter.admit(a).unwrap();
        let _second = limiter.admit(a).unwrap();
        assert!(limiter.admit(a).is_none(), "a third from one address");
        let _third = limiter.admit(b).unwrap();
        assert!(limiter.admit(b).is_none(), "a fourth in total");
        drop(first);
        assert_eq!(limiter.open(), 2);
        assert!(limiter.admit(a).is_some());
    }

    #[test]
    fn plain_response_decodes() {
        // base64("\0alice\0secret")
        let c = decode_plain(b"AGFsaWNlAHNlY3JldA==").unwrap();
        assert_eq!(c.user, "alice");
        assert_eq!(c.password, "secret");
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn plain_with_foreign_authzid_is_refused() {
        // base64("bob\0alice\0secret")
        assert!(decode_plain(b"Ym9iAGFsaWNlAHNlY3JldA==").is_none());
    }

    #[test]
    fn the_wait_left_is_told_in_whole_seconds() {
        let limiter = LoginLimiter::new(1, Duration::from_secs(2), Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(limiter.wait_at(a, t0), None);
        limiter.record_at(a, false, t0);
        assert_eq!(limiter.wait_at(a, t0), Some(Duration::from_secs(2)));
        let later = t0 + Duration::from_millis(1_500);
        assert_eq!(whole_seconds(limiter.wait_at(a, later).unwrap()), 1);
        assert_eq!(limiter.wait_at(a, t0 + Duration::from_secs(2)), None);
    }

    #[test]
    fn failures_beyond_the_free_ones_are_delayed_per_address() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(1), Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        limiter.record_at(a, false, t0);
        assert!(limiter.allowed_at(a, t0));
        limiter.record_at(a, false, t0);
        assert!(!limiter.allowed_at(a, t0));
        assert!(limiter.allowed_at(b, t0));
        assert!(limiter.allowed_at(a, t0 + Duration::from_secs(1)));
        limiter.record_at(a, false, t0 + Duration::from_secs(1));
        assert!(!limiter.allowed_at(a, t0 + Duration::from_secs(2)));
        assert!(limiter.allowed_at(a, t0 + Duration::from_secs(3)));
        limiter.record_at(a, true, t0 + Duration::from_secs(3));
        assert!(limiter.allowed_at(a, t0 + Duration::from_secs(3)));
    }
}
