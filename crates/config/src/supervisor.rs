//! The `[supervisor]` section.

use serde::{Deserialize, Serialize};

/// The `[supervisor]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Supervisor {}
