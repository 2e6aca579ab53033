//! The chart to the conventions platform teams expect: extraVolumes, extraVolumeMounts,
//! envFrom, priorityClassName and podLabels on every pod; MLflow's CA from a Secret or a
//! ConfigMap; `helm test` running `m2s plan` under the release's ServiceAccount (rendered, and
//! run against the sandbox with the chart's own RBAC); the CronJob toggle; the receiver's
//! replicas, PodDisruptionBudget, anti-affinity, TLS, cert-manager Certificate and Lease RBAC;
//! complete Chart.yaml metadata, LICENSE and CHANGELOG.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::chart_support::*;
use crate::need;

/// Every value this chart adds for the conventions, at once.
const CONVENTIONS: &[&str] = &[
    "--set",
    "webhook.enabled=true",
    "--set",
    "webhook.existingSecret=m2s-webhook",
    "--set",
    "cronJob.enabled=true",
    "--set",
    "webhook.replicas=3",
    "--set",
    "webhook.syncTimeoutSeconds=90",
    "--set",
    "webhook.tls.secretName=m2s-webhook-tls",
    "--set",
    "mlflow.caSecret=mlflow-ca",
    "--set",
    "mlflow.caKey=bundle.pem",
    "--set",
    "priorityClassName=mlops-critical",
    "--set",
    "podLabels.team=mlops",
    "--set",
    "envFrom[0].secretRef.name=proxy-env",
    "--set",
    "extraVolumes[0].name=textfile",
    "--set",
    "extraVolumes[0].hostPath.path=/var/lib/node-exporter",
    "--set",
    "extraVolumes[0].hostPath.type=Directory",
    "--set",
    "extraVolumeMounts[0].name=textfile",
    "--set",
    "extraVolumeMounts[0].mountPath=/textfile",
    "--set",
    "helmTest.detailedExitcode=true",
];

/// The pod specs of the CronJob, the receiver and the helm test, by what they are.
fn pods(docs: &[Value]) -> BTreeMap<&'static str, &Value> {
    let mut pods = BTreeMap::new();
    for d in docs {
        match kind(d) {
            "CronJob" => {
                pods.insert("cronjob", &d["spec"]["jobTemplate"]["spec"]["template"]);
            }
            "Deployment" => {
                pods.insert("receiver", &d["spec"]["template"]);
            }
            "Pod" => {
                pods.insert("helm test", d);
            }
            _ => {}
        }
    }
    pods
}

fn env(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

#[test]
fn every_pod_gets_the_pod_values_and_mlflows_ca() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let docs = render(&helm, &python, CONVENTIONS);
    let pods = pods(&docs);
    assert_eq!(pods.len(), 3);
    for (what, pod) in pods {
        let spec = &pod["spec"];
        let c = &spec["containers"][0];
        assert_eq!(spec["priorityClassName"], "mlops-critical", "{what}");
        assert_eq!(pod["metadata"]["labels"]["team"], "mlops", "{what}");
        assert_eq!(
            c["envFrom"],
            json!([{"secretRef": {"name": "proxy-env"}}]),
            "{what}"
        );
        let volumes = spec["volumes"].as_array().unwrap();
        let mounts = c["volumeMounts"].as_array().unwrap();
        assert!(
            volumes.contains(&json!({"name": "textfile", "hostPath": {"path": "/var/lib/node-exporter", "type": "Directory"}})),
            "{what}: {volumes:?}"
        );
        assert!(
            mounts.contains(&json!({"name": "textfile", "mountPath": "/textfile"})),
            "{what}"
        );
        // MLflow's CA: the Secret mounted read-only, and the variable m2s reads pointing at its key.
        assert!(
            volumes.contains(&json!({"name": "mlflow-ca", "secret": {"secretName": "mlflow-ca"}})),
            "{what}"
        );
        assert!(
            mounts.contains(
                &json!({"name": "mlflow-ca", "mountPath": "/etc/m2s/mlflow-ca", "readOnly": true})
            ),
            "{what}"
        );
        assert_eq!(
            env(c)["MLFLOW_TRACKING_SERVER_CERT_PATH"]["value"],
            "/etc/m2s/mlflow-ca/bundle.pem",
            "{what}"
        );
        // Still hardened.
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{what}"
        );
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{what}");
    }
    // From a ConfigMap instead (e.g. trust-manager's bundle).
    let docs = render(&helm, &python, &["--set", "mlflow.caConfigMap=ca-bundle"]);
    let spec = pod_spec(&docs);
    assert!(spec["volumes"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "mlflow-ca", "configMap": {"name": "ca-bundle"}})));
    assert_eq!(
        env_value(&docs, "MLFLOW_TRACKING_SERVER_CERT_PATH").as_deref(),
        Some("/etc/m2s/mlflow-ca/ca.crt")
    );
    // Without them: none of it.
    let docs = render(&helm, &python, &[]);
    let spec = pod_spec(&docs);
    assert!(spec.get("priorityClassName").is_none());
    assert!(container(&docs).get("envFrom").is_none());
    assert_eq!(spec["volumes"].as_array().unwrap().len(), 1, "only /tmp");
    assert!(env_value(&docs, "MLFLOW_TRACKING_SERVER_CERT_PATH").is_none());
    // One CA source, and not with skipping verification.
    template_fails(
        &helm,
        &[
            "--set",
            "mlflow.caSecret=a",
            "--set",
            "mlflow.caConfigMap=b",
        ],
        "are both set",
    );
    template_fails(
        &helm,
        &[
            "--set",
            "mlflow.caSecret=a",
            "--set",
            "mlflow.insecureTls=true",
        ],
        "mlflow.insecureTls skips the verification",
    );
}

#[test]
fn every_new_value_validates_against_kubernetes_1_30() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let dir = temp_dir("kv-conventions");
    let docs = render(&helm, &python, CONVENTIONS);
    // Kubernetes' own kinds (the monitoring and cert-manager kinds are checked against their
    // CRDs in monitoring:: and below).
    let mut names = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let file = dir.join(format!("{i}.json"));
        fs::write(&file, d.to_string()).unwrap();
        names.push(file);
    }
    let out = run(Command::new("bash")
        .arg(repo().join("tests/chart/validate.sh"))
        .args(&names))
    .unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success(),
        "kubernetes-validate --strict failed:\n{all}"
    );
    for resource in [
        "cronjob/m2s",
        "deployment/m2s-webhook",
        "poddisruptionbudget/m2s-webhook",
        "pod/m2s-test-plan",
        "role/m2s",
        "service/m2s-webhook",
    ] {
        assert!(
            all.contains(&format!(
                "passed for resource {resource} against version 1.30"
            )),
            "{resource} not validated:\n{all}"
        );
    }
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn schema_knows_the_new_values() {
    let helm = need!(helm());
    for key in [
        "extraVolume",
        "envfrom",
        "priorityClass",
        "mlflow.caSecrets",
        "cronJob.enable",
        "helmTest.enable",
        "webhook.replica",
        "webhook.tls.secret",
        "webhook.tls.certManager.issuer",
        "metrics.serviceMonitor.enable",
        "metrics.prometheusRule.runbook",
        "metrics.grafanaDashboard.label",
    ] {
        let out = helm_template(&helm, &["--set-string", &format!("{key}=x")]).unwrap();
        assert!(!out.status.success(), "unknown key {key} was accepted");
        assert!(
            stderr(&out).contains("additional properties"),
            "{key}: {}",
            stderr(&out)
        );
    }
    for args in [
        &["--set", "webhook.replicas=0"][..],
        &["--set-string", "cronJob.enabled=yes"],
        &["--set", "priorityClassName=Not_A_Name"],
        &["--set", "extraVolumeMounts[0].name=x"],
        &["--set", "metrics.serviceMonitor.interval=30 seconds"],
        &["--set", "metrics.prometheusRule.refusedPerSecond=0"],
        &[
            "--set",
            "metrics.prometheusRule.runbookBaseUrl=docs/monitoring.md",
        ],
        &[
            "--set",
            "metrics.prometheusRule.cronJobNamespaceLabel=exported-namespace",
        ],
        &["--set", "webhook.syncTimeoutSeconds=0"],
    ] {
        template_fails(&helm, args, "schema");
    }
}

#[test]
fn the_cronjob_runs_unless_the_receiver_does() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let kinds = |args: &[&str]| -> Vec<String> {
        let mut k: Vec<String> = render(&helm, &python, args)
            .iter()
            .map(|d| kind(d).to_string())
            .collect();
        k.sort();
        k.dedup();
        k
    };
    let receiver = [
        "--set",
        "webhook.enabled=true",
        "--set",
        "webhook.existingSecret=s",
    ];
    assert!(kinds(&[]).contains(&"CronJob".to_string()));
    let with_receiver = kinds(&receiver);
    assert!(
        !with_receiver.contains(&"CronJob".to_string()),
        "{with_receiver:?}"
    );
    assert!(with_receiver.contains(&"Deployment".to_string()));
    let mut both = receiver.to_vec();
    both.extend(["--set", "cronJob.enabled=true"]);
    assert!(kinds(&both).contains(&"CronJob".to_string()));
    template_fails(
        &helm,
        &["--set", "cronJob.enabled=false"],
        "nothing would run m2s",
    );
    // The NOTES say how the release syncs.
    let out = run(Command::new(&helm)
        .args(["install", "m2s", "--dry-run=client"])
        .arg(chart_dir())
        .args([
            "-n",
            RELEASE_NS,
            "--set",
            &format!("mlflow.host={MLFLOW_HOST}"),
        ])
        .args(receiver))
    .unwrap();
    let notes = stdout(&out);
    assert!(
        notes.contains("through the webhook receiver alone (no CronJob"),
        "{notes}"
    );
    assert!(!notes.contains("create job --from=cronjob"), "{notes}");
    assert!(
        notes.contains("helm test m2s -n m2s-system --logs"),
        "{notes}"
    );
}

#[test]
fn the_receiver_runs_replicas_that_survive_a_node_drain() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let receiver = [
        "--set",
        "webhook.enabled=true",
        "--set",
        "webhook.existingSecret=s",
    ];
    let docs = render(&helm, &python, &receiver);
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let term = &deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        ["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        term["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(
        term["podAffinityTerm"]["labelSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert!(
        deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .is_none(),
        "a hard rule would leave a replica unscheduled on one node"
    );
    // Its own settings: the sync timeout and the pod's name (its identity in the Lease).
    let c = &deployment["spec"]["template"]["spec"]["containers"][0];
    let e = env(c);
    assert_eq!(e["M2S_SYNC_TIMEOUT"]["value"], "120");
    assert_eq!(
        e["POD_NAME"]["valueFrom"],
        json!({"fieldRef": {"fieldPath": "metadata.name"}})
    );
    // One replica: no budget and no spreading; the user's affinity wins.
    let mut one_replica = receiver.to_vec();
    one_replica.extend(["--set", "webhook.replicas=1"]);
    let docs = render(&helm, &python, &one_replica);
    assert!(docs.iter().all(|d| kind(d) != "PodDisruptionBudget"));
    assert!(one(&docs, "Deployment")["spec"]["template"]["spec"]
        .get("affinity")
        .is_none());
    let mut own = receiver.to_vec();
    own.extend(["--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool", "--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists"]);
    let docs = render(&helm, &python, &own);
    let affinity = &one(&docs, "Deployment")["spec"]["template"]["spec"]["affinity"];
    assert!(affinity.get("podAntiAffinity").is_none() && affinity.get("nodeAffinity").is_some());
}

#[test]
fn the_receiver_serves_https_from_a_secret_or_a_cert_manager_certificate() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let receiver = [
        "--set",
        "webhook.enabled=true",
        "--set",
        "webhook.existingSecret=s",
    ];
    let check = |docs: &[Value], secret: &str| {
        let pod = &one(docs, "Deployment")["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let e = env(c);
        assert_eq!(e["M2S_WEBHOOK_TLS_CERT"]["value"], "/etc/m2s/tls/tls.crt");
        assert_eq!(e["M2S_WEBHOOK_TLS_KEY"]["value"], "/etc/m2s/tls/tls.key");
        assert!(c["volumeMounts"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "tls", "mountPath": "/etc/m2s/tls", "readOnly": true})));
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "tls")
            .unwrap();
        assert_eq!(volume["secret"]["secretName"], secret);
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(c[probe]["httpGet"]["scheme"], "HTTPS", "{probe}");
        }
    };
    let mut from_secret = receiver.to_vec();
    from_secret.extend(["--set", "webhook.tls.secretName=my-tls"]);
    let docs = render(&helm, &python, &from_secret);
    check(&docs, "my-tls");
    assert!(docs.iter().all(|d| kind(d) != "Certificate"));
    let mut cm = receiver.to_vec();
    cm.extend([
        "--set",
        "webhook.tls.certManager.enabled=true",
        "--set",
        "webhook.tls.certManager.issuerRef.name=cluster-ca",
        "--set",
        "webhook.tls.certManager.issuerRef.kind=ClusterIssuer",
    ]);
    let docs = render(&helm, &python, &cm);
    check(&docs, "m2s-webhook-tls");
    let cert = one(&docs, "Certificate");
    assert_eq!(cert["apiVersion"], "cert-manager.io/v1");
    assert_eq!(cert["spec"]["secretName"], "m2s-webhook-tls");
    assert_eq!(
        cert["spec"]["dnsNames"],
        json!([
            "m2s-webhook",
            "m2s-webhook.m2s-system",
            "m2s-webhook.m2s-system.svc",
            "m2s-webhook.m2s-system.svc.cluster.local"
        ])
    );
    assert_eq!(
        cert["spec"]["issuerRef"],
        json!({"name": "cluster-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
    // Plain HTTP without TLS.
    let docs = render(&helm, &python, &receiver);
    let c = &one(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["scheme"], "HTTP");
    assert!(!env(c).contains_key("M2S_WEBHOOK_TLS_CERT"));
    let mut no_issuer = receiver.to_vec();
    no_issuer.extend(["--set", "webhook.tls.certManager.enabled=true"]);
    template_fails(
        &helm,
        &no_issuer,
        "webhook.tls.certManager.issuerRef.name is required",
    );
}

#[test]
fn helm_test_runs_plan_under_the_release_service_account() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let docs = render(
        &helm,
        &python,
        &[
            "--set",
            "serviceAccount.name=m2s-runner",
            "--set",
            "maxDeletes=3",
        ],
    );
    let pod = one(&docs, "Pod");
    assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/component"],
        "test"
    );
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "m2s-runner");
    assert_eq!(
        one(&docs, "ServiceAccount")["metadata"]["name"],
        "m2s-runner"
    );
    assert_eq!(
        spec["serviceAccountName"],
        pod_spec(&docs)["serviceAccountName"]
    );
    assert_eq!(spec["automountServiceAccountToken"], true);
    assert_eq!(spec["restartPolicy"], "Never");
    let c = &spec["containers"][0];
    assert_eq!(c["args"], json!(["plan", "--max-deletes", "3"]));
    // The CronJob's settings exactly, so the test checks what the runs will use.
    assert_eq!(env(c), env_map(&docs));
    assert_eq!(c["image"], container(&docs)["image"]);
    let docs = render(&helm, &python, &["--set", "helmTest.detailedExitcode=true"]);
    assert_eq!(
        one(&docs, "Pod")["spec"]["containers"][0]["args"],
        json!(["plan", "--detailed-exitcode"])
    );
    let docs = render(&helm, &python, &["--set", "helmTest.enabled=false"]);
    assert!(docs.iter().all(|d| kind(d) != "Pod"));
}

/// What `helm test` runs, run against the sandbox: the test pod's arguments and environment,
/// with a token of the release's ServiceAccount bound by the chart's own Role. It passes, and
/// fails naming the verb once the Role no longer lets it list.
#[test]
fn helm_tests_plan_passes_with_the_charts_rbac_and_fails_without_it() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let sandbox = need!(Sandbox::get());
    let mlflow_url: String = need!(sandbox_var("M2S_SANDBOX_MLFLOW_URL")
        .or_else(|| unavailable("M2S_SANDBOX_MLFLOW_URL is not set")));
    sandbox
        .wait_for_crd(&m2s::targets::by_id("kserve").unwrap().resource())
        .unwrap();
    let base = unique_name("helmtest");
    let (release_ns, serving_ns) = (format!("{base}-r"), format!("{base}-s"));
    for ns in [&release_ns, &serving_ns] {
        sandbox.admin(&["create", "namespace", ns]).unwrap();
    }
    let out = run(Command::new(&helm)
        .args(["template", "m2s"])
        .arg(chart_dir())
        .args([
            "-n",
            &release_ns,
            "--set",
            &format!("mlflow.host={mlflow_url}"),
        ])
        .args([
            "--set",
            "target=kserve",
            "--set",
            &format!("serving.namespace={serving_ns}"),
        ])
        .args(["--set", "mlflow.storageRoot=s3://mlflow/mlruns"])
        .args([
            "--set-string",
            &format!("mlflow.modelFilter=name LIKE '{base}%'"),
        ]))
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = yaml_docs(&python, &stdout(&out));
    let rbac: Vec<Value> = docs
        .iter()
        .filter(|d| ["ServiceAccount", "Role", "RoleBinding"].contains(&kind(d)))
        .cloned()
        .collect();
    sandbox.create(&rbac).unwrap();
    let dir = temp_dir("helmtest");
    let kubeconfig = sandbox.token_kubeconfig("m2s", &release_ns, &dir).unwrap();
    let pod = one(&docs, "Pod");
    let c = &pod["spec"]["containers"][0];
    let plan = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_m2s"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", &kubeconfig);
        for e in c["env"].as_array().unwrap() {
            cmd.env(
                e["name"].as_str().unwrap(),
                e["value"].as_str().expect("plain values only here"),
            );
        }
        cmd.args(
            c["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap()),
        );
        run(&mut cmd).unwrap()
    };
    let out = plan();
    assert!(
        out.status.success(),
        "helm test's plan failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("No changes."), "{}", stdout(&out));
    // Without the RoleBinding the ServiceAccount may not list: the test fails, saying so.
    sandbox
        .admin(&["delete", "rolebinding", "m2s", "-n", &serving_ns])
        .unwrap();
    let out = plan();
    assert!(!out.status.success(), "plan passed without RBAC");
    let err = stderr(&out);
    assert!(
        err.contains("forbidden") || err.contains("Forbidden"),
        "{err}"
    );
    assert!(err.contains("list"), "{err}");
    let _ = fs::remove_dir_all(dir);
}

/// The Role with the receiver on (Lease) and for Seldon Core 2 (Experiments), proven with the
/// ServiceAccount's token in the sandbox.
#[test]
fn the_role_grants_the_lease_by_name_and_seldon_v2_experiments() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let sandbox = need!(Sandbox::get());
    let base = unique_name("lease");
    let (release_ns, serving_ns) = (format!("{base}-r"), format!("{base}-s"));
    for ns in [&release_ns, &serving_ns] {
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
        ])
        .args([
            "--set",
            "target=seldon-v2",
            "--set",
            &format!("serving.namespace={serving_ns}"),
        ])
        .args([
            "--set",
            "webhook.enabled=true",
            "--set",
            "webhook.existingSecret=s",
            "--set",
            "instance=team-a",
        ]))
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = yaml_docs(&python, &stdout(&out));
    let rbac: Vec<Value> = docs
        .iter()
        .filter(|d| ["ServiceAccount", "Role", "RoleBinding"].contains(&kind(d)))
        .cloned()
        .collect();
    sandbox.create(&rbac).unwrap();
    let dir = temp_dir("lease");
    let kubeconfig = sandbox.token_kubeconfig("m2s", &release_ns, &dir).unwrap();
    let can_i = |verb: &str, resource: &str, ns: &str| -> bool {
        let out = run(sandbox
            .cmd_as(&kubeconfig)
            .args(["auth", "can-i", verb, resource, "-n", ns]))
        .unwrap();
        match stdout(&out).trim() {
            "yes" => true,
            "no" => false,
            other => panic!("can-i {verb} {resource}: {other:?} {}", stderr(&out)),
        }
    };
    const LEASES: &str = "leases.coordination.k8s.io";
    let ours = format!("{LEASES}/team-a-leader");
    for verb in ["get", "update"] {
        assert!(can_i(verb, &ours, &serving_ns), "cannot {verb} {ours}");
        assert!(
            !can_i(verb, &format!("{LEASES}/other-leader"), &serving_ns),
            "can {verb} another Lease"
        );
        assert!(
            !can_i(verb, &ours, &release_ns),
            "can {verb} {ours} in the release namespace"
        );
    }
    assert!(
        can_i("create", LEASES, &serving_ns),
        "cannot create the Lease"
    );
    for verb in ["list", "watch", "delete", "patch"] {
        assert!(!can_i(verb, &ours, &serving_ns), "can {verb} {ours}");
    }
    const EXPERIMENTS: &str = "experiments.mlops.seldon.io";
    for verb in ["get", "create", "patch", "delete"] {
        assert!(
            can_i(verb, EXPERIMENTS, &serving_ns),
            "cannot {verb} {EXPERIMENTS}"
        );
        assert!(
            !can_i(verb, EXPERIMENTS, &release_ns),
            "can {verb} {EXPERIMENTS} elsewhere"
        );
    }
    for verb in ["list", "update", "watch"] {
        assert!(
            !can_i(verb, EXPERIMENTS, &serving_ns),
            "can {verb} {EXPERIMENTS}"
        );
    }
    // A real Lease as a client-go elector writes it, created and renewed with the token.
    let lease = |holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "team-a-leader", "namespace": serving_ns},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}})
        .to_string()
    };
    let out = run_with_input(
        sandbox.cmd_as(&kubeconfig).args(["create", "-f", "-"]),
        &lease("m2s-webhook-0"),
    )
    .unwrap();
    assert!(out.status.success(), "create the Lease: {}", stderr(&out));
    let out = run(sandbox.cmd_as(&kubeconfig).args([
        "get",
        LEASES,
        "team-a-leader",
        "-n",
        &serving_ns,
        "-o",
        "json",
    ]))
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut current: Value = serde_json::from_str(&stdout(&out)).unwrap();
    current["spec"]["holderIdentity"] = json!("m2s-webhook-1");
    let out = run_with_input(
        sandbox.cmd_as(&kubeconfig).args(["replace", "-f", "-"]),
        &current.to_string(),
    )
    .unwrap();
    assert!(out.status.success(), "update the Lease: {}", stderr(&out));
    // Without the receiver, no Lease rule at all; without seldon-v2, no Experiments.
    let plain = render(&helm, &python, &["--set", "target=seldon-v2"]);
    assert!(!one(&plain, "Role").to_string().contains("leases"));
    let kserve = render(
        &helm,
        &python,
        &[
            "--set",
            "target=kserve",
            "--set",
            "webhook.enabled=true",
            "--set",
            "webhook.existingSecret=s",
        ],
    );
    let role = one(&kserve, "Role").to_string();
    assert!(
        role.contains("leases") && !role.contains("experiments"),
        "{role}"
    );
    let _ = fs::remove_dir_all(dir);
}

// ---- Metadata -------------------------------------------------------------------------------

fn toml_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in Cargo.toml"))
        .trim_matches('"')
        .to_string()
}

#[test]
fn chart_metadata_license_and_changelog_are_complete() {
    let chart: Value =
        yaml_serde::from_str(&fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap()).unwrap();
    let cargo = fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let home = toml_value(&cargo, "repository");
    assert_eq!(chart["home"], home.as_str());
    assert_eq!(chart["sources"], json!([home]));
    assert_eq!(chart["appVersion"], toml_value(&cargo, "version").as_str());
    assert_eq!(
        chart["annotations"]["artifacthub.io/license"],
        toml_value(&cargo, "license").as_str()
    );
    let description = chart["description"].as_str().unwrap();
    for kind in ["SeldonDeployments", "InferenceServices", "Models", "MLflow"] {
        assert!(
            description.contains(kind),
            "the description does not name {kind}: {description}"
        );
    }
    let keywords: Vec<&str> = chart["keywords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for k in ["mlflow", "kserve", "seldon", "mlops"] {
        assert!(keywords.contains(&k), "{keywords:?}");
    }
    assert!(chart["maintainers"]
        .as_array()
        .is_some_and(|m| !m.is_empty()));
    // Artifact Hub reads these annotations as YAML lists.
    for key in ["artifacthub.io/links", "artifacthub.io/changes"] {
        let list: Value =
            yaml_serde::from_str(chart["annotations"][key].as_str().unwrap()).unwrap();
        assert!(list.as_array().is_some_and(|l| !l.is_empty()), "{key}");
        for item in list.as_array().unwrap() {
            if let Some(url) = item.get("url") {
                assert!(url.as_str().unwrap().starts_with(&home), "{url}");
            }
        }
    }
    // The image says where it comes from, the same place.
    let dockerfile = fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("org.opencontainers.image.source=\"{home}\"")),
        "Dockerfile"
    );
    // LICENSE is the Apache License 2.0 that Cargo.toml names.
    let license = fs::read_to_string(repo().join("LICENSE")).unwrap();
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
    assert!(license.contains("END OF TERMS AND CONDITIONS"));
    // CHANGELOG has a section for the version being built.
    let changelog = fs::read_to_string(repo().join("CHANGELOG.md")).unwrap();
    let version = toml_value(&cargo, "version");
    assert!(
        changelog.contains(&format!("\n## [{version}]")) || changelog.contains("\n## [Unreleased]"),
        "CHANGELOG.md"
    );
    assert!(Path::new(&repo().join("chart/m2s/README.md")).is_file());
}

/// The receivers' Lease is named after the instance: an instance that makes no valid object
/// name is refused at install when the receiver is enabled (m2s would refuse it at start).
#[test]
fn an_instance_that_makes_no_lease_name_is_refused_with_the_receiver() {
    let helm = need!(helm());
    let receiver = [
        "--set",
        "webhook.enabled=true",
        "--set",
        "webhook.existingSecret=s",
        "--set",
        "instance=Team_A",
    ];
    template_fails(&helm, &receiver, "not a valid object name");
    // Without the receiver there is no Lease: the label value is fine.
    render_yaml(&helm, &["--set", "instance=Team_A"]);
}
