//! The `[system]` section: where Postroom keeps its data and sockets, who it runs as, and the
//! box's own name.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::check::{Check, Report, index, key};

/// The `[system]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct System {
    /// Where the live data lives: Maildirs, the spool, the `.redb` files, generated keys.
    pub data_dir: PathBuf,
    /// Where the control sockets `<component>.sock` live.
    pub run_dir: PathBuf,
    /// The user the components run as once their privileged ports are bound; none keeps the
    /// user Postroom was started as (development).
    pub user: Option<String>,
    /// The group for that; none takes the user's primary group. The control sockets are
    /// readable and writable by this group.
    pub group: Option<String>,
    /// The box's host name (`mail.office.example`); empty takes the operating system's.
    /// A component with its own name setting (`[mail] hostname`) uses that one.
    pub hostname: String,
    /// The office's mail domains (`office.example`), the first being the main one.
    pub domains: Vec<String>,
}

impl Default for System {
    fn default() -> System {
        System {
            data_dir: PathBuf::from("/data/postroom"),
            run_dir: PathBuf::from("/run/postroom"),
            user: None,
            group: None,
            hostname: String::new(),
            domains: Vec::new(),
        }
    }
}

impl System {
    /// The control socket of `component`: `<run_dir>/<component>.sock`.
    pub fn socket(&self, component: &str) -> PathBuf {
        self.run_dir.join(format!("{component}.sock"))
    }
}

/// The longest path a Unix socket may have: `sun_path` holds 108 bytes with the final NUL
/// (unix(7)).
const MAX_SOCKET_PATH: usize = 107;

/// The longest socket file name in the run directory.
const LONGEST_SOCKET_NAME: &str = "supervisor.sock";

impl Check for System {
    fn check(&self, at: &str, report: &mut Report) {
        if self.data_dir.as_os_str().is_empty() {
            report.add(
                key(at, "data_dir"),
                "is empty; give the directory for Postroom's data",
            );
        }
        if self.run_dir.as_os_str().is_empty() {
            report.add(
                key(at, "run_dir"),
                "is empty; give the directory for the control sockets",
            );
        } else {
            let longest = self.run_dir.as_os_str().len() + 1 + LONGEST_SOCKET_NAME.len();
            if longest > MAX_SOCKET_PATH {
                report.add(
                    key(at, "run_dir"),
                    format!(
                        "{:?} is too long for a socket path: {}/{LONGEST_SOCKET_NAME} would be \
                         {longest} bytes, the limit is {MAX_SOCKET_PATH}",
                        self.run_dir.display(),
                        self.run_dir.display(),
                    ),
                );
            }
        }
        for (field, name) in [("user", &self.user), ("group", &self.group)] {
            if let Some(name) = name
                && !is_account_name(name)
            {
                report.add(
                    key(at, field),
                    format!("{name:?} is not a user or group name"),
                );
            }
        }
        if !self.hostname.is_empty() && !is_host_name(&self.hostname) {
            report.add(
                key(at, "hostname"),
                format!("{:?} is not a host name", self.hostname),
            );
        }
        let domains = key(at, "domains");
        for (n, domain) in self.domains.iter().enumerate() {
            if !is_host_name(domain) {
                report.add(
                    index(&domains, n),
                    format!("{domain:?} is not a domain name"),
                );
            } else if self.domains[..n]
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
            {
                report.add(index(&domains, n), format!("{domain:?} is listed twice"));
            }
        }
    }
}

/// A name as useradd(8) accepts it by default: letters, digits, `_`, `-`, not starting with
/// `-` or a digit, at most 32 bytes.
fn is_account_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b == b'_')
        && name.len() <= 32
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A host or domain name: dot-separated labels of letters, digits and inner hyphens, each at
/// most 63 bytes, in all at most 253 (RFC 1123 section 2.1, RFC 1035 section 2.3.4).
pub(crate) fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
