//! What a verified MLflow event asks of m2s: a sync of the model it names, or nothing.

use serde::Deserialize;
use serde_json::Value;

use crate::config::DeployConfig;
use crate::settings::is_setting_key;

/// The events `m2s webhook register` subscribes to, as MLflow's REST API spells them
/// (entity, action: upper case; lower case is refused).
pub const SUBSCRIBED: [(&str, &str); 5] = [
    ("MODEL_VERSION", "CREATED"),
    ("MODEL_VERSION_ALIAS", "CREATED"),
    ("MODEL_VERSION_ALIAS", "DELETED"),
    ("MODEL_VERSION_TAG", "SET"),
    ("MODEL_VERSION_TAG", "DELETED"),
];

/// The `event` label values of the events metric: the subscribed events as deliveries spell
/// them (lower case), and `other`.
pub const EVENT_LABELS: [&str; 6] = [
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
pub enum Decision {
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
pub fn decide(body: &[u8], cfg: &DeployConfig) -> Result<(&'static str, Decision), String> {
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
mod tests {
    use super::*;
    use crate::config::AliasSelection;

    fn cfg() -> DeployConfig {
        DeployConfig {
            aliases: AliasSelection::Listed(vec!["champion".into()]),
            ..DeployConfig::new("models", "http://mlflow")
        }
    }

    fn decide_json(v: Value) -> Result<(&'static str, Decision), String> {
        decide(v.to_string().as_bytes(), &cfg())
    }

    fn sync(model: &str, alias: Option<&str>) -> Decision {
        Decision::Sync {
            model: model.into(),
            alias: alias.map(String::from),
        }
    }

    #[test]
    fn alias_events_sync_the_model_when_the_alias_is_deployed() {
        let ev = |action: &str, alias: &str| {
            serde_json::json!({"entity": "model_version_alias", "action": action,
                "timestamp": "2026-01-01T00:00:00+00:00",
                "data": {"name": "iris", "alias": alias, "version": "3"}})
        };
        assert_eq!(
            decide_json(ev("created", "champion")).unwrap(),
            (
                "model_version_alias.created",
                sync("iris", Some("champion"))
            )
        );
        assert_eq!(
            decide_json(ev("deleted", "champion")).unwrap(),
            (
                "model_version_alias.deleted",
                sync("iris", Some("champion"))
            )
        );
        assert_eq!(
            decide_json(ev("created", "challenger")).unwrap().1,
            Decision::Ignore("alias_not_deployed")
        );
    }

    #[test]
    fn versions_and_settings_tags_sync_other_tags_and_events_do_not() {
        let ev = |entity: &str, action: &str, data: Value| serde_json::json!({"entity": entity, "action": action, "data": data});
        let v = serde_json::json!({"name": "iris", "version": "4", "source": "runs:/r/model"});
        assert_eq!(
            decide_json(ev("model_version", "created", v)).unwrap(),
            ("model_version.created", sync("iris", None))
        );
        let tag = |key: &str| serde_json::json!({"name": "iris", "version": "4", "key": key});
        assert_eq!(
            decide_json(ev("model_version_tag", "set", tag("m2s.replicas")))
                .unwrap()
                .1,
            sync("iris", None)
        );
        assert_eq!(
            decide_json(ev("model_version_tag", "deleted", tag("m2s.memory")))
                .unwrap()
                .1,
            sync("iris", None)
        );
        for key in ["owner", "m2s.models.iris-production.state"] {
            assert_eq!(
                decide_json(ev("model_version_tag", "set", tag(key)))
                    .unwrap()
                    .1,
                Decision::Ignore("tag_not_read"),
                "{key}"
            );
        }
        for (entity, action) in [
            ("registered_model", "created"),
            ("prompt_alias", "created"),
            ("model_version", "deleted"),
        ] {
            assert_eq!(
                decide_json(ev(entity, action, serde_json::json!({"name": "iris"}))).unwrap(),
                ("other", Decision::Ignore("unhandled_event"))
            );
        }
    }

    #[test]
    fn malformed_events_are_errors() {
        assert!(decide(b"not json", &cfg()).is_err());
        assert!(decide(b"{}", &cfg()).is_err());
        let no_name =
            serde_json::json!({"entity": "model_version", "action": "created", "data": {}});
        assert!(decide_json(no_name).unwrap_err().contains("data.name"));
        let no_alias = serde_json::json!({"entity": "model_version_alias", "action": "deleted",
            "data": {"name": "iris"}});
        assert!(decide_json(no_alias).unwrap_err().contains("data.alias"));
    }
}
