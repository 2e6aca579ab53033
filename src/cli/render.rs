//! `m2s render --out DIR`: its flags, and running it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::GuardArgs;
use crate::commands::render::render_into;
use crate::config::Config;
use crate::engine::Guard;
use crate::present::render::render_text;

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// Directory to write into (created if missing): <kind>-<name>.yaml per object and a
    /// kustomization.yaml listing them. Files m2s did not write are left alone.
    #[arg(long, value_name = "DIR", env = "M2S_RENDER_OUT")]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) guard: GuardArgs,
}

/// Renders into `--out`, prints what changed; fails when entries cannot be deployed (after
/// writing the others), as `sync` does.
pub(crate) fn render(config: &Config, args: &RenderArgs) -> Result<()> {
    let guard = Guard {
        allow_delete_all: args.guard.allow_delete_all,
        max_deletes: args.guard.max_deletes,
    };
    let written = render_into(config, &args.out, guard)?;
    super::run::print(&render_text(&written, &args.out))?;
    let n = written.errors.len();
    if n > 0 {
        bail!(
            "{n} registry {} cannot be deployed (listed above)",
            if n == 1 { "entry" } else { "entries" }
        );
    }
    Ok(())
}
