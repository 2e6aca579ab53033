//! Registry → the objects that should exist. Pure: no IO.
//!
//! [`RegistryBuilder`] turns search pages into [`Entry`]s one page at a time (a large registry is
//! never held whole); [`render`](render()) builds the object of one entry through the configured
//! target.

mod render;

pub(crate) use render::{render, Desired};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::artifacts::ArtifactLocation;
use crate::config::DeployConfig;
use crate::image::validate_image_reference;
use crate::keys::{
    write_back_prefix, ANN_ALIAS, ANN_ARTIFACT_LOCATION, ANN_EXPERIMENT_ID, ANN_MODEL_CREATED,
    ANN_MODEL_NAME, ANN_MODEL_VERSION, ANN_RUN_ID, ANN_SOURCE, ANN_STAGE, ANN_VERSION_TAGS,
};
#[cfg(test)]
use crate::mlflow::RegistrySnapshot;
use crate::mlflow::{ModelVersion, RegisteredModel, VersionRef};
use crate::settings;
use crate::settings::Tag;

/// What a deployment follows: a stage of the registry or an alias.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Selector {
    Stage(String),
    Alias(String),
}

impl Selector {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Selector::Stage(_) => "stage",
            Selector::Alias(_) => "alias",
        }
    }
    pub(crate) fn value(&self) -> &str {
        match self {
            Selector::Stage(v) | Selector::Alias(v) => v,
        }
    }
    pub(crate) fn annotation(&self) -> &'static str {
        match self {
            Selector::Stage(_) => ANN_STAGE,
            Selector::Alias(_) => ANN_ALIAS,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.value())
    }
}

/// What one registered model contributes to each of its entries (shared between them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ModelInfo {
    pub(crate) name: String,
    pub(crate) created: Option<i64>,
    /// The serving image: the model's image tag, else the default image.
    pub(crate) image: Option<String>,
    /// Whether the image came from the model's tag (for messages).
    pub(crate) image_from_tag: bool,
    /// The model's `m2s.*` settings tags.
    pub(crate) tags: Vec<Tag>,
}

/// One (registered model, stage or alias) that should be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Shared with the plan's change of this entry (a large registry's names are held once).
    pub(crate) name: Arc<str>,
    pub(crate) model: Arc<ModelInfo>,
    pub(crate) selector: Selector,
    /// The version; `source`, `run_id` and `tags` are known when the search returned the
    /// version (stages, and aliases on a latest version), not for other aliases.
    pub(crate) version: EntryVersion,
}

/// A version as an entry keeps it: compactly, since a large registry has tens of thousands of
/// entries. The model's name is the entry's and the stage its selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct EntryVersion {
    pub(crate) version: Box<str>,
    /// Known when the search returned the version; `None` for an alias on another version.
    pub(crate) source: Option<Box<str>>,
    /// Only when it is not the run a `runs:/` source names.
    pub(crate) run_id: Option<Box<str>>,
    /// Only when it is not `READY`.
    pub(crate) status: Option<Box<str>>,
    /// The version's `m2s.*` settings tags (and write-back's, when on).
    pub(crate) tags: Box<[Tag]>,
}

impl EntryVersion {
    /// What resolving this version of `model` needs.
    pub(crate) fn view<'a>(&'a self, model: &'a str) -> VersionRef<'a> {
        VersionRef {
            model,
            version: &self.version,
            source: self.source.as_deref(),
            run_id: self.run_id.as_deref(),
            status: self.status.as_deref(),
            tags: &self.tags,
        }
    }
}

impl Entry {
    /// Whether the search told everything about the version (else it needs a look-up).
    pub(crate) fn version_known(&self) -> bool {
        self.version.source.is_some()
    }
}

/// A problem with one entry: reported, and the object of that name is left as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryError {
    pub(crate) name: String,
    pub(crate) model: String,
    pub(crate) selector: Selector,
    pub(crate) version: Option<String>,
    pub(crate) message: String,
}

impl EntryError {
    pub(crate) fn of(entry: &Entry, message: String) -> EntryError {
        EntryError {
            name: entry.name.to_string(),
            model: entry.model.name.clone(),
            selector: entry.selector.clone(),
            version: Some(entry.version.version.to_string()),
            message,
        }
    }
}

/// The registry as m2s needs it: the entries it asks for (sorted by name, no two alike), the
/// entries that cannot be served, and the names of the registered models read.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) entries: Vec<Entry>,
    pub(crate) errors: Vec<EntryError>,
    /// Sorted.
    pub(crate) models: Vec<String>,
    /// With write-back: the write-back tags of this namespace (`m2s.<namespace>.…`) on every
    /// version the search returned, by (model, version); empty otherwise.
    pub(crate) published: BTreeMap<(String, String), Vec<Tag>>,
}

impl Registry {
    pub(crate) fn has_model(&self, name: &str) -> bool {
        self.models
            .binary_search_by(|m| m.as_str().cmp(name))
            .is_ok()
    }
    /// Keeps only the entries (and errors) that follow one of `aliases` (a scoped sync of
    /// those aliases' objects).
    pub(crate) fn retain_aliases(&mut self, aliases: &std::collections::BTreeSet<String>) {
        let keep = |s: &Selector| matches!(s, Selector::Alias(a) if aliases.contains(a));
        self.entries.retain(|e| keep(&e.selector));
        self.errors.retain(|e| keep(&e.selector));
    }

    /// Whether an entry error holds the object named `name`.
    pub(crate) fn holds(&self, name: &str) -> bool {
        self.errors
            .binary_search_by(|e| (*e.name).cmp(name))
            .is_ok()
    }
}

fn version_number(v: &str) -> u64 {
    v.parse().unwrap_or(0)
}

/// Builds a [`Registry`] from search pages, one page at a time.
pub(crate) struct RegistryBuilder<'a> {
    cfg: &'a DeployConfig,
    registry: Registry,
}

impl<'a> RegistryBuilder<'a> {
    pub(crate) fn new(cfg: &'a DeployConfig) -> Self {
        RegistryBuilder {
            cfg,
            registry: Registry::default(),
        }
    }

    /// Adds the entries of one page of registered models.
    pub(crate) fn add(&mut self, models: Vec<RegisteredModel>) {
        for model in models {
            self.add_model(model);
        }
    }

    fn add_model(&mut self, model: RegisteredModel) {
        let cfg = self.cfg;
        let mut picked: Vec<(Selector, ModelVersion)> = Vec::new();
        for stage in &cfg.stages {
            // latest_versions has the newest version per stage; keep the newest if it has several.
            let newest = model
                .latest_versions
                .iter()
                .filter(|v| {
                    v.current_stage
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case(stage))
                })
                .max_by_key(|v| version_number(&v.version));
            if let Some(v) = newest {
                picked.push((Selector::Stage(stage.clone()), v.clone()));
            }
        }
        let mut aliases: Vec<_> = model
            .aliases
            .iter()
            .filter(|a| cfg.aliases.includes(&a.alias))
            .collect();
        aliases.sort_by(|a, b| a.alias.cmp(&b.alias));
        aliases.dedup_by(|a, b| a.alias == b.alias);
        for alias in aliases {
            let known = model
                .latest_versions
                .iter()
                .find(|v| v.version == alias.version);
            let version = known.cloned().unwrap_or_else(|| ModelVersion {
                name: model.name.clone(),
                version: alias.version.clone(),
                ..ModelVersion::default()
            });
            picked.push((Selector::Alias(alias.alias.clone()), version));
        }
        if cfg.write_back {
            let prefix = write_back_prefix(&cfg.namespace);
            for v in &model.latest_versions {
                let ours = v.tags.iter().filter(|t| t.key.starts_with(&prefix));
                self.registry.published.insert(
                    (model.name.clone(), v.version.clone()),
                    ours.cloned().collect(),
                );
            }
        }
        let tag_image = model
            .tag(&cfg.image_tag)
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let image_error = tag_image.and_then(|image| {
            crate::config::refuse_platform_uri(image, "image")
                .and_then(|()| validate_image_reference(image))
                .err()
                .map(|e| format!("registered-model tag {:?}: {e:#}", cfg.image_tag))
        });
        let info = Arc::new(ModelInfo {
            name: model.name.clone(),
            created: model.creation_timestamp,
            image: tag_image
                .map(String::from)
                .or_else(|| cfg.default_image.clone()),
            image_from_tag: tag_image.is_some(),
            tags: settings::setting_tags(&model.tags),
        });
        for (selector, version) in picked {
            let version = compact(version);
            let entry = Entry {
                name: cfg
                    .target
                    .object_name(&model.name, selector.value(), &cfg.namespace)
                    .into(),
                model: Arc::clone(&info),
                selector,
                version,
            };
            match &image_error {
                Some(e) => self.registry.errors.push(EntryError::of(&entry, e.clone())),
                None => self.registry.entries.push(entry),
            }
        }
        self.registry.models.push(model.name);
    }

    /// The registry, with entries that would share a name turned into errors (all of them).
    pub(crate) fn finish(mut self) -> Registry {
        let r = &mut self.registry;
        r.entries.sort_by(|a, b| a.name.cmp(&b.name));
        // Runs of entries sharing a name, found and reported in place: a second array of
        // tens of thousands of entries was once this run's peak of memory.
        let mut colliding = vec![false; r.entries.len()];
        let mut start = 0;
        while start < r.entries.len() {
            let name = &r.entries[start].name;
            let end = start + r.entries[start..].partition_point(|e| &e.name == name);
            let same = &r.entries[start..end];
            for (i, e) in same.iter().enumerate().filter(|_| same.len() > 1) {
                let others: Vec<String> = same
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, o)| format!("model {:?} ({})", o.model.name, o.selector))
                    .collect();
                r.errors.push(EntryError::of(
                    e,
                    format!(
                        "deployment name {:?} is also wanted by {}; rename one of the models or aliases",
                        e.name,
                        others.join(", ")
                    ),
                ));
                colliding[start + i] = true;
            }
            start = end;
        }
        let mut index = 0;
        r.entries.retain(|_| {
            index += 1;
            !colliding[index - 1]
        });
        r.entries.shrink_to_fit();
        r.errors
            .sort_by(|a, b| (&a.name, &a.model).cmp(&(&b.name, &b.model)));
        r.models.sort();
        r.models.dedup();
        r.models.shrink_to_fit();
        self.registry
    }
}

/// Keeps of a version only what an entry needs (a large registry holds tens of thousands): the
/// model's name is the entry's, the stage is its selector, `READY` is the normal status, a
/// `runs:/` source names its run, and only `m2s.*` settings tags are read.
fn compact(version: ModelVersion) -> EntryVersion {
    let source_run = version
        .source
        .as_deref()
        .and_then(|s| s.strip_prefix("runs:/"))
        .and_then(|s| s.trim_start_matches('/').split('/').next());
    let run_id = version
        .run_id
        .as_deref()
        .filter(|r| Some(*r) != source_run)
        .map(Box::from);
    EntryVersion {
        version: version.version.into_boxed_str(),
        source: version.source.map(String::into_boxed_str),
        run_id,
        status: version
            .status
            .filter(|s| s != "READY")
            .map(String::into_boxed_str),
        tags: settings::setting_tags(&version.tags).into_boxed_slice(),
    }
}

/// The entries a whole snapshot asks for (the tests' registries).
#[cfg(test)]
pub(crate) fn entries(
    snapshot: &RegistrySnapshot,
    cfg: &DeployConfig,
) -> (Vec<Entry>, Vec<EntryError>) {
    let mut builder = RegistryBuilder::new(cfg);
    builder.add(snapshot.models.clone());
    let r = builder.finish();
    (r.entries, r.errors)
}

/// What a listed object recorded about the version it serves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recorded {
    pub(crate) location: ArtifactLocation,
    /// The version's `m2s.*` tags it was rendered with.
    pub(crate) version_tags: Vec<Tag>,
}

/// The annotations that say where an object's files are (what [`recorded_files`] reads).
pub(crate) const FILE_ANNOTATIONS: [&str; 5] = [
    ANN_ARTIFACT_LOCATION,
    ANN_EXPERIMENT_ID,
    ANN_RUN_ID,
    ANN_SOURCE,
    ANN_VERSION_TAGS,
];

/// What `annotations` record of the version an object serves, whatever the registry asks for
/// now: its number, source and run, where its files are and the tags it was rendered with (a
/// rollout renders its stable version, and its canary, from these).
pub(crate) fn recorded_files(
    annotations: &BTreeMap<String, String>,
) -> Option<(EntryVersion, Recorded)> {
    let get = |k: &str| annotations.get(k).map(String::as_str);
    let recorded = recorded_location(annotations)?;
    let version = EntryVersion {
        version: get(ANN_MODEL_VERSION)?.into(),
        source: get(ANN_SOURCE).map(Into::into),
        run_id: get(ANN_RUN_ID).map(Into::into),
        status: None,
        tags: recorded.version_tags.clone().into(),
    };
    Some((version, recorded))
}

/// Where the files recorded in `annotations` ([`FILE_ANNOTATIONS`]) are, and the version tags.
pub(crate) fn recorded_location(annotations: &BTreeMap<String, String>) -> Option<Recorded> {
    let get = |k: &str| annotations.get(k).map(String::as_str);
    Some(Recorded {
        location: ArtifactLocation {
            uri: get(ANN_ARTIFACT_LOCATION)?.to_string(),
            experiment_id: get(ANN_EXPERIMENT_ID).map(String::from),
            run_id: get(ANN_RUN_ID).map(String::from),
        },
        version_tags: recorded_tags(get(ANN_VERSION_TAGS)),
    })
}

fn recorded_tags(json: Option<&str>) -> Vec<Tag> {
    json.and_then(|t| serde_json::from_str::<BTreeMap<String, String>>(t).ok())
        .map(|m| {
            m.into_iter()
                .map(|(key, value)| Tag { key, value })
                .collect()
        })
        .unwrap_or_default()
}

/// The location (and version tags) recorded on an object m2s wrote for the same version, so
/// an unchanged version costs no MLflow look-ups.
pub(crate) fn recorded(entry: &Entry, annotations: &BTreeMap<String, String>) -> Option<Recorded> {
    let get = |k: &str| annotations.get(k).map(String::as_str);
    let same_version = get(ANN_MODEL_NAME) == Some(entry.model.name.as_str())
        && get(ANN_MODEL_VERSION) == Some(&*entry.version.version)
        && get(ANN_MODEL_CREATED) == entry.model.created.map(|c| c.to_string()).as_deref();
    // A version's source never changes; when the search told it, it must match too.
    let same_source = entry
        .version
        .source
        .as_deref()
        .is_none_or(|s| get(ANN_SOURCE) == Some(s));
    if !(same_version && same_source) {
        return None;
    }
    let version_tags = if entry.version_known() {
        entry.version.tags.to_vec()
    } else {
        recorded_tags(get(ANN_VERSION_TAGS))
    };
    Some(Recorded {
        location: ArtifactLocation {
            uri: get(ANN_ARTIFACT_LOCATION)?.to_string(),
            experiment_id: get(ANN_EXPERIMENT_ID).map(String::from),
            run_id: get(ANN_RUN_ID).map(String::from),
        },
        version_tags,
    })
}

/// Names of the entries in a list, for messages ("a, b, c and 7 more").
pub(crate) fn first_names<'n>(
    names: impl Iterator<Item = &'n str>,
    total: usize,
    show: usize,
) -> String {
    let shown: Vec<&str> = names.take(show).collect();
    let more = total.saturating_sub(shown.len());
    let list = shown
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        format!("{list} and {more} more")
    } else {
        list
    }
}

#[cfg(test)]
mod tests;
