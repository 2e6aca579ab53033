//! What this binary is: its version and the commit it was built from (recorded by `build.rs`),
//! for `m2s --version` and the `m2s_build_info` metric of the receiver and the textfile.

use std::fmt::Write as _;

/// The crate's version.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit (12 hex digits), `M2S_BUILD_COMMIT` as given at build time, or `unknown`.
pub(crate) const COMMIT: &str = env!("M2S_COMMIT");
/// What `m2s --version` prints after the name.
pub(crate) const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("M2S_COMMIT"),
    ")"
);

/// A label value in Prometheus' text format: backslash, double quote and newline escaped.
pub(crate) fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `m2s_build_info{…,version,commit} 1` with its HELP and TYPE lines; `labels` are label pairs
/// put before `version` (the textfile's `namespace` and `m2s_instance`; none for the receiver).
pub(crate) fn metric(labels: &[(&str, &str)]) -> String {
    let mut pairs = String::new();
    for (name, value) in labels
        .iter()
        .chain(&[("version", VERSION), ("commit", COMMIT)])
    {
        let sep = if pairs.is_empty() { "" } else { "," };
        let _ = write!(pairs, "{sep}{name}=\"{}\"", label_value(value));
    }
    format!(
        "# HELP m2s_build_info The running m2s: its version and the commit it was built from (always 1).\n\
         # TYPE m2s_build_info gauge\n\
         m2s_build_info{{{pairs}}} 1\n"
    )
}

#[cfg(test)]
mod tests;
