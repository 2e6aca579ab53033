//! The Helm chart (chart/m2s), its schema and manifests, the Makefile's helm_deploy/helm_delete
//! scripts (with fake helm and kubectl), and the chart's RBAC against the sandbox API server.
//!
//! Needs `$M2S_SANDBOX_BIN/helm` and `kubectl` (or the running sandbox's env file), bash, and for
//! the manifest checks a venv with kubernetes-validate and PyYAML that tests/chart/validate.sh
//! installs from PyPI. Missing ones fail the test when CI=true or M2S_SANDBOX_REQUIRED=1, and
//! skip it (SKIP: on stderr) otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::chart_support::*;
use crate::need;
use m2s::targets::{Setting, Target, TARGETS};
use serde_json::{json, Value};

/// The verbs m2s sends: exactly what the chart's Role grants (no `update`: m2s never sends a PUT).
const ROLE_VERBS: [&str; 5] = ["get", "list", "create", "patch", "delete"];

// ---------------------------------------------------------------------------------------------
// helm lint / template / schema

#[test]
fn lint_strict_passes_for_every_target() {
    let helm = need!(helm());
    for target in TARGETS {
        let out = run(Command::new(&helm)
            .args(["lint", "--strict"])
            .arg(chart_dir())
            .args(["--set", &format!("mlflow.host={MLFLOW_HOST}")])
            .args(["--set", &format!("target={}", target.id())])
            .args(["--set-string", "overlay=metadata: {labels: {team: a}}"]))
        .unwrap();
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            out.status.success(),
            "{target:?}: helm lint --strict failed:\n{all}"
        );
        assert!(stdout(&out).contains("0 chart(s) failed"), "{all}");
        // A value helm cannot merge (e.g. a string over a mapping default) only warns.
        assert!(!all.contains("warning"), "{target:?}: {all}");
    }
}

#[test]
fn template_renders_only_namespaced_objects() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let docs = render(&helm, &python, &[]);
    let kinds: BTreeSet<&str> = docs.iter().map(kind).collect();
    // The Pod is `helm test`'s (a hook: helm test creates it, not helm install).
    assert_eq!(
        kinds,
        BTreeSet::from(["CronJob", "Pod", "Role", "RoleBinding", "ServiceAccount"])
    );
    assert_eq!(docs.len(), 5);
    // With the namespace toggle (another namespace than the release's) a Namespace is added,
    // kept on uninstall.
    let docs = render(
        &helm,
        &python,
        &[
            "--set",
            "serving.namespace=models",
            "--set",
            "serving.createNamespace=true",
        ],
    );
    let ns = one(&docs, "Namespace");
    assert_eq!(ns["metadata"]["name"], "models");
    assert_eq!(
        ns["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    // Toggles off: no ServiceAccount, Role or RoleBinding.
    let docs = render(
        &helm,
        &python,
        &[
            "--set",
            "serviceAccount.create=false",
            "--set",
            "serviceAccount.name=existing",
            "--set",
            "rbac.create=false",
        ],
    );
    let kinds: Vec<&str> = docs.iter().map(kind).collect();
    assert_eq!(kinds, ["CronJob", "Pod"]);
    assert_eq!(pod_spec(&docs)["serviceAccountName"], "existing");
}

/// The chart's minimum Kubernetes (README "Supported versions"): its CronJob is `batch/v1`,
/// served from 1.21 on, and helm refuses an older cluster before rendering anything.
#[test]
fn chart_needs_kubernetes_1_21() {
    let helm = need!(helm());
    let out = helm_template(&helm, &["--kube-version", "1.20.2"]).unwrap();
    assert!(!out.status.success(), "rendered for 1.20.2");
    assert!(
        stderr(&out).contains("chart requires kubeVersion: >=1.21.0-0"),
        "{}",
        stderr(&out)
    );
    let out = helm_template(&helm, &["--kube-version", "1.21.0"]).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("apiVersion: batch/v1\nkind: CronJob"));
}

#[test]
fn schema_rejects_unknown_keys_at_every_level() {
    let helm = need!(helm());
    for key in [
        "schedul",
        "dryrun",
        "mlflow.hots",
        "mlflow.existingSecretKeys.tokn",
        "serving.namspace",
        "serving.seldonImage",
        "seldon.namspace",
        // The deprecated block has only the keys it had; serviceAccount is new in serving.
        "seldon.serviceAccount",
        "image.tga",
        "serviceAccount.crate",
        "rbac.createe",
    ] {
        let out = helm_template(&helm, &["--set-string", &format!("{key}=x")]).unwrap();
        assert!(!out.status.success(), "unknown key {key} was accepted");
        let err = stderr(&out);
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            err.contains("additional properties") && err.contains(leaf),
            "unknown key {key}: expected a schema error naming it, got:\n{err}"
        );
    }
}

#[test]
fn schema_rejects_wrong_types() {
    let helm = need!(helm());
    let cases: [&[&str]; 18] = [
        &["--set-string", "suspend=yes"],
        &["--set-string", "dryRun=true"],
        &["--set-string", "maxDeletes=3"],
        &["--set", "maxDeletes=-1"],
        &["--set-string", "aliases=champion"],
        &["--set", "concurrency=0"],
        &["--set", "schedule=5"],
        &["--set", "image.pullPolicy=Sometimes"],
        &["--set", "serving.namespace=Not_A_Namespace"],
        &["--set", "seldon.namespace=Not_A_Namespace"],
        &["--set", "serving.serviceAccount=Not_A_Name"],
        &["--set-string", "serving.createNamespace=true"],
        &["--set", "overlay=5"],
        &["--set", "overlay=true"],
        &["--set", "serving.seldonProtocol=grpc"],
        &["--set-string", "preflight.enabled=false"],
        &["--set", "preflight.runtimeMlflowVersion=latest"],
        &["--set", "rollout.canaryDeadline=15 minutes"],
    ];
    for args in cases {
        template_fails(&helm, args, "schema");
    }
}

#[test]
fn schema_knows_exactly_the_targets_m2s_has() {
    let helm = need!(helm());
    // The enum is m2s's own list of targets, and the default is m2s's default.
    let schema: Value =
        serde_json::from_str(&fs::read_to_string(chart_dir().join("values.schema.json")).unwrap())
            .unwrap();
    let ids: Vec<&str> = TARGETS.iter().map(|t| t.id()).collect();
    assert_eq!(schema["properties"]["target"]["enum"], json!(ids));
    let values = fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    assert!(
        values.contains(&format!("\ntarget: {}\n", ids[0])),
        "values.yaml: the default target is not {}",
        ids[0]
    );
    for bad in ["knative", "seldon", "KServe", ""] {
        let out = helm_template(&helm, &["--set-string", &format!("target={bad}")]).unwrap();
        assert!(!out.status.success(), "target {bad:?} was accepted");
        let err = stderr(&out);
        assert!(
            err.contains("/target") && ids.iter().all(|id| err.contains(id)),
            "target {bad:?}: expected a schema error listing the targets, got:\n{err}"
        );
    }
}

#[test]
fn missing_mlflow_host_fails_with_a_clear_message() {
    let helm = need!(helm());
    let out = run(Command::new(&helm)
        .args(["template", "m2s"])
        .arg(chart_dir())
        .args(["-n", RELEASE_NS]))
    .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("mlflow.host is required"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inconsistent_values_fail() {
    let helm = need!(helm());
    let cases: [(&[&str], &str); 5] = [
        (
            &["--set", "mlflow.host=https://user:secret@mlflow.example"],
            "must not contain credentials",
        ),
        (
            &[
                "--set",
                "runTimeoutSeconds=900",
                "--set",
                "activeDeadlineSeconds=900",
            ],
            "must be below activeDeadlineSeconds",
        ),
        (
            &["--set", "serving.createNamespace=true"],
            "serving.createNamespace: the serving namespace is the release namespace",
        ),
        (
            &["--set", "seldon.createNamespace=true"],
            "seldon.createNamespace: the serving namespace is the release namespace",
        ),
        (
            &["--set-string", "overlay=- a list"],
            "overlay is not a YAML or JSON mapping",
        ),
    ];
    for (args, message) in cases {
        let err = template_fails(&helm, args, message);
        assert!(
            !err.contains("secret@"),
            "the error repeats the credentials"
        );
    }
}

/// The keys the deprecated `seldon:` block shares with `serving:`, with a valid value each.
const SERVING_KEYS: [(&str, &str); 5] = [
    ("namespace", "models"),
    ("createNamespace", "true"),
    ("defaultImage", "registry.example/mlserver:1.2"),
    ("registrySecret", "regcred"),
    ("modelSecret", "s3-creds"),
];

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn set_block(block: &str) -> Vec<String> {
    SERVING_KEYS
        .iter()
        .flat_map(|(k, v)| ["--set".to_string(), format!("{block}.{k}={v}")])
        .collect()
}

#[test]
fn deprecated_seldon_keys_still_work() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let new = set_block("serving");
    let old = set_block("seldon");
    let with_new = render_yaml(&helm, &as_strs(&new));
    // The old keys give byte-for-byte the same manifests, and so do both blocks agreeing.
    assert_eq!(render_yaml(&helm, &as_strs(&old)), with_new);
    let both: Vec<String> = new.iter().chain(&old).cloned().collect();
    assert_eq!(render_yaml(&helm, &as_strs(&both)), with_new);
    // ... and they do reach the manifests.
    let docs = render(&helm, &python, &as_strs(&old));
    assert_eq!(one(&docs, "Namespace")["metadata"]["name"], "models");
    assert_eq!(one(&docs, "Role")["metadata"]["namespace"], "models");
    for (var, value) in [
        ("M2S_NAMESPACE", "models"),
        ("M2S_SELDON_DEF_IMAGE", "registry.example/mlserver:1.2"),
        ("M2S_REGISTRY_SECRET", "regcred"),
        ("M2S_MODEL_SECRET", "s3-creds"),
    ] {
        assert_eq!(env_value(&docs, var).as_deref(), Some(value), "{var}");
    }
    assert_eq!(env_value(&docs, "M2S_SELDON_DEPLOYMENT_NS"), None);
}

#[test]
fn serving_and_seldon_keys_that_disagree_fail_naming_both() {
    let helm = need!(helm());
    for (key, value) in SERVING_KEYS {
        if key == "createNamespace" {
            continue; // false is its default, so only `true` says anything: they cannot disagree.
        }
        let out = helm_template(
            &helm,
            &[
                "--set",
                &format!("serving.{key}={value}"),
                "--set",
                &format!("seldon.{key}=other"),
            ],
        )
        .unwrap();
        assert!(
            !out.status.success(),
            "serving.{key} and seldon.{key} differ"
        );
        let err = stderr(&out);
        assert!(
            err.contains(&format!("serving.{key} ({value})"))
                && err.contains(&format!("seldon.{key} (other)")),
            "{key}: expected an error naming both keys and values, got:\n{err}"
        );
    }
}

#[test]
fn settings_without_a_counterpart_on_the_target_fail() {
    // The chart refuses at install what m2s would refuse at every run (config.rs), naming the
    // value and the target; the settings a target has render as before.
    let helm = need!(helm());
    let python = need!(kv_python());
    let settings = [
        (
            "defaultImage",
            Setting::Image,
            "M2S_SELDON_DEF_IMAGE",
            "registry.example/img:1",
        ),
        (
            "registrySecret",
            Setting::RegistrySecret,
            "M2S_REGISTRY_SECRET",
            "regcred",
        ),
        (
            "modelSecret",
            Setting::ModelSecret,
            "M2S_MODEL_SECRET",
            "s3-creds",
        ),
        (
            "serviceAccount",
            Setting::ServiceAccount,
            "M2S_SERVICE_ACCOUNT",
            "models-sa",
        ),
    ];
    let mut refused = 0;
    for target in TARGETS {
        for (key, setting, var, value) in settings {
            let has = target.fields().iter().any(|f| f.setting == setting);
            let blocks: &[&str] = if key == "serviceAccount" {
                &["serving"]
            } else {
                &["serving", "seldon"]
            };
            for block in blocks {
                let args = [
                    "--set".to_string(),
                    format!("target={}", target.id()),
                    "--set-string".to_string(),
                    format!("{block}.{key}={value}"),
                ];
                let args = as_strs(&args);
                if has {
                    let docs = yaml_docs(&python, &render_yaml(&helm, &args));
                    assert_eq!(env_value(&docs, var).as_deref(), Some(value), "{args:?}");
                } else {
                    refused += 1;
                    let expected = format!(
                        "{block}.{key} has no counterpart on target {} ({})",
                        target.id(),
                        target.resource().kind
                    );
                    template_fails(&helm, &args, &expected);
                }
            }
        }
    }
    // seldon-v2: image, registry secret, service account (serving and seldon where both
    // exist); kserve: model secret (both blocks).
    assert_eq!(refused, 7);
}

#[test]
fn the_seldon_protocol_is_refused_where_the_target_has_no_protocols() {
    // serving.seldonProtocol chooses a SeldonDeployment's server: on the other targets the
    // chart refuses it at install, as m2s would at every run.
    let helm = need!(helm());
    let python = need!(kv_python());
    for target in TARGETS {
        let args = [
            "--set".to_string(),
            format!("target={}", target.id()),
            "--set".to_string(),
            "serving.seldonProtocol=v2".to_string(),
        ];
        let args = as_strs(&args);
        if target.protocols().is_empty() {
            let expected = format!(
                "serving.seldonProtocol has no counterpart on target {} ({})",
                target.id(),
                target.resource().kind
            );
            template_fails(&helm, &args, &expected);
        } else {
            let docs = yaml_docs(&python, &render_yaml(&helm, &args));
            assert_eq!(
                env_value(&docs, "M2S_SELDON_PROTOCOL").as_deref(),
                Some("v2"),
                "{args:?}"
            );
        }
    }
}

#[test]
fn notes_tell_how_to_run_now_and_read_logs() {
    let helm = need!(helm());
    let dir = temp_dir("notes");
    let out = run(Command::new(&helm)
        .args(["install", "m2s"])
        .arg(chart_dir())
        .args([
            "-n",
            RELEASE_NS,
            "--dry-run=client",
            "--set",
            &format!("mlflow.host={MLFLOW_HOST}"),
        ])
        .env("KUBECONFIG", dir.join("none"))
        .env("HELM_CACHE_HOME", dir.join("cache"))
        .env("HELM_CONFIG_HOME", dir.join("config"))
        .env("HELM_DATA_HOME", dir.join("data")))
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let notes = text.split("NOTES:").nth(1).expect("NOTES in the output");
    assert!(
        notes.contains("kubectl create job --from=cronjob/m2s m2s-manual -n m2s-system"),
        "{notes}"
    );
    assert!(
        notes.contains("kubectl logs job/m2s-manual -n m2s-system"),
        "{notes}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn notes_name_the_targets_kind_and_the_serving_namespace() {
    let helm = need!(helm());
    for target in TARGETS {
        for (extra, ns) in [
            (None, RELEASE_NS),
            (Some("serving.namespace=models"), "models"),
        ] {
            let dir = temp_dir("notes");
            let mut cmd = Command::new(&helm);
            cmd.args(["install", "m2s"])
                .arg(chart_dir())
                .args(["-n", RELEASE_NS, "--dry-run=client"])
                .args(["--set", &format!("mlflow.host={MLFLOW_HOST}")])
                .args(["--set", &format!("target={}", target.id())])
                .env("KUBECONFIG", dir.join("none"))
                .env("HELM_CACHE_HOME", dir.join("cache"))
                .env("HELM_CONFIG_HOME", dir.join("config"))
                .env("HELM_DATA_HOME", dir.join("data"));
            if let Some(extra) = extra {
                cmd.args(["--set", extra]);
            }
            let out = run(&mut cmd).unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            let text = stdout(&out);
            let notes = text.split("NOTES:").nth(1).expect("NOTES in the output");
            let r = target.resource();
            let expected = [
                format!(
                    "to {}s (target {}) in namespace {ns} (",
                    r.kind,
                    target.id()
                ),
                format!(
                    "kubectl get {} -n {ns} -l m2s.io/instance=m2s",
                    r.qualified_plural()
                ),
            ];
            for e in expected {
                assert!(notes.contains(&e), "{target:?}: no {e:?} in\n{notes}");
            }
            let _ = fs::remove_dir_all(dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendered manifests

/// Every value the chart has, set (target seldon-v1: the one with every serving.* setting).
#[rustfmt::skip]
const FULL: &[&str] = &[
    "--set", "target=seldon-v1",
    "--set", "serving.namespace=models",
    "--set", "serving.createNamespace=true",
    "--set-string", "mlflow.storageRoot=s3://bucket/mlruns",
    "--set-string", "mlflow.imageTag=serving-image",
    "--set-string", "mlflow.modelFilter=name LIKE 'team-a-%'",
    "--set", "mlflow.insecureTls=true",
    "--set", "mlflow.existingSecret=mlflow-creds",
    "--set-string", "serving.defaultImage=registry.example/mlserver:1.2",
    "--set", "serving.registrySecret=regcred",
    "--set", "serving.modelSecret=s3-creds",
    "--set", "serving.serviceAccount=models-sa",
    "--set", "serving.seldonProtocol=v2",
    "--set", "preflight.enabled=false",
    "--set-string", "preflight.runtimeMlflowVersion=2.19.0",
    "--set", "rollout.canaryDeadline=20m",
    "--set", "overlay.metadata.labels.cost-center=ml",
    "--set", "overlay.metadata.annotations.team=a",
    "--set", "stages={Production}",
    "--set", "aliases={champion,challenger}",
    "--set", "instance=team-a",
    "--set", "concurrency=4",
    "--set", "requestTimeoutSeconds=20",
    "--set", "runTimeoutSeconds=300",
    "--set", "activeDeadlineSeconds=400",
    "--set", "logLevel=debug",
    "--set", "dryRun=true",
    "--set", "allowDeleteAll=true",
    "--set", "maxDeletes=5",
    "--set", "extraArgs={--plan-something}",
    "--set", "extraEnv[0].name=EXTRA",
    "--set-string", "extraEnv[0].value=1",
    "--set", "suspend=true",
    "--set", "timeZone=Europe/Berlin",
    "--set", "ttlSecondsAfterFinished=3600",
    "--set", "imagePullSecrets[0].name=pull",
    "--set", "podLabels.team=a",
    "--set", "podAnnotations.note=x",
    "--set", "nodeSelector.kubernetes\\.io/os=linux",
    "--set", "tolerations[0].key=k",
    "--set", "tolerations[0].operator=Exists",
    "--set", "serviceAccount.annotations.a=b",
    "--set", "image.repository=registry.example/m2s",
    "--set", "image.tag=1.0.0",
];

#[test]
fn manifests_validate_against_kubernetes_1_30() {
    let helm = need!(helm());
    need!(kv_python());
    let dir = temp_dir("kv");
    let overlay_text = "# platform settings\nmetadata:\n  labels: {cost-center: ml}\n";
    let string_overlay = format!("overlay={overlay_text}");
    let kserve: &[&str] = &[
        "--set",
        "target=kserve",
        "--set",
        "serving.namespace=models",
        "--set",
        "serving.serviceAccount=models-sa",
        "--set-string",
        &string_overlay,
    ];
    let base = [
        "serviceaccount/m2s",
        "role/m2s",
        "rolebinding/m2s",
        "cronjob/m2s",
        "pod/m2s-test-plan",
    ];
    let cases: [(&str, &[&str], &[&str]); 3] = [
        ("default", &[], &[]),
        ("full", FULL, &["namespace/models", "configmap/m2s-overlay"]),
        ("kserve", kserve, &["configmap/m2s-overlay"]),
    ];
    for (name, args, extra) in cases {
        let file = dir.join(format!("{name}.yaml"));
        fs::write(&file, render_yaml(&helm, args)).unwrap();
        let out = run(Command::new("bash")
            .arg(repo().join("tests/chart/validate.sh"))
            .arg(&file))
        .unwrap();
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            out.status.success(),
            "{name}: kubernetes-validate --strict failed:\n{all}"
        );
        assert_eq!(
            all.matches("passed for resource").count(),
            base.len() + extra.len(),
            "{name}:\n{all}"
        );
        for resource in base.iter().chain(extra) {
            assert!(
                all.contains(&format!(
                    "passed for resource {resource} against version 1.30"
                )),
                "{name}: {resource} not validated:\n{all}"
            );
        }
    }
    // The validator does catch a broken manifest (the check is not vacuous).
    let bad = render_yaml(&helm, &[]).replace(
        "restartPolicy: Never",
        "restartPolicy: Never\n          restartPolicyy: Never",
    );
    let file = dir.join("bad.yaml");
    fs::write(&file, bad).unwrap();
    let out = run(Command::new("bash")
        .arg(repo().join("tests/chart/validate.sh"))
        .arg(&file))
    .unwrap();
    assert!(
        !out.status.success(),
        "an unknown field passed strict validation"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn rbac_is_namespaced_minimal_and_on_exactly_the_targets_resource() {
    let helm = need!(helm());
    let python = need!(kv_python());
    // target x serving namespace: the Role names exactly the resource m2s uses for that target.
    for target in TARGETS {
        let r = target.resource();
        let set_target = format!("target={}", target.id());
        for (ns_args, serving_ns) in [
            (&[][..], RELEASE_NS),
            (&["--set", "serving.namespace=models"][..], "models"),
        ] {
            let mut args = vec!["--set", set_target.as_str()];
            args.extend_from_slice(ns_args);
            let docs = render(&helm, &python, &args);
            for k in ["ClusterRole", "ClusterRoleBinding", "Secret"] {
                assert!(docs.iter().all(|d| kind(d) != k), "a {k} is rendered");
            }
            let role = one(&docs, "Role");
            assert_eq!(role["metadata"]["namespace"], serving_ns);
            let rules = role["rules"].as_array().unwrap();
            // The serving objects, and Events (on by default; see events_wait_and_write_back);
            // with Seldon Core 2 its Experiments too (chart_conventions::seldon_v2_experiments).
            let experiments = usize::from(target.id() == "seldon-v2");
            assert_eq!(rules.len(), 2 + experiments, "{rules:?}");
            assert_eq!(rules[1 + experiments], events_rule());
            assert_eq!(rules[0]["apiGroups"], json!([r.group]), "{target:?}");
            assert_eq!(rules[0]["resources"], json!([r.plural]), "{target:?}");
            assert!(
                rules[0].get("resourceNames").is_none()
                    && rules[0].get("nonResourceURLs").is_none()
            );
            let verbs: Vec<&str> = rules[0]["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(verbs, ROLE_VERBS, "{target:?}");
            assert!(!role.to_string().contains("secrets"));

            let sa = one(&docs, "ServiceAccount");
            assert_eq!(sa["metadata"]["namespace"], RELEASE_NS);
            assert_eq!(sa["automountServiceAccountToken"], false);
            let binding = one(&docs, "RoleBinding");
            assert_eq!(binding["metadata"]["namespace"], serving_ns);
            assert_eq!(binding["roleRef"]["kind"], "Role");
            assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
            assert_eq!(
                binding["subjects"],
                json!([{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": RELEASE_NS}])
            );
            assert_eq!(
                pod_spec(&docs)["serviceAccountName"],
                sa["metadata"]["name"]
            );
            assert_eq!(
                env_value(&docs, "M2S_NAMESPACE").as_deref(),
                Some(serving_ns)
            );
            assert_eq!(env_value(&docs, "M2S_TARGET").as_deref(), Some(target.id()));
        }
    }
}

/// The Role's rule for Events: create on events.events.k8s.io, nothing more.
fn events_rule() -> Value {
    serde_json::json!({"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]})
}

#[test]
fn events_wait_and_write_back() {
    let helm = need!(helm());
    let python = need!(kv_python());
    // Defaults: Events on (M2S_EVENTS unset: m2s's default), no waiting, no write-back.
    let docs = render(&helm, &python, &[]);
    let env = env_map(&docs);
    assert!(
        !env.contains_key("M2S_EVENTS") && !env.contains_key("M2S_WRITE_BACK"),
        "{env:?}"
    );
    assert!(!args(&docs).iter().any(|a| a.starts_with("--wait")));
    let rules = one(&docs, "Role")["rules"].as_array().unwrap().clone();
    assert!(rules.contains(&events_rule()), "{rules:?}");
    assert!(!one(&docs, "Role").to_string().contains("watch"));

    // events: false drops the Events rule and tells m2s; wait adds --wait and exactly "watch".
    let docs = render(
        &helm,
        &python,
        &[
            "--set",
            "events=false",
            "--set",
            "wait=true",
            "--set",
            "waitTimeoutSeconds=120",
            "--set",
            "writeBack=true",
        ],
    );
    assert_eq!(env_value(&docs, "M2S_EVENTS").as_deref(), Some("false"));
    assert_eq!(env_value(&docs, "M2S_WRITE_BACK").as_deref(), Some("true"));
    assert_eq!(args(&docs), ["sync", "--wait", "--wait-timeout", "120"]);
    let rules = one(&docs, "Role")["rules"].as_array().unwrap().clone();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(
        rules[1],
        serde_json::json!({"apiGroups": ["machinelearning.seldon.io"], "resources": ["seldondeployments"], "verbs": ["watch"]})
    );

    // Waiting needs a real run and a wait shorter than the run.
    for (set, message) in [
        (
            &["--set", "wait=true", "--set", "dryRun=true"][..],
            "persists nothing to wait for",
        ),
        (
            &["--set", "wait=true", "--set", "waitTimeoutSeconds=600"][..],
            "waitTimeoutSeconds (600) must be below runTimeoutSeconds (600)",
        ),
    ] {
        let out = helm_template(&helm, set).unwrap();
        assert!(!out.status.success(), "{set:?} was accepted");
        assert!(stderr(&out).contains(message), "{set:?}: {}", stderr(&out));
    }
    let out = helm_template(&helm, &["--set", "events=yes"]).unwrap();
    assert!(!out.status.success(), "a non-boolean events was accepted");
}

#[test]
fn cronjob_and_pod_are_hardened() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let docs = render(&helm, &python, &[]);
    let cron = one(&docs, "CronJob");
    assert_eq!(cron["apiVersion"], "batch/v1");
    assert_eq!(cron["metadata"]["namespace"], RELEASE_NS);
    let spec = &cron["spec"];
    assert_eq!(spec["schedule"], "* * * * *");
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    assert_eq!(spec["suspend"], false);
    for k in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        assert!(spec[k].is_u64(), "{k}");
    }
    let job = &spec["jobTemplate"]["spec"];
    assert!(job["backoffLimit"].is_u64());
    let deadline = job["activeDeadlineSeconds"].as_u64().unwrap();
    let run_timeout: u64 = env_value(&docs, "M2S_RUN_TIMEOUT")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        run_timeout < deadline,
        "M2S_RUN_TIMEOUT {run_timeout} >= activeDeadlineSeconds {deadline}"
    );

    let pod = pod_spec(&docs);
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["automountServiceAccountToken"], true);
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert_eq!(psc["runAsUser"], 65532);
    assert_eq!(psc["runAsGroup"], 65532);
    assert!(psc["fsGroup"].is_u64());
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    let c = container(&docs);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(c["resources"]["requests"]["cpu"], "10m");
    assert_eq!(c["resources"]["requests"]["memory"], "32Mi");
    assert_eq!(c["resources"]["limits"]["memory"], "64Mi");
    assert_eq!(c["image"], "m2s:0.1.0");
    // Standard labels.
    for k in [
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "helm.sh/chart",
    ] {
        assert!(cron["metadata"]["labels"][k].is_string(), "label {k}");
    }
}

#[test]
fn args_follow_dry_run_max_deletes_and_extra_args() {
    let helm = need!(helm());
    let python = need!(kv_python());
    assert_eq!(args(&render(&helm, &python, &[])), ["sync"]);
    assert_eq!(
        args(&render(&helm, &python, &["--set", "dryRun=true"])),
        ["sync", "--dry-run"]
    );
    assert_eq!(
        args(&render(&helm, &python, &["--set", "maxDeletes=3"])),
        ["sync", "--max-deletes", "3"]
    );
    assert_eq!(
        args(&render(&helm, &python, &["--set", "maxDeletes=0"])),
        ["sync", "--max-deletes", "0"]
    );
    assert_eq!(
        args(&render(&helm, &python, FULL)),
        [
            "sync",
            "--dry-run",
            "--allow-delete-all",
            "--max-deletes",
            "5",
            "--plan-something"
        ]
    );
}

#[test]
fn env_vars_are_rendered_only_for_set_values() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let docs = render(&helm, &python, &[]);
    let names: BTreeSet<String> = env_map(&docs).into_keys().collect();
    assert_eq!(
        names,
        [
            "M2S_INSTANCE",
            "M2S_MLFLOW_HOST",
            "M2S_NAMESPACE",
            "M2S_RUN_TIMEOUT",
            "M2S_TARGET",
            "RUST_LOG"
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );
    assert_eq!(
        env_value(&docs, "M2S_MLFLOW_HOST").as_deref(),
        Some(MLFLOW_HOST)
    );
    // Defaults: the release name and namespace, m2s's default target.
    assert_eq!(env_value(&docs, "M2S_INSTANCE").as_deref(), Some("m2s"));
    assert_eq!(
        env_value(&docs, "M2S_NAMESPACE").as_deref(),
        Some(RELEASE_NS)
    );
    assert_eq!(
        env_value(&docs, "M2S_TARGET").as_deref(),
        Some(TARGETS[0].id())
    );

    let docs = render(&helm, &python, FULL);
    let expected = [
        ("M2S_MLFLOW_HOST", MLFLOW_HOST),
        ("M2S_TARGET", "seldon-v1"),
        ("M2S_NAMESPACE", "models"),
        ("M2S_SERVICE_ACCOUNT", "models-sa"),
        ("M2S_OVERLAY", "/etc/m2s/overlay/overlay.yaml"),
        ("M2S_MLFLOW_STORAGE_ROOT", "s3://bucket/mlruns"),
        ("M2S_SELDON_DEF_IMAGE", "registry.example/mlserver:1.2"),
        ("M2S_MLFLOW_DEPLOY_IMG_TAG", "serving-image"),
        ("M2S_REGISTRY_SECRET", "regcred"),
        ("M2S_MODEL_SECRET", "s3-creds"),
        ("M2S_SELDON_PROTOCOL", "v2"),
        ("M2S_PREFLIGHT", "false"),
        ("M2S_RUNTIME_MLFLOW_VERSION", "2.19.0"),
        ("M2S_CANARY_DEADLINE", "20m"),
        ("M2S_STAGES", "Production"),
        ("M2S_ALIASES", "champion,challenger"),
        ("M2S_INSTANCE", "team-a"),
        ("M2S_MODEL_FILTER", "name LIKE 'team-a-%'"),
        ("M2S_CONCURRENCY", "4"),
        ("M2S_REQUEST_TIMEOUT", "20"),
        ("M2S_RUN_TIMEOUT", "300"),
        ("RUST_LOG", "debug"),
        ("MLFLOW_TRACKING_INSECURE_TLS", "true"),
        ("EXTRA", "1"),
    ];
    for (name, value) in expected {
        assert_eq!(env_value(&docs, name).as_deref(), Some(value), "{name}");
    }
    // Every variable the container gets is one of these, plus the MLflow credentials.
    let names: BTreeSet<String> = env_map(&docs).into_keys().collect();
    let mut known: BTreeSet<String> = expected.iter().map(|(n, _)| n.to_string()).collect();
    known.extend(
        [
            "MLFLOW_TRACKING_TOKEN",
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
        ]
        .map(String::from),
    );
    assert_eq!(names, known);
    assert_eq!(container(&docs)["image"], "registry.example/m2s:1.0.0");

    // An empty stage list means "aliases only" and is passed on as such.
    let docs = render(
        &helm,
        &python,
        &["--set", "stages=null", "--set", "aliases={*}"],
    );
    assert_eq!(env_value(&docs, "M2S_STAGES"), None);
    assert_eq!(env_value(&docs, "M2S_ALIASES").as_deref(), Some("*"));
    // (`--set stages={}` is [""] to helm, which the schema rejects; a values file says [].)
    let dir = temp_dir("stages");
    let values = dir.join("values.yaml");
    fs::write(&values, "stages: []\naliases: [\"*\"]\n").unwrap();
    let docs = render(&helm, &python, &["-f", values.to_str().unwrap()]);
    assert_eq!(env_value(&docs, "M2S_STAGES").as_deref(), Some(""));
    let _ = fs::remove_dir_all(dir);
}

/// The entries of list `list` called "overlay" (the pod's volumes, the container's mounts).
fn overlay_entries(list: &Value) -> Vec<&Value> {
    list.as_array()
        .expect("a list")
        .iter()
        .filter(|v| v["name"] == "overlay")
        .collect()
}

/// The overlay's ConfigMap, the pod's volume and mount, and M2S_OVERLAY, checked to fit
/// together; returns the overlay text m2s reads.
fn rendered_overlay(docs: &[Value]) -> String {
    let cm = one(docs, "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "m2s-overlay");
    assert_eq!(cm["metadata"]["namespace"], RELEASE_NS);
    let data = cm["data"].as_object().expect("data");
    assert_eq!(data.len(), 1, "{data:?}");
    let volumes = overlay_entries(&pod_spec(docs)["volumes"]);
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0]["configMap"]["name"], cm["metadata"]["name"]);
    let mounts = overlay_entries(&container(docs)["volumeMounts"]);
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0]["readOnly"], true);
    let (key, text) = data.iter().next().unwrap();
    let path = format!("{}/{key}", mounts[0]["mountPath"].as_str().unwrap());
    assert_eq!(env_value(docs, "M2S_OVERLAY"), Some(path));
    text.as_str().expect("text").to_string()
}

fn has_overlay(docs: &[Value]) -> bool {
    let volume = !overlay_entries(&pod_spec(docs)["volumes"]).is_empty();
    let mount = !overlay_entries(&container(docs)["volumeMounts"]).is_empty();
    let cm = docs.iter().any(|d| kind(d) == "ConfigMap");
    let env = env_map(docs).contains_key("M2S_OVERLAY");
    assert!(
        volume == mount && mount == cm && cm == env,
        "volume {volume}, mount {mount}, ConfigMap {cm}, M2S_OVERLAY {env}"
    );
    cm
}

#[test]
fn overlay_is_mounted_only_when_set() {
    let helm = need!(helm());
    let python = need!(kv_python());
    for args in [
        &[][..],
        &["--set", "overlay=null"],
        &["--set-string", "overlay="],
        &["--set-string", "overlay=  "],
    ] {
        assert!(!has_overlay(&render(&helm, &python, args)), "{args:?}");
    }
    let docs = render(&helm, &python, &["--set", "overlay.metadata.labels.a=b"]);
    assert!(has_overlay(&docs));
}

#[test]
fn overlay_mapping_reaches_m2s_as_given() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let dir = temp_dir("overlay");
    // A values file, as platform teams keep it; `null` removes a field (RFC 7386) and must
    // survive helm's merging of values.
    let overlay = json!({
        "metadata": {"labels": {"cost-center": "ml"}, "annotations": {"remove-me": null}},
        "spec": {"predictor": {
            "nodeSelector": {"pool": "ml"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }},
    });
    let values = dir.join("values.yaml");
    fs::write(&values, format!("target: kserve\noverlay: {overlay}\n")).unwrap();
    let docs = render(&helm, &python, &["-f", values.to_str().unwrap()]);
    let text = rendered_overlay(&docs);
    assert_eq!(yaml_docs(&python, &text), std::slice::from_ref(&overlay));
    // m2s reads it as that patch, and accepts it for the target.
    let target = m2s::targets::by_id("kserve").unwrap();
    let parsed = m2s::config::overlay::Overlay::parse(&text, target).unwrap();
    let expected = m2s::config::overlay::Overlay::parse(&overlay.to_string(), target).unwrap();
    assert_eq!(parsed.hash(), expected.hash());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn overlay_text_reaches_m2s_byte_for_byte() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let dir = temp_dir("overlay");
    let texts = [
        // YAML with comments, flow style and an indented first line (a block scalar would
        // get that wrong), as `--set-file overlay=FILE` passes it.
        "  # platform settings\n  metadata:\n    labels: {cost-center: ml}\n",
        // JSON, no trailing newline.
        r#"{"spec": {"predictor": {"nodeSelector": {"pool": "ml"}}}}"#,
        // Trailing spaces and blank lines.
        "metadata:\n  labels:\n    team: a   \n\n\n",
    ];
    for (i, text) in texts.iter().enumerate() {
        let file = dir.join(format!("overlay-{i}.yaml"));
        fs::write(&file, text).unwrap();
        let set = format!("overlay={}", file.display());
        let docs = render(
            &helm,
            &python,
            &["--set", "target=kserve", "--set-file", &set],
        );
        assert_eq!(rendered_overlay(&docs), *text, "overlay {i}");
        let target = m2s::targets::by_id("kserve").unwrap();
        m2s::config::overlay::Overlay::parse(text, target).unwrap();
    }
    // Not a mapping: refused at install, naming the value.
    for text in ["- a\n- b\n", "just words\n", "{\"a\": [1,\n"] {
        let file = dir.join("bad.yaml");
        fs::write(&file, text).unwrap();
        let out = helm_template(
            &helm,
            &["--set-file", &format!("overlay={}", file.display())],
        )
        .unwrap();
        assert!(!out.status.success(), "{text:?} accepted");
        assert!(
            stderr(&out).contains("overlay is not a YAML or JSON mapping"),
            "{text:?}: {}",
            stderr(&out)
        );
    }
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn credentials_come_only_from_the_existing_secret() {
    let helm = need!(helm());
    let python = need!(kv_python());
    const CRED_VARS: [&str; 3] = [
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    ];
    // No secret: no credential variables at all.
    let docs = render(&helm, &python, &[]);
    for var in CRED_VARS {
        assert!(!env_map(&docs).contains_key(var), "{var} without a secret");
    }
    let docs = render(
        &helm,
        &python,
        &["--set", "mlflow.existingSecret=mlflow-creds"],
    );
    let env = env_map(&docs);
    for (var, key) in CRED_VARS.into_iter().zip(["token", "username", "password"]) {
        let entry = &env[var];
        assert!(entry.get("value").is_none(), "{var} has a plain value");
        let r = &entry["valueFrom"]["secretKeyRef"];
        assert_eq!(r["name"], "mlflow-creds", "{var}");
        assert_eq!(r["key"], key, "{var}");
        assert_eq!(r["optional"], true, "{var}");
    }
    assert!(docs.iter().all(|d| kind(d) != "Secret"));
    // Key names and optionality as configured; an empty key name leaves the variable out.
    let docs = render(
        &helm,
        &python,
        &[
            "--set",
            "mlflow.existingSecret=mlflow-creds",
            "--set",
            "mlflow.existingSecretKeys.token=api-token",
            "--set",
            "mlflow.existingSecretKeys.username=",
            "--set",
            "mlflow.existingSecretKeys.password=",
            "--set",
            "mlflow.existingSecretOptional=false",
        ],
    );
    let env = env_map(&docs);
    assert!(
        !env.contains_key("MLFLOW_TRACKING_USERNAME")
            && !env.contains_key("MLFLOW_TRACKING_PASSWORD")
    );
    let r = &env["MLFLOW_TRACKING_TOKEN"]["valueFrom"]["secretKeyRef"];
    assert_eq!(r["key"], "api-token");
    assert_eq!(r["optional"], false);
    // The values have no place for plain credentials.
    for key in ["mlflow.token", "mlflow.password", "mlflow.username"] {
        let out = helm_template(&helm, &["--set-string", &format!("{key}=x")]).unwrap();
        assert!(!out.status.success(), "{key} accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// scripts/helm_deploy.sh and scripts/helm_delete.sh with fake helm and kubectl

const M2S_VARS: [(&str, &str); 15] = [
    ("M2S_MLFLOW_HOST", "http://mlflow.example:5000"),
    ("M2S_NAMESPACE", "models"),
    ("M2S_TARGET", "seldon-v1"),
    ("M2S_MLFLOW_STORAGE_ROOT", "s3://bucket/mlruns"),
    ("M2S_SELDON_DEF_IMAGE", "registry.example/mlserver:1.2"),
    ("M2S_MLFLOW_DEPLOY_IMG_TAG", "serving-image"),
    ("M2S_REGISTRY_SECRET", "regcred"),
    ("M2S_MODEL_SECRET", "s3-creds"),
    ("M2S_SERVICE_ACCOUNT", "models-sa"),
    ("M2S_STAGES", "Production, Staging"),
    ("M2S_ALIASES", "champion,*"),
    ("M2S_INSTANCE", "team-a"),
    ("M2S_MODEL_FILTER", "name LIKE 'a,b%'"),
    ("M2S_MLFLOW_SECRET", "mlflow-creds"),
    ("M2S_MAX_DELETES", "5"),
];

/// `--set-file` values of a helm argv, as key -> file.
fn set_files(argv: &[String]) -> BTreeMap<String, String> {
    argv.windows(2)
        .filter(|w| w[0] == "--set-file")
        .map(|w| {
            let (k, v) = w[1].split_once('=').expect("key=file");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn deploy_without_a_tty_lists_every_missing_setting_and_calls_nothing() {
    let fakes = Fakes::new(0, "{}");
    let out = run(&mut fakes.script("helm_deploy.sh")).unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("M2S_MLFLOW_HOST") && err.contains("M2S_NAMESPACE"),
        "{err}"
    );
    assert!(fakes.calls("helm").is_empty(), "helm was called");

    let out = run(fakes
        .script("helm_deploy.sh")
        .env("M2S_MLFLOW_HOST", "http://m:5000"))
    .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("  M2S_NAMESPACE") && !stderr(&out).contains("  M2S_MLFLOW_HOST"),
        "{}",
        stderr(&out)
    );
    assert!(fakes.calls("helm").is_empty(), "helm was called");
}

#[test]
fn deploy_passes_the_environment_to_helm_upgrade_install() {
    let fakes = Fakes::new(0, "{}");
    let overlay = fakes.dir.join("overlay.yaml");
    fs::write(&overlay, "metadata: {labels: {team: a}}\n").unwrap();
    let mut cmd = fakes.script("helm_deploy.sh");
    cmd.envs(M2S_VARS)
        .env("M2S_OVERLAY", &overlay)
        .env("IMAGE", "registry.example:5000/team/m2s:1.2.3")
        .env("RELEASE", "m2s-a")
        .env("RELEASE_NAMESPACE", "m2s-a-system")
        .env("MLFLOW_TRACKING_TOKEN", "tok-DO-NOT-LEAK");
    let out = run(&mut cmd).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("target seldon-v1 in namespace models"),
        "{}",
        stderr(&out)
    );
    let calls = fakes.calls("helm");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let argv = &calls[0];
    assert_eq!(argv[..3], ["upgrade", "--install", "m2s-a"]);
    assert_eq!(argv[3], chart_dir().to_str().unwrap());
    let joined = argv.join(" ");
    assert!(
        joined.contains("--namespace m2s-a-system --create-namespace"),
        "{joined}"
    );
    assert!(
        !joined.contains("tok-DO-NOT-LEAK"),
        "a credential is on the helm command line"
    );
    assert!(
        !joined.contains("team: a"),
        "the overlay's content is on the helm command line"
    );
    let expected = [
        ("mlflow.host", "http://mlflow.example:5000"),
        ("serving.namespace", "models"),
        ("target", "seldon-v1"),
        ("mlflow.storageRoot", "s3://bucket/mlruns"),
        ("serving.defaultImage", "registry.example/mlserver:1.2"),
        ("mlflow.imageTag", "serving-image"),
        ("serving.registrySecret", "regcred"),
        ("serving.modelSecret", "s3-creds"),
        ("serving.serviceAccount", "models-sa"),
        ("stages", "{Production,Staging}"),
        ("aliases", "{champion,*}"),
        ("instance", "team-a"),
        ("mlflow.modelFilter", "name LIKE 'a\\,b%'"),
        ("mlflow.existingSecret", "mlflow-creds"),
        ("maxDeletes", "5"),
        ("image.repository", "registry.example:5000/team/m2s"),
        ("image.tag", "1.2.3"),
    ];
    let sets = set_strings(argv);
    for (k, v) in expected {
        assert_eq!(sets.get(k).map(String::as_str), Some(v), "{k} in {joined}");
    }
    assert_eq!(sets.len(), expected.len(), "unexpected values in {joined}");
    assert!(
        sets.keys().all(|k| !k.starts_with("seldon.")),
        "deprecated keys: {joined}"
    );
    assert_eq!(
        set_files(argv),
        BTreeMap::from([("overlay".to_string(), overlay.display().to_string())])
    );
    let string_keys: Vec<&str> = argv
        .windows(2)
        .filter(|w| w[0] == "--set-string")
        .map(|w| w[1].split('=').next().unwrap())
        .collect();
    assert!(string_keys.contains(&"mlflow.host") && !string_keys.contains(&"maxDeletes"));

    // Credentials in the environment without a Secret to hold them: a warning, never passed on.
    let fakes = Fakes::new(0, "{}");
    let out = run(fakes
        .script("helm_deploy.sh")
        .env("M2S_MLFLOW_HOST", "http://m:5000")
        .env("M2S_NAMESPACE", "models")
        .env("MLFLOW_TRACKING_PASSWORD", "pw-DO-NOT-LEAK"))
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("MLFLOW_TRACKING_PASSWORD is set but not passed"),
        "{}",
        stderr(&out)
    );
    let argv = fakes.calls("helm").remove(0);
    assert!(!argv.join(" ").contains("pw-DO-NOT-LEAK"));
    // Unset optional settings are left to the chart's defaults.
    let sets = set_strings(&argv);
    assert_eq!(
        sets.keys().collect::<Vec<_>>(),
        ["mlflow.host", "serving.namespace"]
    );
    assert!(set_files(&argv).is_empty());
}

#[test]
fn deploy_accepts_the_old_namespace_variable() {
    for (vars, ok) in [
        (&[("M2S_SELDON_DEPLOYMENT_NS", "models")][..], true),
        (
            &[
                ("M2S_SELDON_DEPLOYMENT_NS", "models"),
                ("M2S_NAMESPACE", "models"),
            ][..],
            true,
        ),
        (
            &[
                ("M2S_SELDON_DEPLOYMENT_NS", "old-ns"),
                ("M2S_NAMESPACE", "new-ns"),
            ][..],
            false,
        ),
    ] {
        let fakes = Fakes::new(0, "{}");
        let out = run(fakes
            .script("helm_deploy.sh")
            .env("M2S_MLFLOW_HOST", "http://m:5000")
            .envs(vars.iter().copied()))
        .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.success(), ok, "{vars:?}: {err}");
        if ok {
            let sets = set_strings(&fakes.calls("helm")[0]);
            assert_eq!(sets["serving.namespace"], "models");
            assert!(!sets.contains_key("seldon.namespace"));
        } else {
            assert!(
                err.contains("M2S_NAMESPACE ('new-ns')")
                    && err.contains("M2S_SELDON_DEPLOYMENT_NS ('old-ns')"),
                "{err}"
            );
            assert!(fakes.calls("helm").is_empty());
        }
    }
}

#[test]
fn deploy_refuses_a_bad_target_or_a_missing_overlay_file() {
    let cases = [
        (
            ("M2S_TARGET", "knative"),
            "M2S_TARGET must be seldon-v1, kserve or seldon-v2, not 'knative'",
        ),
        (
            ("M2S_OVERLAY", "/nonexistent/overlay.yaml"),
            "M2S_OVERLAY: no readable file '/nonexistent/overlay.yaml'",
        ),
        // A directory is not an overlay file.
        (("M2S_OVERLAY", "/"), "M2S_OVERLAY: no readable file '/'"),
    ];
    for ((var, value), message) in cases {
        let fakes = Fakes::new(0, "{}");
        let out = run(fakes
            .script("helm_deploy.sh")
            .env("M2S_MLFLOW_HOST", "http://m:5000")
            .env("M2S_NAMESPACE", "models")
            .env(var, value))
        .unwrap();
        assert!(!out.status.success(), "{var}={value} accepted");
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
        assert!(fakes.calls("helm").is_empty());
    }
}

/// Runs helm_deploy.sh with `vars` against the fakes, then the helm arguments it built through
/// the real chart (`helm template`), and returns the manifests.
fn deploy_through_the_real_chart(helm: &Path, python: &Path, vars: &[(&str, &str)]) -> Vec<Value> {
    let fakes = Fakes::new(0, "{}");
    let out = run(fakes.script("helm_deploy.sh").envs(vars.iter().copied())).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let argv = fakes.calls("helm").remove(0);
    let mut cmd = Command::new(helm);
    cmd.args(["template", &argv[2], &argv[3]]).args(&argv[4..]);
    let out = run(&mut cmd).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    yaml_docs(python, &stdout(&out))
}

#[test]
fn deploy_arguments_render_with_the_real_chart() {
    // The --set-string escaping (commas, lists) as helm itself reads it.
    let helm = need!(helm());
    let python = need!(kv_python());
    let docs = deploy_through_the_real_chart(&helm, &python, &M2S_VARS);
    assert_eq!(
        env_value(&docs, "M2S_MODEL_FILTER").as_deref(),
        Some("name LIKE 'a,b%'")
    );
    assert_eq!(
        env_value(&docs, "M2S_STAGES").as_deref(),
        Some("Production,Staging")
    );
    assert_eq!(
        env_value(&docs, "M2S_ALIASES").as_deref(),
        Some("champion,*")
    );
    assert_eq!(env_value(&docs, "M2S_NAMESPACE").as_deref(), Some("models"));
    assert_eq!(
        env_value(&docs, "M2S_SERVICE_ACCOUNT").as_deref(),
        Some("models-sa")
    );
    assert_eq!(one(&docs, "Role")["metadata"]["namespace"], "models");
    assert_eq!(args(&docs), ["sync", "--max-deletes", "5"]);
    assert!(docs.iter().all(|d| kind(d) != "ConfigMap"));

    // Another target, and an overlay file whose path has a comma and a backslash in it (helm
    // parses --set-file like --set); its text arrives as it is.
    let dir = temp_dir("deploy,overlay");
    let overlay = dir.join("a\\b,c.yaml");
    let text = "# platform\nspec:\n  predictor:\n    nodeSelector: {pool: ml}\n";
    fs::write(&overlay, text).unwrap();
    let overlay = overlay.to_str().unwrap();
    let docs = deploy_through_the_real_chart(
        &helm,
        &python,
        &[
            ("M2S_MLFLOW_HOST", "http://m:5000"),
            ("M2S_NAMESPACE", "models"),
            ("M2S_TARGET", "kserve"),
            ("M2S_OVERLAY", overlay),
        ],
    );
    assert_eq!(env_value(&docs, "M2S_TARGET").as_deref(), Some("kserve"));
    assert_eq!(
        one(&docs, "Role")["rules"][0]["resources"],
        json!(["inferenceservices"])
    );
    assert_eq!(rendered_overlay(&docs), text);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn deploy_refuses_credentials_in_the_mlflow_url() {
    let fakes = Fakes::new(0, "{}");
    let out = run(fakes
        .script("helm_deploy.sh")
        .env("M2S_MLFLOW_HOST", "https://bob:hunter2@mlflow.example")
        .env("M2S_NAMESPACE", "models"))
    .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("must not contain credentials"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("hunter2"));
    assert!(fakes.calls("helm").is_empty());
}

#[test]
fn deploy_asks_for_missing_settings_on_a_terminal() {
    let Some(script) = on_path("script") else {
        return need!(unavailable::<()>(
            "`script` (util-linux) not found, no pty for the prompt test"
        ));
    };
    let fakes = Fakes::new(0, "{}");
    let deploy = repo().join("scripts/helm_deploy.sh");
    // `script` gives the script a pty as stdin; the answers are typed into it.
    let mut cmd = Command::new(script);
    cmd.args(["-qec", &format!("bash '{}'", deploy.display()), "/dev/null"])
        .env_clear()
        .envs(fakes.base_env())
        .env("TERM", "dumb")
        .current_dir(repo());
    let out = run_with_input(&mut cmd, "http://typed.example:5000\nmodels-typed\n").unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("M2S_MLFLOW_HOST ("),
        "no prompt naming M2S_MLFLOW_HOST:\n{all}"
    );
    assert!(
        all.contains("M2S_NAMESPACE ("),
        "no prompt naming M2S_NAMESPACE:\n{all}"
    );
    let calls = fakes.calls("helm");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let sets = set_strings(&calls[0]);
    assert_eq!(sets["mlflow.host"], "http://typed.example:5000");
    assert_eq!(sets["serving.namespace"], "models-typed");
}

#[test]
fn deploy_asks_only_for_what_is_missing_with_force_interactive() {
    let fakes = Fakes::new(0, "{}");
    let out = run_with_input(
        fakes
            .script("helm_deploy.sh")
            .env("FORCE_INTERACTIVE", "1")
            .env("M2S_MLFLOW_HOST", "http://m:5000"),
        "\n  models-typed  \n",
    )
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("M2S_NAMESPACE ("), "{err}");
    assert!(
        !err.contains("M2S_MLFLOW_HOST ("),
        "asked for a setting that was set:\n{err}"
    );
    assert_eq!(
        set_strings(&fakes.calls("helm")[0])["serving.namespace"],
        "models-typed"
    );
    // The old variable counts as set: nothing to ask.
    let fakes = Fakes::new(0, "{}");
    let out = run_with_input(
        fakes
            .script("helm_deploy.sh")
            .env("FORCE_INTERACTIVE", "1")
            .env("M2S_MLFLOW_HOST", "http://m:5000")
            .env("M2S_SELDON_DEPLOYMENT_NS", "models"),
        "",
    )
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("M2S_NAMESPACE ("),
        "{}",
        stderr(&out)
    );
    // End of input before an answer: an error, helm not called.
    let fakes = Fakes::new(0, "{}");
    let out = run_with_input(
        fakes.script("helm_deploy.sh").env("FORCE_INTERACTIVE", "1"),
        "",
    )
    .unwrap();
    assert!(!out.status.success());
    assert!(fakes.calls("helm").is_empty());
}

#[test]
fn delete_without_a_tty_or_yes_refuses_and_calls_nothing() {
    let fakes = Fakes::new(3, "{}");
    let out = run(fakes
        .script("helm_delete.sh")
        .env("M2S_NAMESPACE", "models"))
    .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("YES=1"), "{}", stderr(&out));
    assert!(fakes.calls("helm").is_empty() && fakes.calls("kubectl").is_empty());
}

/// What helm_delete.sh did: its stderr, and whether it uninstalled the release and which
/// namespace it deleted.
struct Deleted {
    ok: bool,
    err: String,
    uninstalled: bool,
    deleted_ns: Option<String>,
    listed: Vec<Vec<String>>,
}

fn delete_with(fakes: &Fakes, vars: &[(&str, &str)]) -> Deleted {
    let out = run(fakes
        .script("helm_delete.sh")
        .env("YES", "1")
        .envs(vars.iter().copied()))
    .unwrap();
    let kubectl = fakes.calls("kubectl");
    let deletes: Vec<&Vec<String>> = kubectl.iter().filter(|c| c[0] == "delete").collect();
    assert!(deletes.len() <= 1, "{kubectl:?}");
    Deleted {
        ok: out.status.success(),
        err: stderr(&out),
        uninstalled: fakes.calls("helm").iter().any(|c| c[0] == "uninstall"),
        deleted_ns: deletes.first().map(|c| {
            assert_eq!(c[..2], ["delete", "namespace"]);
            c[2].clone()
        }),
        listed: kubectl.iter().filter(|c| c[0] == "get").cloned().collect(),
    }
}

#[test]
fn delete_with_yes_names_what_it_deletes_then_deletes_it() {
    let fakes = Fakes::new(3, "{}");
    let d = delete_with(
        &fakes,
        &[
            ("M2S_NAMESPACE", "models"),
            ("RELEASE", "m2s-a"),
            ("RELEASE_NAMESPACE", "m2s-a-system"),
        ],
    );
    assert!(d.ok, "{}", d.err);
    assert!(
        d.err
            .contains("release 'm2s-a' in namespace 'm2s-a-system'"),
        "{}",
        d.err
    );
    assert!(
        d.err.contains("serving namespace 'models' and everything in it, including 3 SeldonDeployment(s) (target seldon-v1)"),
        "{}",
        d.err
    );
    let helm = fakes.calls("helm");
    assert!(
        helm.iter()
            .any(|c| c[..4] == ["uninstall", "m2s-a", "--namespace", "m2s-a-system"]),
        "{helm:?}"
    );
    assert_eq!(d.listed.len(), 1, "{:?}", d.listed);
    assert_eq!(
        d.listed[0][..4],
        [
            "get",
            "seldondeployments.machinelearning.seldon.io",
            "-n",
            "models"
        ]
    );
    assert!(d.listed[0].contains(&"--no-headers".to_string()));
    assert_eq!(d.deleted_ns.as_deref(), Some("models"));
}

#[test]
fn delete_counts_the_objects_of_the_releases_target() {
    for target in TARGETS {
        let r = target.resource();
        // From the release's values, and from M2S_TARGET when the release does not say.
        // From the release's values; from M2S_TARGET when they name none, or when the release
        // cannot be read ("" makes the fake `helm get values` fail).
        let from_values = format!(
            r#"{{"target":"{}","serving":{{"namespace":"models"}}}}"#,
            target.id()
        );
        let env = [("M2S_TARGET", target.id()), ("M2S_NAMESPACE", "models")];
        for (values, vars) in [
            (from_values.as_str(), &[][..]),
            ("{}", &env[..]),
            ("", &env[..]),
        ] {
            let fakes = Fakes::new(2, values);
            let d = delete_with(&fakes, vars);
            assert!(d.ok, "{target:?} {values}: {}", d.err);
            let expected = format!("including 2 {}(s) (target {})", r.kind, target.id());
            assert!(d.err.contains(&expected), "{target:?} {values}: {}", d.err);
            assert_eq!(d.listed.len(), 1);
            assert_eq!(d.listed[0][1], r.qualified_plural());
            assert_eq!(d.listed[0][3], "models");
            assert_eq!(d.deleted_ns.as_deref(), Some("models"));
            // (The fake `helm status` reports every release as installed.)
            assert!(d.uninstalled);
        }
    }
    // M2S_TARGET disagreeing with the release: an error naming both, nothing deleted.
    let fakes = Fakes::new(2, r#"{"target":"seldon-v1"}"#);
    let d = delete_with(
        &fakes,
        &[("M2S_TARGET", "kserve"), ("M2S_NAMESPACE", "models")],
    );
    assert!(!d.ok);
    assert!(
        d.err.contains("M2S_TARGET ('kserve')") && d.err.contains("('seldon-v1')"),
        "{}",
        d.err
    );
    assert!(!d.uninstalled && d.deleted_ns.is_none());
    // Not a target: an error naming it.
    let fakes = Fakes::new(2, "{}");
    let d = delete_with(
        &fakes,
        &[("M2S_TARGET", "knative"), ("M2S_NAMESPACE", "models")],
    );
    assert!(
        !d.ok && d.err.contains("'knative' is not a serving target"),
        "{}",
        d.err
    );
    assert!(!d.uninstalled && d.deleted_ns.is_none());
}

#[test]
fn delete_asks_for_yes() {
    for (answer, deletes) in [
        ("no\n", false),
        ("y\n", false),
        ("", false),
        ("yes\n", true),
    ] {
        let fakes = Fakes::new(2, r#"{"target":"kserve"}"#);
        let out = run_with_input(
            fakes
                .script("helm_delete.sh")
                .env("FORCE_INTERACTIVE", "1")
                .env("M2S_NAMESPACE", "models"),
            answer,
        )
        .unwrap();
        let err = stderr(&out);
        assert!(
            err.contains("Type 'yes'") && err.contains("2 InferenceService(s)"),
            "{err}"
        );
        assert_eq!(out.status.success(), deletes, "answer {answer:?}: {err}");
        let uninstalled = fakes.calls("helm").iter().any(|c| c[0] == "uninstall");
        let ns_deleted = fakes.calls("kubectl").iter().any(|c| c[0] == "delete");
        assert_eq!(
            (uninstalled, ns_deleted),
            (deletes, deletes),
            "answer {answer:?}"
        );
    }
}

#[test]
fn delete_finds_the_serving_namespace() {
    // (environment, release values) -> the namespace deleted, or an error naming the variables.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Result<&'a str, &'a str>);
    let cases: [Case; 9] = [
        (&[], r#"{"serving":{"namespace":"new-key"}}"#, Ok("new-key")),
        (&[], r#"{"seldon":{"namespace":"old-key"}}"#, Ok("old-key")),
        (
            &[],
            r#"{"serving":{"namespace":"new-key"},"seldon":{"namespace":"old-key"}}"#,
            Ok("new-key"),
        ),
        (
            &[],
            r#"{"serving":{"namespace":""},"seldon":{}}"#,
            Ok("m2s-system"),
        ),
        (
            &[("M2S_NAMESPACE", "from-env")],
            r#"{"serving":{"namespace":"new-key"}}"#,
            Ok("from-env"),
        ),
        (
            &[("M2S_SELDON_DEPLOYMENT_NS", "old-env")],
            "{}",
            Ok("old-env"),
        ),
        (
            &[
                ("M2S_NAMESPACE", "same"),
                ("M2S_SELDON_DEPLOYMENT_NS", "same"),
            ],
            "{}",
            Ok("same"),
        ),
        (
            &[("M2S_NAMESPACE", "a"), ("M2S_SELDON_DEPLOYMENT_NS", "b")],
            "{}",
            Err("M2S_NAMESPACE ('a') and the old M2S_SELDON_DEPLOYMENT_NS ('b') differ"),
        ),
        // The release cannot be read and no namespace is given.
        (&[], "", Err("set M2S_NAMESPACE")),
    ];
    for (vars, values, expected) in cases {
        let fakes = Fakes::new(0, values);
        let d = delete_with(&fakes, vars);
        match expected {
            Ok(ns) => {
                assert!(d.ok, "{vars:?} {values}: {}", d.err);
                assert!(
                    d.err.contains(&format!("serving namespace '{ns}'")),
                    "{}",
                    d.err
                );
                assert_eq!(d.deleted_ns.as_deref(), Some(ns), "{vars:?} {values}");
                // Deleting the release namespace is said out loud.
                assert_eq!(
                    d.err.contains("(it is also the release namespace)"),
                    ns == "m2s-system",
                    "{}",
                    d.err
                );
            }
            Err(message) => {
                assert!(!d.ok, "{vars:?} {values}: accepted");
                assert!(d.err.contains(message), "{vars:?} {values}: {}", d.err);
                assert!(!d.uninstalled && d.deleted_ns.is_none());
            }
        }
    }
}

#[test]
fn delete_refuses_system_namespaces() {
    for ns in ["default", "kube-system"] {
        let fakes = Fakes::new(0, "{}");
        let d = delete_with(&fakes, &[("M2S_NAMESPACE", ns)]);
        assert!(!d.ok, "{ns}");
        assert!(
            d.err.contains(&format!("will not delete namespace {ns}")),
            "{}",
            d.err
        );
        assert!(!d.uninstalled && d.deleted_ns.is_none());
    }
}

#[test]
fn scripts_are_bash_n_clean() {
    for script in [
        "scripts/helm_deploy.sh",
        "scripts/helm_delete.sh",
        "tests/chart/validate.sh",
    ] {
        let out = run(Command::new("bash").arg("-n").arg(repo().join(script))).unwrap();
        assert!(out.status.success(), "{script}: {}", stderr(&out));
        let text = fs::read_to_string(repo().join(script)).unwrap();
        assert!(text.contains("set -euo pipefail"), "{script}");
    }
}

// ---------------------------------------------------------------------------------------------
// The chart's RBAC in the sandbox API server, for each target against its real CRD

mod rbac_grants_only_the_targets_resource_in_its_namespace {
    use super::*;

    #[test]
    fn seldon_v1() {
        rbac_for("seldon-v1");
    }

    #[test]
    fn kserve() {
        rbac_for("kserve");
    }

    #[test]
    fn seldon_v2() {
        rbac_for("seldon-v2");
    }
}

/// Installs the chart's ServiceAccount, Role and RoleBinding for `target` into fresh namespaces
/// and proves with the ServiceAccount's token what they allow: get, list, create, patch and
/// delete on the target's resource in the serving namespace, and nothing else.
fn rbac_for(target_id: &str) {
    let helm = need!(helm());
    let python = need!(kv_python());
    let sandbox = need!(Sandbox::get());
    let target = m2s::targets::by_id(target_id).unwrap();
    for t in TARGETS {
        sandbox.wait_for_crd(&t.resource()).unwrap();
    }

    let base = unique_name(&format!("rbac-{target_id}"));
    let (release_ns, serving_ns, other_ns) = (
        format!("{base}-r"),
        format!("{base}-s"),
        format!("{base}-o"),
    );
    for ns in [&release_ns, &serving_ns, &other_ns] {
        sandbox.admin(&["create", "namespace", ns]).unwrap();
    }
    let out = run(Command::new(&helm)
        .args(["template", "m2s"])
        .arg(chart_dir())
        .args([
            "-n",
            &release_ns,
            "--set",
            &format!("mlflow.host={MLFLOW_HOST}"),
            "--set",
            &format!("target={target_id}"),
            "--set",
            &format!("serving.namespace={serving_ns}"),
        ]))
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Only these kinds: the 1.20 API server has no batch/v1 CronJob.
    let items: Vec<Value> = yaml_docs(&python, &stdout(&out))
        .into_iter()
        .filter(|d| ["ServiceAccount", "Role", "RoleBinding"].contains(&kind(d)))
        .collect();
    assert_eq!(items.len(), 3);
    sandbox.create(&items).unwrap();

    let dir = temp_dir("rbac");
    let kubeconfig = sandbox.token_kubeconfig("m2s", &release_ns, &dir).unwrap();
    let can_i = |verb: &str, resource: &str, ns: Option<&str>| -> bool {
        let mut cmd = sandbox.cmd_as(&kubeconfig);
        cmd.args(["auth", "can-i", verb, resource]);
        match ns {
            Some(ns) => cmd.args(["-n", ns]),
            None => cmd.arg("--all-namespaces"),
        };
        let out = run(&mut cmd).unwrap();
        match stdout(&out).trim() {
            "yes" => true,
            "no" => false,
            other => panic!(
                "kubectl auth can-i {verb} {resource}: {other:?} {}",
                stderr(&out)
            ),
        }
    };
    let own = target.resource().qualified_plural();
    for verb in ROLE_VERBS {
        assert!(
            can_i(verb, &own, Some(&serving_ns)),
            "cannot {verb} {own} in {serving_ns}"
        );
        for ns in [&other_ns, &release_ns] {
            assert!(!can_i(verb, &own, Some(ns)), "can {verb} {own} in {ns}");
        }
    }
    for verb in ["update", "watch", "deletecollection"] {
        assert!(!can_i(verb, &own, Some(&serving_ns)), "can {verb} {own}");
    }
    // Events: create in the serving namespace, nothing else.
    const EVENTS: &str = "events.events.k8s.io";
    assert!(
        can_i("create", EVENTS, Some(&serving_ns)),
        "cannot create Events"
    );
    assert!(
        !can_i("create", EVENTS, Some(&other_ns)),
        "can create Events elsewhere"
    );
    for verb in ["get", "list", "watch", "patch", "update", "delete"] {
        assert!(!can_i(verb, EVENTS, Some(&serving_ns)), "can {verb} Events");
    }
    assert!(
        !can_i("create", "events", Some(&serving_ns)),
        "can create core/v1 Events"
    );
    assert!(!can_i("list", &own, None), "can list {own} cluster-wide");
    // The other targets' resources: nothing, not even in the serving namespace.
    for other in TARGETS.iter().filter(|t| t.id() != target_id) {
        let theirs = other.resource().qualified_plural();
        for verb in ROLE_VERBS {
            assert!(
                !can_i(verb, &theirs, Some(&serving_ns)),
                "target {target_id}: can {verb} {theirs}"
            );
        }
    }
    for ns in [&serving_ns, &release_ns] {
        for verb in ["get", "list"] {
            assert!(
                !can_i(verb, "secrets", Some(ns)),
                "can {verb} secrets in {ns}"
            );
        }
        assert!(
            !can_i("create", "roles", Some(ns)),
            "can create roles in {ns}"
        );
        assert!(
            !can_i("create", "pods", Some(ns)),
            "can create pods in {ns}"
        );
    }
    assert!(!can_i("list", "namespaces", None), "can list namespaces");

    // Real requests with the token, on an object m2s would write (its base spec).
    let kubectl = |args: &[&str], input: Option<&str>| {
        let mut cmd = sandbox.cmd_as(&kubeconfig);
        cmd.args(args);
        match input {
            Some(i) => run_with_input(&mut cmd, i).unwrap(),
            None => run(&mut cmd).unwrap(),
        }
    };
    let ok = |out: &std::process::Output, what: &str| {
        assert!(out.status.success(), "{target_id}: {what}: {}", stderr(out))
    };
    let forbidden = |out: &std::process::Output, what: &str| {
        assert!(!out.status.success(), "{target_id}: {what} was allowed");
        assert!(
            stderr(out).to_lowercase().contains("forbidden"),
            "{target_id}: {what}: {}",
            stderr(out)
        );
    };
    let probe = |t: &dyn Target, ns: &str| {
        let r = t.resource();
        json!({
            "apiVersion": r.api_version(),
            "kind": r.kind,
            "metadata": {"name": "rbac-probe", "namespace": ns},
            "spec": t.base_spec("s3://bucket/model"),
        })
        .to_string()
    };
    ok(
        &kubectl(&["create", "-f", "-"], Some(&probe(target, &serving_ns))),
        "create",
    );
    ok(&kubectl(&["get", &own, "-n", &serving_ns], None), "list");
    ok(
        &kubectl(&["get", &own, "rbac-probe", "-n", &serving_ns], None),
        "get",
    );
    ok(
        &kubectl(
            &[
                "patch",
                &own,
                "rbac-probe",
                "-n",
                &serving_ns,
                "--type=merge",
                "-p",
                r#"{"metadata":{"labels":{"patched":"yes"}}}"#,
            ],
            None,
        ),
        "patch",
    );
    // An update (PUT) is refused before the API server looks at the body.
    forbidden(
        &kubectl(&["replace", "-f", "-"], Some(&probe(target, &serving_ns))),
        "update (kubectl replace)",
    );
    ok(
        &kubectl(&["delete", &own, "rbac-probe", "-n", &serving_ns], None),
        "delete",
    );
    // An Event as m2s records it (events.k8s.io/v1) is allowed; reading Events is not.
    let event = serde_json::json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "rbac-probe.1", "namespace": serving_ns},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "action": "Create",
        "reason": "Created",
        "type": "Normal",
        "note": "probe",
        "reportingController": "m2s",
        "reportingInstance": "m2s-m2s",
        "regarding": {"apiVersion": target.resource().api_version(), "kind": target.resource().kind,
                      "name": "rbac-probe", "namespace": serving_ns},
    })
    .to_string();
    ok(
        &kubectl(&["create", "-f", "-"], Some(&event)),
        "create an Event",
    );
    forbidden(
        &kubectl(&["get", "events.events.k8s.io", "-n", &serving_ns], None),
        "list Events",
    );
    forbidden(
        &kubectl(&["get", &own, "-n", &other_ns], None),
        "list in another namespace",
    );
    forbidden(
        &kubectl(&["create", "-f", "-"], Some(&probe(target, &other_ns))),
        "create in another namespace",
    );
    for other in TARGETS.iter().filter(|t| t.id() != target_id) {
        let theirs = other.resource().qualified_plural();
        forbidden(
            &kubectl(&["get", &theirs, "-n", &serving_ns], None),
            &format!("list {theirs}"),
        );
        forbidden(
            &kubectl(&["create", "-f", "-"], Some(&probe(*other, &serving_ns))),
            &format!("create a {}", other.resource().kind),
        );
    }
    forbidden(
        &kubectl(&["get", "secrets", "-n", &serving_ns], None),
        "list secrets",
    );
    forbidden(
        &kubectl(&["get", "secrets", "-n", &release_ns], None),
        "list secrets in the release namespace",
    );
    forbidden(&kubectl(&["get", "namespaces"], None), "list namespaces");
    let _ = fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver (webhook.enabled): Deployment and Service

/// The receiver, and the CronJob beside it (with the receiver it is off unless asked for).
const WEBHOOK: &[&str] = &[
    "--set",
    "webhook.enabled=true",
    "--set",
    "webhook.existingSecret=m2s-webhook",
    "--set",
    "cronJob.enabled=true",
];

fn webhook_pod(docs: &[Value]) -> &Value {
    &one(docs, "Deployment")["spec"]["template"]
}

fn webhook_container(docs: &[Value]) -> &Value {
    let containers = webhook_pod(docs)["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn env_of(container: &Value) -> std::collections::BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

#[test]
fn webhook_renders_a_hardened_deployment_and_a_service_beside_the_cronjob() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let docs = render(&helm, &python, WEBHOOK);
    let kinds: BTreeSet<&str> = docs.iter().map(kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "CronJob",
            "Deployment",
            "Pod",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ])
    );
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["apiVersion"], "apps/v1");
    assert_eq!(deployment["metadata"]["name"], "m2s-webhook");
    assert_eq!(deployment["metadata"]["namespace"], RELEASE_NS);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &webhook_pod(&docs)["spec"];
    // Hardened like the CronJob's pod, with the same ServiceAccount.
    assert_eq!(pod["securityContext"], pod_spec(&docs)["securityContext"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(
        pod["serviceAccountName"],
        pod_spec(&docs)["serviceAccountName"]
    );
    assert_eq!(pod["automountServiceAccountToken"], true);
    let c = webhook_container(&docs);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(c["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(c["image"], "m2s:0.1.0");
    assert_eq!(c["args"], serde_json::json!(["webhook"]));
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    // Probes on /healthz (live) and /readyz (ready after the first full sync).
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "http", "{probe}");
    }
    // The Service selects the receiver's pods, never the CronJob's.
    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let selector = service["spec"]["selector"].as_object().unwrap();
    let pod_labels = &webhook_pod(&docs)["metadata"]["labels"];
    let cron_labels =
        &one(&docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"];
    assert!(
        selector.iter().all(|(k, v)| &pod_labels[k] == v),
        "{selector:?}"
    );
    assert!(
        !selector.iter().all(|(k, v)| &cron_labels[k] == v),
        "{selector:?}"
    );
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"]
    );
    // Off by default; the CronJob renders the same either way.
    let plain = render(&helm, &python, &[]);
    assert!(plain
        .iter()
        .all(|d| !["Deployment", "Service"].contains(&kind(d))));
    assert_eq!(one(&plain, "CronJob"), one(&docs, "CronJob"));
}

#[test]
fn webhook_env_is_the_cronjobs_plus_its_own_and_the_secret_only_by_reference() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let mut args: Vec<&str> = FULL.to_vec();
    args.extend(WEBHOOK);
    args.extend([
        "--set",
        "mlflow.existingSecret=mlflow-creds",
        "--set",
        "webhook.existingSecretKey=hmac",
        "--set",
        "webhook.port=9090",
        "--set",
        "webhook.resyncIntervalSeconds=120",
    ]);
    for args in [&WEBHOOK.to_vec(), &args] {
        let docs = render(&helm, &python, args);
        let mut env = env_of(webhook_container(&docs));
        let secret = env
            .remove("M2S_WEBHOOK_SECRET")
            .expect("M2S_WEBHOOK_SECRET");
        assert!(
            secret.get("value").is_none(),
            "a plain secret value: {secret}"
        );
        let r = &secret["valueFrom"]["secretKeyRef"];
        assert_eq!(r["name"], "m2s-webhook");
        assert!(r.get("optional").is_none() || r["optional"] == false, "{r}");
        let listen = env.remove("M2S_WEBHOOK_LISTEN").unwrap();
        let resync = env.remove("M2S_RESYNC_INTERVAL").unwrap();
        // The receiver's own (chart_conventions:: checks their values).
        for own in ["M2S_SYNC_TIMEOUT", "POD_NAME"] {
            env.remove(own).unwrap_or_else(|| panic!("no {own}"));
        }
        // Everything else is exactly what the CronJob's container gets.
        assert_eq!(
            env,
            env_map(&docs),
            "the receiver's sync settings drifted from the CronJob's"
        );
        if args.len() > WEBHOOK.len() {
            assert_eq!(r["key"], "hmac");
            assert_eq!(listen["value"], "0.0.0.0:9090");
            assert_eq!(resync["value"], "120");
            let c = webhook_container(&docs);
            assert_eq!(c["ports"][0]["containerPort"], 9090);
            assert_eq!(
                c["args"],
                serde_json::json!([
                    "webhook",
                    "--dry-run",
                    "--allow-delete-all",
                    "--max-deletes",
                    "5"
                ])
            );
        } else {
            assert_eq!(r["key"], "secret");
            assert_eq!(listen["value"], "0.0.0.0:8080");
            assert_eq!(resync["value"], "300");
        }
        assert!(docs.iter().all(|d| kind(d) != "Secret"));
    }
}

#[test]
fn webhook_needs_an_existing_secret_and_known_values() {
    let helm = need!(helm());
    let out = helm_template(&helm, &["--set", "webhook.enabled=true"]).unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("webhook.existingSecret is required"),
        "{}",
        stderr(&out)
    );
    for key in ["webhook.enable", "webhook.service.prot", "webhook.secret"] {
        let out = helm_template(&helm, &["--set-string", &format!("{key}=x")]).unwrap();
        assert!(!out.status.success(), "unknown key {key} was accepted");
        assert!(
            stderr(&out).contains("additional properties"),
            "{key}: {}",
            stderr(&out)
        );
    }
    for args in [
        &["--set-string", "webhook.enabled=yes"][..],
        &["--set", "webhook.port=0"],
        &["--set", "webhook.resyncIntervalSeconds=0"],
        &["--set", "webhook.service.type=Ingress"],
    ] {
        template_fails(&helm, args, "schema");
    }
}

#[test]
fn webhook_manifests_validate_against_kubernetes_1_30() {
    let helm = need!(helm());
    need!(kv_python());
    let dir = temp_dir("kv-webhook");
    let mut full: Vec<&str> = FULL.to_vec();
    full.extend(WEBHOOK);
    for (name, args) in [("webhook", WEBHOOK.to_vec()), ("webhook-full", full)] {
        let file = dir.join(format!("{name}.yaml"));
        fs::write(&file, render_yaml(&helm, &args)).unwrap();
        let out = run(Command::new("bash")
            .arg(repo().join("tests/chart/validate.sh"))
            .arg(&file))
        .unwrap();
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            out.status.success(),
            "{name}: kubernetes-validate --strict failed:\n{all}"
        );
        assert!(
            all.contains("deployment/m2s-webhook against version 1.30"),
            "{all}"
        );
        assert!(
            all.contains("service/m2s-webhook against version 1.30"),
            "{all}"
        );
    }
    let _ = fs::remove_dir_all(dir);
}
