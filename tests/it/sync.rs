//! The sync engine against the sandbox's real MLflow and kube-apiserver (with the real Seldon
//! CRD in CI): what gets deployed, how plan/sync/dry-run behave, and what is left alone.

use crate::common::versions::LOGGED_MODELS;
use crate::common::{run_expect, unique, Sandbox};
use serde_json::{json, Value};

const ROOT: &str = "pvc://mlflow-artifacts/mlruns";

/// Expected modelUri of a version made by `version_from_run`: the run's artifact URI from the
/// experiment id on, under the storage root.
fn expected_uri(sb: &Sandbox, run_id: &str) -> String {
    let info = sb.mlflow().run_info(run_id);
    let exp = info["experiment_id"].as_str().unwrap();
    let artifact_uri = info["artifact_uri"].as_str().unwrap();
    let rel = &artifact_uri[artifact_uri.find(&format!("/{exp}/{run_id}/")).unwrap() + 1..];
    format!("{ROOT}/{rel}/model")
}

fn ann<'a>(o: &'a Value, key: &str) -> &'a str {
    o["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no annotation {key} on {o}"))
}

fn graph(o: &Value) -> &Value {
    &o["spec"]["predictors"][0]["graph"]
}

#[test]
fn follows_stages_and_aliases_through_their_life() {
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("life");
    let ns = sb.namespace("sync-life");
    let model = format!("{p}-iris");
    ml.model(&model);
    let exp = ml.experiment(&unique("exp"));
    let (run1, _) = ml.run(&exp);
    let v1 = ml.version(&model, &format!("runs:/{run1}/model"), Some(&run1));
    let v2 = ml.version_from_run(&model, &exp);
    let v3 = ml.version_from_run(&model, &exp);
    ml.stage(&model, &v1, "Staging");
    ml.stage(&model, &v2, "Production");
    ml.alias(&model, "champion", &v1);
    let m2s = || {
        let mut c = sb.m2s(&ns, &p);
        c.env("M2S_ALIASES", "champion");
        c
    };

    // Plan first: three creations, exit 2 with --detailed-exitcode, nothing written.
    let r = run_expect(m2s().args(["plan", "--detailed-exitcode"]), 2);
    assert!(
        r.stdout.contains(&format!("+ {model}-production")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("Plan: 3 to add, 0 to change, 0 to destroy."),
        "{}",
        r.stdout
    );
    assert!(sb.seldon_deployments(&ns).is_empty());

    run_expect(m2s().arg("sync"), 0);
    let objs = sb.seldon_deployments(&ns);
    let names: Vec<_> = objs.keys().cloned().collect();
    assert_eq!(
        names,
        [
            format!("{model}-champion"),
            format!("{model}-production"),
            format!("{model}-staging")
        ]
    );
    let prod = &objs[&format!("{model}-production")];
    assert_eq!(
        prod["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "m2s"
    );
    assert_eq!(prod["metadata"]["labels"]["m2s.io/instance"], "m2s");
    assert_eq!(ann(prod, "m2s.io/model-name"), model);
    assert_eq!(ann(prod, "m2s.io/model-version"), v2);
    assert_eq!(ann(prod, "m2s.io/stage"), "Production");
    assert_eq!(ann(prod, "m2s.io/mlflow-url"), ml.url());
    let champ = &objs[&format!("{model}-champion")];
    assert_eq!(ann(champ, "m2s.io/alias"), "champion");
    assert_eq!(ann(champ, "m2s.io/run-id"), run1);
    assert_eq!(graph(champ)["modelUri"], expected_uri(&sb, &run1).as_str());
    assert_eq!(ann(champ, "m2s.io/model-uri"), expected_uri(&sb, &run1));
    assert_eq!(graph(champ)["implementation"], "MLFLOW_SERVER");
    assert!(champ["spec"]["predictors"][0]
        .get("componentSpecs")
        .is_none());

    // Right after a sync: nothing planned, nothing written.
    let before = sb.resource_versions(&ns);
    let r = run_expect(m2s().args(["plan", "--detailed-exitcode"]), 0);
    assert!(
        r.stdout.starts_with("No changes. 3 SeldonDeployments"),
        "{}",
        r.stdout
    );
    // One registry page, one LIST: no per-version MLflow calls when nothing changed.
    let r = run_expect(m2s().env("RUST_LOG", "m2s=debug").arg("sync"), 0);
    assert!(
        r.stderr
            .contains("requests: MLflow 1, Kubernetes 1 (0 writes)"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.resource_versions(&ns), before);

    // Production moves to v3, the alias moves to v2, Staging is archived.
    ml.stage(&model, &v3, "Production");
    ml.stage(&model, &v2, "Archived");
    ml.alias(&model, "champion", &v2);
    ml.stage(&model, &v1, "Archived");
    let r = run_expect(m2s().args(["plan", "-o", "json", "--detailed-exitcode"]), 2);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        plan["summary"],
        json!({"add": 0, "change": 2, "destroy": 1, "unchanged": 0, "errors": 0})
    );
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes[0]["name"], format!("{model}-champion"));
    assert_eq!(changes[0]["action"], "update");
    assert_eq!(changes[0]["alias"], "champion");
    assert_eq!(changes[0]["reason"], format!("version {v1} → {v2}"));
    assert_eq!(changes[1]["action"], "update");
    assert_eq!(changes[1]["stage"], "Production");
    assert_eq!(changes[1]["version"], v3.as_str());
    assert_eq!(changes[2]["action"], "delete");
    assert_eq!(changes[2]["name"], format!("{model}-staging"));
    assert_eq!(
        changes[2]["reason"],
        format!("model {model:?} has no version in stage Staging any more")
    );

    let uid_before =
        sb.seldon_deployments(&ns)[&format!("{model}-production")]["metadata"]["uid"].clone();
    run_expect(m2s().arg("sync"), 0);
    let objs = sb.seldon_deployments(&ns);
    assert_eq!(objs.len(), 2);
    let prod = &objs[&format!("{model}-production")];
    assert_eq!(
        prod["metadata"]["uid"], uid_before,
        "updated in place, not re-created"
    );
    assert_eq!(ann(prod, "m2s.io/model-version"), v3);
    assert_eq!(
        ann(&objs[&format!("{model}-champion")], "m2s.io/model-version"),
        v2
    );

    // Everything goes away: refused without --allow-delete-all, then done with it.
    ml.delete_model(&model);
    let before = sb.resource_versions(&ns);
    let r = run_expect(m2s().arg("sync"), 1);
    assert!(
        r.stderr
            .contains("refusing to delete all 2 SeldonDeployments"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.resource_versions(&ns), before);
    let r = run_expect(m2s().args(["sync", "--allow-delete-all"]), 0);
    assert!(
        r.stdout.contains("is gone from the registry"),
        "{}",
        r.stdout
    );
    assert!(sb.seldon_deployments(&ns).is_empty());
}

#[test]
fn dry_run_persists_nothing_but_is_validated() {
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("dry");
    let ns = sb.namespace("sync-dry");
    let model = format!("{p}-m");
    ml.model(&model);
    let v = ml.version_from_run(&model, &ml.experiment(&unique("exp")));
    ml.stage(&model, &v, "Production");
    let r = run_expect(sb.m2s(&ns, &p).args(["sync", "--dry-run"]), 0);
    assert!(
        r.stdout.contains("Dry run (nothing persisted): 1 created"),
        "{}",
        r.stdout
    );
    assert!(sb.seldon_deployments(&ns).is_empty());
    // The dry run reached the server: an invalid image pull secret name never gets that far,
    // but a missing namespace does, and fails the same way a real sync would.
    let r = run_expect(
        sb.m2s(&unique("no-such-ns"), &p)
            .args(["sync", "--dry-run"]),
        1,
    );
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
}

#[test]
fn leaves_foreign_objects_alone() {
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("foreign");
    let ns = sb.namespace("sync-foreign");
    let (taken, free) = (format!("{p}-taken"), format!("{p}-free"));
    let exp = ml.experiment(&unique("exp"));
    for m in [&taken, &free] {
        ml.model(m);
        let v = ml.version_from_run(m, &exp);
        ml.stage(m, &v, "Production");
    }
    let foreign = |name: &str, labels: Value| {
        json!({
            "apiVersion": "machinelearning.seldon.io/v1", "kind": "SeldonDeployment",
            "metadata": { "name": name, "labels": labels },
            "spec": { "predictors": [{ "name": "default", "graph": {
                "name": "x", "implementation": "SKLEARN_SERVER", "modelUri": "gs://theirs" } }] }
        })
    };
    // Same name as a wanted deployment, but not ours; an unrelated one; one of another instance.
    sb.kubectl_apply_json(&ns, &foreign(&format!("{taken}-production"), json!({})));
    sb.kubectl_apply_json(&ns, &foreign("someone-elses", json!({})));
    sb.kubectl_apply_json(
        &ns,
        &foreign(
            "other-instance",
            json!({"app.kubernetes.io/managed-by": "m2s", "m2s.io/instance": "team-b"}),
        ),
    );
    let before = sb.resource_versions(&ns);

    let r = run_expect(sb.m2s(&ns, &p).arg("sync"), 1);
    assert!(
        r.stdout.contains(&format!("! {taken}-production"))
            && r.stdout.contains("is not managed by m2s instance"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("1 registry entry cannot be deployed"),
        "{}",
        r.stderr
    );
    let after = sb.resource_versions(&ns);
    for name in [
        format!("{taken}-production"),
        "someone-elses".into(),
        "other-instance".into(),
    ] {
        assert_eq!(after[&name], before[&name], "{name} was modified");
    }
    assert!(
        after.contains_key(&format!("{free}-production")),
        "the other entry proceeds"
    );

    // Even with everything gone from the registry, only m2s's own object is deleted.
    ml.delete_model(&taken);
    ml.delete_model(&free);
    run_expect(sb.m2s(&ns, &p).args(["sync", "--allow-delete-all"]), 0);
    let left: Vec<_> = sb.resource_versions(&ns).into_keys().collect();
    assert_eq!(
        left,
        [
            format!("{taken}-production"),
            "other-instance".into(),
            "someone-elses".into()
        ]
    );
}

#[test]
fn names_are_sanitized_and_collisions_reported() {
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("names");
    let ns = sb.namespace("sync-names");
    let exp = ml.experiment(&unique("exp"));
    // Differ only in case: both deployed under distinct names.
    let upper = format!("{p}-Fraud_Model.v2");
    let lower = format!("{p}-fraud_model.v2");
    // "<p>-m" alias "x-production" and "<p>-m-x" in Production both want "<p>-m-x-production".
    let (m, mx) = (format!("{p}-m"), format!("{p}-m-x"));
    for name in [&upper, &lower, &m, &mx] {
        ml.model(name);
        let v = ml.version_from_run(name, &exp);
        if name == &m {
            ml.alias(name, "x-production", &v);
        } else {
            ml.stage(name, &v, "Production");
        }
    }
    let r = run_expect(sb.m2s(&ns, &p).env("M2S_ALIASES", "*").arg("sync"), 1);
    assert!(
        r.stdout.contains(&format!(
            "deployment name \"{mx}-production\" is also wanted by"
        )),
        "{}",
        r.stdout
    );
    let objs = sb.seldon_deployments(&ns);
    assert_eq!(objs.len(), 2, "{:?}", objs.keys());
    let mut models: Vec<_> = objs
        .values()
        .map(|o| ann(o, "m2s.io/model-name").to_string())
        .collect();
    models.sort();
    assert_eq!(models, [upper.clone(), lower.clone()]);
    for (name, o) in &objs {
        assert!(
            name.len() <= 45 && name.starts_with(&p.to_lowercase()),
            "{name}"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
        assert_eq!(ann(o, "m2s.io/stage"), "Production");
    }
    // Stable: a second run computes the same names and changes nothing.
    let before = sb.resource_versions(&ns);
    run_expect(sb.m2s(&ns, &p).env("M2S_ALIASES", "*").arg("sync"), 1);
    assert_eq!(sb.resource_versions(&ns), before);
}

#[test]
fn image_tag_override_and_bad_tag() {
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("image");
    let ns = sb.namespace("sync-image");
    let exp = ml.experiment(&unique("exp"));
    let (tagged, bad, plain) = (
        format!("{p}-tagged"),
        format!("{p}-bad"),
        format!("{p}-plain"),
    );
    for name in [&tagged, &bad, &plain] {
        ml.model(name);
        let v = ml.version_from_run(name, &exp);
        ml.stage(name, &v, "Staging");
    }
    ml.set_model_tag(
        &tagged,
        "serving-image",
        "registry.example.com:5000/team/mlserver:2.1",
    );
    ml.set_model_tag(&bad, "serving-image", "Not A Valid Image");
    let m2s = || {
        let mut c = sb.m2s(&ns, &p);
        c.env("M2S_MLFLOW_DEPLOY_IMG_TAG", "serving-image")
            .env("M2S_SELDON_DEF_IMAGE", "seldonio/mlflowserver:1.18.0")
            .env("M2S_REGISTRY_SECRET", "regcred")
            .env("M2S_MODEL_SECRET", "s3-creds");
        c
    };
    let r = run_expect(m2s().arg("sync"), 1);
    assert!(
        r.stdout.contains(&format!("! {bad}-staging")) && r.stdout.contains("serving-image"),
        "{}",
        r.stdout
    );
    let objs = sb.seldon_deployments(&ns);
    assert_eq!(objs.len(), 2);
    let pod = |name: &str| objs[name]["spec"]["predictors"][0]["componentSpecs"][0]["spec"].clone();
    let t = pod(&format!("{tagged}-staging"));
    assert_eq!(t["containers"][0]["name"], "model");
    assert_eq!(
        t["containers"][0]["image"],
        "registry.example.com:5000/team/mlserver:2.1"
    );
    assert_eq!(t["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(
        pod(&format!("{plain}-staging"))["containers"][0]["image"],
        "seldonio/mlflowserver:1.18.0"
    );
    assert_eq!(
        graph(&objs[&format!("{plain}-staging")])["envSecretRefName"],
        "s3-creds"
    );

    // The tag is removed: back to the default image, an update naming the change.
    ml.delete_model_tag(&tagged, "serving-image");
    let r = run_expect(m2s().arg("plan"), 1);
    assert!(
        r.stdout.contains(
            "image registry.example.com:5000/team/mlserver:2.1 → seldonio/mlflowserver:1.18.0"
        ),
        "{}",
        r.stdout
    );
    // Without the default image and secrets, those fields are removed from the objects.
    ml.delete_model_tag(&bad, "serving-image");
    run_expect(sb.m2s(&ns, &p).arg("sync"), 0);
    for o in sb.seldon_deployments(&ns).values() {
        assert!(
            o["spec"]["predictors"][0].get("componentSpecs").is_none(),
            "{o}"
        );
        assert!(graph(o).get("envSecretRefName").is_none(), "{o}");
    }
}

#[test]
fn artifact_locations_resolve_and_rebase() {
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("uris");
    let ns = sb.namespace("sync-uris");
    let exp = ml.experiment(&unique("exp"));
    // A direct s3:// source, a runs:/ source and, on MLflow 3, a logged model's models:/ source.
    let (s3, run) = (format!("{p}-s3"), format!("{p}-run"));
    for m in [&s3, &run] {
        ml.model(m);
    }
    let v = ml.version(&s3, "s3://models-bucket/fraud/7", None);
    ml.stage(&s3, &v, "Production");
    let (run_id, _) = ml.run(&exp);
    let v = ml.version(&run, &format!("runs:/{run_id}/nested/model"), Some(&run_id));
    ml.stage(&run, &v, "Production");
    let logged = sb
        .mlflow_has(LOGGED_MODELS, "the models:/<model_id> source part")
        .then(|| {
            let lm = format!("{p}-logged");
            ml.model(&lm);
            let logged = ml.post(
                "logged-models",
                json!({ "experiment_id": exp, "name": "lm" }),
            );
            let model_id = logged["model"]["info"]["model_id"]
                .as_str()
                .unwrap()
                .to_string();
            let artifact_uri = logged["model"]["info"]["artifact_uri"].as_str().unwrap();
            ml.put_mlmodel(artifact_uri, "");
            let v = ml.post(
                "model-versions/create",
                json!({ "name": lm, "source": format!("models:/{model_id}"), "model_id": model_id }),
            )["model_version"]["version"]
                .as_str()
                .unwrap()
                .to_string();
            ml.stage(&lm, &v, "Production");
            (lm, model_id)
        });

    let r = run_expect(sb.m2s(&ns, &p).arg("sync"), 0);
    // The s3:// version's files are not behind MLflow's proxy: preflight says so, once.
    assert_eq!(
        r.stdout.matches("Preflight skipped").count(),
        1,
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Preflight skipped: 1 version whose files are not behind MLflow's artifact proxy (e.g. version 1 of model")
            && r.stdout.contains("at s3://models-bucket/fraud/7: clients write to the store directly) not checked."),
        "{}",
        r.stdout
    );
    let objs = sb.seldon_deployments(&ns);
    let uri = |m: &str| {
        graph(&objs[&format!("{m}-production")])["modelUri"]
            .as_str()
            .unwrap()
            .to_string()
    };
    if let Some((lm, model_id)) = &logged {
        assert_eq!(uri(lm), format!("{ROOT}/{exp}/models/{model_id}/artifacts"));
    }
    assert_eq!(objs.len(), 2 + usize::from(logged.is_some()));
    assert_eq!(
        uri(&run),
        expected_uri(&sb, &run_id).replace("/model", "/nested/model")
    );
    // Registered straight from a bucket, outside MLflow's layout: used as it is.
    assert_eq!(uri(&s3), "s3://models-bucket/fraud/7");

    // Without a storage root: local artifact locations are not fetchable; s3:// is used as is.
    let ns2 = sb.namespace("sync-uris-noroot");
    let r = run_expect(
        sb.m2s(&ns2, &p)
            .env_remove("M2S_MLFLOW_STORAGE_ROOT")
            .arg("sync"),
        1,
    );
    assert!(
        r.stdout.contains("cannot be fetched by a SeldonDeployment"),
        "{}",
        r.stdout
    );
    let objs2 = sb.seldon_deployments(&ns2);
    assert_eq!(
        objs2.keys().collect::<Vec<_>>(),
        [&format!("{s3}-production")]
    );
    assert_eq!(
        graph(&objs2[&format!("{s3}-production")])["modelUri"],
        "s3://models-bucket/fraud/7"
    );
}

#[test]
fn mlflow_down_writes_nothing() {
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("down");
    let ns = sb.namespace("sync-down");
    let model = format!("{p}-m");
    ml.model(&model);
    let v = ml.version_from_run(&model, &ml.experiment(&unique("exp")));
    ml.stage(&model, &v, "Production");
    run_expect(sb.m2s(&ns, &p).arg("sync"), 0);
    let before = sb.resource_versions(&ns);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{closed}");
    let r = run_expect(
        sb.m2s(&ns, &p)
            .env("M2S_MLFLOW_HOST", &url)
            .args(["sync", "--allow-delete-all"]),
        1,
    );
    assert!(
        r.stderr.contains(&url) && r.stderr.contains("nothing was changed"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.resource_versions(&ns), before);
}

/// More entries than the engine plans at once (it renders and compares 256 names at a time):
/// the plan across chunk boundaries is the same as all at once.
#[test]
fn large_registry_plans_across_chunks() {
    let Some(sb) = Sandbox::get() else { return };
    let p = unique("many");
    let ns = sb.namespace("sync-many");
    let exp = sb.mlflow().experiment(&unique("exp"));
    let models: Vec<String> = (0..100).map(|i| format!("{p}-m{i:03}")).collect();
    // Seeded on 4 threads: 100 models × (Staging, Production, alias champion) = 300 entries.
    std::thread::scope(|s| {
        for chunk in models.chunks(25) {
            let (exp, url) = (&exp, sb.mlflow_url.clone());
            s.spawn(move || {
                let ml = crate::common::Mlflow::new(&url);
                for m in chunk {
                    ml.model(m);
                    let v1 = ml.version_from_run(m, exp);
                    let v2 = ml.version_from_run(m, exp);
                    ml.stage(m, &v1, "Staging");
                    ml.stage(m, &v2, "Production");
                    ml.alias(m, "champion", &v1);
                }
            });
        }
    });
    let m2s = || {
        let mut c = sb.m2s(&ns, &p);
        c.env("M2S_ALIASES", "champion");
        c
    };
    let r = run_expect(m2s().env("RUST_LOG", "m2s=debug").arg("sync"), 0);
    assert!(
        r.stdout
            .contains("Sync: 300 created, 0 updated, 0 deleted, 0 unchanged"),
        "{}",
        r.stdout
    );
    // The 200 runs behind the versions are read in batches (`runs/search` with
    // `attributes.run_id IN (...)`, MLflow 1.30+), not with one `runs/get` each.
    assert!(
        r.stderr.contains("runs/search: 200 of 200 runs found"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.seldon_deployments(&ns).len(), 300);

    // Changes spread over the name range and on both sides of the first chunk boundary: names
    // sort as <model>-champion, -production, -staging, so entry 255 (m085-champion) ends the
    // first chunk and entry 256 (m085-production) starts the second.
    let ml = sb.mlflow();
    for m in ["m000", "m084", "m085", "m099"] {
        ml.delete_alias(&format!("{p}-{m}"), "champion");
    }
    for m in ["m050", "m085"] {
        let v3 = ml.version_from_run(&format!("{p}-{m}"), &exp);
        ml.stage(&format!("{p}-{m}"), &v3, "Production");
    }
    let r = run_expect(m2s().args(["plan", "-o", "json", "--detailed-exitcode"]), 2);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        plan["summary"],
        json!({"add": 0, "change": 2, "destroy": 4, "unchanged": 294, "errors": 0})
    );
    let changes: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_string(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("delete", "m000-champion"),
        ("update", "m050-production"),
        ("delete", "m084-champion"),
        ("delete", "m085-champion"),
        ("update", "m085-production"),
        ("delete", "m099-champion"),
    ]
    .iter()
    .map(|(a, n)| (a.to_string(), format!("{p}-{n}")))
    .collect();
    assert_eq!(changes, want);
    run_expect(m2s().arg("sync"), 0);
    let before = sb.resource_versions(&ns);
    assert_eq!(before.len(), 296);
    let r = run_expect(m2s().args(["plan", "--detailed-exitcode"]), 0);
    assert!(
        r.stdout.starts_with("No changes. 296 SeldonDeployments"),
        "{}",
        r.stdout
    );
}

#[test]
fn deletion_guard_after_a_rename_names_what_the_registry_asks_for() {
    // Renaming the only model of a namespace plans `+ new`, `- old`: the guard refuses, and
    // says the registry asks for another object, not for nothing (text, JSON, plan and sync).
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("rename");
    let ns = sb.namespace("sync-rename");
    let old = format!("{p}-old");
    ml.model(&old);
    let v = ml.version_from_run(&old, &ml.experiment(&unique("exp")));
    ml.stage(&old, &v, "Production");
    run_expect(sb.m2s(&ns, &p).arg("sync"), 0);
    let new = format!("{p}-new");
    ml.post(
        "registered-models/rename",
        json!({ "name": old, "new_name": new }),
    );
    let before = sb.resource_versions(&ns);
    let wanted =
        format!("the registry asks for none of them but for 1 other (\"{new}-production\")");
    let r = run_expect(sb.m2s(&ns, &p).arg("plan"), 1);
    assert!(
        r.stdout.contains(&format!("+ {new}-production")),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("refusing to delete the only SeldonDeployment m2s manages")
            && r.stderr.contains(&wanted),
        "{}",
        r.stderr
    );
    let r = run_expect(sb.m2s(&ns, &p).args(["plan", "-o", "json"]), 1);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(plan["deletion_guard"]["refused"], true);
    assert!(
        plan["deletion_guard"]["message"]
            .as_str()
            .unwrap()
            .contains(&wanted),
        "{plan}"
    );
    let r = run_expect(sb.m2s(&ns, &p).arg("sync"), 1);
    assert!(r.stderr.contains(&wanted), "{}", r.stderr);
    assert_eq!(sb.resource_versions(&ns), before, "nothing written");
    // Allowed, the rename goes through.
    run_expect(sb.m2s(&ns, &p).args(["sync", "--allow-delete-all"]), 0);
    let names: Vec<String> = sb.seldon_deployments(&ns).into_keys().collect();
    assert_eq!(names, [format!("{new}-production")]);
}
