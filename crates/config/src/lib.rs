//! Postroom's configuration: one TOML file with a section per component.
//!
//! Every section lives in its own module and is owned by the component that reads it. All
//! section structs use `#[serde(default, deny_unknown_fields)]`, so a missing key takes its
//! default and an unknown key is a mistake. [`Config::load`] reports every mistake it can find
//! at once, each with its key path and line:
//!
//! ```text
//! /data/postroom/postroom.toml:14: link.schedule[2]: "25:00" is not a time of day
//! ```
//!
//! A relative path in the file is taken from the file's own directory ([`paths`]), and a
//! command given no `--config` reads [`DEFAULT_PATH`] ([`Config::load_for_command`]).
//!
//! Sections can use the typed values in [`values`] ([`TimeOfDay`], [`TimeRange`], [`Interval`],
//! [`Port`]) and add semantic checks with [`Check`]. Saving is atomic ([`write_atomically`]).

#![forbid(unsafe_code)]

mod atomic;
mod check;
mod load;
pub mod paths;
pub mod values;

pub mod link;
pub mod mail;
pub mod supervisor;
pub mod system;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use atomic::write_atomically;
pub use check::{Check, Mistake, Report, index, key};
pub use load::{from_toml, from_toml_checked};
pub use paths::DEFAULT_PATH;
pub use values::{Interval, Port, TimeOfDay, TimeRange};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where data and sockets live, which user to run as.
    pub system: system::System,
    /// Restart policy, watchdog, components to run.
    pub supervisor: supervisor::Supervisor,
    /// SMTP, IMAP, POP3, routing, queue.
    pub mail: mail::Mail,
    /// The link to the ISP: permanent or a modem dialled on demand.
    pub link: link::Link,
}

/// Why a configuration file could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A command was given no `--config FILE`, and there is no file at [`DEFAULT_PATH`].
    #[error(
        "no configuration file: none was given with --config FILE, and the default {} does not \
         exist",
        default.display()
    )]
    NoConfig {
        /// The default path that was tried.
        default: PathBuf,
    },
    /// The file could not be written.
    #[error("cannot write {}: {cause}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The configuration could not be turned into TOML (a value TOML cannot hold).
    #[error("cannot write the configuration as TOML: {cause}")]
    Encode {
        /// What toml said.
        cause: toml::ser::Error,
    },
    /// The file was read but has mistakes; each is one line of the message.
    #[error("{}", describe_mistakes(path, mistakes))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every mistake found, in the order found.
        mistakes: Vec<Mistake>,
    },
}

/// `FILE:LINE: key.path: message` per mistake, editor-style, under a count when there are many.
fn describe_mistakes(path: &Path, mistakes: &[Mistake]) -> String {
    let file = path.display();
    let mut out = String::new();
    if mistakes.len() > 1 {
        let _ = write!(out, "{file} has {} mistakes:", mistakes.len());
    }
    for (n, mistake) in mistakes.iter().enumerate() {
        if n > 0 || mistakes.len() > 1 {
            out.push('\n');
        }
        let _ = write!(out, "{file}:");
        if let Some(line) = mistake.line {
            let _ = write!(out, "{line}:");
        }
        out.push(' ');
        if !mistake.path.is_empty() {
            let _ = write!(out, "{}: ", mistake.path);
        }
        out.push_str(&mistake.message);
    }
    out
}

impl Config {
    /// Reads and checks a configuration file; its relative paths are taken from its directory
    /// ([`Config::resolve_paths`]).
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|cause| Error::Read {
            path: path.to_owned(),
            cause,
        })?;
        let mut config = Config::from_toml(&text).map_err(|mistakes| Error::Invalid {
            path: path.to_owned(),
            mistakes,
        })?;
        config.resolve_paths(&paths::base_dir(path));
        Ok(config)
    }

    /// [`Config::load`] for a command: the file given with `--config`, else [`DEFAULT_PATH`];
    /// a missing default is [`Error::NoConfig`]. Returns the file's path with it.
    pub fn load_for_command(given: Option<&Path>) -> Result<(PathBuf, Config), Error> {
        if let Some(path) = given {
            return Ok((path.to_owned(), Config::load(path)?));
        }
        let default = PathBuf::from(DEFAULT_PATH);
        match Config::load(&default) {
            Ok(config) => Ok((default, config)),
            Err(Error::Read { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::NoConfig { default })
            }
            Err(e) => Err(e),
        }
    }

    /// Reads and checks configuration text; on failure returns every mistake found.
    pub fn from_toml(text: &str) -> Result<Config, Vec<Mistake>> {
        from_toml_checked(text)
    }

    /// Like [`Config::from_toml`], with each mistake as its text (`line 3: key: message`).
    pub fn parse(text: &str) -> Result<Config, Vec<String>> {
        Config::from_toml(text).map_err(|m| m.iter().map(ToString::to_string).collect())
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> Result<String, Error> {
        toml::to_string(self).map_err(|cause| Error::Encode { cause })
    }

    /// Writes the configuration to `path` atomically (see [`write_atomically`]).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let text = self.to_toml()?;
        write_atomically(path, text.as_bytes()).map_err(|cause| Error::Write {
            path: path.to_owned(),
            cause,
        })
    }

    /// The control socket of `component`: `<system.run_dir>/<component>.sock`.
    pub fn socket(&self, component: &str) -> PathBuf {
        self.system.socket(component)
    }
}

impl Check for Config {
    fn check(&self, _at: &str, report: &mut Report) {
        self.system.check("system", report);
        self.supervisor.check("supervisor", report);
        self.link.check("link", report);
        self.mail.check("mail", report);
        check_listeners(&self.mail, report);
    }
}

/// No two of the mail listeners may share an address and port, and none may use port 0.
fn check_listeners(mail: &mail::Mail, report: &mut Report) {
    let l = &mail.listen;
    let listeners: [(&str, SocketAddr); 7] = [
        ("smtp", l.smtp),
        ("submission", l.submission),
        ("submissions", l.submissions),
        ("imap", l.imap),
        ("imaps", l.imaps),
        ("pop3", l.pop3),
        ("pop3s", l.pop3s),
    ];
    for (n, (name, addr)) in listeners.iter().enumerate() {
        let path = key("mail.listen", name);
        if addr.port() == 0 {
            report.add(&path, "port 0 is not a port to listen on");
            continue;
        }
        let clash = listeners[..n].iter().find(|(_, earlier)| {
            earlier.port() == addr.port()
                && (earlier.ip() == addr.ip()
                    || earlier.ip().is_unspecified()
                    || addr.ip().is_unspecified())
        });
        if let Some((other, _)) = clash {
            report.add(
                &path,
                format!(
                    "port {} is already used by mail.listen.{other}",
                    addr.port()
                ),
            );
        }
    }
}
