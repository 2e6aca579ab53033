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
    let no_name = serde_json::json!({"entity": "model_version", "action": "created", "data": {}});
    assert!(decide_json(no_name).unwrap_err().contains("data.name"));
    let no_alias = serde_json::json!({"entity": "model_version_alias", "action": "deleted",
        "data": {"name": "iris"}});
    assert!(decide_json(no_alias).unwrap_err().contains("data.alias"));
}
