//! The Helm chart (chart/m2s), its schema and manifests, the Makefile's helm_deploy/helm_delete
//! scripts (with fake helm and kubectl), and the chart's RBAC against the sandbox API server.
//!
//! Needs `$M2S_SANDBOX_BIN/helm` and `kubectl` (or the running sandbox's env file), bash, and for
//! the manifest checks a venv with kubernetes-validate and PyYAML that tests/chart/validate.sh
//! installs from PyPI. Missing ones fail the test when CI=true or M2S_SANDBOX_REQUIRED=1, and
//! skip it (SKIP: on stderr) otherwise.

mod chart_support;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use chart_support::*;
use serde_json::Value;

const ROLE_VERBS: [&str; 6] = ["get", "list", "create", "patch", "update", "delete"];

// ---------------------------------------------------------------------------------------------
// helm lint / template / schema

#[test]
fn lint_strict_passes() {
    let helm = need!(helm());
    let out = run(Command::new(&helm)
        .args(["lint", "--strict"])
        .arg(chart_dir())
        .args(["--set", &format!("mlflow.host={MLFLOW_HOST}")]))
    .unwrap();
    assert!(
        out.status.success(),
        "helm lint --strict failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("0 chart(s) failed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn template_renders_only_namespaced_objects() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let docs = render(&helm, &python, &[]);
    let kinds: BTreeSet<&str> = docs.iter().map(kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["CronJob", "Role", "RoleBinding", "ServiceAccount"])
    );
    assert_eq!(docs.len(), 4);
    // With the namespace toggle (another namespace than the release's) a Namespace is added,
    // kept on uninstall.
    let docs = render(
        &helm,
        &python,
        &[
            "--set",
            "seldon.namespace=models",
            "--set",
            "seldon.createNamespace=true",
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
    assert_eq!(kinds, ["CronJob"]);
    assert_eq!(pod_spec(&docs)["serviceAccountName"], "existing");
}

#[test]
fn schema_rejects_unknown_keys_at_every_level() {
    let helm = need!(helm());
    for key in [
        "schedul",
        "dryrun",
        "mlflow.hots",
        "mlflow.existingSecretKeys.tokn",
        "seldon.namspace",
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
    let cases: [&[&str]; 9] = [
        &["--set-string", "suspend=yes"],
        &["--set-string", "dryRun=true"],
        &["--set-string", "maxDeletes=3"],
        &["--set", "maxDeletes=-1"],
        &["--set-string", "aliases=champion"],
        &["--set", "concurrency=0"],
        &["--set", "schedule=5"],
        &["--set", "image.pullPolicy=Sometimes"],
        &["--set", "seldon.namespace=Not_A_Namespace"],
    ];
    for args in cases {
        let out = helm_template(&helm, args).unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr(&out).contains("schema"),
            "{args:?}: expected a schema error, got:\n{}",
            stderr(&out)
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
    let cases: [(&[&str], &str); 3] = [
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
            &["--set", "seldon.createNamespace=true"],
            "seldon.createNamespace",
        ),
    ];
    for (args, message) in cases {
        let out = helm_template(&helm, args).unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr(&out).contains(message),
            "{args:?}: expected {message:?} in:\n{}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("secret@"),
            "the error repeats the credentials"
        );
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

// ---------------------------------------------------------------------------------------------
// Rendered manifests

/// Every value the chart has, set.
#[rustfmt::skip]
const FULL: &[&str] = &[
    "--set", "seldon.namespace=models",
    "--set", "seldon.createNamespace=true",
    "--set-string", "mlflow.storageRoot=s3://bucket/mlruns",
    "--set-string", "mlflow.imageTag=serving-image",
    "--set-string", "mlflow.modelFilter=name LIKE 'team-a-%'",
    "--set", "mlflow.insecureTls=true",
    "--set", "mlflow.existingSecret=mlflow-creds",
    "--set-string", "seldon.defaultImage=registry.example/mlserver:1.2",
    "--set", "seldon.registrySecret=regcred",
    "--set", "seldon.modelSecret=s3-creds",
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
    for (name, args) in [("default", &[][..]), ("full", FULL)] {
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
        let expected = if name == "full" { 5 } else { 4 };
        assert_eq!(
            all.matches("passed for resource").count(),
            expected,
            "{name}:\n{all}"
        );
        assert!(all.contains("cronjob/m2s against version 1.30"), "{all}");
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
fn rbac_is_namespaced_minimal_and_in_the_seldon_namespace() {
    let helm = need!(helm());
    let python = need!(kv_python());
    for (args, seldon_ns) in [
        (&[][..], RELEASE_NS),
        (&["--set", "seldon.namespace=models"][..], "models"),
    ] {
        let docs = render(&helm, &python, args);
        for k in ["ClusterRole", "ClusterRoleBinding", "Secret"] {
            assert!(docs.iter().all(|d| kind(d) != k), "a {k} is rendered");
        }
        let role = one(&docs, "Role");
        assert_eq!(role["metadata"]["namespace"], seldon_ns);
        let rules = role["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1, "{rules:?}");
        assert_eq!(
            rules[0]["apiGroups"],
            serde_json::json!(["machinelearning.seldon.io"])
        );
        assert_eq!(
            rules[0]["resources"],
            serde_json::json!(["seldondeployments"])
        );
        assert!(
            rules[0].get("resourceNames").is_none() && rules[0].get("nonResourceURLs").is_none()
        );
        let verbs: BTreeSet<&str> = rules[0]["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(verbs, BTreeSet::from(ROLE_VERBS));
        assert!(!role.to_string().contains("secrets"));

        let sa = one(&docs, "ServiceAccount");
        assert_eq!(sa["metadata"]["namespace"], RELEASE_NS);
        assert_eq!(sa["automountServiceAccountToken"], false);
        let binding = one(&docs, "RoleBinding");
        assert_eq!(binding["metadata"]["namespace"], seldon_ns);
        assert_eq!(binding["roleRef"]["kind"], "Role");
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        assert_eq!(
            binding["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": RELEASE_NS}])
        );
        assert_eq!(
            pod_spec(&docs)["serviceAccountName"],
            sa["metadata"]["name"]
        );
        assert_eq!(
            env_value(&docs, "M2S_SELDON_DEPLOYMENT_NS").as_deref(),
            Some(seldon_ns)
        );
    }
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
            "M2S_RUN_TIMEOUT",
            "M2S_SELDON_DEPLOYMENT_NS",
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
    // Defaults: the release name and namespace.
    assert_eq!(env_value(&docs, "M2S_INSTANCE").as_deref(), Some("m2s"));
    assert_eq!(
        env_value(&docs, "M2S_SELDON_DEPLOYMENT_NS").as_deref(),
        Some(RELEASE_NS)
    );

    let docs = render(&helm, &python, FULL);
    let expected = [
        ("M2S_MLFLOW_HOST", MLFLOW_HOST),
        ("M2S_SELDON_DEPLOYMENT_NS", "models"),
        ("M2S_MLFLOW_STORAGE_ROOT", "s3://bucket/mlruns"),
        ("M2S_SELDON_DEF_IMAGE", "registry.example/mlserver:1.2"),
        ("M2S_MLFLOW_DEPLOY_IMG_TAG", "serving-image"),
        ("M2S_REGISTRY_SECRET", "regcred"),
        ("M2S_MODEL_SECRET", "s3-creds"),
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

const M2S_VARS: [(&str, &str); 13] = [
    ("M2S_MLFLOW_HOST", "http://mlflow.example:5000"),
    ("M2S_SELDON_DEPLOYMENT_NS", "models"),
    ("M2S_MLFLOW_STORAGE_ROOT", "s3://bucket/mlruns"),
    ("M2S_SELDON_DEF_IMAGE", "registry.example/mlserver:1.2"),
    ("M2S_MLFLOW_DEPLOY_IMG_TAG", "serving-image"),
    ("M2S_REGISTRY_SECRET", "regcred"),
    ("M2S_MODEL_SECRET", "s3-creds"),
    ("M2S_STAGES", "Production, Staging"),
    ("M2S_ALIASES", "champion,*"),
    ("M2S_INSTANCE", "team-a"),
    ("M2S_MODEL_FILTER", "name LIKE 'a,b%'"),
    ("M2S_MLFLOW_SECRET", "mlflow-creds"),
    ("M2S_MAX_DELETES", "5"),
];

#[test]
fn deploy_without_a_tty_lists_every_missing_setting_and_calls_nothing() {
    let fakes = Fakes::new(0, "{}");
    let out = run(&mut fakes.script("helm_deploy.sh")).unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("M2S_MLFLOW_HOST") && err.contains("M2S_SELDON_DEPLOYMENT_NS"),
        "{err}"
    );
    assert!(fakes.calls("helm").is_empty(), "helm was called");

    let out = run(fakes
        .script("helm_deploy.sh")
        .env("M2S_MLFLOW_HOST", "http://m:5000"))
    .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("M2S_SELDON_DEPLOYMENT_NS")
            && !stderr(&out).contains("  M2S_MLFLOW_HOST")
    );
    assert!(fakes.calls("helm").is_empty(), "helm was called");
}

#[test]
fn deploy_passes_the_environment_to_helm_upgrade_install() {
    let fakes = Fakes::new(0, "{}");
    let mut cmd = fakes.script("helm_deploy.sh");
    cmd.envs(M2S_VARS)
        .env("IMAGE", "registry.example:5000/team/m2s:1.2.3")
        .env("RELEASE", "m2s-a")
        .env("RELEASE_NAMESPACE", "m2s-a-system")
        .env("MLFLOW_TRACKING_TOKEN", "tok-DO-NOT-LEAK");
    let out = run(&mut cmd).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
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
    let expected = [
        ("mlflow.host", "http://mlflow.example:5000"),
        ("seldon.namespace", "models"),
        ("mlflow.storageRoot", "s3://bucket/mlruns"),
        ("seldon.defaultImage", "registry.example/mlserver:1.2"),
        ("mlflow.imageTag", "serving-image"),
        ("seldon.registrySecret", "regcred"),
        ("seldon.modelSecret", "s3-creds"),
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
        .env("M2S_SELDON_DEPLOYMENT_NS", "models")
        .env("MLFLOW_TRACKING_PASSWORD", "pw-DO-NOT-LEAK"))
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("MLFLOW_TRACKING_PASSWORD is set but not passed"),
        "{}",
        stderr(&out)
    );
    assert!(!fakes.calls("helm")[0].join(" ").contains("pw-DO-NOT-LEAK"));
}

#[test]
fn deploy_arguments_render_with_the_real_chart() {
    // The --set-string escaping (commas, lists) as helm itself reads it.
    let helm = need!(helm());
    let python = need!(kv_python());
    let fakes = Fakes::new(0, "{}");
    let out = run(fakes.script("helm_deploy.sh").envs(M2S_VARS)).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let argv = fakes.calls("helm").remove(0);
    let mut cmd = Command::new(&helm);
    cmd.args(["template", &argv[2], &argv[3]]).args(&argv[4..]);
    let out = run(&mut cmd).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = yaml_docs(&python, &stdout(&out));
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
    assert_eq!(
        env_value(&docs, "M2S_SELDON_DEPLOYMENT_NS").as_deref(),
        Some("models")
    );
    assert_eq!(one(&docs, "Role")["metadata"]["namespace"], "models");
    assert_eq!(args(&docs), ["sync", "--max-deletes", "5"]);
}

#[test]
fn deploy_refuses_credentials_in_the_mlflow_url() {
    let fakes = Fakes::new(0, "{}");
    let out = run(fakes
        .script("helm_deploy.sh")
        .env("M2S_MLFLOW_HOST", "https://bob:hunter2@mlflow.example")
        .env("M2S_SELDON_DEPLOYMENT_NS", "models"))
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
    let out = run_with_input(&mut cmd, "http://typed.example:5000\nseldon-typed\n").unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("M2S_MLFLOW_HOST ("),
        "no prompt naming M2S_MLFLOW_HOST:\n{all}"
    );
    assert!(
        all.contains("M2S_SELDON_DEPLOYMENT_NS ("),
        "no prompt naming M2S_SELDON_DEPLOYMENT_NS:\n{all}"
    );
    let calls = fakes.calls("helm");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let sets = set_strings(&calls[0]);
    assert_eq!(sets["mlflow.host"], "http://typed.example:5000");
    assert_eq!(sets["seldon.namespace"], "seldon-typed");
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
    assert!(err.contains("M2S_SELDON_DEPLOYMENT_NS ("), "{err}");
    assert!(
        !err.contains("M2S_MLFLOW_HOST ("),
        "asked for a setting that was set:\n{err}"
    );
    assert_eq!(
        set_strings(&fakes.calls("helm")[0])["seldon.namespace"],
        "models-typed"
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
        .env("M2S_SELDON_DEPLOYMENT_NS", "models"))
    .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("YES=1"), "{}", stderr(&out));
    assert!(fakes.calls("helm").is_empty() && fakes.calls("kubectl").is_empty());
}

#[test]
fn delete_with_yes_names_what_it_deletes_then_deletes_it() {
    let fakes = Fakes::new(3, "{}");
    let out = run(fakes
        .script("helm_delete.sh")
        .env("YES", "1")
        .env("M2S_SELDON_DEPLOYMENT_NS", "models")
        .env("RELEASE", "m2s-a")
        .env("RELEASE_NAMESPACE", "m2s-a-system"))
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("release 'm2s-a' in namespace 'm2s-a-system'"),
        "{err}"
    );
    assert!(
        err.contains("namespace 'models'") && err.contains("3 SeldonDeployment(s)"),
        "{err}"
    );
    let helm = fakes.calls("helm");
    assert!(
        helm.iter()
            .any(|c| c[..4] == ["uninstall", "m2s-a", "--namespace", "m2s-a-system"]),
        "{helm:?}"
    );
    let kubectl = fakes.calls("kubectl");
    assert!(
        kubectl
            .iter()
            .any(|c| c[..3] == ["get", "seldondeployments", "-n"]
                && c[3] == "models"
                && c.contains(&"--no-headers".to_string())),
        "{kubectl:?}"
    );
    let deletes: Vec<&Vec<String>> = kubectl.iter().filter(|c| c[0] == "delete").collect();
    assert_eq!(deletes.len(), 1, "{kubectl:?}");
    assert_eq!(deletes[0][..3], ["delete", "namespace", "models"]);
}

#[test]
fn delete_asks_for_yes() {
    for (answer, deletes) in [
        ("no\n", false),
        ("y\n", false),
        ("", false),
        ("yes\n", true),
    ] {
        let fakes = Fakes::new(2, "{}");
        let out = run_with_input(
            fakes
                .script("helm_delete.sh")
                .env("FORCE_INTERACTIVE", "1")
                .env("M2S_SELDON_DEPLOYMENT_NS", "models"),
            answer,
        )
        .unwrap();
        let err = stderr(&out);
        assert!(
            err.contains("Type 'yes'") && err.contains("2 SeldonDeployment(s)"),
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
fn delete_reads_the_seldon_namespace_from_the_release() {
    let fakes = Fakes::new(0, r#"{"seldon":{"namespace":"from-values"}}"#);
    let out = run(fakes.script("helm_delete.sh").env("YES", "1")).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("namespace 'from-values'"),
        "{}",
        stderr(&out)
    );
    let kubectl = fakes.calls("kubectl");
    assert!(
        kubectl
            .iter()
            .any(|c| c[..3] == ["delete", "namespace", "from-values"]),
        "{kubectl:?}"
    );
}

#[test]
fn delete_refuses_system_namespaces() {
    for ns in ["default", "kube-system"] {
        let fakes = Fakes::new(0, "{}");
        let out = run(fakes
            .script("helm_delete.sh")
            .env("YES", "1")
            .env("M2S_SELDON_DEPLOYMENT_NS", ns))
        .unwrap();
        assert!(!out.status.success(), "{ns}");
        assert!(!fakes.calls("kubectl").iter().any(|c| c[0] == "delete"));
        assert!(!fakes.calls("helm").iter().any(|c| c[0] == "uninstall"));
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
// The chart's RBAC in the sandbox API server

#[test]
fn rbac_grants_seldondeployments_in_its_namespace_and_nothing_else() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let sandbox = need!(Sandbox::get());
    sandbox.wait_for_seldon_crd().unwrap();

    let base = unique_name("chart-rbac");
    let (release_ns, seldon_ns, other_ns) = (
        format!("{base}-r"),
        format!("{base}-s"),
        format!("{base}-o"),
    );
    for ns in [&release_ns, &seldon_ns, &other_ns] {
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
            &format!("seldon.namespace={seldon_ns}"),
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
    const SDEP: &str = "seldondeployments.machinelearning.seldon.io";
    for verb in ROLE_VERBS {
        assert!(
            can_i(verb, SDEP, Some(&seldon_ns)),
            "cannot {verb} seldondeployments in {seldon_ns}"
        );
        assert!(
            !can_i(verb, SDEP, Some(&other_ns)),
            "can {verb} seldondeployments in another namespace"
        );
        assert!(
            !can_i(verb, SDEP, Some(&release_ns)),
            "can {verb} seldondeployments in the release namespace"
        );
    }
    for verb in ["watch", "deletecollection"] {
        assert!(
            !can_i(verb, SDEP, Some(&seldon_ns)),
            "can {verb} seldondeployments"
        );
    }
    assert!(
        !can_i("list", SDEP, None),
        "can list seldondeployments cluster-wide"
    );
    for ns in [&seldon_ns, &release_ns] {
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

    // Real requests with the token.
    let kubectl = |args: &[&str], input: Option<&str>| {
        let mut cmd = sandbox.cmd_as(&kubeconfig);
        cmd.args(args);
        match input {
            Some(i) => run_with_input(&mut cmd, i).unwrap(),
            None => run(&mut cmd).unwrap(),
        }
    };
    let sdep = serde_json::json!({
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": "rbac-probe", "namespace": seldon_ns},
        "spec": {"predictors": [{
            "name": "default",
            "graph": {"name": "model", "type": "MODEL", "implementation": "MLFLOW_SERVER", "modelUri": "s3://bucket/model"},
        }]},
    })
    .to_string();
    let ok = |out: &std::process::Output, what: &str| {
        assert!(out.status.success(), "{what}: {}", stderr(out))
    };
    let forbidden = |out: &std::process::Output, what: &str| {
        assert!(!out.status.success(), "{what} was allowed");
        assert!(
            stderr(out).to_lowercase().contains("forbidden"),
            "{what}: {}",
            stderr(out)
        );
    };
    ok(
        &kubectl(&["create", "-f", "-"], Some(&sdep)),
        "create seldondeployment",
    );
    ok(
        &kubectl(&["get", "seldondeployments", "-n", &seldon_ns], None),
        "list seldondeployments",
    );
    ok(
        &kubectl(
            &[
                "patch",
                "seldondeployment",
                "rbac-probe",
                "-n",
                &seldon_ns,
                "--type=merge",
                "-p",
                r#"{"metadata":{"labels":{"patched":"yes"}}}"#,
            ],
            None,
        ),
        "patch seldondeployment",
    );
    ok(
        &kubectl(
            &["delete", "seldondeployment", "rbac-probe", "-n", &seldon_ns],
            None,
        ),
        "delete seldondeployment",
    );
    forbidden(
        &kubectl(&["get", "seldondeployments", "-n", &other_ns], None),
        "list seldondeployments in another namespace",
    );
    forbidden(
        &kubectl(&["get", "secrets", "-n", &seldon_ns], None),
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

const WEBHOOK: &[&str] = &[
    "--set",
    "webhook.enabled=true",
    "--set",
    "webhook.existingSecret=m2s-webhook",
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
    assert_eq!(deployment["spec"]["replicas"], 1);
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
        let out = helm_template(&helm, args).unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr(&out).contains("schema"),
            "{args:?}: {}",
            stderr(&out)
        );
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
