//! What `m2s render` prints: each file it wrote or removed, the entries it could not render,
//! and a summary line.

use std::fmt::Write as _;
use std::path::Path;

use super::plan::write_errors;
use crate::commands::render::Written;

/// The text of a finished `m2s render` into `out`.
pub(crate) fn render_text(w: &Written, out: &Path) -> String {
    let mut text = String::new();
    let lines = [('+', &w.created), ('~', &w.updated), ('-', &w.removed)];
    for (symbol, files) in lines {
        for f in files {
            let _ = writeln!(text, "  {symbol} {f}");
        }
    }
    for f in &w.kept {
        let _ = writeln!(text, "  = {f} (kept: its entry cannot be deployed)");
    }
    if !text.is_empty() {
        text.push('\n');
    }
    if !w.errors.is_empty() {
        let width = w.errors.iter().map(|e| e.name.len()).max().unwrap_or(0);
        text.push_str("Entries that cannot be deployed (their files are left as they are):\n");
        write_errors(&mut text, &w.errors, width);
    }
    let listed = w.created.len() + w.updated.len() + w.unchanged + w.kept.len();
    let _ = writeln!(
        text,
        "Render into {}: {} created, {} updated, {} removed, {} unchanged; kustomization.yaml lists {listed}.",
        out.display(),
        w.created.len(),
        w.updated.len(),
        w.removed.len(),
        w.unchanged,
    );
    text
}
