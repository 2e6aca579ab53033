//! Per-model serving settings from MLflow tags (`m2s.replicas`, `m2s.memory`, …): the
//! registered model's tag, overridden by the same tag on the version being deployed. Pure.

use std::time::Duration;

use serde::Deserialize;

use crate::quantity::Quantity;

/// A tag as MLflow keeps it on a registered model or a model version: where per-model
/// settings (and write-back's states) live.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Tag {
    /// The tag's key, e.g. `m2s.replicas`.
    pub key: String,
    /// Its value (MLflow may leave it out: empty).
    #[serde(default)]
    pub value: String,
}

pub(crate) const TAG_REPLICAS: &str = "m2s.replicas";
pub(crate) const TAG_MIN_REPLICAS: &str = "m2s.min-replicas";
pub(crate) const TAG_MAX_REPLICAS: &str = "m2s.max-replicas";
pub(crate) const TAG_CPU: &str = "m2s.cpu";
pub(crate) const TAG_MEMORY: &str = "m2s.memory";
pub(crate) const TAG_GPU: &str = "m2s.gpu";
/// Progressive rollout: the traffic percents of the canary's steps (`10,50`).
pub(crate) const TAG_CANARY: &str = "m2s.canary";
/// How long each canary step must serve before the next (`30s`, `10m`, `1h`).
pub(crate) const TAG_CANARY_INTERVAL: &str = "m2s.canary-interval";
/// Every settings tag, in the order the README documents them.
pub(crate) const SETTING_TAGS: [&str; 8] = [
    TAG_REPLICAS,
    TAG_CPU,
    TAG_MEMORY,
    TAG_GPU,
    TAG_MIN_REPLICAS,
    TAG_MAX_REPLICAS,
    TAG_CANARY,
    TAG_CANARY_INTERVAL,
];
/// A canary step serves this long before the next unless `m2s.canary-interval` says otherwise.
pub(crate) const DEFAULT_CANARY_INTERVAL: Duration = Duration::from_secs(600);
/// Kubernetes keeps replica counts in an int32.
const MAX_REPLICAS: u32 = i32::MAX as u32;

/// The serving settings of one deployment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServingSettings {
    /// Fixed replica count (`m2s.replicas`).
    pub replicas: Option<u32>,
    /// Lower bound of autoscaling (`m2s.min-replicas`).
    pub min_replicas: Option<u32>,
    /// Upper bound of autoscaling (`m2s.max-replicas`).
    pub max_replicas: Option<u32>,
    /// CPU request.
    pub cpu: Option<Quantity>,
    /// Memory request and limit.
    pub memory: Option<Quantity>,
    /// `nvidia.com/gpu` limit (a whole number).
    pub gpu: Option<Quantity>,
}

/// Whether `key` is one of m2s's settings tags, or looks like one (`m2s.<word>`): a mistyped
/// setting must be an error, not silently ignored. Keys with more dots (`m2s.<ns>.<name>.state`,
/// written back by m2s itself) are not settings.
pub(crate) fn is_setting_key(key: &str) -> bool {
    key.strip_prefix("m2s.")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('.'))
}

/// The m2s settings tags among `tags` (kept on entries; other tags are not needed).
pub(crate) fn setting_tags(tags: &[Tag]) -> Vec<Tag> {
    tags.iter()
        .filter(|t| is_setting_key(&t.key))
        .cloned()
        .collect()
}

/// Reads the settings of `model` from its registered-model tags and the deployed version's
/// tags (the version wins). A bad value is an error naming the tag, where it is set, the model
/// and the value.
pub(crate) fn from_tags(
    model: &str,
    version: &str,
    model_tags: &[Tag],
    version_tags: &[Tag],
) -> Result<ServingSettings, String> {
    let mut s = ServingSettings::default();
    for (tags, on) in [
        (model_tags, format!("registered model {model:?}")),
        (
            version_tags,
            format!("version {version} of model {model:?}"),
        ),
    ] {
        for tag in tags.iter().filter(|t| is_setting_key(&t.key)) {
            let value = tag.value.trim();
            let fail = |why: String| format!("tag {}={:?} on {on}: {why}", tag.key, tag.value);
            match tag.key.as_str() {
                TAG_REPLICAS => s.replicas = Some(replicas(value).map_err(fail)?),
                TAG_MIN_REPLICAS => s.min_replicas = Some(replicas(value).map_err(fail)?),
                TAG_MAX_REPLICAS => s.max_replicas = Some(replicas(value).map_err(fail)?),
                TAG_CPU => s.cpu = Some(Quantity::parse(value).map_err(fail)?),
                TAG_MEMORY => {
                    let q = Quantity::parse(value).map_err(fail)?;
                    if q.is_zero() {
                        return Err(fail("memory must be more than 0".into()));
                    }
                    s.memory = Some(q);
                }
                TAG_GPU => {
                    let q = Quantity::parse(value).map_err(fail)?;
                    if !q.is_integer() {
                        return Err(fail("GPUs are whole numbers".into()));
                    }
                    s.gpu = Some(q);
                }
                // Read by canary_from_tags.
                TAG_CANARY | TAG_CANARY_INTERVAL => {}
                other => {
                    return Err(format!(
                        "unknown tag {other:?} on {on} (m2s's tags: {})",
                        SETTING_TAGS.join(", ")
                    ))
                }
            }
        }
    }
    if let (Some(min), Some(max)) = (s.min_replicas, s.max_replicas) {
        if max < min {
            return Err(format!(
                "{TAG_MAX_REPLICAS} ({max}) is below {TAG_MIN_REPLICAS} ({min}) for model {model:?}"
            ));
        }
    }
    if s.max_replicas == Some(0) {
        return Err(format!(
            "{TAG_MAX_REPLICAS}=0 for model {model:?}: at most zero replicas serves nothing; remove the stage or alias instead"
        ));
    }
    Ok(s)
}

/// A progressive rollout's steps: the canary's traffic percents, each step serving `interval`
/// before the next; 100 is the implied last step (promotion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CanarySettings {
    pub(crate) steps: Vec<u8>,
    pub(crate) interval: Duration,
}

/// The rollout of `model`'s version `version` from its tags (the version's win, as for every
/// setting): `None` without `m2s.canary`. A bad value is an error naming the tag, where it is
/// set, the model and the value.
pub(crate) fn canary_from_tags(
    model: &str,
    version: &str,
    model_tags: &[Tag],
    version_tags: &[Tag],
) -> Result<Option<CanarySettings>, String> {
    let mut steps: Option<Vec<u8>> = None;
    let mut interval = DEFAULT_CANARY_INTERVAL;
    for (tags, on) in [
        (model_tags, format!("registered model {model:?}")),
        (
            version_tags,
            format!("version {version} of model {model:?}"),
        ),
    ] {
        for tag in tags {
            let fail = |why: String| format!("tag {}={:?} on {on}: {why}", tag.key, tag.value);
            match tag.key.as_str() {
                TAG_CANARY => steps = Some(canary_steps(tag.value.trim()).map_err(fail)?),
                TAG_CANARY_INTERVAL => {
                    interval = parse_duration(tag.value.trim()).map_err(fail)?;
                }
                _ => {}
            }
        }
    }
    Ok(steps.map(|steps| CanarySettings { steps, interval }))
}

/// `10,50`: increasing percents between 1 and 99.
fn canary_steps(value: &str) -> Result<Vec<u8>, String> {
    let mut steps: Vec<u8> = Vec::new();
    for part in value.split(',').map(str::trim) {
        let p: u8 = part
            .parse()
            .ok()
            .filter(|p| (1..=99).contains(p))
            .ok_or_else(|| {
                format!("{part:?} is not a percent between 1 and 99 (write the steps as 10,50; 100 is the last, implied)")
            })?;
        if steps.last().is_some_and(|last| *last >= p) {
            return Err(format!(
                "the steps must increase ({p} after {})",
                steps.last().unwrap()
            ));
        }
        steps.push(p);
    }
    Ok(steps)
}

/// `30s`, `10m`, `1h` (`0s` allowed).
pub(crate) fn parse_duration(value: &str) -> Result<Duration, String> {
    let (number, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration such as 30s, 10m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => {
            return Err(format!(
                "{value:?} is not a duration such as 30s, 10m or 1h"
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}

fn replicas(value: &str) -> Result<u32, String> {
    match value.parse::<i64>() {
        Ok(n) if (0..=i64::from(MAX_REPLICAS)).contains(&n) => Ok(n as u32),
        Ok(_) => Err(format!("must be a whole number from 0 to {MAX_REPLICAS}")),
        Err(_) => Err("must be a whole number ≥ 0".into()),
    }
}

#[cfg(test)]
mod tests;
