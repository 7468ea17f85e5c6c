//! The `[system]` section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `[system]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct System {
    /// Where the control sockets `<component>.sock` live.
    pub run_dir: PathBuf,
}

impl Default for System {
    fn default() -> System {
        System {
            run_dir: PathBuf::from("/run/postroom"),
        }
    }
}
