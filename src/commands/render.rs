//! `m2s render`: the objects a sync would create, written as YAML files into a directory for a
//! GitOps controller (Argo CD, Flux) to apply. It reads MLflow only: no cluster access, so it
//! runs in CI or beside a Git checkout. What a file holds is exactly what `m2s sync` would
//! apply for the same registry and settings.

mod dir;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::config::Config;
use crate::desired::{render, EntryError};
use crate::engine::{self, Guard};
use crate::mlflow::MlflowClient;

pub(crate) use dir::Written;

/// The registry as objects: every entry that renders, and those that cannot be deployed.
pub(crate) struct Rendered {
    /// The objects, sorted by name.
    pub(crate) objects: Vec<Value>,
    /// Entries that cannot be deployed, sorted by name: their files are kept as they are.
    pub(crate) errors: Vec<EntryError>,
}

/// Reads the registry once and renders every entry, as a sync would before it plans: the
/// registry search, then each version's location (runs read in batches). Any MLflow failure
/// fails the whole call, before anything is written.
pub(crate) fn desired(config: &Config) -> Result<Rendered> {
    let mlflow = MlflowClient::new(&config.mlflow)?;
    let registry = engine::read_registry(&mlflow, config)?;
    let versions = registry
        .entries
        .iter()
        .map(|e| e.version.view(&e.model.name));
    let resolved = mlflow
        .resolve_all(versions)
        .context("reading model versions from MLflow; nothing was written")?;
    let mut errors = registry.errors.clone();
    let mut objects = Vec::with_capacity(registry.entries.len());
    for (entry, r) in registry.entries.iter().zip(resolved) {
        let object = r.and_then(|r| {
            render(entry, &r.location, &r.version_tags, &config.deploy).map(|d| d.object)
        });
        match object {
            Ok(object) => objects.push(object),
            Err(message) => errors.push(EntryError::of(entry, message)),
        }
    }
    errors.sort_by(|a, b| (&a.name, &a.model).cmp(&(&b.name, &b.model)));
    Ok(Rendered { objects, errors })
}

/// `m2s render --out DIR`: renders the registry and brings `out` in line with it (see
/// [`dir`]); nothing is written when MLflow cannot be read or the deletion guard refuses.
pub(crate) fn render_into(config: &Config, out: &std::path::Path, guard: Guard) -> Result<Written> {
    let rendered = desired(config)?;
    let owner = dir::Owner::of(&config.deploy);
    let plan = dir::plan(out, &owner, &rendered, guard)?;
    dir::write(out, plan, rendered.errors)
}
