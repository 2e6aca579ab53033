use super::*;
use crate::status::EntryRef;
use crate::targets::Readiness;
use serde_json::json;

fn cfg(target: &str) -> DeployConfig {
    DeployConfig::new("models", "http://mlflow:5000").with_target(target)
}

fn now() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

fn object(name: &str, state: State, verdict: Verdict, created: &str) -> ObjectState {
    ObjectState {
        name: name.into(),
        model: Some(name.split('-').next().unwrap().into()),
        version: Some("3".into()),
        selector: Some(Selector::Stage("Production".into())),
        created: Some(created.into()),
        readiness: Readiness {
            state,
            message: None,
            url: None,
        },
        verdict,
        rollout: Default::default(),
    }
}

fn sample() -> StatusReport {
    let mut failed = object(
        "iris-production",
        State::Failed,
        Verdict::UpdatePending,
        "2026-03-01T11:58:00Z",
    );
    failed.readiness.message = Some("ModelLoadFailed: no such file".into());
    let mut fraud = object(
        "fraud-champion",
        State::Available,
        Verdict::InSync,
        "2026-02-26T12:00:00Z",
    );
    fraud.selector = Some(Selector::Alias("champion".into()));
    fraud.readiness.url = Some("http://fraud-champion.models.example.com".into());
    StatusReport {
        objects: vec![fraud, failed],
        not_deployed: vec![EntryRef {
            name: "iris-staging".into(),
            model: "iris".into(),
            version: "4".into(),
            selector: Selector::Stage("Staging".into()),
        }],
        not_deployable: vec![],
    }
}

#[test]
fn text_is_a_tidy_table_with_messages_and_a_summary() {
    let text = render_text(&sample(), &cfg("kserve"), now());
    let expected = "\
InferenceServices of m2s instance \"m2s\" in namespace \"models\":

  NAME             MODEL  VERSION  FOLLOWS           STATE      AGE  REGISTRY        URL
  fraud-champion   fraud  3        alias champion    Available  3d   in sync         http://fraud-champion.models.example.com
  iris-production  iris   3        stage Production  Failed     2m   update pending  -
      ModelLoadFailed: no such file

Not deployed yet (the next sync creates them):

  + iris-staging  iris v4 (stage Staging)

2 InferenceServices: 1 Available, 1 Failed; 1 in sync, 1 update pending. 1 registry entry not deployed yet.
";
    assert_eq!(text, expected);
}

#[test]
fn counts_agree_with_their_nouns() {
    let c = cfg("seldon-v1");
    let empty = StatusReport::default();
    assert_eq!(
        render_text(&empty, &c, now()),
        "No SeldonDeployments of m2s instance \"m2s\" in namespace \"models\".\n"
    );
    let one = StatusReport {
        objects: vec![object(
            "a-production",
            State::Pending,
            Verdict::DeletePending,
            "x",
        )],
        ..StatusReport::default()
    };
    let text = render_text(&one, &c, now());
    assert!(
        text.starts_with("SeldonDeployment of m2s instance"),
        "{text}"
    );
    assert!(
        text.ends_with("1 SeldonDeployment: 1 Pending; 1 delete pending.\n"),
        "{text}"
    );
    // An unparsable creation time shows no age rather than a wrong one.
    assert!(text.contains("  -    delete pending"), "{text}");
}

#[test]
fn json_is_one_document() {
    let report = sample();
    let json = render_doc(&report, &cfg("seldon-v2"), now(), Doc::Json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    // -o yaml is the same document.
    let yaml = render_doc(&report, &cfg("seldon-v2"), now(), Doc::Yaml);
    let from_yaml: serde_json::Value = yaml_serde::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, v, "{yaml}");
    assert_eq!(v["format_version"], "1");
    assert_eq!(v["kind"], "Model");
    assert_eq!(v["objects"][0]["name"], "fraud-champion");
    assert_eq!(v["objects"][0]["alias"], "champion");
    assert_eq!(v["objects"][0]["stage"], serde_json::Value::Null);
    assert_eq!(v["objects"][0]["age_seconds"], 3 * 86400);
    assert_eq!(v["objects"][1]["state"], "Failed");
    assert_eq!(v["objects"][1]["message"], "ModelLoadFailed: no such file");
    assert_eq!(v["objects"][1]["registry"], "update pending");
    assert_eq!(v["not_deployed"][0]["name"], "iris-staging");
    assert_eq!(
        v["summary"],
        json!({"objects": 2, "available": 1, "creating": 0, "pending": 0, "failed": 1,
               "in_sync": 1, "update_pending": 1, "delete_pending": 0,
               "not_deployable_objects": 0, "not_deployed": 1, "not_deployable": 0})
    );
}

#[test]
fn ages_read_like_kubectl() {
    assert_eq!(short_age(5), "5s");
    assert_eq!(short_age(119), "119s");
    assert_eq!(short_age(600), "10m");
    assert_eq!(short_age(3 * 3600), "3h");
    assert_eq!(short_age(5 * 86400), "5d");
    assert_eq!(short_age(3 * 365 * 86400), "3y");
}
