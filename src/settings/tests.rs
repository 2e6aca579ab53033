use super::*;

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect()
}

#[test]
fn version_tags_override_model_tags() {
    let s = from_tags(
        "iris",
        "3",
        &tags(&[("m2s.replicas", "2"), ("m2s.memory", "1Gi"), ("team", "x")]),
        &tags(&[("m2s.memory", "2048Mi"), ("m2s.cpu", "0.5")]),
    )
    .unwrap();
    assert_eq!(s.replicas, Some(2));
    assert_eq!(s.memory.unwrap().to_string(), "2Gi");
    assert_eq!(s.cpu.unwrap().to_string(), "500m");
    assert!(s.gpu.is_none());
}

#[test]
fn bad_values_name_tag_place_model_and_value() {
    for (key, value, on_version, want) in [
        (
            "m2s.memory",
            "lots",
            false,
            "tag m2s.memory=\"lots\" on registered model \"iris\"",
        ),
        (
            "m2s.replicas",
            "-1",
            true,
            "tag m2s.replicas=\"-1\" on version 3 of model \"iris\"",
        ),
        ("m2s.replicas", "two", false, "whole number"),
        ("m2s.gpu", "0.5", false, "GPUs are whole numbers"),
        ("m2s.memory", "0", false, "more than 0"),
        ("m2s.cpus", "1", false, "unknown tag \"m2s.cpus\""),
    ] {
        let t = tags(&[(key, value)]);
        let (m, v) = if on_version {
            (&[][..], &t[..])
        } else {
            (&t[..], &[][..])
        };
        let err = from_tags("iris", "3", m, v).unwrap_err();
        assert!(err.contains(want), "{key}={value}: {err}");
    }
}

#[test]
fn max_below_min_is_an_error() {
    let err = from_tags(
        "iris",
        "1",
        &tags(&[("m2s.min-replicas", "3"), ("m2s.max-replicas", "2")]),
        &[],
    )
    .unwrap_err();
    assert!(
        err.contains("m2s.max-replicas (2) is below m2s.min-replicas (3)"),
        "{err}"
    );
    assert!(from_tags("iris", "1", &tags(&[("m2s.max-replicas", "0")]), &[]).is_err());
}

#[test]
fn write_back_tags_are_not_settings() {
    assert!(is_setting_key("m2s.replicas"));
    assert!(is_setting_key("m2s.typo"));
    assert!(!is_setting_key("m2s.models.iris-production.state"));
    assert!(!is_setting_key("m2s."));
    assert!(!is_setting_key("deployment-image"));
    let s = from_tags("m", "1", &tags(&[("m2s.ns.obj.state", "Available")]), &[]).unwrap();
    assert!(s.replicas.is_none());
}
