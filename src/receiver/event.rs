//! What a verified MLflow event asks of m2s: a sync of the model it names, or nothing.

use serde::Deserialize;
use serde_json::Value;

use crate::config::DeployConfig;
use crate::settings::is_setting_key;

/// The events `m2s webhook register` subscribes to, as MLflow's REST API spells them
/// (entity, action: upper case; lower case is refused).
pub(crate) const SUBSCRIBED: [(&str, &str); 5] = [
    ("MODEL_VERSION", "CREATED"),
    ("MODEL_VERSION_ALIAS", "CREATED"),
    ("MODEL_VERSION_ALIAS", "DELETED"),
    ("MODEL_VERSION_TAG", "SET"),
    ("MODEL_VERSION_TAG", "DELETED"),
];

/// The `event` label values of the events metric: the subscribed events as deliveries spell
/// them (lower case), and `other`.
pub(crate) const EVENT_LABELS: [&str; 6] = [
    "model_version.created",
    "model_version_alias.created",
    "model_version_alias.deleted",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "other",
];

#[derive(Debug, Deserialize)]
struct Payload {
    entity: String,
    action: String,
    #[serde(default)]
    data: Value,
}

/// What to do with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Sync `model`; `alias` is the alias the event names (a deleted one must be looked at).
    Sync {
        model: String,
        alias: Option<String>,
    },
    /// Acknowledge and do nothing, for this reason (the ignored metric's label).
    Ignore(&'static str),
}

/// The event's metric label (`entity.action` when subscribed, else `other`) and what to do.
/// An event m2s acts on without the fields it needs is an error (400).
pub(crate) fn decide(body: &[u8], cfg: &DeployConfig) -> Result<(&'static str, Decision), String> {
    let p: Payload =
        serde_json::from_slice(body).map_err(|e| format!("not an MLflow webhook event: {e}"))?;
    let event = format!("{}.{}", p.entity, p.action);
    let Some(label) = EVENT_LABELS.iter().copied().find(|l| *l == event) else {
        return Ok(("other", Decision::Ignore("unhandled_event")));
    };
    let field = |key: &str| -> Result<String, String> {
        p.data[key]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(String::from)
            .ok_or_else(|| format!("event {event} without data.{key}"))
    };
    let model = field("name")?;
    let decision = match p.entity.as_str() {
        "model_version_alias" => {
            let alias = field("alias")?;
            if cfg.aliases.includes(&alias) {
                Decision::Sync {
                    model,
                    alias: Some(alias),
                }
            } else {
                Decision::Ignore("alias_not_deployed")
            }
        }
        // Only m2s's settings tags change what m2s deploys (and m2s's own write-back tags,
        // which are not settings, must not trigger syncs).
        "model_version_tag" if !is_setting_key(&field("key")?) => Decision::Ignore("tag_not_read"),
        _ => Decision::Sync { model, alias: None },
    };
    Ok((label, decision))
}

#[cfg(test)]
mod tests;
