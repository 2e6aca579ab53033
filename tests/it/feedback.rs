//! What m2s tells others about its work, against the sandbox: Kubernetes Events (as
//! `kubectl describe` shows them), write-back of each object's state to the real MLflow, and
//! the user agent in the API server's audit log.

use crate::common::{run, run_expect, Sandbox};
use crate::controllers::Setup;
use crate::faults_support::*;
use serde_json::{json, Value};

/// Events about `name` (core/v1 view, as `kubectl describe` reads them).
fn events_about<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name)
        .collect()
}

fn one_event<'a>(events: &'a [Value], name: &str, reason: &str) -> &'a Value {
    let found: Vec<&Value> = events_about(events, name)
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect();
    assert_eq!(found.len(), 1, "{reason} events about {name}: {events:#?}");
    found[0]
}

#[test]
fn an_event_for_each_kind_of_change() {
    let Some(sb) = Sandbox::get() else { return };
    let d = Deployed::new(sb, "ev", 3);
    let (sb, ns) = (&d.sb, &d.ns);
    let objects = sb.seldon_deployments(ns);
    let uid = |model: &str| objects[&d.deployment(model)]["metadata"]["uid"].clone();
    let events = sb.events(ns);
    for m in &d.models {
        let e = one_event(&events, &d.deployment(m), "Created");
        assert_eq!(e["type"], "Normal");
        assert_eq!(e["involvedObject"]["kind"], "SeldonDeployment");
        assert_eq!(e["involvedObject"]["uid"], uid(m));
        assert_eq!(e["reportingComponent"], "m2s");
        assert_eq!(
            e["message"],
            format!("{m} v1 (stage Production): new deployment")
        );
    }

    // m0 moves to v2, m1 leaves the registry, m2 gets a bad setting (its object is held),
    // m3 is new, m4's object is refused by the API server (annotations over 256 KiB).
    let mlflow = sb.mlflow();
    let (m0, m1, m2) = (&d.models[0], &d.models[1], &d.models[2]);
    let v = mlflow.version_from_run(m0, &d.experiment);
    mlflow.stage(m0, &v, "Production");
    mlflow.delete_model(m1);
    mlflow.set_model_tag(m2, "m2s.memory", "lots");
    let m3 = format!("{}-m3", d.prefix);
    production_model(sb, &m3, &d.experiment);
    let m4 = format!("{}-m4", d.prefix);
    mlflow.model(&m4);
    let big = mlflow.version(&m4, &format!("s3://bucket/{}", "x".repeat(100_000)), None);
    mlflow.stage(&m4, &big, "Production");
    let r = run(d.m2s().arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());

    let events = sb.events(ns);
    let e = one_event(&events, &d.deployment(m0), "Updated");
    assert_eq!(e["type"], "Normal");
    assert_eq!(e["involvedObject"]["uid"], uid(m0));
    assert_eq!(
        e["message"],
        format!("{m0} v1 → v2 (stage Production): version 1 → 2")
    );
    let e = one_event(&events, &d.deployment(m1), "Deleted");
    assert_eq!(e["involvedObject"]["uid"], uid(m1));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("is gone from the registry"),
        "{e:#}"
    );
    let e = one_event(&events, &d.deployment(m2), "NotDeployable");
    assert_eq!(e["type"], "Warning");
    assert_eq!(
        e["involvedObject"]["uid"],
        uid(m2),
        "the held object is regarded"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("tag m2s.memory=\"lots\""),
        "{e:#}"
    );
    one_event(&events, &d.deployment(&m3), "Created");
    let e = one_event(&events, &d.deployment(&m4), "ApplyFailed");
    assert_eq!(e["type"], "Warning");
    assert!(e["message"].as_str().unwrap().contains("Too long"), "{e:#}");
    // The next run (a CronJob's, a minute later) finds the same problems: no second Warning
    // about either object, however often it runs.
    let r = run(d.m2s().arg("sync"));
    assert_eq!(r.code, 1, "{}", r.all());
    let events = sb.events(ns);
    one_event(&events, &d.deployment(m2), "NotDeployable");
    one_event(&events, &d.deployment(&m4), "ApplyFailed");

    // kubectl describe shows what m2s did and why.
    let described = sb.kubectl_ok(&["-n", ns, "describe", "seldondeployment", &d.deployment(m0)]);
    let section = &described[described.find("Events:").expect("an Events section")..];
    assert!(
        section.contains("Normal  Updated")
            && section.contains("Normal  Created")
            && section.contains("m2s")
            && section.contains("version 1 → 2"),
        "{section}"
    );
    let described = sb.kubectl_ok(&["-n", ns, "describe", "seldondeployment", &d.deployment(m2)]);
    assert!(described.contains("Warning  NotDeployable"), "{described}");

    // M2S_EVENTS=false records nothing; neither does a run with nothing to do.
    mlflow.delete_model_tag(m2, "m2s.memory");
    mlflow.delete_model(&m4);
    let m5 = format!("{}-m5", d.prefix);
    production_model(sb, &m5, &d.experiment);
    let before = sb.events(ns).len();
    let r = run_expect(d.m2s().env("M2S_EVENTS", "false").arg("sync"), 0);
    assert!(r.stdout.contains("Sync: 1 created"), "{}", r.stdout);
    run_expect(d.m2s().arg("sync"), 0);
    assert_eq!(sb.events(ns).len(), before);
}

/// A ServiceAccount that may do what `sync` needs on SeldonDeployments, and nothing else.
fn sync_only_account(d: &Deployed) -> std::path::PathBuf {
    let verbs = "get,list,create,patch,delete";
    service_account_with(
        &d.sb,
        &d.ns,
        "syncer",
        verbs,
        "seldondeployments.machinelearning.seldon.io",
    )
}

#[test]
fn without_rbac_for_events_the_run_warns_once_and_carries_on() {
    let Some(sb) = Sandbox::get() else { return };
    let d = Deployed::new(sb, "ev-rbac", 0);
    for i in 0..3 {
        production_model(&d.sb, &format!("{}-m{i}", d.prefix), &d.experiment);
    }
    let kc = sync_only_account(&d);
    let mark = audit_mark();
    // One write at a time: after the first refusal no Event is even tried.
    let r = run_expect(
        d.m2s()
            .env("KUBECONFIG", &kc)
            .env("M2S_CONCURRENCY", "1")
            .arg("sync"),
        0,
    );
    assert!(r.stdout.contains("Sync: 3 created"), "{}", r.stdout);
    assert_eq!(
        r.stderr.matches("Events are not recorded").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("needs RBAC verb \"create\" on events.events.k8s.io"),
        "{}",
        r.stderr
    );
    assert_eq!(d.rvs().len(), 3);
    {
        let requests = requests_since(mark, &d.ns);
        let event_creates: Vec<String> = requests
            .iter()
            .filter(|e| e["objectRef"]["resource"] == "events" && e["stage"] == "ResponseComplete")
            .map(|e| format!("{} {}", e["verb"], e["responseStatus"]["code"]))
            .collect();
        assert_eq!(event_creates, ["\"create\" 403"]);
    }

    // --wait needs RBAC verb "watch": the objects are written, the wait names what is missing.
    production_model(&d.sb, &format!("{}-m9", d.prefix), &d.experiment);
    let r = run_expect(
        d.m2s()
            .env("KUBECONFIG", &kc)
            .args(["sync", "--wait", "--wait-timeout", "10"]),
        1,
    );
    assert!(r.stdout.contains("Sync: 1 created"), "{}", r.stdout);
    assert!(
        r.stderr.contains("watch SeldonDeployments")
            && r.stderr.contains("needs RBAC verb \"watch\""),
        "{}",
        r.stderr
    );
}

#[test]
fn requests_carry_the_m2s_user_agent() {
    let Some(sb) = Sandbox::get() else { return };
    let d = Deployed::new(sb, "ua", 1);
    let mark = audit_mark();
    run_expect(d.m2s().arg("plan"), 0);
    let requests = requests_since(mark, &d.ns);
    assert!(!requests.is_empty());
    let agent = format!("m2s/{}", env!("CARGO_PKG_VERSION"));
    for e in &requests {
        assert_eq!(e["userAgent"], agent, "{e:#}");
    }
}

// ---------------------------------------------------------------------------------------------
// Write-back
// ---------------------------------------------------------------------------------------------

fn version_tags(s: &Setup, model: &str, version: &str) -> Vec<(String, String)> {
    let v = s.sb.mlflow().get(
        "model-versions/get",
        &[("name", model), ("version", version)],
    );
    let mut tags: Vec<(String, String)> = v["model_version"]["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap().to_string(),
                t["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    tags.sort();
    tags
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn write_back_sets_moves_and_removes_tags_in_mlflow() {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, "kserve");
    let ml = s.sb.mlflow();
    let (model, prod) = s.production("wb");
    let champion = format!("{model}-champion");
    ml.alias(&model, "champion", "1");
    // Tags that are not write-back's stay as they are.
    ml.post(
        "model-versions/set-tag",
        json!({"name": model, "version": "1", "key": "team", "value": "fraud"}),
    );
    ml.post(
        "model-versions/set-tag",
        json!({"name": model, "version": "1", "key": "m2s.replicas", "value": "1"}),
    );
    let m2s = || {
        let mut c = s.m2s();
        c.env("M2S_ALIASES", "champion")
            .env("M2S_WRITE_BACK", "true");
        c
    };
    let key = |name: &str, field: &str| format!("m2s.{}.{name}.{field}", s.ns);
    run_expect(m2s().arg("sync"), 0);
    assert_eq!(
        version_tags(&s, &model, "1"),
        pairs(&[
            (&key(&champion, "state"), "Pending"),
            (&key(&prod, "state"), "Pending"),
            ("m2s.replicas", "1"),
            ("team", "fraud"),
        ])
    );

    // The controller reports both Available, with their URLs.
    let urls: Vec<String> = [&prod, &champion]
        .iter()
        .map(|n| s.write_status(n, "Available").url.unwrap())
        .collect();
    run_expect(m2s().arg("sync"), 0);
    assert_eq!(
        version_tags(&s, &model, "1"),
        pairs(&[
            (&key(&champion, "state"), "Available"),
            (&key(&champion, "url"), &urls[1]),
            (&key(&prod, "state"), "Available"),
            (&key(&prod, "url"), &urls[0]),
            ("m2s.replicas", "1"),
            ("team", "fraud"),
        ])
    );

    // Production moves to v2: its tags move; champion stays on v1 (which the search no longer
    // returns: write-back reads it).
    let v2 = s.promote(&model);
    run_expect(m2s().arg("sync"), 0);
    assert_eq!(
        version_tags(&s, &model, &v2),
        pairs(&[
            (&key(&prod, "state"), "Creating"),
            (&key(&prod, "url"), &urls[0]),
        ]),
        "the status is of the old generation until the controller catches up"
    );
    assert_eq!(
        version_tags(&s, &model, "1"),
        pairs(&[
            (&key(&champion, "state"), "Available"),
            (&key(&champion, "url"), &urls[1]),
            ("m2s.replicas", "1"),
            ("team", "fraud"),
        ])
    );

    // The alias goes: its object is deleted and its tags with it.
    ml.delete_alias(&model, "champion");
    run_expect(m2s().arg("sync"), 0);
    assert_eq!(
        version_tags(&s, &model, "1"),
        pairs(&[("m2s.replicas", "1"), ("team", "fraud")])
    );
    assert_eq!(s.sb.objects(&s.ns, "kserve").len(), 1);
}

#[test]
fn write_back_writes_only_what_changed_and_only_its_own_tags() {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, "seldon-v2");
    let (model, _) = s.production("noop");
    s.promote(&model);
    // An alias on a version the search does not return (v1: v2 is the latest in Production).
    s.sb.mlflow().alias(&model, "champion", "1");
    let proxy = Proxy::always(&s.sb.mlflow_url, || Reply::Forward);
    let m2s = |write_back: bool| {
        let mut c = s.m2s();
        c.env("M2S_ALIASES", "champion")
            .env("M2S_MLFLOW_HOST", proxy.url())
            .env("M2S_WRITE_BACK", write_back.to_string());
        c
    };
    let since = |from: usize| proxy.requests()[from..].to_vec();

    let r = run_expect(m2s(true).arg("sync"), 0);
    assert!(r.stdout.contains("Sync: 2 created"), "{}", r.stdout);
    let writes: Vec<Req> = since(0).into_iter().filter(Req::is_write).collect();
    assert_eq!(writes.len(), 2, "{writes:#?}");
    for w in &writes {
        assert_eq!(
            (w.method.as_str(), w.path()),
            ("POST", "/api/2.0/mlflow/model-versions/set-tag")
        );
        let key = w.json()["key"].as_str().unwrap().to_string();
        assert!(key.starts_with(&format!("m2s.{}.", s.ns)), "{key}");
    }

    // Nothing new: no MLflow write at all; reading v1's tags is allowed with write-back.
    let mark = proxy.requests().len();
    let r = run_expect(m2s(true).arg("sync"), 0);
    assert!(r.stdout.starts_with("No changes."), "{}", r.stdout);
    let requests = since(mark);
    assert_eq!(
        requests.iter().filter(|r| r.is_write()).count(),
        0,
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path().ends_with("/model-versions/get")),
        "{requests:#?}"
    );

    // Without write-back: reads only, and no version read that the sync does not need.
    let mark = proxy.requests().len();
    run_expect(m2s(false).arg("sync"), 0);
    let requests = since(mark);
    assert!(
        requests.iter().all(|r| r.method == "GET" && r.is_search()),
        "{requests:#?}"
    );
}

#[test]
fn a_refused_write_back_names_the_permission_and_keeps_the_cluster() {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, "kserve");
    let (model, name) = s.production("denied");
    let proxy = Proxy::start(&s.sb.mlflow_url, |req| {
        if req.path().ends_with("/model-versions/set-tag") {
            Reply::Status(
                403,
                mlflow_error(
                    "PERMISSION_DENIED",
                    "Permission denied for set_model_version_tag",
                ),
            )
        } else {
            Reply::Forward
        }
    });
    let r = run_expect(
        s.m2s()
            .env("M2S_MLFLOW_HOST", proxy.url())
            .args(["sync", "--write-back"]),
        1,
    );
    assert!(r.stdout.contains("Sync: 1 created"), "{}", r.stdout);
    assert!(
        r.stderr.contains("write-back: 1 of 1 tag writes refused")
            && r.stderr.contains("403 Forbidden")
            && r.stderr.contains(&format!(
                "write-back needs the EDIT permission on registered model {model:?}"
            ))
            && r.stderr.contains("the Kubernetes objects are as applied"),
        "{}",
        r.stderr
    );
    // The refusal neither blocked nor undid the Kubernetes side.
    assert!(s.sb.objects(&s.ns, "kserve").contains_key(&name));
    assert_eq!(proxy.count(|r| r.path().ends_with("/set-tag")), 1);
    assert!(version_tags(&s, &model, "1").is_empty());
}
