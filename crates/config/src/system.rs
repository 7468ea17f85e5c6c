//! The `[system]` section.

use serde::{Deserialize, Serialize};

/// The `[system]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct System {}
