//! `m2s render --out DIR` (GitOps output) against the sandbox's real MLflow, for every target:
//! one file per object plus a kustomization, the same bytes on a second run, a removed
//! model's file removed, other files left alone, nothing written when MLflow is down, exactly
//! the objects `m2s sync` writes, and `kubectl apply --dry-run=server -k` accepting the result
//! against the real CRDs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{resource_of, run_expect, unique, Sandbox};

/// Every file in `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn listed(dir: &Path) -> Vec<String> {
    let k: Value =
        yaml_serde::from_str(&fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).unwrap();
    k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

/// What m2s sets on an object (the API server adds the rest).
fn m2s_part(o: &Value) -> Value {
    serde_json::json!({
        "name": o["metadata"]["name"],
        "labels": o["metadata"]["labels"],
        "annotations": o["metadata"]["annotations"],
        "spec": o["spec"],
    })
}

fn renders_for(target: &str) {
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("render");
    let ns = sb.namespace("render");
    let exp = ml.experiment(&unique("exp"));
    let (iris, wine) = (format!("{p}-iris"), format!("{p}-wine"));
    for m in [&iris, &wine] {
        ml.model(m);
        let v = ml.version_from_run(m, &exp);
        ml.stage(m, &v, "Production");
    }
    ml.alias(&iris, "champion", "1");
    let kind = m2s::targets::by_id(target)
        .unwrap()
        .resource()
        .kind
        .to_ascii_lowercase();
    let file = |name: &str| format!("{kind}-{name}.yaml");
    let dir: PathBuf = std::env::temp_dir().join(unique("m2s-render")).join("out");
    let m2s = || {
        let mut c = sb.m2s_target(&ns, &p, target);
        // No cluster access at all: a kubeconfig that does not exist.
        c.env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env("M2S_ALIASES", "champion")
            .arg("render")
            .arg("--out")
            .arg(&dir);
        c
    };

    // A fresh directory: three objects and the kustomization listing them.
    let r = run_expect(&mut m2s(), 0);
    let want = [
        file(&format!("{iris}-champion")),
        file(&format!("{iris}-production")),
        file(&format!("{wine}-production")),
    ];
    assert_eq!(listed(&dir), want, "{}", r.stdout);
    let mut names: Vec<String> = snapshot(&dir).into_keys().collect();
    names.sort();
    let mut expected: Vec<String> = want.to_vec();
    expected.push("kustomization.yaml".into());
    expected.sort();
    assert_eq!(names, expected);
    assert!(
        r.stdout
            .contains("3 created, 0 updated, 0 removed, 0 unchanged"),
        "{}",
        r.stdout
    );

    // A file of someone else's stays whatever happens.
    fs::write(dir.join("README.md"), "our notes\n").unwrap();
    let first = snapshot(&dir);
    let r = run_expect(&mut m2s(), 0);
    assert_eq!(snapshot(&dir), first, "a second run changed bytes");
    assert!(
        r.stdout
            .contains("0 created, 0 updated, 0 removed, 3 unchanged"),
        "{}",
        r.stdout
    );

    // The API server accepts the directory through kustomize, against the real CRD.
    sb.kubectl_ok(&["apply", "--dry-run=server", "-k", dir.to_str().unwrap()]);

    // MLflow down: nothing in the directory changes.
    let mut down = m2s();
    down.env("M2S_MLFLOW_HOST", "http://127.0.0.1:9");
    let r = run_expect(&mut down, 1);
    assert!(
        r.stderr.contains("reading the MLflow model registry"),
        "{}",
        r.stderr
    );
    assert_eq!(snapshot(&dir), first, "a failed read wrote something");

    // The files are exactly what sync writes.
    let mut sync = sb.m2s_target(&ns, &p, target);
    sync.env("M2S_ALIASES", "champion").arg("sync");
    run_expect(&mut sync, 0);
    let cluster = sb.objects(&ns, target);
    assert_eq!(cluster.len(), 3);
    for (name, object) in &cluster {
        let text = fs::read_to_string(dir.join(file(name))).unwrap();
        let rendered: Value = yaml_serde::from_str(&text).unwrap();
        assert_eq!(m2s_part(&rendered), m2s_part(object), "{name}");
    }

    // A model gone from the registry: its file goes, the kustomization follows, the rest stays.
    ml.delete_model(&wine);
    let r = run_expect(&mut m2s(), 0);
    assert!(
        r.stdout
            .contains(&format!("- {}", file(&format!("{wine}-production")))),
        "{}",
        r.stdout
    );
    assert_eq!(listed(&dir), want[..2]);
    let now = snapshot(&dir);
    assert!(!now.contains_key(&want[2]));
    for f in [&want[0], &want[1], &"README.md".to_string()] {
        assert_eq!(now[f], first[f], "{f} changed");
    }
    sb.kubectl_ok(&["apply", "--dry-run=server", "-k", dir.to_str().unwrap()]);
    assert!(
        sb.kubectl_ok(&["get", &resource_of(target), "-n", &ns, "-o", "name"])
            .lines()
            .count()
            == 3,
        "a server-side dry run wrote something"
    );
    let _ = fs::remove_dir_all(dir.parent().unwrap());
}

mod renders_files_a_gitops_controller_applies {
    use super::renders_for;

    #[test]
    fn seldon_v1() {
        renders_for("seldon-v1");
    }

    #[test]
    fn kserve() {
        renders_for("kserve");
    }

    #[test]
    fn seldon_v2() {
        renders_for("seldon-v2");
    }
}
