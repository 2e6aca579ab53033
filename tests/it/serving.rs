//! Proven to serve: for each target, versions logged as users log them (MLflow's
//! `mlflow.sklearn.log_model` with an input example) are synced by m2s into a namespace holding
//! the Secrets and ServiceAccount of `tests/serving/examples/`, and the object read back from the
//! API server is downloaded and served by the stack's own code (`tests/serving/harness.py`: the
//! stack's downloader and credentials, the MLServer and MLflow the stack ships, a V2 inference
//! request). What preflight refuses is shown not to load when it is written all the same.
//!
//! Needs the sandbox's serving tools (`M2S_SANDBOX_SERVING=1`); they fail the test under
//! `CI=true` / `M2S_SANDBOX_REQUIRED=1` when missing.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::common::versions::SKOPS;
use crate::common::{run_expect, sandbox_var, unique, Sandbox};
use crate::serving_support::{credentials, harness, log_version, nowhere, serving_tools};

/// The settings a team sets for `target` (tests/serving/examples/), and the MLServer the
/// harness must find serving (the stack's default, or the image m2s was told).
fn settings(target: &str) -> (Vec<(&'static str, &'static str)>, &'static str) {
    match target {
        "kserve" => (
            vec![("M2S_SERVICE_ACCOUNT", "models-s3")],
            "mlserver 1.5.0 / mlflow 2.10.2",
        ),
        // Seldon Core 1 on MLServer: Seldon 1.18.2's own image for it (1.3.5) cannot read an
        // MLflow 3 signature, so the team sets a newer one and says which MLflow it has.
        "seldon-v1" => (
            vec![
                ("M2S_MODEL_SECRET", "models-rclone"),
                ("M2S_SELDON_PROTOCOL", "v2"),
                ("M2S_SELDON_DEF_IMAGE", "seldonio/mlserver:1.7.1"),
                ("M2S_RUNTIME_MLFLOW_VERSION", "2.19.0"),
            ],
            "mlserver 1.7.1 / mlflow 2.19.0",
        ),
        _ => (
            vec![("M2S_MODEL_SECRET", "models-s3-rclone")],
            "mlserver 1.7.1 / mlflow 2.19.0",
        ),
    }
}

struct Run {
    sb: Sandbox,
    target: &'static str,
    model: String,
    experiment: String,
    work: PathBuf,
}

impl Run {
    fn m2s(&self, ns: &str) -> Command {
        let mut cmd = self.sb.m2s_target(ns, &self.model, self.target);
        cmd.env(
            "M2S_MLFLOW_STORAGE_ROOT",
            sandbox_var("M2S_SANDBOX_STORAGE_ROOT").unwrap(),
        )
        .env("M2S_ALIASES", "champion")
        .envs(settings(self.target).0);
        cmd
    }

    fn name(&self, ns: &str) -> String {
        m2s::targets::by_id(self.target)
            .unwrap()
            .object_name(&self.model, "champion", ns)
    }

    fn object(&self, ns: &str) -> Value {
        self.sb.objects(ns, self.target)[&self.name(ns)].clone()
    }

    fn log(&self, args: &[&str]) -> crate::serving_support::Logged {
        let mut all = args.to_vec();
        all.extend(["--alias", "champion"]);
        log_version(&self.model, &self.experiment, &all)
    }

    /// The harness on this namespace's object, with `resources_ns`'s credentials.
    fn serve(
        &self,
        ns: &str,
        resources_ns: &str,
        step: &str,
        extra: &[&str],
    ) -> crate::serving_support::Served {
        let work = self.work.join(step);
        harness(
            &self.sb,
            self.target,
            ns,
            &self.name(ns),
            resources_ns,
            &work,
            extra,
        )
    }
}

fn version_of(o: &Value) -> &str {
    o["metadata"]["annotations"]["m2s.io/model-version"]
        .as_str()
        .unwrap_or_default()
}

fn proves_serving(target: &'static str) {
    let Some(sb) = Sandbox::get() else { return };
    let Some(()) = serving_tools() else { return };
    let skops = sb.mlflow_has(
        SKOPS,
        "the skops part (a version logged with MLflow 3's default format)",
    );
    let tag = format!("srv-{target}");
    let s3 = sandbox_var("M2S_SANDBOX_S3_ENDPOINT").unwrap();
    let (ns, wrong, unchecked) = (
        sb.namespace(&tag),
        sb.namespace(&format!("{tag}-wrong")),
        sb.namespace(&format!("{tag}-unchecked")),
    );
    credentials(&sb, &ns, &s3);
    credentials(&sb, &wrong, &nowhere());
    credentials(&sb, &unchecked, &s3);
    let r = Run {
        target,
        model: unique(&tag),
        experiment: unique(&format!("{tag}-exp")),
        work: std::env::temp_dir().join(unique(&format!("m2s-serving-{target}"))),
        sb,
    };
    let runtime = settings(target).1;

    // A model logged as users log it (cloudpickle): promoted → served → its own prediction.
    let v1 = r.log(&["--format", "cloudpickle"]);
    run_expect(r.m2s(&ns).arg("sync"), 0);
    let o = r.object(&ns);
    assert_eq!(
        o["metadata"]["annotations"]["m2s.io/model-uri"], v1.storage_uri,
        "m2s writes the bucket path of the version's files"
    );
    let served = r.serve(&ns, &ns, "v1", &["--expect", &v1.prediction.to_string()]);
    assert_eq!(served.stage, "served", "{:#}", served.raw);
    assert_eq!(served.prediction, v1.prediction);
    assert!(served.runtime.starts_with(runtime), "{:#}", served.raw);

    if target == "seldon-v1" {
        // Seldon 1.18.2's own MLServer image for protocol v2 (1.3.5, MLflow of mid-2023): the
        // same version is refused by preflight, and written anyway it indeed does not load.
        let default_image = || {
            let mut c = r.m2s(&unchecked);
            c.env_remove("M2S_SELDON_DEF_IMAGE")
                .env_remove("M2S_RUNTIME_MLFLOW_VERSION");
            c
        };
        let plan = run_expect(default_image().arg("plan"), 1);
        assert!(
            plan.stdout.contains(&format!(
                "preflight: seldonio/mlserver:1.3.5-mlflow with MLflow 2.4.2 cannot load version {} of model {:?}: its signature",
                v1.version, r.model
            )) && plan.stdout.contains("`required`"),
            "{}",
            plan.stdout
        );
        run_expect(default_image().env("M2S_PREFLIGHT", "false").arg("sync"), 0);
        let failed = r.serve(&unchecked, &unchecked, "v1-default-image", &[]);
        assert_eq!(failed.stage, "load_failed", "{:#}", failed.raw);
        assert!(
            failed.runtime.starts_with("mlserver 1.3.5"),
            "{:#}",
            failed.raw
        );
        assert!(
            failed
                .error
                .contains("unexpected keyword argument 'required'"),
            "{:#}",
            failed.raw
        );
    }

    // The alias moves to a version trained differently: served, with its prediction.
    let v2 = r.log(&["--format", "cloudpickle", "--variant", "1"]);
    assert_ne!(
        v2.prediction, v1.prediction,
        "the variant predicts otherwise"
    );
    let sync = run_expect(r.m2s(&ns).arg("sync"), 0);
    assert!(sync.stdout.contains("1 updated"), "{}", sync.stdout);
    let served = r.serve(&ns, &ns, "v2", &["--expect", &v2.prediction.to_string()]);
    assert_eq!(served.stage, "served", "{:#}", served.raw);
    assert_eq!(served.prediction, v2.prediction);

    // Credentials for another endpoint: the stack's downloader fails (the harness is real; the
    // S3 stand-in itself takes any key).
    let failed = r.serve(&ns, &wrong, "wrong-endpoint", &[]);
    assert_eq!(failed.stage, "download_failed", "{:#}", failed.raw);

    let before = r.object(&ns);
    if skops {
        // MLflow 3's default format: refused by preflight, the object left as it is.
        let v3 = r.log(&["--format", "default"]);
        assert_eq!(v3.raw["format"], "skops", "{:#}", v3.raw);
        let sync = run_expect(r.m2s(&ns).arg("sync"), 1);
        let why = format!(
            "cannot load version {} of model {:?}: it is saved in scikit-learn's \"skops\" serialization format",
            v3.version, r.model
        );
        assert!(sync.stdout.contains(&why), "{}", sync.stdout);
        assert!(
            sync.stdout.contains("serialization_format=\"cloudpickle\""),
            "{}",
            sync.stdout
        );
        assert_eq!(
            r.object(&ns)["metadata"]["resourceVersion"],
            before["metadata"]["resourceVersion"]
        );
        // Written all the same (preflight off): the runtime cannot load it.
        run_expect(
            r.m2s(&unchecked).env("M2S_PREFLIGHT", "false").arg("sync"),
            0,
        );
        assert_eq!(version_of(&r.object(&unchecked)), v3.version);
        let failed = r.serve(&unchecked, &unchecked, "skops-unchecked", &[]);
        assert_eq!(failed.stage, "load_failed", "{:#}", failed.raw);
        assert!(
            failed
                .error
                .contains("Unrecognized serialization format: skops"),
            "{:#}",
            failed.raw
        );
    }

    // A version whose files are missing: refused.
    let v4 = r.log(&["--format", "cloudpickle", "--missing-artifacts"]);
    let sync = run_expect(r.m2s(&ns).arg("sync"), 1);
    assert!(
        sync.stdout.contains(&format!(
            "preflight: the files of version {} of model {:?} are missing",
            v4.version, r.model
        )),
        "{}",
        sync.stdout
    );
    // Still exactly the object that served v2, and it still serves v2.
    let after = r.object(&ns);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(version_of(&after), v2.version);
    let served = r.serve(
        &ns,
        &ns,
        "still-v2",
        &["--expect", &v2.prediction.to_string()],
    );
    assert_eq!(served.stage, "served", "{:#}", served.raw);
    let _ = std::fs::remove_dir_all(&r.work);
}

#[test]
fn kserve_serves_what_m2s_writes() {
    proves_serving("kserve");
}

#[test]
fn seldon_v1_serves_what_m2s_writes() {
    proves_serving("seldon-v1");
}

#[test]
fn seldon_v2_serves_what_m2s_writes() {
    proves_serving("seldon-v2");
}
