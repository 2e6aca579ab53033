use super::*;
use crate::targets::State;

fn ready(state: State, url: Option<&str>) -> Readiness {
    Readiness {
        state,
        message: Some("ignored: messages are not written".into()),
        url: url.map(String::from),
    }
}

fn served(name: &str, model: &str, version: &str, r: Readiness) -> Served {
    Served {
        name: name.into(),
        model: model.into(),
        version: version.into(),
        readiness: r,
        note: None,
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn v(model: &str, version: &str) -> VersionKey {
    (model.into(), version.into())
}

fn set(model: &str, version: &str, key: &str, value: &str) -> TagWrite {
    TagWrite::Set {
        model: model.into(),
        version: version.into(),
        key: key.into(),
        value: value.into(),
    }
}

fn delete(model: &str, version: &str, key: &str) -> TagWrite {
    TagWrite::Delete {
        model: model.into(),
        version: version.into(),
        key: key.into(),
    }
}

#[test]
fn keys_are_namespaced_and_never_settings() {
    assert_eq!(
        write_back_key("models", "iris-production", "state"),
        "m2s.models.iris-production.state"
    );
    assert!(!crate::settings::is_setting_key(&write_back_key(
        "models", "a", "url"
    )));
    assert_eq!(write_back_object("models", "m2s.models.a.state"), Some("a"));
    assert_eq!(write_back_object("models", "m2s.models.a.url"), Some("a"));
    assert_eq!(write_back_object("models", "m2s.models.a.other"), None);
    assert_eq!(write_back_object("models", "m2s.other.a.state"), None);
    assert_eq!(write_back_object("models", "m2s.replicas"), None);
}

#[test]
fn sets_what_is_missing_or_changed_and_nothing_else() {
    let objects = [
        served(
            "iris-production",
            "iris",
            "4",
            ready(State::Available, Some("http://iris")),
        ),
        served("iris-champion", "iris", "4", ready(State::Creating, None)),
    ];
    let mut current = BTreeMap::new();
    current.insert(
        v("iris", "4"),
        vec![
            tag("m2s.models.iris-production.state", "Creating"),
            tag("m2s.models.iris-production.url", "http://iris"),
            // Another m2s instance's object in the same namespace: not ours to touch.
            tag("m2s.models.someone-else.state", "Failed"),
        ],
    );
    assert_eq!(
        tag_writes("models", &objects, &[], &current),
        [
            set("iris", "4", "m2s.models.iris-champion.state", "Creating"),
            set("iris", "4", "m2s.models.iris-production.state", "Available"),
        ]
    );
    // Once written, nothing more.
    current.insert(
        v("iris", "4"),
        vec![
            tag("m2s.models.iris-champion.state", "Creating"),
            tag("m2s.models.iris-production.state", "Available"),
            tag("m2s.models.iris-production.url", "http://iris"),
        ],
    );
    assert!(tag_writes("models", &objects, &[], &current).is_empty());
}

#[test]
fn a_move_or_a_delete_clears_the_old_version() {
    let objects = [served(
        "iris-production",
        "iris",
        "5",
        ready(State::Pending, None),
    )];
    let left = [
        Left {
            name: "iris-production".into(),
            model: "iris".into(),
            version: "4".into(),
        },
        Left {
            name: "old-production".into(),
            model: "old".into(),
            version: "1".into(),
        },
    ];
    let mut current = BTreeMap::new();
    current.insert(
        v("iris", "4"),
        vec![
            tag("m2s.models.iris-production.state", "Available"),
            tag("m2s.models.iris-production.url", "http://iris"),
            tag("m2s.replicas", "2"),
        ],
    );
    current.insert(v("iris", "5"), vec![]);
    current.insert(
        v("old", "1"),
        vec![tag("m2s.models.old-production.state", "Available")],
    );
    assert_eq!(
        tag_writes("models", &objects, &left, &current),
        [
            set("iris", "5", "m2s.models.iris-production.state", "Pending"),
            delete("iris", "4", "m2s.models.iris-production.state"),
            delete("iris", "4", "m2s.models.iris-production.url"),
            delete("old", "1", "m2s.models.old-production.state"),
        ]
    );
    // A URL the object no longer reports goes too.
    let mut current = BTreeMap::new();
    current.insert(
        v("iris", "5"),
        vec![
            tag("m2s.models.iris-production.state", "Pending"),
            tag("m2s.models.iris-production.url", "http://gone"),
        ],
    );
    assert_eq!(
        tag_writes("models", &objects, &[], &current),
        [delete("iris", "5", "m2s.models.iris-production.url")]
    );
}

#[test]
fn versions_to_check_include_stale_tags_the_search_returned() {
    let objects = [served(
        "a-production",
        "a",
        "3",
        ready(State::Available, None),
    )];
    let mut known = BTreeMap::new();
    known.insert(
        v("a", "2"),
        vec![tag("m2s.models.a-production.state", "Failed")],
    );
    known.insert(
        v("a", "1"),
        vec![tag("m2s.models.b-production.state", "Failed")],
    );
    known.insert(v("a", "3"), vec![]);
    let versions = versions_to_check("models", &objects, &[], &known);
    assert_eq!(
        versions.into_iter().collect::<Vec<_>>(),
        [v("a", "2"), v("a", "3")]
    );
}

#[test]
fn after_run_plays_the_applied_changes_onto_the_listed_objects() {
    use crate::desired::{RegistryBuilder, Selector};
    use crate::mlflow::{ModelVersion, RegisteredModel};
    use crate::plan::{Change, ObjectRef, Verdict};
    let cfg = crate::config::DeployConfig::new("models", "http://mlflow");
    let mut b = RegistryBuilder::new(&cfg);
    b.add(vec![RegisteredModel {
        name: "iris".into(),
        latest_versions: vec![ModelVersion {
            name: "iris".into(),
            version: "5".into(),
            current_stage: Some("Production".into()),
            source: Some("s3://b/m".into()),
            ..ModelVersion::default()
        }],
        ..RegisteredModel::default()
    }]);
    let registry = b.finish();
    let listed = |name: &str, model: &str, version: &str| ObjectState {
        name: name.into(),
        model: Some(model.into()),
        version: Some(version.into()),
        selector: Some(Selector::Stage("Production".into())),
        created: None,
        readiness: ready(State::Available, None),
        verdict: Verdict::InSync,
        rollout: Default::default(),
    };
    let change = |action, name: &str, entry| Change {
        action,
        name: name.into(),
        entry,
        object: Some(Box::new(ObjectRef::default())),
        resolved: None,
        reason: "r".into(),
        rollout: None,
        cleanup: Vec::new(),
    };
    let plan = Plan {
        changes: vec![
            change(Action::Update, "iris-production", Some(0)),
            change(Action::Delete, "old-production", None),
            change(Action::Delete, "kept-production", None),
        ],
        ..Plan::default()
    };
    let objects = vec![
        listed("iris-production", "iris", "4"),
        listed("old-production", "old", "1"),
        listed("kept-production", "kept", "2"),
    ];
    // The delete of kept-production failed: it still serves.
    let applied = [
        (0, ready(State::Creating, None)),
        (1, ready(State::Pending, None)),
    ];
    let (now, left) = after_run(&registry, &plan, objects, &applied);
    assert_eq!(
        now,
        [
            served("iris-production", "iris", "5", ready(State::Creating, None)),
            served(
                "kept-production",
                "kept",
                "2",
                ready(State::Available, None)
            ),
        ]
    );
    assert_eq!(
        left,
        [
            Left {
                name: "iris-production".into(),
                model: "iris".into(),
                version: "4".into()
            },
            Left {
                name: "old-production".into(),
                model: "old".into(),
                version: "1".into()
            },
        ]
    );
}
