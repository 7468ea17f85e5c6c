//! The `[link]` section.

use serde::{Deserialize, Serialize};

/// The `[link]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Link {}
