//! The seam's helpers and each target's admission rules, one by one.

use super::*;

mod readiness;

#[test]
fn targets_have_distinct_ids_and_resources() {
    let ids = ids();
    assert_eq!(ids, ["seldon-v1", "kserve", "seldon-v2"]);
    for t in TARGETS {
        assert_eq!(by_id(t.id()).unwrap().id(), t.id());
        // Every field pointer starts at the object root.
        for f in t.fields() {
            assert!(f.pointer.starts_with("/spec/"), "{}: {}", t.id(), f.pointer);
        }
    }
    assert!(by_id("seldon").is_none());
}

#[test]
fn set_pointer_creates_objects_and_arrays() {
    let mut v = json!({"spec": {}});
    set_pointer(&mut v, "/spec/a/0/b/c", json!(1)).unwrap();
    set_pointer(&mut v, "/spec/a/0/d", json!("x")).unwrap();
    set_pointer(&mut v, "/spec/l/nvidia.com~1gpu", json!("1")).unwrap();
    assert_eq!(
        v,
        json!({"spec": {"a": [{"b": {"c": 1}, "d": "x"}], "l": {"nvidia.com/gpu": "1"}}})
    );
    assert!(set_pointer(&mut v, "/spec/a/3/x", json!(1)).is_err());
    assert!(set_pointer(&mut v, "/spec/a/0/d/x", json!(1)).is_err());
}

#[test]
fn counts_have_grammar() {
    let r = TARGETS[1].resource();
    assert_eq!(r.count(1), "1 InferenceService");
    assert_eq!(r.count(0), "0 InferenceServices");
    assert_eq!(r.count(2), "2 InferenceServices");
}

/// Each target's admission rules (the rules cite their upstream sources).
mod admission {
    use super::*;

    fn object(target: &str, name: &str, namespace: &str, spec: Value) -> (String, Value) {
        let t = by_id(target).unwrap();
        let r = t.resource();
        (
            name.to_string(),
            json!({"apiVersion": r.api_version(), "kind": r.kind,
                   "metadata": {"name": name, "namespace": namespace}, "spec": spec}),
        )
    }

    fn admit(target: &str, (name, object): (String, Value)) -> Result<(), String> {
        by_id(target).unwrap().admit(&name, &object)
    }

    fn kserve(name: &str, ns: &str, predictor: Value) -> (String, Value) {
        object("kserve", name, ns, json!({ "predictor": predictor }))
    }

    fn model(uri: &str) -> Value {
        json!({"model": {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2", "storageUri": uri}})
    }

    #[test]
    fn kserve_rules() {
        assert!(admit(
            "kserve",
            kserve("iris-production", "models", model("s3://b/m"))
        )
        .is_ok());
        for (name, ns, predictor, rule) in [
            (
                "2024-fraud-production",
                "models",
                model("s3://b/m"),
                "IsvcNameFmt",
            ),
            ("Iris", "models", model("s3://b/m"), "IsvcNameFmt"),
            ("a.b", "models", model("s3://b/m"), "IsvcNameFmt"),
            (
                &"a".repeat(45) as &str,
                "a-namespace-of-twenty",
                model("s3://b/m"),
                "63",
            ),
            (
                "iris",
                "models",
                model("file:///mnt/m"),
                "storage initializer cannot fetch",
            ),
            (
                "iris",
                "models",
                model("oci://registry/m"),
                "storage initializer cannot fetch",
            ),
            (
                "iris",
                "models",
                model("/local/path"),
                "storage initializer cannot fetch",
            ),
        ] {
            let err = admit("kserve", kserve(name, ns, predictor)).unwrap_err();
            assert!(err.contains(rule), "{name} {ns}: {err}");
        }
        let mut p = model("s3://b/m");
        p["minReplicas"] = json!(3);
        p["maxReplicas"] = json!(2);
        assert!(admit("kserve", kserve("iris", "m", p.clone()))
            .unwrap_err()
            .contains("minReplicas 3 above maxReplicas 2"));
        // maxReplicas 0 means unset to KServe.
        p["maxReplicas"] = json!(0);
        assert!(admit("kserve", kserve("iris", "m", p)).is_ok());
        let mut p = model("s3://b/m");
        p["model"]["name"] = json!("x");
        assert!(admit("kserve", kserve("iris", "m", p))
            .unwrap_err()
            .contains("predictor.model.name"));
        let mut p = model("s3://b/m");
        p["model"]["env"] = json!([{"name": "PYTHONPATH", "value": "/x"}]);
        assert!(admit("kserve", kserve("iris", "m", p))
            .unwrap_err()
            .contains("PYTHONPATH"));
    }

    #[test]
    fn seldon_v2_rules() {
        let ok = json!({"storageUri": "gs://b/m", "requirements": ["mlflow"]});
        assert!(admit(
            "seldon-v2",
            object("seldon-v2", "iris-production", "m", ok.clone())
        )
        .is_ok());
        for name in ["iris.v2", "Iris", "-iris", "iris_prod"] {
            let err = admit("seldon-v2", object("seldon-v2", name, "m", ok.clone())).unwrap_err();
            assert!(err.contains("CheckName"), "{name}: {err}");
        }
        let pvc = json!({"storageUri": "pvc://claim/m", "requirements": ["mlflow"]});
        let err = admit("seldon-v2", object("seldon-v2", "iris", "m", pvc)).unwrap_err();
        assert!(
            err.contains("agent cannot fetch \"pvc://claim/m\""),
            "{err}"
        );
    }

    #[test]
    fn seldon_v1_rules() {
        let with = |uri: &str| json!({"predictors": [{"graph": {"modelUri": uri}}]});
        assert!(admit(
            "seldon-v1",
            object("seldon-v1", "2024-fraud-production", "m", with("s3://b/m"))
        )
        .is_ok());
        assert!(
            admit("seldon-v1", object("seldon-v1", "iris", "m", with("")))
                .unwrap_err()
                .contains("modelUri")
        );
    }

    #[test]
    fn names_each_target_gives() {
        let kserve = by_id("kserve").unwrap();
        for (model, selector) in [("2024-fraud", "Production"), ("9", "champion"), ("1x", "a")] {
            let name = kserve.object_name(model, selector, "models");
            assert!(name.starts_with("m2s-"), "{name}");
            assert_eq!(
                name,
                kserve.object_name(model, selector, "models"),
                "stable"
            );
        }
        assert_eq!(
            kserve.object_name("fraud", "Production", "models"),
            "fraud-production"
        );
        assert_eq!(
            by_id("seldon-v2")
                .unwrap()
                .object_name("2024-fraud", "Production", "models"),
            "2024-fraud-production"
        );
    }

    /// The case of the issue: `2024-adm-d43d64` in Production on kserve in a 14-character
    /// namespace was refused (64 characters of host label); now its hashed name is cut to fit.
    #[test]
    fn kserve_names_fit_the_namespace() {
        let kserve = by_id("kserve").unwrap();
        let ns = "acc-adm-d43d64";
        let name = kserve.object_name("2024-adm-d43d64", "Production", ns);
        assert_eq!(name.len() + "-predictor-".len() + ns.len(), 63, "{name}");
        assert!(name.starts_with("m2s-2024-adm-d43d64-product"), "{name}");
        // A name that fits keeps it: `fraud-production` (16) in a 36-character namespace.
        let fits = kserve.object_name("fraud", "Production", &"n".repeat(36));
        assert_eq!(fits, "fraud-production");
        // In a 40-character namespace only 12 are left: the shortest hashed form.
        let cut = kserve.object_name("fraud", "Production", &"n".repeat(40));
        assert_eq!(cut.len(), 12, "{cut}");
        // `customer-churn-classifier-champion` (34) in `ml-serving-production` (21): cut to 31.
        let long = kserve.object_name(
            "customer-churn-classifier",
            "champion",
            "ml-serving-production",
        );
        assert_eq!(long.len(), 31, "{long}");
        assert_eq!(kserve.max_name_len(&"n".repeat(7)), 45);
        assert_eq!(kserve.max_name_len(&"n".repeat(8)), 44);
        // Namespaces up to 40 characters leave room for the shortest name; longer ones none.
        assert!(kserve.check_namespace(&"n".repeat(40)).is_ok());
        let err = kserve.check_namespace(&"n".repeat(41)).unwrap_err();
        assert!(err.contains("at most 40 characters"), "{err}");
        assert!(by_id("seldon-v1")
            .unwrap()
            .check_namespace(&"n".repeat(63))
            .is_ok());
    }
}
