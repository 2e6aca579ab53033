//! Every serving target against the sandbox's real CRDs (Seldon Core 1.18 SeldonDeployment,
//! KServe v0.20.0 InferenceService, Seldon Core 2.10.2 Model): the same registry → objects loop
//! with the same guarantees, and the per-model settings and overlay landing where each target
//! expects them. Each scenario runs once per target (the `per_target!` modules at the end).

use std::collections::BTreeMap;

use crate::common::{run, run_expect, unique, Sandbox};
use serde_json::{json, Value};

fn kind(target: &str) -> &'static str {
    m2s::targets::by_id(target).unwrap().resource().kind
}

/// Where each target keeps the model URI and the memory request.
fn pointer(target: &str, what: &str) -> &'static str {
    match (target, what) {
        ("seldon-v1", "uri") => "/spec/predictors/0/graph/modelUri",
        ("seldon-v1", "memory") => {
            "/spec/predictors/0/componentSpecs/0/spec/containers/0/resources/requests/memory"
        }
        ("seldon-v1", "replicas") => "/spec/predictors/0/replicas",
        ("kserve", "uri") => "/spec/predictor/model/storageUri",
        ("kserve", "memory") => "/spec/predictor/model/resources/requests/memory",
        ("kserve", "replicas") => "/spec/predictor/minReplicas",
        ("seldon-v2", "uri") => "/spec/storageUri",
        ("seldon-v2", "memory") => "/spec/memory",
        ("seldon-v2", "replicas") => "/spec/replicas",
        _ => unreachable!("{target} {what}"),
    }
}

fn ann<'a>(o: &'a Value, key: &str) -> &'a str {
    o["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no annotation {key} on {o}"))
}

/// A valid object of `target`'s kind that is not m2s's.
fn foreign(target: &str, name: &str) -> Value {
    let r = m2s::targets::by_id(target).unwrap().resource();
    let spec = match target {
        "seldon-v1" => {
            json!({"predictors": [{"name": "default", "graph": {"name": "x", "implementation": "SKLEARN_SERVER", "modelUri": "s3://someone/else"}}]})
        }
        "kserve" => {
            json!({"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://someone/else"}}})
        }
        _ => json!({"storageUri": "s3://someone/else", "requirements": ["sklearn"]}),
    };
    json!({"apiVersion": r.api_version(), "kind": r.kind, "metadata": {"name": name, "labels": {"owner": "someone-else"}}, "spec": spec})
}

struct Setup {
    sb: Sandbox,
    ns: String,
    prefix: String,
    target: &'static str,
    experiment: String,
}

impl Setup {
    fn new(sb: Sandbox, tag: &str, target: &'static str) -> Setup {
        // Short names: KServe's predictor host label <name>-predictor-<namespace> has 63
        // characters at most (m2s refuses longer ones before writing).
        let ns = sb.namespace("t");
        let prefix = unique("m");
        let experiment = sb.mlflow().experiment(&unique(&format!("{tag}-exp")));
        Setup {
            sb,
            ns,
            prefix,
            target,
            experiment,
        }
    }
    fn m2s(&self) -> std::process::Command {
        let mut c = self.sb.m2s_target(&self.ns, &self.prefix, self.target);
        c.env("M2S_ALIASES", "champion");
        c
    }
    fn objects(&self) -> BTreeMap<String, Value> {
        self.sb.objects(&self.ns, self.target)
    }
    fn rvs(&self) -> BTreeMap<String, String> {
        self.sb.resource_versions_of(&self.ns, self.target)
    }
    /// A registered model with one version in Production; returns (model, version).
    fn production(&self, suffix: &str) -> (String, String) {
        let model = format!("{}-{suffix}", self.prefix);
        let ml = self.sb.mlflow();
        ml.model(&model);
        let v = ml.version_from_run(&model, &self.experiment);
        ml.stage(&model, &v, "Production");
        (model, v)
    }
}

fn lifecycle(target: &'static str) {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, "tgt-life", target);
    let ml = s.sb.mlflow();
    let model = format!("{}-iris", s.prefix);
    ml.model(&model);
    let v1 = ml.version_from_run(&model, &s.experiment);
    let v2 = ml.version_from_run(&model, &s.experiment);
    let v3 = ml.version_from_run(&model, &s.experiment);
    ml.stage(&model, &v1, "Staging");
    ml.stage(&model, &v2, "Production");
    ml.alias(&model, "champion", &v1);
    let kinds = format!("{}s", kind(target));

    let r = run_expect(s.m2s().args(["plan", "--detailed-exitcode"]), 2);
    assert!(
        r.stdout.contains(&format!(
            "m2s will make these changes to {kinds} in namespace"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("+ {model}-production")),
        "{}",
        r.stdout
    );
    assert!(s.objects().is_empty());

    run_expect(s.m2s().arg("sync"), 0);
    let objs = s.objects();
    assert_eq!(
        objs.keys().cloned().collect::<Vec<_>>(),
        [
            format!("{model}-champion"),
            format!("{model}-production"),
            format!("{model}-staging")
        ]
    );
    let prod = &objs[&format!("{model}-production")];
    assert_eq!(prod["kind"], kind(target));
    assert_eq!(
        prod["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "m2s"
    );
    assert_eq!(ann(prod, "m2s.io/model-version"), v2);
    assert_eq!(ann(prod, "m2s.io/stage"), "Production");
    let uri = prod
        .pointer(pointer(target, "uri"))
        .and_then(Value::as_str)
        .unwrap();
    assert!(
        uri.starts_with("s3://mlflow/mlruns/") && uri.ends_with("/artifacts/model"),
        "{uri}"
    );
    assert_eq!(ann(prod, "m2s.io/model-uri"), uri);
    assert_eq!(
        ann(&objs[&format!("{model}-champion")], "m2s.io/alias"),
        "champion"
    );

    // The JSON plan names the kind; a no-op run writes nothing and asks MLflow one page.
    let r = run_expect(
        s.m2s().args(["plan", "-o", "json", "--detailed-exitcode"]),
        0,
    );
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (plan["kind"].as_str(), plan["target"].as_str()),
        (Some(kind(target)), Some(target))
    );
    let before = s.rvs();
    let r = run_expect(s.m2s().env("RUST_LOG", "m2s=debug").arg("sync"), 0);
    assert!(
        r.stdout
            .starts_with(&format!("No changes. 3 {kinds} in namespace")),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("requests: MLflow 1, Kubernetes 1 (0 writes)"),
        "{}",
        r.stderr
    );
    assert_eq!(s.rvs(), before);

    // Production moves to v3, the alias to v2, Staging empties.
    ml.stage(&model, &v3, "Production");
    ml.stage(&model, &v2, "Archived");
    ml.stage(&model, &v1, "Archived");
    ml.alias(&model, "champion", &v2);
    let uid = prod["metadata"]["uid"].clone();
    let r = run_expect(s.m2s().arg("sync"), 0);
    assert!(
        r.stdout
            .contains("Plan: 0 to add, 2 to change, 1 to destroy."),
        "{}",
        r.stdout
    );
    let objs = s.objects();
    assert_eq!(objs.len(), 2);
    let prod = &objs[&format!("{model}-production")];
    assert_eq!(prod["metadata"]["uid"], uid, "updated in place");
    assert_eq!(ann(prod, "m2s.io/model-version"), v3);
    assert_eq!(
        ann(&objs[&format!("{model}-champion")], "m2s.io/model-version"),
        v2
    );

    // Alias removed → delete; then everything goes: refused, then allowed.
    ml.delete_alias(&model, "champion");
    run_expect(s.m2s().arg("sync"), 0);
    assert_eq!(s.objects().len(), 1);
    ml.delete_model(&model);
    let r = run_expect(s.m2s().arg("sync"), 1);
    assert!(
        r.stderr
            .contains(&format!("refusing to delete the only {}", kind(target))),
        "{}",
        r.stderr
    );
    assert_eq!(s.objects().len(), 1);
    run_expect(s.m2s().args(["sync", "--allow-delete-all"]), 0);
    assert!(s.objects().is_empty());
}

fn dry_run_and_foreign_objects(target: &'static str) {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, "tgt-dry", target);
    let (mine, _) = s.production("mine");
    let (taken, _) = s.production("taken");
    let taken_name = format!("{taken}-production");
    let theirs = foreign(target, &taken_name);
    s.sb.kubectl_apply_json(&s.ns, &theirs);
    let their_rv = s.rvs()[&taken_name].clone();

    let r = run_expect(s.m2s().args(["sync", "--dry-run"]), 1);
    assert!(
        r.stdout.contains("Dry run (nothing persisted): 1 created"),
        "{}",
        r.stdout
    );
    assert_eq!(s.objects().len(), 1, "the dry run persisted nothing");

    let r = run_expect(s.m2s().arg("sync"), 1);
    let message = format!("a {} named {taken_name:?} already exists", kind(target));
    assert!(r.stdout.contains(&message), "{}", r.stdout);
    let objs = s.objects();
    assert!(objs.contains_key(&format!("{mine}-production")));
    assert_eq!(
        objs[&taken_name]["metadata"]["resourceVersion"],
        their_rv.as_str()
    );
    assert!(objs[&taken_name]["metadata"]["labels"]
        .get("app.kubernetes.io/managed-by")
        .is_none());
}

fn rejected_object_fails_alone(target: &'static str) {
    // The API server refuses annotations over 256 KiB in total; MLflow accepts a 100 KB source,
    // which m2s records on the object.
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, "tgt-422", target);
    let (good, _) = s.production("good");
    let big = format!("{}-big", s.prefix);
    let ml = s.sb.mlflow();
    ml.model(&big);
    let v = ml.version(&big, &format!("s3://bucket/{}", "x".repeat(100_000)), None);
    ml.stage(&big, &v, "Production");
    let r = run(s.m2s().arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains(&format!("1 of 2 changes failed: {big}-production")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Too long"),
        "the API server's reason: {}",
        r.stderr
    );
    let objs = s.objects();
    assert!(objs.contains_key(&format!("{good}-production")));
    assert!(!objs.contains_key(&format!("{big}-production")));
}

fn settings_from_tags(target: &'static str) {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, "tgt-set", target);
    let ml = s.sb.mlflow();
    let (sized, v) = s.production("sized");
    ml.set_model_tag(&sized, "m2s.memory", "1024Mi");
    ml.set_model_tag(&sized, "m2s.replicas", "2");
    ml.post(
        "model-versions/set-tag",
        json!({"name": sized, "version": v, "key": "m2s.replicas", "value": "3"}),
    );
    let (plain, _) = s.production("plain");
    run_expect(s.m2s().arg("sync"), 0);
    let objs = s.objects();
    let o = &objs[&format!("{sized}-production")];
    assert_eq!(
        o.pointer(pointer(target, "memory")),
        Some(&json!("1Gi")),
        "{o}"
    );
    assert_eq!(
        o.pointer(pointer(target, "replicas")),
        Some(&json!(3)),
        "the version's tag wins: {o}"
    );
    assert!(objs[&format!("{plain}-production")]
        .pointer(pointer(target, "memory"))
        .is_none());

    // Another spelling of the same memory, in the tag and in the stored object: no change.
    ml.set_model_tag(&sized, "m2s.memory", "1Gi");
    let name = format!("{sized}-production");
    let patch =
        json!([{"op": "replace", "path": pointer(target, "memory"), "value": "1073741824"}]);
    s.sb.kubectl_ok(&[
        "-n",
        &s.ns,
        "patch",
        &crate::common::resource_of(target),
        &name,
        "--type=json",
        "-p",
        &patch.to_string(),
    ]);
    let r = run_expect(s.m2s().args(["plan", "--detailed-exitcode"]), 0);
    assert!(r.stdout.starts_with("No changes."), "{}", r.stdout);

    // A real change is named; a bad value holds that object and lets the others proceed.
    ml.set_model_tag(&sized, "m2s.memory", "2Gi");
    let r = run_expect(s.m2s().args(["plan", "--detailed-exitcode"]), 2);
    assert!(
        r.stdout.contains("memory") && r.stdout.contains("→ 2Gi"),
        "{}",
        r.stdout
    );
    ml.set_model_tag(&sized, "m2s.memory", "lots");
    ml.set_model_tag(&plain, "m2s.replicas", "2");
    let before = s.rvs();
    let r = run_expect(s.m2s().arg("sync"), 1);
    assert!(
        r.stdout.contains(&format!("! {sized}-production"))
            && r.stdout.contains(&format!(
                "tag m2s.memory=\"lots\" on registered model {sized:?}"
            )),
        "{}",
        r.stdout
    );
    let after = s.rvs();
    assert_eq!(
        after[&name], before[&name],
        "the object with the bad tag is left as it is"
    );
    assert_ne!(
        after[&format!("{plain}-production")],
        before[&format!("{plain}-production")]
    );
}

fn overlay(target: &'static str) {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, "tgt-ovl", target);
    let (model, _) = s.production("m");
    let dir = std::env::temp_dir().join(unique("overlay"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("overlay.yaml");
    let platform = match target {
        "kserve" => "spec:\n  predictor:\n    nodeSelector:\n      pool: ml\n    tolerations:\n    - {key: gpu, operator: Exists}\n",
        "seldon-v2" => "spec:\n  server: mlserver-ml\n",
        _ => "spec:\n  annotations:\n    seldon.io/engine-separate-pod: \"false\"\n",
    };
    std::fs::write(
        &file,
        format!("metadata:\n  labels:\n    cost-center: ml-42\n{platform}"),
    )
    .unwrap();
    let with_overlay = || {
        let mut c = s.m2s();
        c.env("M2S_OVERLAY", &file);
        c
    };
    run_expect(with_overlay().arg("sync"), 0);
    let o = &s.objects()[&format!("{model}-production")];
    assert_eq!(o["metadata"]["labels"]["cost-center"], "ml-42");
    match target {
        "kserve" => assert_eq!(o["spec"]["predictor"]["nodeSelector"]["pool"], "ml"),
        "seldon-v2" => assert_eq!(o["spec"]["server"], "mlserver-ml"),
        _ => assert_eq!(
            o["spec"]["annotations"]["seldon.io/engine-separate-pod"],
            "false"
        ),
    }
    run_expect(with_overlay().args(["plan", "--detailed-exitcode"]), 0);
    // A changed overlay updates every object, saying so.
    std::fs::write(
        &file,
        format!("metadata:\n  labels:\n    cost-center: ml-43\n{platform}"),
    )
    .unwrap();
    let r = run_expect(with_overlay().args(["plan", "--detailed-exitcode"]), 2);
    assert!(r.stdout.contains("overlay changed"), "{}", r.stdout);
    // A forbidden path is refused at start, naming it, before anything is read or written.
    std::fs::write(&file, "metadata:\n  name: elsewhere\n").unwrap();
    let before = s.rvs();
    let r = run_expect(with_overlay().arg("sync"), 1);
    assert!(r.stderr.contains("/metadata/name"), "{}", r.stderr);
    assert_eq!(s.rvs(), before);
}

/// KServe names fit the namespace (issue: names that fit, instead of refusals): in a namespace
/// of 21 characters such as `ml-serving-production`, a model named `2024-…` (its name must
/// start with a letter) and one of 40 characters are deployed, each under a name whose
/// predictor host label `<name>-predictor-<namespace>` has at most 63 characters. Before, both
/// were refused.
#[test]
fn kserve_names_fit_a_realistic_namespace() {
    let Some(sb) = Sandbox::get() else { return };
    let stamp = unique("x");
    let tail: String = stamp.chars().filter(char::is_ascii_alphanumeric).collect();
    let ns = format!("ml-serving-{:0>10}", &tail[tail.len().saturating_sub(10)..]);
    assert_eq!(ns.len(), 21, "{ns}");
    sb.kubectl_ok(&["create", "namespace", &ns]);
    let prefix = unique("nf");
    let experiment = sb.mlflow().experiment(&unique("names-exp"));
    let dated = format!("2024-{prefix}");
    let long = format!("{prefix}-customer-churn-classifier-champion-model");
    let long: String = long.chars().take(40).collect();
    assert_eq!(long.len(), 40, "{long}");
    let ml = sb.mlflow();
    for model in [&dated, &long] {
        ml.model(model);
        let v = ml.version_from_run(model, &experiment);
        ml.stage(model, &v, "Production");
    }
    // The models' names start with 2024- or the prefix: a filter that matches both.
    let m2s = |command: &str| {
        let mut c = sb.m2s_target(&ns, &prefix, "kserve");
        c.env("M2S_MODEL_FILTER", format!("name LIKE '%{prefix}%'"))
            .arg(command);
        c
    };
    let out = run_expect(&mut m2s("sync"), 0);
    assert!(out.stdout.contains("2 created"), "{}", out.stdout);
    let objects = sb.objects(&ns, "kserve");
    assert_eq!(objects.len(), 2, "{:?}", objects.keys());
    for (name, o) in &objects {
        let model = ann(o, "m2s.io/model-name");
        assert!(model == dated || model == long, "{model}");
        let host_label = format!("{name}-predictor-{ns}");
        assert!(
            host_label.len() <= 63,
            "{host_label} ({})",
            host_label.len()
        );
        assert!(
            name.starts_with(|c: char| c.is_ascii_lowercase()),
            "KServe's IsvcNameFmt: {name}"
        );
    }
    // A second run finds them where it put them.
    let again = run_expect(&mut m2s("plan"), 0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
}

macro_rules! per_target {
    ($module:ident, $target:literal) => {
        mod $module {
            #[test]
            fn lifecycle() {
                super::lifecycle($target);
            }
            #[test]
            fn dry_run_and_foreign_objects() {
                super::dry_run_and_foreign_objects($target);
            }
            #[test]
            fn rejected_object_fails_alone() {
                super::rejected_object_fails_alone($target);
            }
            #[test]
            fn settings_from_tags() {
                super::settings_from_tags($target);
            }
            #[test]
            fn overlay() {
                super::overlay($target);
            }
        }
    };
}

per_target!(seldon_v1, "seldon-v1");
per_target!(kserve, "kserve");
per_target!(seldon_v2, "seldon-v2");
