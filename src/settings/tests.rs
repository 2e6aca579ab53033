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

#[test]
fn canary_steps_and_interval_from_tags() {
    assert_eq!(canary_from_tags("iris", "5", &[], &[]).unwrap(), None);
    let c = canary_from_tags(
        "iris",
        "5",
        &tags(&[("m2s.canary", "10,50"), ("m2s.canary-interval", "1h")]),
        &tags(&[("m2s.canary-interval", "30s")]),
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.steps, [10, 50]);
    assert_eq!(
        c.interval,
        std::time::Duration::from_secs(30),
        "the version's wins"
    );
    let c = canary_from_tags("iris", "5", &tags(&[("m2s.canary", " 25 ")]), &[])
        .unwrap()
        .unwrap();
    assert_eq!((c.steps, c.interval), (vec![25], DEFAULT_CANARY_INTERVAL));
    assert_eq!(parse_duration("0s"), Ok(std::time::Duration::ZERO));
    assert_eq!(
        parse_duration("10m"),
        Ok(std::time::Duration::from_secs(600))
    );
    for (key, value, want) in [
        ("m2s.canary", "50,10", "must increase"),
        ("m2s.canary", "10,100", "between 1 and 99"),
        ("m2s.canary", "0", "between 1 and 99"),
        ("m2s.canary", "ten", "not a percent"),
        ("m2s.canary-interval", "5 minutes", "not a duration"),
        ("m2s.canary-interval", "-1s", "not a duration"),
    ] {
        let err = canary_from_tags("iris", "5", &tags(&[(key, value)]), &[]).unwrap_err();
        assert!(
            err.contains(want) && err.contains(&format!("tag {key}=")) && err.contains("\"iris\""),
            "{key}={value}: {err}"
        );
    }
    // The serving settings let the canary's tags through.
    assert!(from_tags("iris", "5", &tags(&[("m2s.canary", "10")]), &[]).is_ok());
}
