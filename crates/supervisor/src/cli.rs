//! Entry points for `postroom run` and `postroom ctl`.

use std::ffi::OsString;

/// `postroom run --config FILE`.
pub fn run(_args: Vec<OsString>) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

/// `postroom ctl --config FILE ...`.
pub fn ctl(_args: Vec<OsString>) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
