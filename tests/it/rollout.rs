//! Progressive rollout (`m2s.canary`) against the sandbox's real MLflow and API server, for
//! every target. The sandbox runs no controllers: each test writes the status each stack's
//! controller writes during a canary (KServe's traffic split in `components.predictor`, Seldon
//! Core 1's `deploymentStatus` per Deployment, Seldon Core 2's canary Model `ModelReady`), then
//! runs `m2s sync` again. Every run is a fresh process: the rollout's state lives on the object.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{json, Value};

use crate::common::{run, run_expect, Sandbox};
use crate::controllers::{cond, controller_status, Setup};

const TARGETS: [&str; 3] = ["seldon-v1", "kserve", "seldon-v2"];
const EXPERIMENTS: &str = "experiments.mlops.seldon.io";

/// One model whose alias `champion` is served, three versions to move it between.
struct Rollout {
    s: Setup,
    model: String,
    name: String,
    versions: Vec<String>,
    runs: BTreeMap<String, String>,
}

impl Rollout {
    /// The object serving v1 (Available), and `m2s.canary=10,50` with a 0s interval on the
    /// model: each run moves on as soon as the step is healthy.
    fn start(target: &'static str) -> Option<Rollout> {
        let s = Setup::new(Sandbox::get()?, target);
        let model = format!("{}-iris", s.prefix);
        let ml = s.sb.mlflow();
        ml.model(&model);
        let mut versions = Vec::new();
        let mut runs = BTreeMap::new();
        for _ in 0..3 {
            let v = ml.version_from_run(&model, &s.experiment);
            let info = ml.get("model-versions/get", &[("name", &model), ("version", &v)]);
            runs.insert(
                v.clone(),
                info["model_version"]["run_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            versions.push(v);
        }
        ml.alias(&model, "champion", &versions[0]);
        let mut r = Rollout {
            s,
            model,
            name: String::new(),
            versions,
            runs,
        };
        run_expect(&mut r.m2s(&["sync"]), 0);
        let objects = r.s.sb.objects(&r.s.ns, target);
        assert_eq!(objects.len(), 1, "{objects:?}");
        r.name = objects.keys().next().unwrap().clone();
        r.healthy_plain();
        ml.set_model_tag(&r.model, "m2s.canary", "10,50");
        ml.set_model_tag(&r.model, "m2s.canary-interval", "0s");
        Some(r)
    }

    fn v(&self, i: usize) -> &str {
        &self.versions[i - 1]
    }

    fn m2s(&self, args: &[&str]) -> Command {
        let mut cmd = self.s.m2s();
        cmd.env("M2S_ALIASES", "champion")
            .env("M2S_STAGES", "")
            .args(args);
        cmd
    }

    fn sync(&self) -> crate::common::RunResult {
        run_expect(&mut self.m2s(&["sync"]), 0)
    }

    fn point(&self, i: usize) {
        self.s.sb.mlflow().alias(&self.model, "champion", self.v(i));
    }

    fn target(&self) -> &'static str {
        self.s.target
    }

    fn object(&self) -> Value {
        self.s.sb.objects(&self.s.ns, self.target())[&self.name].clone()
    }

    fn other(&self, resource: &str, name: &str) -> Option<Value> {
        let out = self
            .s
            .sb
            .kubectl(&["-n", &self.s.ns, "get", resource, name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn canary_model(&self) -> Option<Value> {
        self.other("models.mlops.seldon.io", &format!("{}-canary", self.name))
    }

    fn ann(&self, key: &str) -> Option<String> {
        self.object()["metadata"]["annotations"][key]
            .as_str()
            .map(String::from)
    }

    /// Whether `uri` points at version `i`'s files (its run's artifacts).
    fn is_version(&self, uri: &str, i: usize) -> bool {
        uri.contains(&self.runs[self.v(i)])
    }

    fn rv(&self) -> String {
        self.object()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Asserts that the cluster serves v`stable` with v`canary` at `percent` %, as this target
    /// splits traffic.
    fn assert_step(&self, stable: usize, canary: usize, percent: u64, step: &str) {
        let o = self.object();
        let spec = &o["spec"];
        let uri = |v: &Value| v.as_str().unwrap_or_default().to_string();
        match self.target() {
            "kserve" => {
                assert_eq!(spec["predictor"]["canaryTrafficPercent"], percent, "{o:#}");
                assert!(self.is_version(&uri(&spec["predictor"]["model"]["storageUri"]), canary));
            }
            "seldon-v1" => {
                let p = spec["predictors"].as_array().unwrap();
                assert_eq!(p.len(), 2, "{o:#}");
                assert_eq!(p[0]["traffic"], 100 - percent);
                assert_eq!(p[1]["traffic"], percent);
                assert_eq!(p[1]["name"], "canary");
                assert!(self.is_version(&uri(&p[0]["graph"]["modelUri"]), stable));
                assert!(self.is_version(&uri(&p[1]["graph"]["modelUri"]), canary));
            }
            "seldon-v2" => {
                assert!(self.is_version(&uri(&spec["storageUri"]), stable), "{o:#}");
                let c = self.canary_model().expect("the canary Model");
                assert!(
                    self.is_version(&uri(&c["spec"]["storageUri"]), canary),
                    "{c:#}"
                );
                assert_eq!(c["metadata"]["labels"]["m2s.io/instance"], "m2s");
                let e = self.other(EXPERIMENTS, &self.name).expect("the Experiment");
                assert_eq!(e["spec"]["default"], self.name.as_str());
                let weights: Vec<(&str, u64)> = e["spec"]["candidates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| (c["name"].as_str().unwrap(), c["weight"].as_u64().unwrap()))
                    .collect();
                let canary_name = format!("{}-canary", self.name);
                assert_eq!(
                    weights,
                    vec![
                        (self.name.as_str(), 100 - percent),
                        (canary_name.as_str(), percent)
                    ]
                );
            }
            t => unreachable!("{t}"),
        }
        assert_eq!(self.ann("m2s.io/rollout").as_deref(), Some("canary"));
        assert_eq!(
            self.ann("m2s.io/model-version").as_deref(),
            Some(self.v(stable))
        );
        assert_eq!(
            self.ann("m2s.io/canary-version").as_deref(),
            Some(self.v(canary))
        );
        assert_eq!(self.ann("m2s.io/canary-step").as_deref(), Some(step));
    }

    /// Asserts that v`i` serves alone, with no rollout left on the object or beside it.
    fn assert_alone(&self, i: usize) {
        let o = self.object();
        let spec = &o["spec"];
        let uri = match self.target() {
            "kserve" => {
                assert!(
                    spec["predictor"].get("canaryTrafficPercent").is_none(),
                    "{o:#}"
                );
                spec["predictor"]["model"]["storageUri"].as_str()
            }
            "seldon-v1" => {
                assert_eq!(spec["predictors"].as_array().unwrap().len(), 1, "{o:#}");
                assert!(spec["predictors"][0].get("traffic").is_none(), "{o:#}");
                spec["predictors"][0]["graph"]["modelUri"].as_str()
            }
            _ => {
                assert!(self.canary_model().is_none(), "the canary Model is left");
                assert!(
                    self.other(EXPERIMENTS, &self.name).is_none(),
                    "the Experiment is left"
                );
                spec["storageUri"].as_str()
            }
        };
        assert!(self.is_version(uri.unwrap(), i), "{o:#}");
        assert!(
            o["metadata"]["labels"].get("m2s.io/rollout").is_none(),
            "{o:#}"
        );
        assert_eq!(self.ann("m2s.io/model-version").as_deref(), Some(self.v(i)));
        for key in [
            "m2s.io/canary-step",
            "m2s.io/canary-since",
            "m2s.io/canary-files",
        ] {
            assert_eq!(self.ann(key), None, "{key} left on {o:#}");
        }
    }

    /// The status the plain object serving v1 gets from its controller.
    fn healthy_plain(&self) {
        self.s.write_status(&self.name, "Available");
    }

    /// The status the stack's controller writes once the step at `percent` % serves.
    fn healthy_step(&self, percent: u64) {
        let (ns, name) = (&self.s.ns, &self.name);
        let sb = &self.s.sb;
        match self.target() {
            "kserve" => {
                let generation = sb.generation(ns, "kserve", name);
                let mut status =
                    controller_status("kserve", "Available", ns, name, generation).status;
                let (old, new) = (
                    format!("{name}-predictor-00001"),
                    format!("{name}-predictor-00002"),
                );
                status["deploymentMode"] = json!("Knative");
                status["components"] = json!({"predictor": {
                "latestCreatedRevision": new, "latestReadyRevision": new,
                "latestRolledoutRevision": old,
                "traffic": [
                    {"revisionName": new, "percent": percent, "latestRevision": true, "tag": "latest"},
                    {"revisionName": old, "percent": 100 - percent, "latestRevision": false, "tag": "prev"},
                ]}});
                sb.set_status(ns, "kserve", name, &status);
            }
            "seldon-v1" => {
                let status = json!({"state": "Available", "replicas": 1,
                    "deploymentStatus": {
                        format!("{name}-default-0-model"): {"replicas": 1, "availableReplicas": 1},
                        format!("{name}-canary-0-model"): {"replicas": 1, "availableReplicas": 1},
                    },
                    "conditions": [cond("DeploymentsReady", "True", "", "")]});
                sb.set_status(ns, "seldon-v1", name, &status);
            }
            _ => {
                self.s.write_status(&format!("{name}-canary"), "Available");
            }
        }
    }

    /// The status the stack's controller writes when the new version fails to load.
    fn failed_step(&self) {
        match self.target() {
            "seldon-v2" => {
                self.s
                    .write_status(&format!("{}-canary", self.name), "Failed");
            }
            _ => {
                self.s.write_status(&self.name, "Failed");
            }
        }
    }

    fn events(&self, reason: &str) -> Vec<Value> {
        self.s
            .sb
            .events(&self.s.ns)
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .collect()
    }
}

fn each_target(test: impl Fn(Rollout)) {
    for target in TARGETS {
        let Some(r) = Rollout::start(target) else {
            return;
        };
        eprintln!("target {target}");
        test(r);
    }
}

#[test]
fn two_steps_to_promotion() {
    each_target(|r| {
        r.point(2);
        // Plan first: the step as a change, in text and JSON.
        let plan = run_expect(&mut r.m2s(&["plan", "--detailed-exitcode"]), 2);
        assert!(
            plan.stdout.contains(&format!("v{} → v{}", r.v(1), r.v(2)))
                && plan.stdout.contains("canary 10% (step 1 of 2)"),
            "{}",
            plan.stdout
        );
        let json = run_expect(&mut r.m2s(&["plan", "-o", "json"]), 0);
        let doc: Value = serde_json::from_str(&json.stdout).unwrap();
        let rollout = &doc["changes"][0]["rollout"];
        assert_eq!(rollout["action"], "step");
        assert_eq!(rollout["percent"], 10);
        assert_eq!(rollout["steps"], json!([10, 50]));

        r.sync();
        r.assert_step(1, 2, 10, "1");
        assert_eq!(r.events("RolloutStep").len(), 1);
        // Not healthy yet: nothing is due, nothing is written.
        let rv = r.rv();
        r.sync();
        assert_eq!(r.rv(), rv, "a run with no step due wrote");
        let out = run_expect(&mut r.m2s(&["status", "-o", "json"]), 0).stdout;
        let status: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(status["objects"][0]["rollout"]["state"], "canary");
        assert_eq!(status["objects"][0]["registry"], "rolling out");
        assert_eq!(status["objects"][0]["rollout"]["percent"], 10);
        let text = run_expect(&mut r.m2s(&["status"]), 0).stdout;
        assert!(
            text.contains(&format!("v{} + v{} at 10% (step 1 of 2,", r.v(1), r.v(2))),
            "{text}"
        );

        r.healthy_step(10);
        r.sync();
        r.assert_step(1, 2, 50, "2");
        r.healthy_step(50);
        r.sync();
        r.assert_alone(2);
        assert_eq!(r.ann("m2s.io/rollout"), None);
        assert_eq!(r.events("RolloutPromoted").len(), 1);
        // Promoted is exactly what a plain update writes: a plain run finds nothing to do.
        r.s.sb.mlflow().delete_model_tag(&r.model, "m2s.canary");
        run_expect(&mut r.m2s(&["plan", "--detailed-exitcode"]), 0);
    });
}

#[test]
fn a_failed_canary_is_aborted_and_not_tried_again() {
    each_target(|r| {
        r.point(2);
        r.sync();
        r.failed_step();
        // The run that aborts says so in its metrics too (what M2sCronJobRolloutAborted reads).
        let metrics = crate::faults_support::temp_dir("rollout-metrics").join("m2s.prom");
        run_expect(
            &mut r.m2s(&["sync", "--metrics-file", metrics.to_str().unwrap()]),
            0,
        );
        let text = std::fs::read_to_string(&metrics).unwrap();
        for (change, n) in [("step", 0), ("promoted", 0), ("aborted", 1)] {
            assert!(
                text.contains(&format!("change=\"{change}\"}} {n}\n")),
                "{change}: {text}"
            );
        }
        r.assert_alone(1);
        assert_eq!(r.ann("m2s.io/rollout").as_deref(), Some("aborted"));
        assert_eq!(r.ann("m2s.io/canary-version").as_deref(), Some(r.v(2)));
        let aborted = r.events("RolloutAborted");
        assert_eq!(aborted.len(), 1, "{aborted:?}");
        assert_eq!(aborted[0]["type"], "Warning");
        // The registry still asks for v2: an entry error, the object left as it is.
        let rv = r.rv();
        let again = run(&mut r.m2s(&["sync"]));
        assert_ne!(again.code, 0);
        assert!(again.all().contains("was aborted"), "{}", again.all());
        assert_eq!(r.rv(), rv);
        // The registry moves once more: a new rollout.
        r.point(3);
        r.sync();
        r.assert_step(1, 3, 10, "1");
    });
}

#[test]
fn a_canary_not_available_by_the_deadline_is_aborted() {
    each_target(|r| {
        r.point(2);
        r.sync();
        std::thread::sleep(std::time::Duration::from_secs(3));
        let out = run_expect(r.m2s(&["sync"]).env("M2S_CANARY_DEADLINE", "2s"), 0);
        r.assert_alone(1);
        assert!(
            r.ann("m2s.io/canary-aborted")
                .is_some_and(|w| w.contains("M2S_CANARY_DEADLINE (2s)")),
            "{}",
            out.all()
        );
    });
}

#[test]
fn the_registry_moving_mid_rollout() {
    each_target(|r| {
        // Another new version: the rollout starts again with it, v1 still the stable one.
        r.point(2);
        r.sync();
        r.healthy_step(10);
        r.sync();
        r.assert_step(1, 2, 50, "2");
        r.point(3);
        r.sync();
        r.assert_step(1, 3, 10, "1");
        // Back to the stable version: aborted, v1 alone, no record to hold v3 off.
        r.point(1);
        r.sync();
        r.assert_alone(1);
        assert_eq!(r.ann("m2s.io/rollout"), None);
        assert_eq!(r.events("RolloutAborted").len(), 1);
        run_expect(&mut r.m2s(&["plan", "--detailed-exitcode"]), 0);
        // The tag removed mid-rollout: promoted at once.
        r.point(2);
        r.sync();
        r.assert_step(1, 2, 10, "1");
        r.s.sb.mlflow().delete_model_tag(&r.model, "m2s.canary");
        r.sync();
        r.assert_alone(2);
        assert_eq!(r.events("RolloutPromoted").len(), 1);
    });
}

#[test]
fn two_runs_at_once_advance_a_step_once() {
    each_target(|r| {
        r.point(2);
        r.sync();
        r.healthy_step(10);
        // Step 1 served its 30 minutes; a step written now serves 0: whichever run lists after
        // the other wrote finds nothing due.
        r.s.sb
            .mlflow()
            .set_model_tag(&r.model, "m2s.canary-interval", "30m");
        let long_ago = format!("m2s.io/canary-since={}", "2026-01-01T00:00:00Z");
        let resource = crate::common::resource_of(r.target());
        r.s.sb.kubectl_ok(&[
            "-n",
            &r.s.ns,
            "annotate",
            "--overwrite",
            &resource,
            &r.name,
            &long_ago,
        ]);
        let runs: Vec<_> = (0..2).map(|_| r.m2s(&["sync"]).spawn().unwrap()).collect();
        for child in runs {
            child.wait_with_output().unwrap();
        }
        r.assert_step(1, 2, 50, "2");
        let steps: Vec<Value> = r
            .events("RolloutStep")
            .into_iter()
            .filter(|e| e["message"].as_str().unwrap_or_default().contains("50%"))
            .collect();
        assert_eq!(steps.len(), 1, "{steps:#?}");
    });
}

#[test]
fn kserve_raw_deployment_is_refused() {
    let Some(r) = Rollout::start("kserve") else {
        return;
    };
    let generation = r.s.sb.generation(&r.s.ns, "kserve", &r.name);
    let mut status = controller_status("kserve", "Available", &r.s.ns, &r.name, generation).status;
    status["deploymentMode"] = json!("Standard");
    r.s.sb.set_status(&r.s.ns, "kserve", &r.name, &status);
    let rv = r.rv();
    r.point(2);
    let out = run(&mut r.m2s(&["sync"]));
    assert_ne!(out.code, 0);
    assert!(
        out.all()
            .contains("ignores canaryTrafficPercent in Standard mode"),
        "{}",
        out.all()
    );
    assert_eq!(r.rv(), rv, "the object was written");
}

#[test]
fn an_experiment_someone_else_made_is_left_alone() {
    let Some(r) = Rollout::start("seldon-v2") else {
        return;
    };
    let theirs = json!({
        "apiVersion": "mlops.seldon.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": r.name, "labels": {"team": "theirs"}},
        "spec": {"default": "other", "candidates": [{"name": "other", "weight": 100}]},
    });
    r.s.sb.kubectl_apply_json(&r.s.ns, &theirs);
    let before = r.other(EXPERIMENTS, &r.name).unwrap();
    r.point(2);
    let out = run(&mut r.m2s(&["sync"]));
    assert_ne!(out.code, 0);
    assert!(
        out.all().contains("is not managed by m2s instance"),
        "{}",
        out.all()
    );
    let after = r.other(EXPERIMENTS, &r.name).unwrap();
    assert_eq!(
        before["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
    // The main Model still serves v1 and records no rollout.
    assert_eq!(r.ann("m2s.io/rollout"), None);
    assert!(r.canary_model().is_none(), "the canary Model was written");
}

#[test]
fn the_receiver_moves_a_rollout_on_by_itself() {
    use crate::webhook_support::{wait_for, Receiver};
    use std::time::{Duration, Instant};
    let Some(r) = Rollout::start("seldon-v1") else {
        return;
    };
    // Step 1 written by one process (a CronJob run, or another replica's scoped sync); a
    // receiver started later finds it by its label and goes on with it.
    r.point(2);
    r.sync();
    r.healthy_step(10);
    let mut cmd = r.m2s(&[]);
    cmd.env("M2S_LEADER_ELECTION", "false");
    let receiver = Receiver::start(&r.s.sb, cmd);
    // Its first (full) sync writes step 2; nothing reports the step serving but the status.
    wait_for("step 2", Duration::from_secs(30), || {
        (r.ann("m2s.io/canary-step").as_deref() == Some("2")).then_some(())
    });
    r.healthy_step(50);
    let healthy = Instant::now();
    wait_for("the promotion", Duration::from_secs(45), || {
        (r.ann("m2s.io/rollout").is_none()).then_some(())
    });
    let took = healthy.elapsed();
    eprintln!("promoted {took:.1?} after the step served (ticks every 30 s)");
    r.assert_alone(2);
    assert!(
        !receiver.syncs("model").is_empty(),
        "no tick (model sync): {}",
        receiver.log()
    );
    // Step 2 and the promotion were this receiver's writes, and nothing was aborted.
    for (change, n) in [("step", 1.0), ("promoted", 1.0), ("aborted", 0.0)] {
        let series = format!("m2s_rollout_changes_total{{change=\"{change}\"}}");
        assert_eq!(receiver.metric(&series), n, "{series}");
    }
}

/// The chart's Role for Seldon Core 2 is enough for a whole rollout, canary Model and
/// Experiment included: m2s runs as the chart's ServiceAccount.
#[test]
fn a_rollout_needs_no_more_than_the_charts_role() {
    use crate::chart_support::{
        chart_dir, helm, kind, kv_python, run as run_cmd, stderr, stdout, temp_dir, unique_name,
        yaml_docs, Sandbox as Admin, MLFLOW_HOST,
    };
    let Some(r) = Rollout::start("seldon-v2") else {
        return;
    };
    let (Some(helm), Some(python), Some(admin)) = (helm(), kv_python(), Admin::get()) else {
        return;
    };
    let release_ns = unique_name("ro-rel");
    admin.admin(&["create", "namespace", &release_ns]).unwrap();
    let out = run_cmd(
        Command::new(&helm)
            .args(["template", "m2s"])
            .arg(chart_dir())
            .args([
                "-n",
                &release_ns,
                "--set",
                &format!("mlflow.host={MLFLOW_HOST}"),
            ])
            .args(["--set", "target=seldon-v2", "--set"])
            .arg(format!("serving.namespace={}", r.s.ns)),
    )
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rbac: Vec<Value> = yaml_docs(&python, &stdout(&out))
        .into_iter()
        .filter(|d| ["ServiceAccount", "Role", "RoleBinding"].contains(&kind(d)))
        .collect();
    admin.create(&rbac).unwrap();
    let kubeconfig = admin
        .token_kubeconfig("m2s", &release_ns, &temp_dir("ro-rbac"))
        .unwrap();
    let as_chart = |args: &[&str]| {
        let mut cmd = r.m2s(args);
        cmd.env("KUBECONFIG", &kubeconfig);
        run_expect(&mut cmd, 0)
    };
    r.point(2);
    as_chart(&["sync"]);
    r.assert_step(1, 2, 10, "1");
    r.healthy_step(10);
    as_chart(&["sync"]);
    r.healthy_step(50);
    as_chart(&["sync"]);
    r.assert_alone(2);
}

/// `sync --wait` after a step waits for the part the step started: on Seldon Core 2 the canary
/// Model, which only its own status says is serving.
#[test]
fn sync_wait_follows_the_step_it_wrote() {
    use crate::faults_support::{audit_mark, requests_since};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let Some(r) = Rollout::start("seldon-v2") else {
        return;
    };
    r.point(2);
    let mark = audit_mark();
    let child = r
        .m2s(&["sync", "--wait", "--wait-timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let watching = || {
        requests_since(mark, &r.s.ns).iter().any(|e| {
            e["verb"] == "watch"
                && e["userAgent"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("m2s/"))
        })
    };
    while !(r.canary_model().is_some() && watching()) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no step, or no watch"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Still waiting: nothing serves the canary yet.
    std::thread::sleep(Duration::from_millis(700));
    r.healthy_step(10);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("{}-canary", r.name)), "{stdout}");
    r.assert_step(1, 2, 10, "1");
}

/// The `m2s.<namespace>.<name>.state` tag of version `i`, as MLflow has it.
fn state_tag(r: &Rollout, i: usize) -> Option<String> {
    let key = format!("m2s.{}.{}.state", r.s.ns, r.name);
    let v = r.s.sb.mlflow().get(
        "model-versions/get",
        &[("name", &r.model), ("version", r.v(i))],
    );
    v["model_version"]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["key"] == key.as_str())
        .and_then(|t| t["value"].as_str().map(String::from))
}

/// Write-back tells the registry what a rollout does: the new version is `canary` while it
/// takes part of the traffic, `aborted` after an abort; the stable version keeps its state.
#[test]
fn write_back_says_canary_then_aborted() {
    let Some(r) = Rollout::start("seldon-v1") else {
        return;
    };
    let sync = || {
        let mut cmd = r.m2s(&["sync"]);
        cmd.env("M2S_WRITE_BACK", "true");
        run(&mut cmd)
    };
    r.point(2);
    assert_eq!(sync().code, 0);
    assert_eq!(state_tag(&r, 2).as_deref(), Some("canary"));
    assert_eq!(state_tag(&r, 1).as_deref(), Some("Available"));
    r.failed_step();
    sync();
    assert_eq!(r.ann("m2s.io/rollout").as_deref(), Some("aborted"));
    // The run after the abort (the entry held: not deployable) keeps both tags.
    sync();
    assert_eq!(state_tag(&r, 2).as_deref(), Some("aborted"));
    assert!(state_tag(&r, 1).is_some());
}

/// A model deleted mid-rollout takes its canary objects with it (Seldon Core 2: the canary
/// Model and the Experiment).
#[test]
fn deleting_the_model_mid_rollout_deletes_what_the_rollout_added() {
    let Some(r) = Rollout::start("seldon-v2") else {
        return;
    };
    r.point(2);
    r.sync();
    assert!(r.canary_model().is_some());
    r.s.sb.mlflow().delete_alias(&r.model, "champion");
    // The main Model and its canary are every object this instance has: the guard asks.
    let refused = run(&mut r.m2s(&["sync"]));
    assert!(
        refused.code != 0 && refused.all().contains("refusing to delete all 2 Models"),
        "{}",
        refused.all()
    );
    run_expect(&mut r.m2s(&["sync", "--allow-delete-all"]), 0);
    assert!(r.s.sb.objects(&r.s.ns, "seldon-v2").is_empty());
    assert!(
        r.other(EXPERIMENTS, &r.name).is_none(),
        "the Experiment is left"
    );
}

/// Preflight stops a version the runtime cannot load before its canary takes any traffic: the
/// object keeps serving the stable version alone, with no rollout started.
#[test]
fn a_canary_the_runtime_cannot_load_takes_no_traffic() {
    each_target(|r| {
        let ml = r.s.sb.mlflow();
        let run = ml.run_info(&r.runs[r.v(2)]);
        let skops = crate::common::MLMODEL
            .replace("model.pkl", "model.skops")
            .replace(
                "serialization_format: cloudpickle",
                "serialization_format: skops",
            );
        ml.put_artifact(
            run["artifact_uri"].as_str().unwrap(),
            "model/MLmodel",
            &skops,
        );
        let rv = r.rv();
        r.point(2);
        let refused = run_expect(&mut r.m2s(&["sync"]), 1);
        assert!(
            refused.stdout.contains(&format!(
                "cannot load version {} of model {:?}: it is saved in scikit-learn's \"skops\"",
                r.v(2),
                r.model
            )),
            "{}",
            refused.stdout
        );
        assert_eq!(r.rv(), rv, "the object was written");
        assert_eq!(r.ann("m2s.io/rollout"), None);
        assert!(r.canary_model().is_none());
        // A loadable version rolls out as usual.
        r.point(3);
        r.sync();
        r.assert_step(1, 3, 10, "1");
    });
}
