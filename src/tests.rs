//! Property and fuzz-style tests of everything m2s reads from outside (issue: reliability &
//! security): names from the registry, MLflow's responses, image references.
//!
//! Case counts: the properties run proptest's default 256 cases (or `PROPTEST_CASES`); the
//! `fuzz_*` tests run more: 10,000 (raw bytes into the search-page parser; (model, selector)
//! pairs into the name sanitizer), 3,000 (generated registries into `entries`) and 500
//! (page-shaped JSON, the slowest to generate); about 15 s in a debug build.

use std::collections::BTreeSet;

use crate::artifacts::ArtifactLocation;
use crate::config::{AliasSelection, DeployConfig};
use crate::desired::{entries, render};
use crate::image::validate_image_reference;
use crate::mlflow::{parse_search_page, AliasRef, ModelVersion, RegisteredModel, RegistrySnapshot};
use crate::naming::{deployment_name, is_dns1123_label, MAX_NAME_LEN};
use crate::quantity::Quantity;
use crate::targets::TARGETS;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Any string: unicode, controls, empty, up to 300 characters.
fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,300}",
        // only symbols
        "[!-/:-@\\[-`{-~ ]{1,60}",
        // letters and punctuation that sanitize alike (case, '.', '_', ' ', '-')
        "[a-cA-C._ -]{1,12}",
        // long valid names around the 45-character limit
        "[a-z][a-z0-9-]{30,60}[a-z0-9]",
        "\\PC{1,40}",
    ]
}

fn stage() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Production".to_string()),
        Just("Staging".to_string()),
        Just("production".to_string()),
        Just("Archived".to_string()),
        Just("None".to_string()),
    ]
}

/// Aliases, chosen to collide with stage names and with other model/alias pairs.
fn alias() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("production".to_string()),
        Just("Production".to_string()),
        Just("staging".to_string()),
        "[ab.-]{1,3}",
        "[a-z]{1,8}",
        ".{1,20}",
    ]
}

fn model_name() -> impl Strategy<Value = String> {
    prop_oneof![
        // a, a-b, a.b, A-b, ...: "a-b" + alias "c" and "a" + alias "b-c" give the same name
        "[aAb][ab.-]{0,3}",
        any_name().prop_filter("MLflow names are not empty", |n| !n.is_empty()),
    ]
}

fn cfg() -> DeployConfig {
    DeployConfig {
        storage_root: Some("s3://bucket/mlruns".into()),
        aliases: AliasSelection::All,
        ..DeployConfig::new("models", "http://mlflow:5000")
    }
}

/// A registry: distinct model names, each with versions in stages and aliases.
fn registry() -> impl Strategy<Value = RegistrySnapshot> {
    prop::collection::vec(
        (
            model_name(),
            prop::collection::vec(stage(), 0..4),
            prop::collection::vec((alias(), 1u32..5), 0..4),
        ),
        0..12,
    )
    .prop_map(|models| {
        let mut seen = BTreeSet::new();
        let models = models
            .into_iter()
            .filter(|(name, _, _)| seen.insert(name.clone()))
            .map(|(name, stages, aliases)| RegisteredModel {
                latest_versions: stages
                    .iter()
                    .enumerate()
                    .map(|(i, s)| ModelVersion {
                        name: name.clone(),
                        version: (i + 1).to_string(),
                        current_stage: Some(s.clone()),
                        source: Some(format!("runs:/r{i}/model")),
                        run_id: Some(format!("r{i}")),
                        status: Some("READY".into()),
                        tags: vec![],
                    })
                    .collect(),
                aliases: aliases
                    .into_iter()
                    .map(|(alias, version)| AliasRef {
                        alias,
                        version: version.to_string(),
                    })
                    .collect(),
                name,
                ..RegisteredModel::default()
            })
            .collect();
        RegistrySnapshot { models }
    })
}

/// How many (model, stage or alias) selections `snapshot` makes under `cfg()`.
fn selections(snapshot: &RegistrySnapshot) -> usize {
    snapshot
        .models
        .iter()
        .map(|m| {
            let stages: BTreeSet<&str> = m
                .latest_versions
                .iter()
                .filter_map(|v| v.current_stage.as_deref())
                .filter_map(|s| {
                    ["Staging", "Production"]
                        .into_iter()
                        .find(|k| k.eq_ignore_ascii_case(s))
                })
                .collect();
            let aliases: BTreeSet<&str> = m.aliases.iter().map(|a| a.alias.as_str()).collect();
            stages.len() + aliases.len()
        })
        .sum()
}

/// Namespace names of 1 to 40 characters (the longest KServe leaves room in).
fn namespace() -> impl Strategy<Value = String> {
    "[a-z]([-a-z0-9]{0,38}[a-z0-9])?"
}

fn assert_valid_name(name: &str) {
    assert!(
        is_dns1123_label(name) && name.len() <= MAX_NAME_LEN,
        "{name:?} is not a DNS-1123 label of at most {MAX_NAME_LEN}"
    );
}

proptest! {
    #[test]
    fn deployment_name_is_a_short_dns_label_and_deterministic(
        model in any_name(),
        selector in prop_oneof![stage(), alias(), any_name()],
    ) {
        let name = deployment_name(&model, &selector, MAX_NAME_LEN);
        assert_valid_name(&name);
        prop_assert_eq!(&name, &deployment_name(&model, &selector, MAX_NAME_LEN));
    }

    #[test]
    fn models_differing_in_case_or_punctuation_get_distinct_names(
        a in "[a-cA-C._ -]{1,12}",
        b in "[a-cA-C._ -]{1,12}",
        selector in stage(),
    ) {
        prop_assume!(a != b);
        prop_assert_ne!(deployment_name(&a, &selector, MAX_NAME_LEN), deployment_name(&b, &selector, MAX_NAME_LEN));
    }

    #[test]
    fn long_and_unicode_models_get_distinct_names(
        a in any_name(),
        b in any_name(),
    ) {
        prop_assume!(a != b);
        prop_assert_ne!(
            deployment_name(&a, "Production", MAX_NAME_LEN),
            deployment_name(&b, "Production", MAX_NAME_LEN)
        );
    }

    /// Whatever the registry holds, no two entries share a name: either the names are distinct
    /// or every entry of a shared name is reported as an error, and no selection is dropped.
    #[test]
    fn entries_never_share_a_name(snapshot in registry()) {
        let (wanted, errors) = entries(&snapshot, &cfg());
        let mut names = BTreeSet::new();
        for e in &wanted {
            assert_valid_name(&e.name);
            prop_assert!(names.insert(e.name.clone()), "{} wanted twice", e.name);
        }
        for e in &errors {
            prop_assert!(!names.contains(e.name.as_str()), "{} is wanted and in error", e.name);
            prop_assert!(e.message.contains("also wanted by"), "{}", e.message);
            let same = errors.iter().filter(|o| o.name == e.name).count();
            prop_assert!(same >= 2, "collision of {} reported once", e.name);
        }
        prop_assert_eq!(wanted.len() + errors.len(), selections(&snapshot));
    }

    #[test]
    fn image_validation_never_panics(image in prop_oneof![
        ".{0,300}",
        "[a-zA-Z0-9./:@_+-]{0,80}",
        "[a-z.]{1,10}(:[0-9a-z]{0,6})?/[a-z_.-]{1,10}(:[\\w.-]{0,10})?(@[a-z0-9]{0,8}:[0-9a-fA-F]{0,70})?",
    ]) {
        if validate_image_reference(&image).is_ok() {
            prop_assert!(!image.is_empty() && image.len() <= 255);
            prop_assert!(!image.chars().any(char::is_whitespace));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Names against every target's admission rules; quantities
// ---------------------------------------------------------------------------------------------

/// Renders the one entry of `model` for `selector` on every target: the render runs the
/// target's admission rules (name format, host-label length, storage URI), so it succeeds only
/// if the generated name passes them.
fn renders_on_every_target(model: &str, selector: &str, namespace: &str) {
    for target in TARGETS {
        let cfg = DeployConfig {
            storage_root: Some("s3://bucket/mlruns".into()),
            aliases: AliasSelection::All,
            stages: vec![],
            ..DeployConfig::new(namespace, "http://mlflow:5000").with_target(target.id())
        };
        let snapshot = RegistrySnapshot {
            models: vec![RegisteredModel {
                name: model.to_string(),
                latest_versions: vec![ModelVersion {
                    name: model.to_string(),
                    version: "1".into(),
                    source: Some("runs:/r1/model".into()),
                    ..ModelVersion::default()
                }],
                aliases: vec![AliasRef {
                    alias: selector.to_string(),
                    version: "1".into(),
                }],
                ..RegisteredModel::default()
            }],
        };
        let (wanted, errors) = entries(&snapshot, &cfg);
        assert!(errors.is_empty(), "{errors:?}");
        let location = ArtifactLocation {
            uri: "/srv/mlruns/1/r1/artifacts/model".into(),
            experiment_id: Some("1".into()),
            run_id: Some("r1".into()),
        };
        let rendered = render(&wanted[0], &location, &[], &cfg);
        assert!(
            rendered.is_ok(),
            "{}: {model:?}/{selector:?} → {:?}: {rendered:?}",
            target.id(),
            wanted[0].name
        );
        assert_valid_name(&wanted[0].name);
    }
}

fn quantity_text() -> impl Strategy<Value = String> {
    (
        0u64..5_000_000,
        prop_oneof![
            Just(""),
            Just("m"),
            Just("k"),
            Just("M"),
            Just("G"),
            Just("Ki"),
            Just("Mi"),
            Just("Gi"),
            Just("Ti"),
            Just("e3"),
            Just("e-3"),
        ],
    )
        .prop_map(|(n, suffix)| format!("{n}{suffix}"))
}

proptest! {
    #[test]
    fn every_generated_name_passes_every_targets_rules(
        model in any_name().prop_filter("MLflow names are not empty", |n| !n.trim().is_empty()),
        selector in prop_oneof![alias(), "[0-9][a-z0-9]{0,6}"],
        namespace in namespace(),
    ) {
        renders_on_every_target(&model, &selector, &namespace);
    }

    /// KServe's names fit any namespace of 1 to 40 characters (its name format and the
    /// predictor's host label `<name>-predictor-<namespace>` of at most 63), and a name that
    /// fitted before names fit the namespace is the same name.
    #[test]
    fn kserve_names_fit_every_namespace_and_fitting_names_stay(
        model in any_name().prop_filter("MLflow names are not empty", |n| !n.trim().is_empty()),
        selector in prop_oneof![stage(), alias(), "[0-9][a-z0-9]{0,6}"],
        namespace in namespace(),
    ) {
        let kserve = crate::targets::by_id("kserve").unwrap();
        let name = kserve.object_name(&model, &selector, &namespace);
        prop_assert!(crate::targets::kserve_name_format(&name), "{name:?}");
        prop_assert!(name.len() + "-predictor-".len() + namespace.len() <= 63, "{name:?} in {namespace:?}");
        // What m2s named it before names fit the namespace; kept whenever it fitted.
        let old = deployment_name(&model, &selector, MAX_NAME_LEN);
        let old = if crate::targets::kserve_name_format(&old) {
            old
        } else {
            crate::naming::prefixed_name("m2s", &model, &selector, MAX_NAME_LEN)
        };
        if old.len() + "-predictor-".len() + namespace.len() <= 63 {
            prop_assert_eq!(name, old);
        }
    }

    #[test]
    fn quantity_spelling_roundtrips_by_value(text in quantity_text()) {
        let q = Quantity::parse(&text).unwrap();
        let canonical = q.to_string();
        let again = Quantity::parse(&canonical).unwrap();
        prop_assert!(q.same_value(&again), "{text} → {canonical}");
        prop_assert_eq!(again.to_string(), canonical.clone(), "canonical spelling is stable");
        prop_assert_eq!(q.value_key(), again.value_key());
    }

    #[test]
    fn binary_and_decimal_spellings_of_one_value_compare_equal(n in 0u64..1_000_000) {
        let ki = Quantity::parse(&format!("{}Ki", n * 1024)).unwrap();
        let mi = Quantity::parse(&format!("{n}Mi")).unwrap();
        prop_assert!(ki.same_value(&mi));
        let milli = Quantity::parse(&format!("{}m", n * 1000)).unwrap();
        let plain = Quantity::parse(&n.to_string()).unwrap();
        prop_assert!(milli.same_value(&plain));
        prop_assert_eq!(milli.value_key(), plain.value_key());
        let other = Quantity::parse(&format!("{}m", n * 1000 + 1)).unwrap();
        prop_assert!(!other.same_value(&plain));
    }

    #[test]
    fn quantity_parser_never_panics(text in prop_oneof![".{0,40}", "[0-9.+eEkKMGTPi-]{0,30}"]) {
        if let Ok(q) = Quantity::parse(&text) {
            prop_assert!(Quantity::parse(&q.to_string()).is_ok());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The MLflow response parser
// ---------------------------------------------------------------------------------------------

fn any_json() -> impl Strategy<Value = Value> {
    json_of_depth(4, 48, 6)
}

/// Arbitrary JSON values nested at most `depth` deep.
fn json_of_depth(depth: u32, size: u32, branch: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
        Just(json!("")),
        Just(json!("Production")),
        Just(json!("READY")),
    ];
    leaf.prop_recursive(depth, size, branch, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names MLflow uses, so that the generated JSON reaches deep into the parser.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("registered_models".to_string()),
        Just("next_page_token".to_string()),
        Just("name".to_string()),
        Just("version".to_string()),
        Just("latest_versions".to_string()),
        Just("current_stage".to_string()),
        Just("source".to_string()),
        Just("run_id".to_string()),
        Just("status".to_string()),
        Just("tags".to_string()),
        Just("key".to_string()),
        Just("value".to_string()),
        Just("aliases".to_string()),
        Just("alias".to_string()),
        Just("creation_timestamp".to_string()),
        "[a-z_]{1,8}",
    ]
}

/// A search page whose fields have the right names and arbitrary (shallow) values.
fn page_like() -> impl Strategy<Value = Value> {
    let any_json = || json_of_depth(2, 8, 3);
    let version = (any_json(), any_json(), any_json(), any_json()).prop_map(|(v, s, src, st)| {
        json!({"name": "m", "version": v, "current_stage": s, "source": src, "status": st})
    });
    let model = (
        prop_oneof![any_json(), model_name().prop_map(Value::String)],
        prop::collection::vec(version, 0..3),
        any_json(),
        any_json(),
    )
        .prop_map(|(name, versions, tags, aliases)| {
            json!({"name": name, "latest_versions": versions, "tags": tags, "aliases": aliases})
        });
    (prop::collection::vec(model, 0..4), any_json())
        .prop_map(|(models, token)| json!({"registered_models": models, "next_page_token": token}))
}

/// Parses, and sends whatever parsed through the rest of the pure pipeline.
fn parse_and_plan(body: &[u8]) {
    if let Ok((models, token)) = parse_search_page(body) {
        assert!(token.as_deref() != Some(""), "an empty token is no token");
        let (wanted, _) = entries(&RegistrySnapshot { models }, &cfg());
        let names: BTreeSet<&str> = wanted.iter().map(|e| &*e.name).collect();
        assert_eq!(names.len(), wanted.len());
    }
}

proptest! {
    #[test]
    fn search_page_parser_never_panics_on_json(v in any_json()) {
        parse_and_plan(v.to_string().as_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz-style runs: many cases
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// 10,000 cases of raw bytes, including truncated and mutated real pages.
    #[test]
    fn fuzz_search_page_parser_bytes(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            (prop::collection::vec(any::<u8>(), 0..16), 0usize..400).prop_map(|(noise, cut)| {
                let real = br#"{"registered_models":[{"name":"iris","creation_timestamp":1,"latest_versions":[{"name":"iris","version":"3","current_stage":"Production","source":"runs:/r1/model","run_id":"r1","status":"READY"}],"tags":[{"key":"deployment-image","value":"x/y:1"}],"aliases":[{"alias":"champion","version":"2"}]}],"next_page_token":"abc"}"#;
                let mut b = real[..cut.min(real.len())].to_vec();
                b.extend(noise);
                b.extend_from_slice(&real[cut.min(real.len())..]);
                b
            }),
        ]
    ) {
        parse_and_plan(&bytes);
    }

    /// 10,000 cases of (model, selector) pairs through the name sanitizer.
    #[test]
    fn fuzz_deployment_name(model in any_name(), selector in any_name()) {
        assert_valid_name(&deployment_name(&model, &selector, MAX_NAME_LEN));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// 500 cases of page-shaped JSON with arbitrary values (the slowest to generate).
    #[test]
    fn fuzz_search_page_parser_json(v in page_like()) {
        parse_and_plan(v.to_string().as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// 3,000 generated registries through `entries`.
    #[test]
    fn fuzz_entries(snapshot in registry()) {
        let (wanted, _) = entries(&snapshot, &cfg());
        let names: BTreeSet<&str> = wanted.iter().map(|e| &*e.name).collect();
        prop_assert_eq!(names.len(), wanted.len());
    }
}
