//! Reliability and security against the real sandbox (issue: reliability & security): MLflow
//! and Kubernetes faults, concurrent runs, the deletion guard, bad registry input, secrets and
//! timeouts. Every test has its own namespace and model-name prefix; each first deploys with
//! one good run, then injects the fault and checks the exit status, the message and that the
//! cluster was left as it was.

use std::time::Duration;

use crate::common::{run, run_expect, unique, Sandbox};
use crate::faults_support::*;
use serde_json::json;

fn sandbox() -> Option<Sandbox> {
    Sandbox::get()
}

/// The common checks of an MLflow fault: exit 1, the message names the MLflow URL given to
/// m2s, no write request reached Kubernetes, every object is unchanged.
fn assert_mlflow_fault(d: &Deployed, url: &str, mark: u64, r: &crate::common::RunResult) {
    assert_eq!(r.code, 1, "exit code\n{}", r.all());
    assert!(
        r.stderr.contains(url),
        "the error does not name the MLflow URL {url}:\n{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert!(!r.all().contains("panicked"), "{}", r.all());
    assert_no_write_attempts(mark, &d.ns);
    d.assert_untouched();
}

// ---------------------------------------------------------------------------------------------
// 1. MLflow faults
// ---------------------------------------------------------------------------------------------

#[test]
fn pass_through_proxy_changes_nothing() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-pass", 2);
    let proxy = Proxy::always(&d.sb.mlflow_url, || Reply::Forward);
    // The mlflow-url annotation names the proxy now: an update, which proves the proxy is used.
    let r = run_expect(d.m2s_via(&proxy.url()).arg("sync"), 0);
    assert!(r.stdout.contains("2 updated"), "{}", r.stdout);
    assert!(proxy.count(|r| r.is_search()) >= 1);
    // m2s only reads MLflow.
    assert!(proxy.requests().iter().all(|r| r.method == "GET"));
    let objects = d.sb.seldon_deployments(&d.ns);
    for o in objects.values() {
        assert_eq!(
            o["metadata"]["annotations"]["m2s.io/mlflow-url"],
            proxy.url()
        );
    }
}

#[test]
fn mlflow_5xx_is_retried_then_fails_without_writes() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-5xx", 2);
    for status in [500u16, 502, 503] {
        let proxy = Proxy::always(&d.sb.mlflow_url, move || {
            Reply::Status(status, mlflow_error("INTERNAL_ERROR", "injected"))
        });
        let mark = audit_mark();
        let r = run(d.m2s_via(&proxy.url()).arg("sync"));
        assert_mlflow_fault(&d, &proxy.url(), mark, &r);
        // MAX_ATTEMPTS = 4: the first try and three retries, then the run stops.
        assert_eq!(proxy.count(|r| r.is_search()), 4, "status {status}");
        assert!(
            r.stderr.contains(&status.to_string()) && r.stderr.contains("gave up after 4"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn mlflow_429_is_retried() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-429", 1);
    // Two 429s, then the real answers: the run succeeds after retrying.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen2 = seen.clone();
    let proxy = Proxy::start(&d.sb.mlflow_url, move |req| {
        if req.is_search() && seen2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            Reply::Status(429, mlflow_error("REQUEST_LIMIT_EXCEEDED", "slow down"))
        } else {
            Reply::Forward
        }
    });
    run_expect(d.m2s_via(&proxy.url()).arg("sync"), 0);
    assert_eq!(proxy.count(|r| r.is_search()), 3);
}

#[test]
fn mlflow_401_and_403_fail_at_once_with_a_credentials_hint() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-auth", 2);
    for status in [401u16, 403] {
        let proxy = Proxy::always(&d.sb.mlflow_url, move || {
            Reply::Status(status, mlflow_error("PERMISSION_DENIED", "no"))
        });
        let mark = audit_mark();
        let r = run(d.m2s_via(&proxy.url()).arg("sync"));
        assert_mlflow_fault(&d, &proxy.url(), mark, &r);
        assert_eq!(proxy.requests().len(), 1, "{status} must not be retried");
        assert!(
            r.stderr.contains("credentials") && r.stderr.contains("MLFLOW_TRACKING_TOKEN"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn mlflow_malformed_json_fails_without_writes() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-json", 2);
    for body in [
        "<html>oops</html>",
        "{\"registered_models\": [{\"name\": 5}]}",
        "{\"registered_models\": ",
    ] {
        let proxy = Proxy::always(&d.sb.mlflow_url, move || Reply::Status(200, body.into()));
        let mark = audit_mark();
        let r = run(d.m2s_via(&proxy.url()).arg("sync"));
        assert_mlflow_fault(&d, &proxy.url(), mark, &r);
        assert!(r.stderr.contains("malformed JSON"), "{}", r.stderr);
    }
}

#[test]
fn mlflow_second_search_page_fails() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-page2", 2);
    let proxy = Proxy::start(&d.sb.mlflow_url, |req| {
        if req.is_search() && req.has_param("page_token") {
            Reply::Status(500, mlflow_error("INTERNAL_ERROR", "page 2 broke"))
        } else if req.is_search() {
            Reply::Rewrite(|v| v["next_page_token"] = json!("page-2"))
        } else {
            Reply::Forward
        }
    });
    let mark = audit_mark();
    let r = run(d.m2s_via(&proxy.url()).arg("sync"));
    assert_mlflow_fault(&d, &proxy.url(), mark, &r);
    assert!(r.stderr.contains("page_token=page-2"), "{}", r.stderr);
    assert_eq!(
        proxy.count(|r| r.is_search() && !r.has_param("page_token")),
        1
    );
    assert_eq!(proxy.count(|r| r.has_param("page_token")), 4);
}

#[test]
fn mlflow_page_token_loop_is_detected() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-loop", 2);
    // The real first page gets a token; every later page (MLflow itself would refuse the
    // made-up token) is empty and hands out the same token again.
    let proxy = Proxy::start(&d.sb.mlflow_url, |req| {
        if req.is_search() && req.has_param("page_token") {
            Reply::Status(200, json!({"next_page_token": "same-token"}).to_string())
        } else if req.is_search() {
            Reply::Rewrite(|v| v["next_page_token"] = json!("same-token"))
        } else {
            Reply::Forward
        }
    });
    let mark = audit_mark();
    let r = run(d.m2s_via(&proxy.url()).arg("sync"));
    assert_mlflow_fault(&d, &proxy.url(), mark, &r);
    assert!(r.stderr.contains("pagination loops"), "{}", r.stderr);
    assert_eq!(proxy.count(|r| r.is_search()), 2);
}

#[test]
fn mlflow_request_timeout_fails_without_writes() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-hang", 2);
    let proxy = Proxy::always(&d.sb.mlflow_url, || Reply::Hang);
    let mark = audit_mark();
    let mut cmd = d.m2s_via(&proxy.url());
    cmd.env("M2S_REQUEST_TIMEOUT", "1").arg("sync");
    let (r, elapsed) = timed(&mut cmd);
    assert_mlflow_fault(&d, &proxy.url(), mark, &r);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    // 4 attempts of 1 s plus 1.75 s of back-off; far below the 30 s default.
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    assert_eq!(proxy.count(|r| r.is_search()), 4);
}

#[test]
fn empty_registry_answer_is_refused_by_the_deletion_guard() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-empty", 2);
    let proxy = Proxy::start(&d.sb.mlflow_url, |req| {
        if req.is_search() {
            Reply::Status(200, "{}".into())
        } else {
            Reply::Forward
        }
    });
    let mark = audit_mark();
    let r = run(d.m2s_via(&proxy.url()).arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("refusing to delete all 2") && r.stderr.contains(&proxy.url()),
        "{}",
        r.stderr
    );
    assert_no_write_attempts(mark, &d.ns);
    d.assert_untouched();
}

#[test]
fn mlflow_connection_refused_and_dns_failure() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-conn", 1);
    for (url, what) in [
        (
            format!("http://127.0.0.1:{}", closed_port()),
            "could not connect",
        ),
        (
            "http://m2s-does-not-exist.invalid".to_string(),
            "could not connect",
        ),
    ] {
        let mark = audit_mark();
        let r = run(d.m2s_via(&url).arg("sync"));
        assert_mlflow_fault(&d, &url, mark, &r);
        assert!(r.stderr.contains(what), "{}", r.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Kubernetes faults
// ---------------------------------------------------------------------------------------------

#[test]
fn kubernetes_unreachable() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-kdown", 1);
    let dir = temp_dir("kdown");
    let server = format!("https://127.0.0.1:{}", closed_port());
    let kc = kubeconfig_with_server(&d.sb, &server, &dir);
    let r = run(d.m2s().env("KUBECONFIG", &kc).arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains(&server),
        "names the API server: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("list SeldonDeployments in namespace"),
        "{}",
        r.stderr
    );
    assert!(!r.all().contains("panicked"));
    d.assert_untouched();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn kubernetes_request_timeout() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-khang", 1);
    let silent = Silent::start();
    let dir = temp_dir("khang");
    let server = format!("https://{}", silent.addr);
    let kc = kubeconfig_with_server(&d.sb, &server, &dir);
    let (r, elapsed) = timed(
        d.m2s()
            .env("KUBECONFIG", &kc)
            .env("M2S_REQUEST_TIMEOUT", "2")
            .arg("sync"),
    );
    let (code, out) = (r.code, r.all());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&server), "{out}");
    assert!(out.contains("timed out (M2S_REQUEST_TIMEOUT)"), "{out}");
    assert!(
        !out.contains("M2S_RUN_TIMEOUT"),
        "the request timeout, not the deadline: {out}"
    );
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    d.assert_untouched();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rbac_forbidden_names_verb_resource_and_namespace() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-rbac", 2);
    let (sb, ns) = (&d.sb, &d.ns);
    // A change of every kind: m0 moves to a new version (update), m1 leaves the registry
    // (delete), m2 is new (create).
    let mlflow = sb.mlflow();
    let v = mlflow.version_from_run(&d.models[0], &d.experiment);
    mlflow.stage(&d.models[0], &v, "Production");
    mlflow.delete_model(&d.models[1]);
    let new_model = format!("{}-m2", d.prefix);
    production_model(sb, &new_model, &d.experiment);

    let kc = service_account_with(&d.sb, &d.ns, "lister", "list", SDEP);
    let mark = audit_mark();
    let r = run(d.m2s().env("KUBECONFIG", &kc).arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("3 of 3 changes failed"), "{}", r.stderr);
    for (name, verb) in [
        (d.deployment(&d.models[0]), "verb \"patch\""),
        (d.deployment(&d.models[1]), "verb \"delete\""),
        (d.deployment(&new_model), "verbs \"create\" and \"patch\""),
    ] {
        assert!(
            r.stderr.contains(&format!("SeldonDeployment {ns}/{name}")),
            "{name}: {}",
            r.stderr
        );
        assert!(
            r.stderr
                .contains(&format!("needs RBAC {verb} on seldondeployments.machinelearning.seldon.io in namespace {ns:?}")),
            "{verb}: {}",
            r.stderr
        );
    }
    // Three write attempts, all denied; nothing changed.
    {
        let writes = writes_since(mark, ns);
        assert_eq!(writes.len(), 3, "{writes:?}");
        assert!(writes.iter().all(|w| w.ends_with("403")), "{writes:?}");
    }
    d.assert_untouched();
}

const SDEP: &str = "seldondeployments.machinelearning.seldon.io";

#[test]
fn get_list_create_patch_delete_is_all_the_rbac_m2s_needs() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-minrbac", 2);
    let kc = service_account_with(
        &d.sb,
        &d.ns,
        "minimal",
        "get,list,create,patch,delete",
        SDEP,
    );
    let mlflow = d.sb.mlflow();
    let v = mlflow.version_from_run(&d.models[0], &d.experiment);
    mlflow.stage(&d.models[0], &v, "Production");
    mlflow.delete_model(&d.models[1]);
    let new_model = format!("{}-m2", d.prefix);
    production_model(&d.sb, &new_model, &d.experiment);
    let r = run_expect(d.m2s().env("KUBECONFIG", &kc).arg("sync"), 0);
    assert!(
        r.stdout.contains("1 created, 1 updated, 1 deleted"),
        "{}",
        r.stdout
    );
    let names: Vec<String> = d.rvs().into_keys().collect();
    let mut expected = vec![d.deployment(&d.models[0]), d.deployment(&new_model)];
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn recreated_foreign_object_is_neither_modified_nor_deleted() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-recreate", 2);
    let (sb, ns) = (&d.sb, &d.ns);
    let name = d.deployment(&d.models[0]);
    let old_uid = d.sb.seldon_deployments(ns)[&name]["metadata"]["uid"].clone();
    sb.kubectl_ok(&["-n", ns, "delete", "seldondeployment", &name]);
    sb.kubectl_apply_json(ns, &foreign_object(&name, ns));
    let theirs = sb.seldon_deployments(ns)[&name].clone();
    assert_ne!(theirs["metadata"]["uid"], old_uid);

    // Still wanted by the registry: reported, not taken over.
    let r = run(d.m2s().arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("cannot be deployed") && r.all().contains("not managed by m2s"),
        "{}",
        r.all()
    );
    // No longer wanted: not deleted either (only labelled objects are ever candidates).
    sb.mlflow().delete_model(&d.models[0]);
    run_expect(d.m2s().arg("sync"), 0);
    let now = sb.seldon_deployments(ns);
    assert_eq!(now[&name]["metadata"]["uid"], theirs["metadata"]["uid"]);
    assert_eq!(
        now[&name]["metadata"]["resourceVersion"],
        theirs["metadata"]["resourceVersion"]
    );
    let other = d.deployment(&d.models[1]);
    assert_eq!(
        now[&other]["metadata"]["resourceVersion"].as_str(),
        Some(d.before[&other].as_str())
    );
}

#[test]
fn desired_name_taken_by_a_foreign_object() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-taken", 1);
    let (sb, ns) = (&d.sb, &d.ns);
    let taken_model = format!("{}-m1", d.prefix);
    let free_model = format!("{}-m2", d.prefix);
    let taken = d.deployment(&taken_model);
    sb.kubectl_apply_json(ns, &foreign_object(&taken, ns));
    let foreign_rv = d.rvs()[&taken].clone();
    production_model(sb, &taken_model, &d.experiment);
    production_model(sb, &free_model, &d.experiment);

    let r = run(d.m2s().arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.all().contains(&format!(
            "a SeldonDeployment named {taken:?} already exists"
        )),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("1 created"), "{}", r.stdout);
    let after = d.rvs();
    assert_eq!(after[&taken], foreign_rv, "the foreign object was written");
    assert!(after.contains_key(&d.deployment(&free_model)));
    let first = d.deployment(&d.models[0]);
    assert_eq!(after[&first], d.before[&first]);
}

#[test]
fn missing_namespace_is_a_clear_error() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-nons", 0);
    production_model(&d.sb, &format!("{}-m0", d.prefix), &d.experiment);
    let missing = unique("flt-missing");
    let r = run(d.sb.m2s(&missing, &d.prefix).arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(!r.all().contains("panicked"), "{}", r.all());
    assert!(
        r.stderr
            .contains(&format!("is the namespace {missing:?} there")),
        "{}",
        r.stderr
    );
}

#[test]
fn unreadable_or_invalid_kubeconfig_is_a_clear_error() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-kc", 1);
    let dir = temp_dir("kc");
    let garbage = dir.join("garbage");
    write_private(&garbage, "this: is: not: a kubeconfig\n\t- [");
    let missing = dir.join("does-not-exist");
    for (how, path) in [
        ("env", &garbage),
        ("env", &missing),
        ("flag", &garbage),
        ("flag", &missing),
        ("flag", &dir),
    ] {
        let mut cmd = d.m2s();
        if how == "env" {
            cmd.env("KUBECONFIG", path);
        } else {
            cmd.arg("--kubeconfig").arg(path);
        }
        let r = run(cmd.arg("sync"));
        assert_eq!(r.code, 1, "{how} {path:?}: {}", r.all());
        assert!(!r.all().contains("panicked"), "{}", r.all());
        assert!(
            r.stderr.contains(path.to_str().unwrap()),
            "{how} {path:?}: the error names the file: {}",
            r.stderr
        );
    }
    d.assert_untouched();
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// 3. Concurrency
// ---------------------------------------------------------------------------------------------

fn run_two_at_once(d: &Deployed) -> [crate::common::RunResult; 2] {
    let spawn = || {
        d.m2s()
            .arg("sync")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    [a, b].map(|c| {
        let out = c.wait_with_output().unwrap();
        crate::common::RunResult {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
}

fn assert_clean(results: &[crate::common::RunResult]) {
    for r in results {
        assert!(
            r.code == 0
                || (r.code == 1
                    && (r.stderr.contains("changed since m2s listed it")
                        || r.stderr.contains("already exists")
                        || r.stderr.contains("re-created since m2s listed it"))),
            "neither success nor a clean conflict:\n{}",
            r.all()
        );
        assert!(!r.all().contains("panicked"));
    }
    eprintln!(
        "concurrent exit codes: {:?}; conflicts resolved as already written: {}",
        results.iter().map(|r| r.code).collect::<Vec<_>>(),
        results
            .iter()
            .map(|r| r.stderr.matches("written concurrently").count()
                + r.stderr.matches("already deleted").count())
            .sum::<usize>()
    );
}

/// A gate the proxy's handler waits at: `reached()` tells when the first request got there,
/// `open()` lets it (and every later one) through.
#[derive(Clone, Default)]
struct Gate(std::sync::Arc<(std::sync::Mutex<(bool, bool)>, std::sync::Condvar)>);

impl Gate {
    /// Called by the proxy: note the arrival, then wait (at most 60 s) until open.
    fn pass(&self) {
        let (lock, cv) = &*self.0;
        let mut state = lock.lock().unwrap();
        state.0 = true;
        cv.notify_all();
        let _ = cv
            .wait_timeout_while(state, Duration::from_secs(60), |s| !s.1)
            .unwrap();
    }
    fn reached(&self) -> bool {
        let (lock, cv) = &*self.0;
        let state = lock.lock().unwrap();
        cv.wait_timeout_while(state, Duration::from_secs(60), |s| !s.0)
            .unwrap()
            .0
             .0
    }
    fn open(&self) {
        let (lock, cv) = &*self.0;
        lock.lock().unwrap().1 = true;
        cv.notify_all();
    }
}

#[test]
fn an_object_changed_between_list_and_write_is_a_reported_conflict() {
    // m2s LISTs, then reads the moved versions' runs from MLflow, then writes. The proxy holds
    // that MLflow read until the test has edited one object: its update then meets a 409
    // (resourceVersion precondition), is reported naming the object, the other update applies,
    // the run exits 1, and the next run converges.
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-409", 2);
    let mlflow = d.sb.mlflow();
    for model in &d.models {
        let v = mlflow.version_from_run(model, &d.experiment);
        mlflow.stage(model, &v, "Production");
    }
    let gate = Gate::default();
    let held = gate.clone();
    let proxy = Proxy::start(mlflow.url(), move |r| {
        if r.path().contains("/runs/") {
            held.pass();
        }
        Reply::Forward
    });
    let mut cmd = d.m2s_via(&proxy.url());
    let sync = std::thread::spawn(move || run(cmd.arg("sync")));
    assert!(gate.reached(), "m2s never read a run from MLflow");
    let (edited, other) = (d.deployment(&d.models[0]), d.deployment(&d.models[1]));
    d.sb.kubectl_ok(&[
        "-n",
        &d.ns,
        "label",
        "seldondeployment",
        &edited,
        "edited-by=someone",
    ]);
    gate.open();
    let r = sync.join().unwrap();
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains(&format!("1 of 2 changes failed: {edited}: "))
            && r.stderr
                .contains("the object changed since m2s listed it; not overwritten"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout
            .contains("1 updated, 0 deleted, 0 unchanged, 1 failed"),
        "{}",
        r.stdout
    );
    let objects = d.sb.seldon_deployments(&d.ns);
    let version =
        |name: &str| objects[name]["metadata"]["annotations"]["m2s.io/model-version"].clone();
    assert_eq!(version(&other), "2", "the other update applied");
    assert_eq!(
        version(&edited),
        "1",
        "the edited object was not overwritten"
    );
    // The next run converges (and keeps the label someone else added).
    run_expect(d.m2s().arg("sync"), 0);
    let objects = d.sb.seldon_deployments(&d.ns);
    assert_eq!(
        objects[&edited]["metadata"]["annotations"]["m2s.io/model-version"],
        "2"
    );
    assert_eq!(
        objects[&edited]["metadata"]["labels"]["edited-by"],
        "someone"
    );
    run_expect(d.m2s().args(["plan", "--detailed-exitcode"]), 0);
}

#[test]
fn two_syncs_at_once_converge() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-conc", 0);
    let mut models = Vec::new();
    for i in 0..5 {
        let m = format!("{}-m{i}", d.prefix);
        production_model(&d.sb, &m, &d.experiment);
        models.push(m);
    }
    // Both create the same objects.
    let results = run_two_at_once(&d);
    assert_clean(&results);
    let expected: Vec<String> = {
        let mut v: Vec<_> = models.iter().map(|m| d.deployment(m)).collect();
        v.sort();
        v
    };
    let names: Vec<String> = d.rvs().into_keys().collect();
    assert_eq!(names, expected);
    let settled = d.rvs();
    run_expect(d.m2s().arg("sync"), 0);
    assert_eq!(d.rvs(), settled, "a later sync found work left");

    // Both update (new versions) and delete (a model gone) the same objects.
    let mlflow = d.sb.mlflow();
    for m in &models[..3] {
        let v = mlflow.version_from_run(m, &d.experiment);
        mlflow.stage(m, &v, "Production");
    }
    mlflow.delete_model(&models[4]);
    let results = run_two_at_once(&d);
    assert_clean(&results);
    let objects = d.sb.seldon_deployments(&d.ns);
    let names: Vec<&String> = objects.keys().collect();
    assert_eq!(names, expected[..4].iter().collect::<Vec<_>>());
    for m in &models[..3] {
        assert_eq!(
            objects[&d.deployment(m)]["metadata"]["annotations"]["m2s.io/model-version"],
            "2"
        );
    }
    let settled = d.rvs();
    run_expect(d.m2s().arg("sync"), 0);
    assert_eq!(d.rvs(), settled, "a later sync found work left");
}

// ---------------------------------------------------------------------------------------------
// 4. Deletion guard
// ---------------------------------------------------------------------------------------------

#[test]
fn allow_delete_all_on_a_real_cluster() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-delall", 2);
    // A filter matching nothing looks exactly like an emptied registry.
    let nothing = format!("{}-nothing", d.prefix);
    let mark = audit_mark();
    let r = run(d.sb.m2s(&d.ns, &nothing).arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("refusing to delete all 2") && r.stderr.contains("--allow-delete-all"),
        "{}",
        r.stderr
    );
    assert_no_write_attempts(mark, &d.ns);
    d.assert_untouched();
    // `plan` refuses the same way.
    let r = run(d.sb.m2s(&d.ns, &nothing).arg("plan"));
    assert_eq!(r.code, 1, "{}", r.all());
    d.assert_untouched();

    let r = run_expect(
        d.sb.m2s(&d.ns, &nothing)
            .arg("sync")
            .arg("--allow-delete-all"),
        0,
    );
    assert!(r.stdout.contains("2 deleted"), "{}", r.stdout);
    assert!(d.rvs().is_empty());
}

#[test]
fn max_deletes_on_a_real_cluster() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-maxdel", 3);
    let mlflow = d.sb.mlflow();
    mlflow.delete_model(&d.models[0]);
    mlflow.delete_model(&d.models[1]);
    let mark = audit_mark();
    let r = run(d.m2s().args(["sync", "--max-deletes", "1"]));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("refusing to delete 2 SeldonDeployments")
            && r.stderr.contains("--max-deletes 1"),
        "{}",
        r.stderr
    );
    assert_no_write_attempts(mark, &d.ns);
    d.assert_untouched();
    // The environment variable works as the flag.
    let r = run(d.m2s().env("M2S_MAX_DELETES", "1").arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());
    d.assert_untouched();

    let r = run_expect(d.m2s().args(["sync", "--max-deletes", "2"]), 0);
    assert!(r.stdout.contains("2 deleted"), "{}", r.stdout);
    let left: Vec<String> = d.rvs().into_keys().collect();
    assert_eq!(left, [d.deployment(&d.models[2])]);
}

// ---------------------------------------------------------------------------------------------
// 5. Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_image_tag_is_reported_and_the_others_proceed() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-image", 2);
    let mlflow = d.sb.mlflow();
    let bad = format!("{}-bad", d.prefix);
    production_model(&d.sb, &bad, &d.experiment);
    mlflow.set_model_tag(&bad, "deployment-image", "Not A/Valid Image:!");
    let good = format!("{}-good", d.prefix);
    production_model(&d.sb, &good, &d.experiment);
    mlflow.set_model_tag(
        &good,
        "deployment-image",
        "registry.example:5000/team/server:1.2",
    );

    let r = run(d.m2s().arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains(&bad), "{}", r.all());
    assert!(r.all().contains("deployment-image"), "{}", r.all());
    assert!(
        r.stderr.contains("1 registry entry cannot be deployed"),
        "{}",
        r.stderr
    );
    let objects = d.sb.seldon_deployments(&d.ns);
    assert!(!objects.contains_key(&d.deployment(&bad)));
    let g = &objects[&d.deployment(&good)];
    assert_eq!(
        g["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["image"],
        "registry.example:5000/team/server:1.2"
    );
    for (name, rv) in &d.before {
        assert_eq!(&objects[name]["metadata"]["resourceVersion"], rv);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Secrets
// ---------------------------------------------------------------------------------------------

/// Runs m2s with `RUST_LOG=trace` through a pass-through proxy, a 500 proxy and a 401 proxy,
/// with credentials set by `creds`; checks that none of `secrets` is printed or written to the
/// cluster, and that the proxy did receive `expected_auth`.
fn assert_secret_kept(
    tag: &str,
    secrets: &[String],
    expected_auth: &str,
    creds: impl Fn(&mut std::process::Command, &str),
) {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, tag, 1);
    let kube_token = admin_token(&d.sb);
    let mut all_secrets: Vec<String> = secrets.to_vec();
    all_secrets.extend(kube_token);
    let check = |text: &str, what: &str| {
        for s in &all_secrets {
            assert!(!text.contains(s.as_str()), "a secret appears in {what}");
        }
    };
    type Mode = (&'static str, fn() -> Reply, i32);
    let modes: [Mode; 3] = [
        ("pass", || Reply::Forward, 0),
        (
            "500",
            || Reply::Status(500, mlflow_error("INTERNAL_ERROR", "x")),
            1,
        ),
        (
            "401",
            || Reply::Status(401, mlflow_error("UNAUTHENTICATED", "x")),
            1,
        ),
    ];
    for (mode, reply, code) in modes {
        let proxy = Proxy::always(&d.sb.mlflow_url, reply);
        let mut cmd = d.m2s();
        creds(&mut cmd, &proxy.url());
        cmd.env("RUST_LOG", "trace").arg("sync");
        let r = run(&mut cmd);
        assert_eq!(
            r.code, code,
            "{mode}: exit code (output withheld: it may hold secrets)"
        );
        assert!(
            r.stderr.contains("TRACE") || r.stderr.contains("DEBUG"),
            "{mode}: trace logging is on"
        );
        check(&r.stdout, &format!("stdout ({mode})"));
        check(&r.stderr, &format!("stderr ({mode})"));
        let auths: Vec<String> = proxy
            .requests()
            .iter()
            .map(|r| r.header("authorization").unwrap_or_default().to_string())
            .collect();
        assert!(!auths.is_empty(), "{mode}: no request reached the proxy");
        assert!(
            auths.iter().all(|a| a == expected_auth),
            "{mode}: the proxy did not receive the expected Authorization header"
        );
    }
    let objects =
        d.sb.kubectl_ok(&["-n", &d.ns, "get", "seldondeployments", "-o", "json"]);
    check(&objects, "the SeldonDeployments");
    assert!(objects.contains("m2s.io/mlflow-url"));
}

fn basic(user: &str, password: &str) -> String {
    // Independent of m2s's encoder: the test only needs the exact header m2s must send.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                T[(n >> (18 - 6 * i)) as usize & 63] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn tracking_token_is_never_printed_or_written() {
    let token = unique("tok-Secret");
    let expected = format!("Bearer {token}");
    let t = token.clone();
    assert_secret_kept("flt-sec-tok", &[token], &expected, move |cmd, url| {
        cmd.env("M2S_MLFLOW_HOST", url)
            .env("MLFLOW_TRACKING_TOKEN", &t);
    });
}

#[test]
fn tracking_username_and_password_are_never_printed_or_written() {
    let password = unique("pw-Secret");
    let encoded = basic("alice", &password);
    let expected = format!("Basic {encoded}");
    let p = password.clone();
    assert_secret_kept(
        "flt-sec-basic",
        &[password, encoded],
        &expected,
        move |cmd, url| {
            cmd.env("M2S_MLFLOW_HOST", url)
                .env("MLFLOW_TRACKING_USERNAME", "alice")
                .env("MLFLOW_TRACKING_PASSWORD", &p);
        },
    );
}

#[test]
fn credentials_in_the_url_are_never_printed_or_written() {
    let password = unique("urlpw-Secret");
    let encoded = basic("bob", &password);
    let expected = format!("Basic {encoded}");
    let p = password.clone();
    assert_secret_kept(
        "flt-sec-url",
        &[password, encoded],
        &expected,
        move |cmd, url| {
            let with_creds = url.replacen("http://", &format!("http://bob:{p}@"), 1);
            cmd.env("M2S_MLFLOW_HOST", with_creds);
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Run deadline
// ---------------------------------------------------------------------------------------------

#[test]
fn run_deadline_stops_a_hanging_run() {
    let Some(sb) = sandbox() else { return };
    let d = Deployed::new(sb, "flt-deadline", 1);
    let proxy = Proxy::always(&d.sb.mlflow_url, || Reply::Hang);
    let mark = audit_mark();
    let (r, elapsed) = timed(
        d.m2s_via(&proxy.url())
            .env("M2S_REQUEST_TIMEOUT", "30")
            .env("M2S_RUN_TIMEOUT", "2")
            .arg("sync"),
    );
    let (code, out) = (r.code, r.all());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("exceeded its deadline of 2s (M2S_RUN_TIMEOUT)"),
        "{out}"
    );
    // 2 s plus process start-up; generous for a loaded machine, far below the 30 s request timeout.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(elapsed >= Duration::from_secs(2), "took {elapsed:?}");
    assert_no_write_attempts(mark, &d.ns);
    d.assert_untouched();
}
