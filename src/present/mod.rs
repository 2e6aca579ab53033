//! Presentation: what the commands print, as text (terraform-style plans, kubectl-style
//! tables) and as JSON documents. Nothing below this layer prints.

pub(crate) mod plan;
pub(crate) mod render;
pub(crate) mod status;
pub(crate) mod sync;
pub(crate) mod textfile;

use serde::Serialize;

/// The machine-readable formats of `-o`: one JSON document (pretty, with a final newline), or
/// the same document as YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Doc {
    Json,
    Yaml,
}

impl Doc {
    /// `doc` in this format.
    pub(crate) fn write<T: Serialize>(self, doc: &T) -> String {
        match self {
            Doc::Json => serde_json::to_string_pretty(doc).expect("documents serialize") + "\n",
            Doc::Yaml => yaml_serde::to_string(doc).expect("documents serialize"),
        }
    }
}
