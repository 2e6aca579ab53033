use super::*;

#[test]
fn an_event_regards_the_object_and_names_m2s() {
    let resource = crate::targets::by_id("kserve").unwrap().resource();
    let r = Recorder::with(None, resource, "models", "team-a");
    let now: Timestamp = "2026-03-01T12:00:00.123456Z".parse().unwrap();
    let note = Note {
        reason: Reason::Updated,
        action: "Update",
        name: "iris-production",
        uid: Some("u-1"),
        note: "iris v3 → v4 (stage Production): version 3 → 4".into(),
    };
    let v = serde_json::to_value(r.event(&note, now)).unwrap();
    assert_eq!(v["reason"], "Updated");
    assert_eq!(v["type"], "Normal");
    assert_eq!(v["action"], "Update");
    assert_eq!(v["reportingController"], "m2s");
    assert_eq!(v["reportingInstance"], "m2s-team-a");
    assert_eq!(v["eventTime"], "2026-03-01T12:00:00.123456Z");
    assert_eq!(
        v["regarding"],
        serde_json::json!({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                           "name": "iris-production", "namespace": "models", "uid": "u-1"})
    );
    assert!(v["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("iris-production."));
    let failed = Note {
        reason: Reason::ApplyFailed,
        note: "x".repeat(5000),
        ..note
    };
    let v = serde_json::to_value(r.event(&failed, now)).unwrap();
    assert_eq!(v["type"], "Warning");
    assert!(v["note"].as_str().unwrap().len() <= NOTE_LIMIT);
}

#[test]
fn a_warning_repeated_has_one_name_a_change_one_per_time() {
    let resource = crate::targets::by_id("seldon-v1").unwrap().resource();
    let r = Recorder::with(None, resource, "models", "m2s");
    let (t1, t2): (Timestamp, Timestamp) = (
        "2026-03-01T12:00:00Z".parse().unwrap(),
        "2026-03-01T12:01:00Z".parse().unwrap(),
    );
    let name = |note: &Note, t| r.event(note, t).metadata.name.unwrap();
    let held = Note {
        reason: Reason::NotDeployable,
        action: "Sync",
        name: "iris-production",
        uid: Some("u-1"),
        note: "tag m2s.memory=\"lots\" …".into(),
    };
    assert_eq!(name(&held, t1), name(&held, t2), "the next run's warning");
    assert!(name(&held, t1).starts_with("iris-production."));
    let other_words = Note {
        note: "tag m2s.cpu=\"x\" …".into(),
        ..held.clone()
    };
    assert_ne!(name(&held, t1), name(&other_words, t1));
    let failed = Note {
        reason: Reason::ApplyFailed,
        ..held.clone()
    };
    assert_ne!(name(&held, t1), name(&failed, t1));
    let recreated = Note {
        uid: Some("u-2"),
        ..held.clone()
    };
    assert_ne!(name(&held, t1), name(&recreated, t1));
    let created = Note {
        reason: Reason::Created,
        action: "Create",
        ..held
    };
    assert_ne!(
        name(&created, t1),
        name(&created, t2),
        "each change is an Event"
    );
}

#[test]
fn truncates_on_a_char_boundary() {
    assert_eq!(truncate("abc", 10), "abc");
    let long = "é".repeat(600);
    let t = truncate(&long, NOTE_LIMIT);
    assert!(t.len() <= NOTE_LIMIT && t.ends_with('…'), "{}", t.len());
}
