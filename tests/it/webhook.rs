//! `m2s webhook` and scoped syncs against the real sandbox: MLflow's own deliveries (the
//! sandbox MLflow allows http on loopback, has a fixed secret encryption key and a 1 s
//! subscriber cache), rejected requests that write nothing (the API server's audit log), a
//! burst of events coalesced, SIGTERM in the middle of a sync, and `sync`/`plan --model`.
//! Every test has its own namespace and model-name prefix.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{run_expect, unique, Sandbox};
use crate::faults_support::{audit_mark, writes_since, Proxy, Reply};
use crate::webhook_support::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// A namespace, a prefix, an experiment and the model `<prefix>-m` (v1..v3, v3 in Production).
fn setup(sb: &Sandbox, tag: &str) -> (String, String, String) {
    let ns = sb.namespace(tag);
    let prefix = unique(tag);
    let experiment = sb.mlflow().experiment(&unique(&format!("{tag}-exp")));
    let model = format!("{prefix}-m");
    model_with_versions(sb, &model, &experiment);
    (ns, prefix, model)
}

/// The name of the seldon-v1 object of `model`'s `champion` alias in `ns`.
fn champion(ns: &str, model: &str) -> String {
    m2s::targets::TARGETS[0].object_name(model, "champion", ns)
}

/// Waits until the object `name` serves `version` (`None`: until it is gone).
fn wait_served(sb: &Sandbox, ns: &str, name: &str, version: Option<&str>) {
    wait_for(&format!("{name} to serve {version:?}"), WAIT, || {
        (served_versions(sb, ns).get(name).map(String::as_str) == version).then_some(())
    });
}

#[test]
fn mlflow_deliveries_create_update_and_delete_the_alias_deployment() {
    let Some(sb) = Sandbox::get() else { return };
    let (ns, prefix, model) = setup(&sb, "wh-e2e");
    let mlflow = sb.mlflow();
    let mut receiver = Receiver::start(&sb, sb.m2s(&ns, &prefix));
    receiver.wait_ready();
    let production = m2s::targets::TARGETS[0].object_name(&model, "Production", &ns);
    assert_eq!(
        served_versions(&sb, &ns),
        [(production.clone(), "3".to_string())].into(),
        "the start-up full sync"
    );
    let id = receiver.register(sb.m2s(&ns, &prefix));
    // Registering again updates the same webhook (found by its name).
    assert_eq!(receiver.register(sb.m2s(&ns, &prefix)), id);

    // Set an alias: MLflow delivers, m2s creates its deployment.
    mlflow.alias(&model, "champion", "1");
    wait_served(&sb, &ns, &champion(&ns, &model), Some("1"));
    // Move it: updated.
    mlflow.alias(&model, "champion", "2");
    wait_served(&sb, &ns, &champion(&ns, &model), Some("2"));
    // A settings tag on the served version: updated with it.
    mlflow.post(
        "model-versions/set-tag",
        json!({"name": model, "version": "2", "key": "m2s.replicas", "value": "3"}),
    );
    wait_for("replicas 3 from the version tag", WAIT, || {
        let o = sb.seldon_deployments(&ns).remove(&champion(&ns, &model))?;
        (o["spec"]["predictors"][0]["replicas"] == 3).then_some(())
    });
    // Delete it: deleted; the stage deployment stays as it was.
    let production_rv = sb.resource_versions(&ns)[&production].clone();
    mlflow.delete_alias(&model, "champion");
    wait_served(&sb, &ns, &champion(&ns, &model), None);
    assert_eq!(sb.resource_versions(&ns)[&production], production_rv);

    // Every change came from a scoped sync of this model; there was one full sync, at start.
    // MLflow delivers every event to every webhook: other tests' models are outside this
    // receiver's filter, so their syncs read nothing else and write nothing.
    assert_eq!(receiver.syncs("full").len(), 1, "{}", receiver.log());
    let (ours, others): (Vec<String>, Vec<String>) = receiver
        .syncs("model")
        .into_iter()
        .partition(|l| l.contains(&format!("model={model} ")));
    assert!(ours.len() >= 4, "{}", receiver.log());
    assert!(
        others
            .iter()
            .all(|l| l.contains("result=model_absent") && l.contains("kube_requests=0")),
        "{others:#?}"
    );
    assert!(
        receiver.metric("m2s_webhook_events_received_total{event=\"model_version_alias.created\"}")
            >= 2.0
    );
    assert!(
        receiver.metric("m2s_webhook_events_received_total{event=\"model_version_alias.deleted\"}")
            >= 1.0
    );
    assert_eq!(
        receiver.metric("m2s_webhook_events_rejected_total{reason=\"bad_signature\"}"),
        0.0
    );

    // MLflow's own test delivery (an example model outside the filter): 2xx, nothing written.
    let rvs = sb.resource_versions(&ns);
    let test = mlflow.post(&format!("webhooks/{id}/test"), json!({}));
    assert_eq!(test["result"]["success"], true, "{test}");
    wait_for("the test event's sync", WAIT, || {
        receiver.log().contains("result=model_absent").then_some(())
    });
    assert_eq!(sb.resource_versions(&ns), rvs);
    assert!(!receiver.log().contains(SECRET));
}

#[test]
fn unsigned_wrongly_signed_and_stale_requests_are_refused_and_write_nothing() {
    let Some(sb) = Sandbox::get() else { return };
    let (ns, prefix, model) = setup(&sb, "wh-401");
    let mlflow = sb.mlflow();
    mlflow.alias(&model, "champion", "1");
    let receiver = Receiver::start(&sb, sb.m2s(&ns, &prefix));
    receiver.wait_ready();
    wait_served(&sb, &ns, &champion(&ns, &model), Some("1"));
    // The registry moves on (no webhook is registered for this receiver): a sync would write.
    mlflow.alias(&model, "champion", "2");
    let before = sb.resource_versions(&ns);
    let mark = audit_mark();
    let body = alias_event("created", &model, "champion", "2");
    let now = unix_now();
    assert_eq!(receiver.post(&body, &[]), 401, "unsigned");
    assert_eq!(
        receiver.signed_with(&body, "w1", now, "not-the-secret"),
        401
    );
    assert_eq!(
        receiver.signed_with(&body, "w2", now - 600, SECRET),
        401,
        "stale"
    );
    let ts = now.to_string();
    let forged = sign(SECRET, "w3", &ts, b"{}");
    let headers = [
        ("X-MLflow-Delivery-Id", "w3".to_string()),
        ("X-MLflow-Timestamp", ts),
        ("X-MLflow-Signature", forged),
    ];
    assert_eq!(
        receiver.post(&body, &headers),
        401,
        "signature of another body"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sb.resource_versions(&ns), before);
    {
        let writes = writes_since(mark, &ns);
        assert!(
            writes.is_empty(),
            "writes after refused requests: {writes:?}"
        );
    }
    assert_eq!(receiver.syncs("model").len(), 0, "{}", receiver.log());
    assert_eq!(
        receiver.metric("m2s_webhook_events_rejected_total{reason=\"missing_header\"}"),
        1.0
    );
    assert_eq!(
        receiver.metric("m2s_webhook_events_rejected_total{reason=\"bad_signature\"}"),
        2.0
    );
    assert_eq!(
        receiver.metric("m2s_webhook_events_rejected_total{reason=\"stale_timestamp\"}"),
        1.0
    );
    // The same event, properly signed, does write (the refusals were not vacuous).
    assert_eq!(receiver.signed(&body), 202);
    wait_served(&sb, &ns, &champion(&ns, &model), Some("2"));
}

#[test]
fn a_burst_of_100_events_for_one_model_is_a_handful_of_syncs() {
    let Some(sb) = Sandbox::get() else { return };
    let (ns, prefix, model) = setup(&sb, "wh-burst");
    let mlflow = sb.mlflow();
    mlflow.alias(&model, "champion", "1");
    let receiver = Arc::new(Receiver::start(&sb, sb.m2s(&ns, &prefix)));
    receiver.wait_ready();
    mlflow.alias(&model, "champion", "3");
    let body = alias_event("created", &model, "champion", "3");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (r, body) = (receiver.clone(), body.clone());
            std::thread::spawn(move || (0..25).map(|_| r.signed(&body)).collect::<Vec<u16>>())
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(statuses, vec![202; 100]);
    wait_served(&sb, &ns, &champion(&ns, &model), Some("3"));
    wait_for("the queue to drain", WAIT, || {
        (receiver.metric("m2s_sync_queue_models") == 0.0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let syncs = receiver.syncs("model");
    eprintln!("100 events for one model: {} syncs", syncs.len());
    assert!(
        (1..=6).contains(&syncs.len()),
        "100 events made {} syncs:\n{}",
        syncs.len(),
        receiver.log()
    );
    assert_eq!(
        receiver.metric("m2s_webhook_events_received_total{event=\"model_version_alias.created\"}"),
        100.0
    );
    // Converged: exactly one write, the rest found it in sync.
    let updates: usize = syncs.iter().filter(|l| l.contains(" updated=1 ")).count();
    assert_eq!(updates, 1, "{syncs:#?}");
}

#[test]
fn sigterm_in_the_middle_of_a_sync_finishes_it_and_exits_0() {
    let Some(sb) = Sandbox::get() else { return };
    let (ns, prefix, model) = setup(&sb, "wh-term");
    let mlflow = sb.mlflow();
    mlflow.alias(&model, "champion", "1");
    // MLflow behind a proxy that, once armed, holds each model search for 3 s.
    let slow = Arc::new(AtomicBool::new(false));
    let proxy = {
        let slow = slow.clone();
        Proxy::start(&sb.mlflow_url, move |req| {
            if slow.load(Ordering::SeqCst) && req.is_search() {
                std::thread::sleep(Duration::from_secs(3));
            }
            Reply::Forward
        })
    };
    let mut cmd = sb.m2s(&ns, &prefix);
    cmd.env("M2S_MLFLOW_HOST", proxy.url());
    let mut receiver = Receiver::start(&sb, cmd);
    receiver.wait_ready();
    mlflow.alias(&model, "champion", "2");
    slow.store(true, Ordering::SeqCst);
    let searches = proxy.count(|r| r.is_search());
    assert_eq!(
        receiver.signed(&alias_event("created", &model, "champion", "2")),
        202
    );
    wait_for("the scoped sync's search to reach MLflow", WAIT, || {
        (proxy.count(|r| r.is_search()) > searches).then_some(())
    });
    receiver.sigterm();
    // No new connections once it is stopping.
    wait_for("the listener to close", Duration::from_secs(2), || {
        (receiver.get("/healthz").0 == 0).then_some(())
    });
    let status = receiver.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", receiver.log());
    // The sync in progress finished: the object serves the new version.
    assert_eq!(served_versions(&sb, &ns)[&champion(&ns, &model)], "2");
    let log = receiver.log();
    let term = log.find("signal=SIGTERM").expect("SIGTERM logged");
    let finished = log
        .rfind("msg=\"sync finished\" kind=model")
        .expect("sync finished");
    assert!(term < finished, "the sync finished after SIGTERM:\n{log}");
    assert!(log.trim_end().ends_with("msg=stopped"), "{log}");
}

#[test]
fn sync_and_plan_of_one_model_touch_only_its_objects() {
    let Some(sb) = Sandbox::get() else { return };
    let ns = sb.namespace("wh-scoped");
    let prefix = unique("wh-scoped");
    let mlflow = sb.mlflow();
    let experiment = mlflow.experiment(&unique("wh-scoped-exp"));
    // Names MLflow's filter language must quote differently.
    let (a, b, quoted) = (
        format!("{prefix}-a"),
        format!("{prefix}-b"),
        format!("{prefix}-it's \"q\""),
    );
    for m in [&a, &b, &quoted] {
        model_with_versions(&sb, m, &experiment);
        mlflow.alias(m, "champion", "1");
    }
    let m2s = || {
        let mut c = sb.m2s(&ns, &prefix);
        c.env("M2S_ALIASES", "champion");
        c
    };
    run_expect(m2s().arg("sync"), 0);
    let before = sb.resource_versions(&ns);
    assert_eq!(before.len(), 6);
    for m in [&a, &b, &quoted] {
        mlflow.alias(m, "champion", "2");
    }
    // plan --model: only that model's change, no write.
    let r = run_expect(
        m2s().args(["plan", "--detailed-exitcode", "--model", &a]),
        2,
    );
    assert!(r.stdout.contains(&champion(&ns, &a)), "{}", r.stdout);
    assert!(!r.stdout.contains(&champion(&ns, &b)), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        r.stdout
    );
    assert_eq!(sb.resource_versions(&ns), before);

    // sync --model: reads its candidate names by GET (no LIST) and writes only its object.
    let mark = audit_mark();
    let r = run_expect(m2s().args(["sync", "--model", &a]), 0);
    assert!(
        r.stdout
            .contains("0 created, 1 updated, 0 deleted, 1 unchanged"),
        "{}",
        r.stdout
    );
    let after = sb.resource_versions(&ns);
    for (name, rv) in &before {
        assert_eq!(after[name] != *rv, *name == champion(&ns, &a), "{name}");
    }
    {
        let requests = m2s_requests_since(mark, &ns);
        let mut requests = requests;
        requests.sort();
        // A GET for each name the model's objects can have, the update, and its Event.
        let expected = [
            format!("create event {}", champion(&ns, &a)),
            format!("get {}", champion(&ns, &a)),
            format!(
                "get {}",
                m2s::targets::TARGETS[0].object_name(&a, "Production", &ns)
            ),
            format!(
                "get {}",
                m2s::targets::TARGETS[0].object_name(&a, "Staging", &ns)
            ),
            format!("patch {}", champion(&ns, &a)),
        ];
        assert_eq!(requests, expected);
    }
    // A name with both quote kinds is found too.
    let r = run_expect(m2s().args(["sync", "--model", &quoted]), 0);
    assert!(r.stdout.contains("1 updated"), "{}", r.stdout);
    assert_eq!(served_versions(&sb, &ns)[&champion(&ns, &quoted)], "2");

    // A deleted alias: the scoped sync deletes that object (--max-deletes holds for it).
    mlflow.delete_alias(&b, "champion");
    let r = run_expect(m2s().args(["sync", "--model", &b, "--max-deletes", "0"]), 1);
    assert!(r.stderr.contains("--max-deletes 0"), "{}", r.stderr);
    run_expect(m2s().args(["sync", "--model", &b]), 0);
    assert!(!served_versions(&sb, &ns).contains_key(&champion(&ns, &b)));
    // The last deployment of a model can go: no delete-all guard for one model.
    mlflow.stage(&b, "3", "Archived");
    run_expect(m2s().args(["sync", "--model", &b]), 0);
    assert!(!served_versions(&sb, &ns).keys().any(|n| n.starts_with(&b)));

    // A model MLflow does not return (outside the filter, or gone): nothing written.
    let rvs = sb.resource_versions(&ns);
    let r = run_expect(m2s().args(["sync", "--model", "not-under-the-prefix"]), 0);
    assert!(
        r.stdout.contains("was not returned by MLflow"),
        "{}",
        r.stdout
    );
    mlflow.delete_model(&a);
    let r = run_expect(m2s().args(["sync", "--model", &a]), 0);
    assert!(r.stdout.contains("nothing changed"), "{}", r.stdout);
    assert_eq!(sb.resource_versions(&ns), rvs, "{}", r.stdout);
}

#[test]
fn a_scoped_sync_leaves_objects_it_does_not_own_alone() {
    let Some(sb) = Sandbox::get() else { return };
    let (ns, prefix, model) = setup(&sb, "wh-foreign");
    let mlflow = sb.mlflow();
    mlflow.alias(&model, "champion", "1");
    let name = champion(&ns, &model);
    sb.kubectl_apply_json(&ns, &crate::faults_support::foreign_object(&name, &ns));
    let before = sb.resource_versions(&ns);
    let mut cmd = sb.m2s(&ns, &prefix);
    cmd.env("M2S_ALIASES", "champion");
    let r = run_expect(cmd.args(["sync", "--model", &model]), 1);
    assert!(r.stdout.contains("is not managed by m2s"), "{}", r.stdout);
    assert!(
        r.stderr.contains("1 registry entry cannot be deployed"),
        "{}",
        r.stderr
    );
    let after = sb.resource_versions(&ns);
    assert_eq!(
        after[&name], before[&name],
        "the foreign object was written"
    );
    // The model's other deployment was created.
    assert_eq!(after.len(), 2, "{after:?}");
}

#[test]
fn the_receiver_refuses_to_start_without_its_secret() {
    let Some(sb) = Sandbox::get() else { return };
    let ns = sb.namespace("wh-nosecret");
    let r = run_expect(
        sb.m2s(&ns, "wh-nosecret")
            .env_remove("M2S_WEBHOOK_SECRET")
            .args(["webhook", "--listen", "127.0.0.1:0"]),
        1,
    );
    assert!(
        r.stderr.contains("M2S_WEBHOOK_SECRET is not set"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("listening"), "{}", r.stderr);
    let r = run_expect(
        sb.m2s(&ns, "wh-nosecret")
            .args(["webhook", "register", "--url", "http://x/webhook"]),
        1,
    );
    assert!(r.stderr.contains("M2S_WEBHOOK_SECRET"), "{}", r.stderr);
    // An instance that makes no valid Lease name, before anything listens.
    let r = run_expect(
        sb.m2s(&ns, "wh-nosecret")
            .env("M2S_WEBHOOK_SECRET", SECRET)
            .env("M2S_INSTANCE", "Team_A")
            .args(["webhook", "--listen", "127.0.0.1:0"]),
        1,
    );
    assert!(
        r.stderr
            .contains("M2S_INSTANCE \"Team_A\" makes the receivers' Lease name"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("listening"), "{}", r.stderr);
}
