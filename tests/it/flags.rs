//! kubectl-style flags against the sandbox: `--context` picks a context of a kubeconfig other
//! than the current one, `-n` is `--namespace`, and `-o yaml` is the same document as `-o json`
//! for `plan` and `status`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::{run, run_expect, unique, Sandbox};

/// A kubeconfig with two contexts: `elsewhere` (current; an address where nothing listens)
/// and `sandbox` (the sandbox's cluster and admin user).
fn two_context_kubeconfig(sb: &Sandbox, dir: &Path) -> PathBuf {
    let view: Value = serde_json::from_str(
        &sb.kubectl_ok(&["config", "view", "--raw", "--minify", "-o", "json"]),
    )
    .unwrap();
    let cluster = view["clusters"][0]["cluster"].clone();
    let user = view["users"][0]["user"].clone();
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "sandbox", "cluster": cluster},
            {"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": true}},
        ],
        "users": [{"name": "admin", "user": user}],
        "contexts": [
            {"name": "elsewhere", "context": {"cluster": "nowhere", "user": "admin"}},
            {"name": "sandbox", "context": {"cluster": "sandbox", "user": "admin"}},
        ],
        "current-context": "elsewhere",
    });
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("two-contexts.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

#[test]
fn context_selects_a_context_other_than_the_current_one() {
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("ctx");
    let ns = sb.namespace("flags-ctx");
    let model = format!("{p}-iris");
    ml.model(&model);
    let exp = ml.experiment(&unique("exp"));
    let v = ml.version_from_run(&model, &exp);
    ml.stage(&model, &v, "Production");
    let dir = std::env::temp_dir().join(unique("m2s-ctx"));
    let kubeconfig = two_context_kubeconfig(&sb, &dir);
    let m2s = |args: &[&str]| {
        let mut c = sb.m2s(&ns, &p);
        c.env_remove("M2S_SELDON_DEPLOYMENT_NS")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args);
        c
    };
    // The current context points nowhere: without --context the plan cannot list.
    let r = run_expect(&mut m2s(&["-n", &ns, "plan"]), 1);
    assert!(r.stderr.contains("127.0.0.1:9"), "{}", r.stderr);
    // --context sandbox reaches the sandbox, and -n names the namespace.
    let r = run_expect(&mut m2s(&["--context", "sandbox", "-n", &ns, "plan"]), 0);
    assert!(
        r.stdout.contains(&format!("+ {model}-production")),
        "{}",
        r.stdout
    );
    run_expect(&mut m2s(&["--context", "sandbox", "-n", &ns, "sync"]), 0);
    assert!(sb
        .seldon_deployments(&ns)
        .contains_key(&format!("{model}-production")));
    // The same through KUBECONFIG (no --kubeconfig), as kubectl reads it.
    let mut c = sb.m2s(&ns, &p);
    c.env("KUBECONFIG", &kubeconfig)
        .args(["--context", "sandbox", "status"]);
    let r = run_expect(&mut c, 0);
    assert!(
        r.stdout.contains(&format!("{model}-production")),
        "{}",
        r.stdout
    );
    // An unknown context names itself, the file and the contexts there are.
    let r = run_expect(&mut m2s(&["--context", "sandbx", "-n", &ns, "plan"]), 1);
    assert!(
        r.stderr.contains(&format!(
            "--context \"sandbx\": no such context in {} (contexts: elsewhere, sandbox)",
            kubeconfig.display()
        )),
        "{}",
        r.stderr
    );
    let mut c = sb.m2s(&ns, &p);
    c.env("KUBECONFIG", &kubeconfig)
        .args(["--context", "sandbx", "plan"]);
    let r = run(&mut c);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no such context in KUBECONFIG="),
        "{}",
        r.stderr
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn output_yaml_is_the_json_document_for_plan_and_status() {
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("yaml");
    let ns = sb.namespace("flags-yaml");
    let model = format!("{p}-iris");
    ml.model(&model);
    let exp = ml.experiment(&unique("exp"));
    let v = ml.version_from_run(&model, &exp);
    ml.stage(&model, &v, "Staging");
    ml.stage(&model, &ml.version_from_run(&model, &exp), "Production");
    let doc = |args: &[&str]| -> Value {
        let r = run_expect(sb.m2s(&ns, &p).args(args), 0);
        if args.contains(&"yaml") {
            yaml_serde::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
        } else {
            serde_json::from_str(&r.stdout).unwrap()
        }
    };
    let yaml = doc(&["plan", "-o", "yaml"]);
    assert_eq!(yaml, doc(&["plan", "-o", "json"]));
    assert_eq!(yaml["summary"]["add"], 2);
    assert_eq!(yaml["namespace"], ns.as_str());
    run_expect(sb.m2s(&ns, &p).arg("sync"), 0);
    let mut yaml = doc(&["status", "--output", "yaml"]);
    let mut json = doc(&["status", "-o", "json"]);
    // Ages move between the two runs.
    for d in [&mut yaml, &mut json] {
        for o in d["objects"].as_array_mut().unwrap() {
            o["age_seconds"] = Value::Null;
        }
    }
    assert_eq!(yaml, json);
    assert_eq!(yaml["summary"]["objects"], 2);
    // M2S_PLAN_OUTPUT takes yaml too.
    let r = run_expect(
        sb.m2s(&ns, &p).env("M2S_PLAN_OUTPUT", "yaml").arg("plan"),
        0,
    );
    assert!(
        r.stdout.starts_with("format_version: '1'\n"),
        "{}",
        r.stdout
    );
}
