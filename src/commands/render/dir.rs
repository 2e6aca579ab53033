//! The directory `m2s render` writes: one YAML file per object (`<kind>-<name>.yaml`, keys
//! sorted, the same bytes for the same object), and a `kustomization.yaml` listing them.
//!
//! Which files are m2s's: a `<kind>-<name>.yaml` whose object is of this target's kind and
//! carries this instance's labels (`app.kubernetes.io/managed-by=m2s`, `m2s.io/instance`),
//! exactly the objects `m2s sync` would call its own. Every other file is left alone.
//!
//! The order of the writes keeps the directory whole for a reader: first each new or changed
//! object file (each written to a temporary file and renamed over the old one), then the
//! kustomization (the same way), and only then the files no longer wanted are removed. So
//! the kustomization never lists a file that is missing or half-written, and a reader sees
//! each object either as it was or as it is now.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::Rendered;
use crate::config::DeployConfig;
use crate::desired::{first_names, EntryError};
use crate::engine::Guard;
use crate::files::write_atomic;
use crate::keys::{LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY};
use crate::targets::Resource;

/// The kustomization m2s writes (kustomize refuses a directory with more than one of these).
const KUSTOMIZATION: &str = "kustomization.yaml";
const OTHER_KUSTOMIZATIONS: [&str; 2] = ["kustomization.yml", "Kustomization"];

/// Whose files these are: one instance's objects of one kind.
pub(crate) struct Owner<'a> {
    resource: Resource,
    instance: &'a str,
    namespace: &'a str,
    target: &'static str,
}

impl<'a> Owner<'a> {
    pub(crate) fn of(deploy: &'a DeployConfig) -> Owner<'a> {
        Owner {
            resource: deploy.target.resource(),
            instance: &deploy.instance,
            namespace: &deploy.namespace,
            target: deploy.target.id(),
        }
    }

    /// The first line of the kustomization m2s writes: it tells later runs the file is theirs.
    fn marker(&self) -> String {
        format!("# m2s render: instance {:?}", self.instance)
    }

    /// Whether `object` is one of this owner's.
    fn owns(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        object["apiVersion"].as_str() == Some(&self.resource.api_version())
            && object["kind"].as_str() == Some(self.resource.kind)
            && labels[LABEL_MANAGED_BY].as_str() == Some(MANAGED_BY)
            && labels[LABEL_INSTANCE].as_str() == Some(self.instance)
    }
}

/// The file an object named `name` of `kind` is written to: `<kind, lower case>-<name>.yaml`.
pub(crate) fn file_name(kind: &str, name: &str) -> String {
    format!("{}-{name}.yaml", kind.to_ascii_lowercase())
}

/// An object as m2s writes it: YAML, keys sorted (serde_json's maps are ordered).
fn to_yaml(object: &Value) -> Result<String> {
    yaml_serde::to_string(object).context("writing an object as YAML")
}

/// What writing the directory will do; nothing is written while it is made.
pub(crate) struct DirPlan {
    /// New or changed files and their text.
    writes: Vec<(String, String)>,
    created: Vec<String>,
    updated: Vec<String>,
    unchanged: usize,
    /// Files of entries that cannot be deployed: kept as they are, and listed.
    kept: Vec<String>,
    /// m2s's files no longer wanted.
    remove: Vec<String>,
    /// The kustomization's text, when it changes.
    kustomization: Option<String>,
}

/// What `m2s render` did to the directory.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub(crate) created: Vec<String>,
    pub(crate) updated: Vec<String>,
    pub(crate) removed: Vec<String>,
    pub(crate) kept: Vec<String>,
    pub(crate) unchanged: usize,
    /// Entries that cannot be deployed (their files, if any, are the `kept` ones).
    pub(crate) errors: Vec<EntryError>,
}

/// m2s's files in `out` (name → text), after checking that its kustomization may be written.
fn owned_files(out: &Path, owner: &Owner) -> Result<BTreeMap<String, String>> {
    let mut owned = BTreeMap::new();
    if !out.exists() {
        return Ok(owned);
    }
    if !out.is_dir() {
        bail!("--out {} is not a directory", out.display());
    }
    for other in OTHER_KUSTOMIZATIONS {
        if out.join(other).exists() {
            bail!(
                "{} exists: kustomize would find two kustomization files there; give m2s render a directory whose kustomization is its own",
                out.join(other).display()
            );
        }
    }
    let kustomization = out.join(KUSTOMIZATION);
    if let Ok(text) = fs::read_to_string(&kustomization) {
        let ours = format!("{},", owner.marker());
        if !text.lines().next().is_some_and(|l| l.starts_with(&ours)) {
            bail!(
                "{} was not written by m2s render for instance {:?}; refusing to overwrite it: give m2s render a directory of its own (other files may stay in it)",
                kustomization.display(),
                owner.instance
            );
        }
    }
    let prefix = format!("{}-", owner.resource.kind.to_ascii_lowercase());
    let entries = fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", out.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&prefix) || !name.ends_with(".yaml") || !entry.path().is_file() {
            continue;
        }
        let Ok(text) = fs::read_to_string(entry.path()) else {
            continue;
        };
        let object: Option<Value> = yaml_serde::from_str(&text).ok();
        if object.is_some_and(|o| owner.owns(&o)) {
            owned.insert(name, text);
        }
    }
    Ok(owned)
}

/// The kustomization listing `files` (sorted).
fn kustomization(owner: &Owner, files: &BTreeSet<String>) -> String {
    let mut text = format!(
        "{}, namespace {:?}, target {}.\n# Written by m2s render on every run (edits are lost); it lists the objects m2s would sync.\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n",
        owner.marker(),
        owner.namespace,
        owner.target
    );
    if files.is_empty() {
        text.push_str("resources: []\n");
    } else {
        text.push_str("resources:\n");
        for f in files {
            text.push_str(&format!("- {f}\n"));
        }
    }
    text
}

/// The deletion guard of `m2s sync`, for files: removing every file m2s wrote (an empty or
/// wrongly filtered registry looks the same) needs --allow-delete-all; --max-deletes holds.
fn check_guard(out: &Path, owned: usize, remove: &[String], guard: Guard) -> Result<()> {
    let n = remove.len();
    if owned > 0 && n == owned && !guard.allow_delete_all {
        bail!(
            "refusing to remove all {n} object files m2s wrote in {}: the registry asks for none of them, which is also what an empty or wrongly filtered registry looks like; run with --allow-delete-all (M2S_ALLOW_DELETE_ALL=true) if this is intended",
            out.display()
        );
    }
    if let Some(max) = guard.max_deletes.filter(|max| n > *max) {
        bail!(
            "refusing to remove {n} object files from {} ({}): more than --max-deletes {max}",
            out.display(),
            first_names(remove.iter().map(String::as_str), n, 3)
        );
    }
    Ok(())
}

/// Compares what is wanted with what `out` holds. Reads only.
pub(crate) fn plan(
    out: &Path,
    owner: &Owner,
    rendered: &Rendered,
    guard: Guard,
) -> Result<DirPlan> {
    let owned = owned_files(out, owner)?;
    let mut plan = DirPlan {
        writes: Vec::new(),
        created: Vec::new(),
        updated: Vec::new(),
        unchanged: 0,
        kept: Vec::new(),
        remove: Vec::new(),
        kustomization: None,
    };
    let mut listed = BTreeSet::new();
    for object in &rendered.objects {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let file = file_name(owner.resource.kind, name);
        let text = to_yaml(object)?;
        match owned.get(&file) {
            Some(have) if *have == text => plan.unchanged += 1,
            Some(_) => plan.updated.push(file.clone()),
            None => plan.created.push(file.clone()),
        }
        if owned.get(&file) != Some(&text) {
            plan.writes.push((file.clone(), text));
        }
        listed.insert(file);
    }
    for error in &rendered.errors {
        let file = file_name(owner.resource.kind, &error.name);
        if owned.contains_key(&file) && listed.insert(file.clone()) {
            plan.kept.push(file);
        }
    }
    plan.remove = owned
        .keys()
        .filter(|f| !listed.contains(*f))
        .cloned()
        .collect();
    check_guard(out, owned.len(), &plan.remove, guard)?;
    let text = kustomization(owner, &listed);
    if fs::read_to_string(out.join(KUSTOMIZATION)).ok().as_ref() != Some(&text) {
        plan.kustomization = Some(text);
    }
    Ok(plan)
}

/// Writes `plan` into `out`: object files, then the kustomization, then the removals.
pub(crate) fn write(out: &Path, plan: DirPlan, errors: Vec<EntryError>) -> Result<Written> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (file, text) in &plan.writes {
        write_atomic(&out.join(file), text.as_bytes())?;
    }
    if let Some(text) = &plan.kustomization {
        write_atomic(&out.join(KUSTOMIZATION), text.as_bytes())?;
    }
    for file in &plan.remove {
        let path = out.join(file);
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(Written {
        created: plan.created,
        updated: plan.updated,
        removed: plan.remove,
        kept: plan.kept,
        unchanged: plan.unchanged,
        errors,
    })
}

#[cfg(test)]
mod tests;
