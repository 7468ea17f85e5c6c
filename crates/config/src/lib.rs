//! Postroom's configuration: one TOML file with a section per component.
//!
//! Every section lives in its own module and is owned by the component that reads it. Unknown
//! keys are errors, and every mistake is reported with its key path and line.

#![forbid(unsafe_code)]

pub mod link;
pub mod mail;
pub mod supervisor;
pub mod system;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// The file was read but has mistakes; each is one line of the message.
    #[error("{path}: {}", .mistakes.join("\n"))]
    Invalid { path: PathBuf, mistakes: Vec<String> },
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Read { path: path.to_owned(), source })?;
        Config::parse(&text).map_err(|mistakes| Error::Invalid { path: path.to_owned(), mistakes })
    }

    /// Parses configuration text; on failure returns every mistake found.
    pub fn parse(text: &str) -> Result<Config, Vec<String>> {
        toml::from_str(text).map_err(|e| vec![e.to_string()])
    }
}
