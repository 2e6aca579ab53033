use super::*;
use crate::desired::Selector;
use serde_json::json;

fn cfg() -> DeployConfig {
    DeployConfig::new("models", "http://mlflow:5000")
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "m2s-render-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn object(cfg: &DeployConfig, name: &str, version: &str) -> Value {
    json!({
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {
            "name": name,
            "namespace": "models",
            "labels": {"app.kubernetes.io/managed-by": "m2s", "m2s.io/instance": cfg.instance},
            "annotations": {"m2s.io/model-version": version},
        },
        "spec": {"predictors": [{"name": "default", "replicas": 1}]},
    })
}

fn error(name: &str) -> EntryError {
    EntryError {
        name: name.into(),
        model: "broken".into(),
        selector: Selector::Stage("Production".into()),
        version: Some("1".into()),
        message: "tag broken".into(),
    }
}

fn rendered(objects: Vec<Value>, errors: Vec<EntryError>) -> Rendered {
    Rendered { objects, errors }
}

fn run(dir: &Path, cfg: &DeployConfig, r: Rendered, guard: Guard) -> Result<Written> {
    let owner = Owner::of(cfg);
    let plan = plan(dir, &owner, &r, guard)?;
    write(dir, plan, r.errors)
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn listed(dir: &Path) -> Vec<String> {
    let text = fs::read_to_string(dir.join(KUSTOMIZATION)).unwrap();
    let k: Value = yaml_serde::from_str(&text).unwrap();
    assert_eq!(k["kind"], "Kustomization");
    k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn writes_one_sorted_file_per_object_and_a_kustomization_byte_for_byte_again() {
    let c = cfg();
    let dir = scratch("fresh").join("out");
    let objects = vec![
        object(&c, "iris-production", "3"),
        object(&c, "wine-staging", "1"),
    ];
    let w = run(
        &dir,
        &c,
        rendered(objects.clone(), vec![]),
        Guard::default(),
    )
    .unwrap();
    assert_eq!(
        w.created,
        [
            "seldondeployment-iris-production.yaml",
            "seldondeployment-wine-staging.yaml"
        ]
    );
    assert_eq!(
        files(&dir),
        [
            "kustomization.yaml",
            "seldondeployment-iris-production.yaml",
            "seldondeployment-wine-staging.yaml"
        ]
    );
    assert_eq!(listed(&dir), w.created);
    let text = fs::read_to_string(dir.join("seldondeployment-iris-production.yaml")).unwrap();
    // Keys sorted at every level, so the same object is the same bytes.
    let keys: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec"], "{text}");
    let back: Value = yaml_serde::from_str(&text).unwrap();
    assert_eq!(back, objects[0]);
    let before: Vec<(String, Vec<u8>)> = files(&dir)
        .into_iter()
        .map(|f| (f.clone(), fs::read(dir.join(&f)).unwrap()))
        .collect();
    let w = run(&dir, &c, rendered(objects, vec![]), Guard::default()).unwrap();
    assert_eq!(
        (
            w.created.len(),
            w.updated.len(),
            w.removed.len(),
            w.unchanged
        ),
        (0, 0, 0, 2)
    );
    let after: Vec<(String, Vec<u8>)> = files(&dir)
        .into_iter()
        .map(|f| (f.clone(), fs::read(dir.join(&f)).unwrap()))
        .collect();
    assert_eq!(before, after);
    fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn only_m2s_files_of_this_instance_are_removed() {
    let c = cfg();
    let dir = scratch("stale");
    let mut other = cfg();
    other.instance = "other".into();
    // Not m2s's: another instance's object, an unlabelled one, other names, unparsable YAML.
    let foreign = [
        ("seldondeployment-theirs.yaml", yaml_serde::to_string(&object(&other, "theirs", "1")).unwrap()),
        ("seldondeployment-plain.yaml", "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: plain}\n".to_string()),
        ("README.md", "# models\n".to_string()),
        ("seldondeployment-broken.yaml", "{not: yaml: at all".to_string()),
    ];
    for (f, text) in &foreign {
        fs::write(dir.join(f), text).unwrap();
    }
    let a = object(&c, "a-production", "1");
    let b = object(&c, "b-production", "1");
    run(
        &dir,
        &c,
        rendered(vec![a.clone(), b], vec![]),
        Guard::default(),
    )
    .unwrap();
    let updated = object(&c, "a-production", "2");
    let w = run(
        &dir,
        &c,
        rendered(vec![updated.clone()], vec![]),
        Guard::default(),
    )
    .unwrap();
    assert_eq!(w.updated, ["seldondeployment-a-production.yaml"]);
    assert_eq!(w.removed, ["seldondeployment-b-production.yaml"]);
    assert_eq!(listed(&dir), ["seldondeployment-a-production.yaml"]);
    for (f, text) in &foreign {
        assert_eq!(
            &fs::read_to_string(dir.join(f)).unwrap(),
            text,
            "{f} was touched"
        );
    }
    assert!(!dir.join("seldondeployment-b-production.yaml").exists());
    let back: Value = yaml_serde::from_str(
        &fs::read_to_string(dir.join("seldondeployment-a-production.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(back, updated);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_file_of_an_entry_that_cannot_be_deployed_is_kept_and_listed() {
    let c = cfg();
    let dir = scratch("held");
    let objects = vec![
        object(&c, "a-production", "1"),
        object(&c, "broken-production", "1"),
    ];
    run(&dir, &c, rendered(objects, vec![]), Guard::default()).unwrap();
    let kept_text = fs::read(dir.join("seldondeployment-broken-production.yaml")).unwrap();
    let w = run(
        &dir,
        &c,
        rendered(
            vec![object(&c, "a-production", "1")],
            vec![error("broken-production"), error("never-written")],
        ),
        Guard::default(),
    )
    .unwrap();
    assert_eq!(w.kept, ["seldondeployment-broken-production.yaml"]);
    assert!(w.removed.is_empty());
    assert_eq!(w.errors.len(), 2);
    assert_eq!(
        fs::read(dir.join("seldondeployment-broken-production.yaml")).unwrap(),
        kept_text
    );
    assert_eq!(
        listed(&dir),
        [
            "seldondeployment-a-production.yaml",
            "seldondeployment-broken-production.yaml"
        ]
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn removing_every_file_needs_allow_delete_all_and_max_deletes_holds() {
    let c = cfg();
    let dir = scratch("guard");
    let objects = vec![
        object(&c, "a-production", "1"),
        object(&c, "b-production", "1"),
    ];
    run(&dir, &c, rendered(objects, vec![]), Guard::default()).unwrap();
    let before = files(&dir);
    let err = run(&dir, &c, rendered(vec![], vec![]), Guard::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("refusing to remove all 2 object files"),
        "{err}"
    );
    assert!(err.to_string().contains("--allow-delete-all"), "{err}");
    assert_eq!(files(&dir), before, "a refused run writes nothing");
    let max = Guard {
        allow_delete_all: false,
        max_deletes: Some(0),
    };
    let err = run(
        &dir,
        &c,
        rendered(vec![object(&c, "a-production", "1")], vec![]),
        max,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("more than --max-deletes 0"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("seldondeployment-b-production.yaml"),
        "{err}"
    );
    assert_eq!(files(&dir), before);
    let all = Guard {
        allow_delete_all: true,
        max_deletes: None,
    };
    let w = run(&dir, &c, rendered(vec![], vec![]), all).unwrap();
    assert_eq!(w.removed.len(), 2);
    assert_eq!(files(&dir), ["kustomization.yaml"]);
    assert!(fs::read_to_string(dir.join(KUSTOMIZATION))
        .unwrap()
        .contains("resources: []\n"));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_kustomization_m2s_did_not_write_is_never_overwritten() {
    let c = cfg();
    let dir = scratch("theirs");
    let theirs =
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [app.yaml]\n";
    fs::write(dir.join(KUSTOMIZATION), theirs).unwrap();
    let err = run(
        &dir,
        &c,
        rendered(vec![object(&c, "a-production", "1")], vec![]),
        Guard::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("was not written by m2s render for instance \"m2s\""),
        "{err}"
    );
    assert_eq!(fs::read_to_string(dir.join(KUSTOMIZATION)).unwrap(), theirs);
    assert_eq!(files(&dir), ["kustomization.yaml"]);
    // Another instance's kustomization is not this one's either.
    let mut other = cfg();
    other.instance = "other".into();
    let dir2 = scratch("other");
    run(
        &dir2,
        &other,
        rendered(vec![object(&other, "a-production", "1")], vec![]),
        Guard::default(),
    )
    .unwrap();
    let err = run(&dir2, &c, rendered(vec![], vec![]), Guard::default()).unwrap_err();
    assert!(err.to_string().contains("for instance \"m2s\""), "{err}");
    // kustomize would refuse two kustomization files.
    let dir3 = scratch("yml");
    fs::write(dir3.join("kustomization.yml"), "resources: []\n").unwrap();
    let err = run(&dir3, &c, rendered(vec![], vec![]), Guard::default()).unwrap_err();
    assert!(
        err.to_string().contains("kustomization.yml exists"),
        "{err}"
    );
    let file = dir3.join("kustomization.yml");
    let err = run(&file, &c, rendered(vec![], vec![]), Guard::default()).unwrap_err();
    assert!(err.to_string().contains("is not a directory"), "{err}");
    for d in [dir, dir2, dir3] {
        fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn file_names_follow_the_kind_and_name() {
    assert_eq!(
        file_name("InferenceService", "iris-production"),
        "inferenceservice-iris-production.yaml"
    );
    assert_eq!(
        file_name("Model", "iris-champion"),
        "model-iris-champion.yaml"
    );
}
