//! Users and their passwords: argon2 PHC strings from `[[mail.users]]`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use postroom_config::mail::Mail;
use postroom_smtp::Credentials;

/// The password check for SMTP AUTH (and for IMAP and POP3 logins). Clones share one table,
/// so [`Users::replace`] on a reload reaches every server.
#[derive(Debug, Clone)]
pub struct Users {
    hashes: Arc<RwLock<HashMap<String, String>>>,
}

/// Checked against when the user is unknown, so that a wrong name costs as much time as a
/// wrong password and names cannot be probed by timing. (The hash of a random string.)
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1CQAJ5YuP07rOQ1E6lfL0dRxyFpD2V0w6vBRuTSmMv8";

impl Users {
    /// The users of this configuration, by lower-case name.
    pub fn new(config: &Mail) -> Users {
        Users {
            hashes: Arc::new(RwLock::new(table(config))),
        }
    }

    /// Takes the users of a reloaded configuration.
    pub fn replace(&self, config: &Mail) {
        let mut hashes = self.hashes.write().unwrap_or_else(|p| p.into_inner());
        *hashes = table(config);
    }

    fn hash_of(&self, name: &str) -> Option<String> {
        let hashes = self.hashes.read().unwrap_or_else(|p| p.into_inner());
        hashes.get(name).cloned()
    }

    /// Checks credentials; returns the canonical user name when they are good. Runs argon2 on
    /// a blocking thread, as it takes tens of milliseconds by design.
    pub async fn verify(&self, credentials: Credentials) -> Option<String> {
        // An authorisation identity other than the user itself is not supported.
        if credentials
            .authzid
            .as_ref()
            .is_some_and(|z| z != &credentials.username)
        {
            return None;
        }
        // A login may be `alice` or `alice@office.example`.
        let lower = credentials.username.to_ascii_lowercase();
        let name = lower
            .split_once('@')
            .map_or(lower.as_str(), |(local, _)| local)
            .to_owned();
        let hash = self.hash_of(&name);
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DECOY_HASH.to_owned());
        let password = credentials.password;
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .unwrap_or(false);
        (ok && known).then_some(name)
    }
}

/// IMAP and POP3 logins (crates/imap, crates/pop3) call this from a blocking section of their
/// connection task, so argon2 runs synchronously here.
impl postroom_maildir::access::Authenticator for Users {
    fn authenticate(&self, user: &str, password: &str) -> Option<String> {
        let lower = user.to_ascii_lowercase();
        let name = lower
            .split_once('@')
            .map_or(lower.as_str(), |(local, _)| local)
            .to_owned();
        let hash = self.hash_of(&name);
        let known = hash.is_some();
        let ok = verify_password(&hash.unwrap_or_else(|| DECOY_HASH.to_owned()), password);
        (ok && known).then_some(name)
    }
}

/// Lower-case user name to password hash; users without a hash cannot log in.
fn table(config: &Mail) -> HashMap<String, String> {
    config
        .users
        .iter()
        .filter(|u| !u.password_hash.is_empty())
        .map(|u| (u.name.to_ascii_lowercase(), u.password_hash.clone()))
        .collect()
}

/// Checks a password against an argon2 PHC string. An empty password never matches: a hash of
/// the empty string (`hash-password` refuses to make one, but a file may hold one) would let
/// anybody in with no password at all.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.is_empty() {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashes a password with argon2id and a random salt, for `postroom mail hash-password`. An
/// empty password is refused.
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut salt))
        .map_err(|e| format!("no random numbers from /dev/urandom: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use postroom_config::mail::User;

    #[tokio::test]
    async fn hashed_password_verifies_and_wrong_one_does_not() {
        let hash = hash_password("dev-password").unwrap();
        let config = Mail {
            users: vec![User {
                name: "alice".into(),
                password_hash: hash,
                ..Default::default()
            }],
            ..Default::default()
        };
        let users = Users::new(&config);
        let creds = |u: &str, p: &str| Credentials {
            authzid: None,
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(
            users
                .verify(creds("alice", "dev-password"))
                .await
                .as_deref(),
            Some("alice")
        );
        assert_eq!(
            users
                .verify(creds("Alice@office.example", "dev-password"))
                .await
                .as_deref(),
            Some("alice")
        );
        assert_eq!(users.verify(creds("alice", "wrong")).await, None);
        assert_eq!(users.verify(creds("mallory", "dev-password")).await, None);
    }

    #[test]
    fn an_empty_password_is_never_hashed_and_never_matches_even_its_own_hash() {
        assert!(hash_password("").is_err());
        // A hash of "" made elsewhere and pasted into the file.
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let hash = Argon2::default()
            .hash_password(b"", &salt)
            .unwrap()
            .to_string();
        assert!(!verify_password(&hash, ""));
        let other = hash_password("x").unwrap();
        assert!(verify_password(&other, "x"));
    }
}
