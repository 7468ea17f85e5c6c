//! The `[mail]` section.

use serde::{Deserialize, Serialize};

/// The `[mail]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mail {}
