//! `m2s completion SHELL` and `m2s man`: generated from the same definitions as the command
//! line itself (clap_complete, clap_mangen), so they cannot drift from it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args)]
pub(crate) struct CompletionArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. E.g. `source <(m2s completion bash)`,
    /// or `m2s completion zsh > "${fpath[1]}/_m2s"`.
    #[arg(value_enum, value_name = "SHELL")]
    pub(crate) shell: Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write m2s.1 and a page for every command (m2s-sync.1, …) into this directory instead
    /// of printing m2s.1.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// Prints the completion script of `shell`.
pub(crate) fn completion(args: &CompletionArgs) -> Result<()> {
    let mut cmd = super::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "m2s", &mut out);
    out.flush().context("writing the completion script")
}

/// Prints m2s(1), or writes every page into `--dir`.
pub(crate) fn man(args: &ManArgs) -> Result<()> {
    let cmd = super::command();
    match &args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("writing the man page")?;
            out.flush().context("writing the man page")
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the man page directory {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing the man pages into {}", dir.display()))
        }
    }
}
