//! What `m2s sync` prints as it goes: the plan, the summary line, and `--wait`'s progress.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;

use super::plan::render_text;
use crate::commands::SyncCommandView;
use crate::config::Config;
use crate::engine::apply::{not_available, SyncOutcome, SyncView};
use crate::engine::wait::{Tracker, WaitOutcome};
use crate::engine::Prepared;
use crate::targets::{Readiness, Resource, State};

/// The last line of `sync`: what its writes came to.
pub(crate) fn summary_line(o: &SyncOutcome) -> String {
    format!(
        "{}{} created, {} updated, {} deleted, {} unchanged, {} failed, {} not deployable.",
        if o.dry_run {
            "Dry run (nothing persisted): "
        } else {
            "Sync: "
        },
        o.created,
        o.updated,
        o.deleted,
        o.unchanged,
        o.failures.len(),
        o.not_deployable
    )
}

/// "  name: State (message) at url": one line of `--wait`'s progress.
pub(crate) fn wait_line(name: &str, r: &Readiness) -> String {
    let mut line = format!("  {name}: {}", r.state);
    if let Some(m) = &r.message {
        line.push_str(&format!(" ({m})"));
    }
    if let (State::Available, Some(url)) = (r.state, &r.url) {
        line.push_str(&format!(" at {url}"));
    }
    line
}

/// The end of a wait, in one sentence.
pub(crate) fn waited_line(w: &WaitOutcome, kind: Resource) -> String {
    if w.succeeded() {
        let n = w.available.len();
        return if n == 1 {
            format!("The {} is Available.", kind.kind)
        } else {
            format!("All {} are Available.", kind.count(n))
        };
    }
    format!("{}.", not_available(w, kind))
}

/// A sync as the terminal shows it.
pub(crate) struct TextSync<W: Write> {
    pub(crate) out: W,
}

impl<W: Write> SyncView for TextSync<W> {
    fn applied(&mut self, outcome: &SyncOutcome) -> Result<()> {
        writeln!(self.out, "{}", summary_line(outcome))?;
        self.out.flush()?;
        Ok(())
    }

    fn waiting(&mut self, tracker: &Tracker, timeout: Duration, kind: Resource) -> Result<()> {
        if tracker.is_empty() {
            writeln!(
                self.out,
                "Nothing to wait for: no object was created or updated."
            )?;
            return Ok(());
        }
        writeln!(
            self.out,
            "Waiting up to {}s for {} to be Available:",
            timeout.as_secs(),
            kind.count(tracker.len())
        )?;
        for (name, r) in tracker.states() {
            writeln!(self.out, "{}", wait_line(name, r))?;
        }
        self.out.flush()?;
        Ok(())
    }

    fn progress(&mut self, name: &str, readiness: &Readiness) {
        let _ = writeln!(self.out, "{}", wait_line(name, readiness));
        let _ = self.out.flush();
    }

    fn waited(&mut self, outcome: &WaitOutcome, kind: Resource) -> Result<()> {
        writeln!(self.out, "{}", waited_line(outcome, kind))?;
        self.out.flush()?;
        Ok(())
    }
}

impl<W: Write> SyncCommandView for TextSync<W> {
    fn planned(&mut self, prepared: &Prepared, config: &Config) -> Result<()> {
        let text = render_text(&prepared.plan, &prepared.registry, &config.deploy);
        write!(self.out, "{text}")?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
