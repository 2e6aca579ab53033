//! "Is it serving?" against the sandbox, per target: `m2s status` (text and JSON) and
//! `m2s sync --wait`. The sandbox runs no controllers: each test writes the status
//! subresource of the objects the way the stack's controller would (Seldon Core 1.18's
//! operator, KServe v0.20.0's controller, Seldon Core 2.10's operator), then checks what m2s
//! reads from it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{run_expect, Sandbox};
use crate::controllers::{controller_status, kind, Setup};
use crate::faults_support::{audit_mark, requests_since, service_account_with};
use serde_json::{json, Value};

fn object<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc:#}"))
}

fn status_shows_each_state(target: &'static str) {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, target);
    let (_, available) = s.production("a");
    let (updated, creating) = s.production("b");
    let (_, failed) = s.production("c");
    let (gone, pending) = s.production("d");
    run_expect(s.m2s().arg("sync"), 0);
    let mut want = Vec::new();
    for (name, state) in [
        (&available, "Available"),
        (&creating, "Creating"),
        (&failed, "Failed"),
    ] {
        want.push((name.clone(), state, s.write_status(name, state)));
    }
    // The registry moves on without a sync: b wants a new version, d is gone, e is new.
    s.promote(&updated);
    s.sb.mlflow().delete_model(&gone);
    let (_, new) = s.production("e");

    let doc = s.status_json();
    assert_eq!(doc["format_version"], "1");
    assert_eq!(doc["kind"], kind(target));
    for (name, state, w) in &want {
        let o = object(&doc, name);
        assert_eq!(o["state"], *state, "{name}: {o:#}");
        assert_eq!(o["message"].as_str(), w.message.as_deref(), "{name}: {o:#}");
        assert_eq!(o["url"].as_str(), w.url.as_deref(), "{name}: {o:#}");
        assert!(o["age_seconds"].as_i64().is_some_and(|a| a < 600), "{o:#}");
    }
    let p = object(&doc, &pending);
    assert_eq!(
        (p["state"].as_str(), p["registry"].as_str()),
        (Some("Pending"), Some("delete pending"))
    );
    assert_eq!(object(&doc, &creating)["registry"], "update pending");
    assert_eq!(object(&doc, &available)["registry"], "in sync");
    assert_eq!(object(&doc, &available)["stage"], "Production");
    assert_eq!(doc["not_deployed"][0]["name"], json!(new));
    assert_eq!(
        doc["summary"],
        json!({"objects": 4, "available": 1, "creating": 1, "pending": 1, "failed": 1,
               "in_sync": 2, "rolling_out": 0, "rollout_canaries": 0, "update_pending": 1, "delete_pending": 1,
               "not_deployable_objects": 0, "not_deployed": 1, "not_deployable": 0})
    );

    // The text: one table row per object, the failure's message under its row, the summary.
    let r = run_expect(s.m2s().arg("status"), 0);
    let text = &r.stdout;
    let kinds = format!("{}s", kind(target));
    assert!(
        text.starts_with(&format!(
            "{kinds} of m2s instance \"m2s\" in namespace \"{}\":\n\n  NAME",
            s.ns
        )),
        "{text}"
    );
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("  {name} ")))
            .unwrap_or_else(|| panic!("{name}: {text}"))
    };
    assert!(
        row(&failed).contains(" Failed ") && row(&failed).contains(" in sync"),
        "{text}"
    );
    let failed_message = want[2].2.message.clone().unwrap();
    assert!(
        text.contains(&format!("\n      {failed_message}\n")),
        "{text}"
    );
    assert!(
        row(&pending).contains(" Pending ") && row(&pending).contains("delete pending"),
        "{text}"
    );
    if let Some(url) = &want[0].2.url {
        assert!(row(&available).ends_with(url.as_str()), "{text}");
    }
    assert!(text.contains(&format!("  + {new}  ")), "{text}");
    assert!(
        text.ends_with(&format!(
            "4 {kinds}: 1 Available, 1 Creating, 1 Pending, 1 Failed; 2 in sync, 1 update pending, 1 delete pending. 1 registry entry not deployed yet.\n"
        )),
        "{text}"
    );
}

/// `m2s status` with a token that may only get and list: the RBAC of `plan`, no write sent.
fn status_needs_only_get_and_list(target: &'static str) {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, target);
    let (_, name) = s.production("a");
    run_expect(s.m2s().arg("sync"), 0);
    let resource = crate::common::resource_of(target);
    let (sb, ns) = (&s.sb, &s.ns);
    let kc = service_account_with(sb, ns, "reader", "get,list", &resource);
    let mark = audit_mark();
    let r = run_expect(s.m2s().env("KUBECONFIG", &kc).arg("status"), 0);
    assert!(r.stdout.contains(&format!("  {name} ")), "{}", r.stdout);
    {
        let requests = requests_since(mark, ns);
        let verbs: Vec<&str> = requests
            .iter()
            .filter(|e| e["stage"] == "ResponseComplete")
            .filter(|e| {
                e["userAgent"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("m2s/"))
            })
            .map(|e| e["verb"].as_str().unwrap())
            .collect();
        assert!(
            !verbs.is_empty() && verbs.iter().all(|v| *v == "list"),
            "{verbs:?}"
        );
    }
}

/// Runs `sync --wait` in the background; once the objects carry the new version, writes
/// the statuses `then` asks for (in order, a second apart), and returns the run's result.
fn sync_waiting_while(
    s: &Setup,
    timeout: u32,
    names: &[&str],
    version_of: impl Fn(&str) -> Option<String>,
    then: &[&str],
) -> crate::common::RunResult {
    let mark = audit_mark();
    let child = s
        .m2s()
        .args(["sync", "--wait", "--wait-timeout", &timeout.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // The objects are written when they carry the version the registry wants.
    loop {
        let objects = s.sb.objects(&s.ns, s.target);
        let written = names.iter().all(|n| {
            objects.get(*n).is_some_and(|o| {
                o["metadata"]["annotations"]["m2s.io/model-version"]
                    .as_str()
                    .map(String::from)
                    == version_of(n)
            })
        });
        if written {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "m2s did not write {names:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The controller answers once m2s watches (the audit log shows its WATCH; on a loaded
    // machine a fixed pause could let the statuses land before the watch starts, and m2s would
    // rightly see them in its first LIST instead).
    let watching = || {
        requests_since(mark, &s.ns).iter().any(|e| {
            e["verb"] == "watch"
                && e["userAgent"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("m2s/"))
        })
    };
    while !watching() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for state in then {
        std::thread::sleep(Duration::from_millis(700));
        for n in names {
            s.write_status(n, state);
        }
    }
    let out = child.wait_with_output().unwrap();
    crate::common::RunResult {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether the target's controller reports the generation its status is about.
fn reports_generation(target: &str) -> bool {
    target != "seldon-v1"
}

fn wait_ends_0_when_available(target: &'static str) {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, target);
    let (old, updated) = s.production("old");
    run_expect(s.m2s().arg("sync"), 0);
    s.write_status(&updated, "Available");
    // One update (its status is of the old generation now) and one create.
    let v2 = s.promote(&old);
    let (_, created) = s.production("new");
    let mark = audit_mark();
    let r = sync_waiting_while(
        &s,
        60,
        &[&updated, &created],
        |n| Some(if n == updated { v2.clone() } else { "1".into() }),
        &["Creating", "Available"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let kinds = format!("{}s", kind(target));
    assert!(
        r.stdout
            .contains(&format!("Waiting up to 60s for 2 {kinds} to be Available:")),
        "{}",
        r.stdout
    );
    // The update's Available status of the old generation did not count: it went through
    // Creating. Seldon Core 1 does not say which generation its status is about (no
    // observedGeneration), so there the old Available is taken as the answer.
    let waited_for: &[&String] = if reports_generation(target) {
        &[&updated, &created]
    } else {
        assert!(
            r.stdout.contains(&format!("  {updated}: Available")),
            "{}",
            r.stdout
        );
        &[&created]
    };
    for n in waited_for {
        assert!(
            r.stdout.contains(&format!("  {n}: Creating")),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout.contains(&format!("  {n}: Available")),
            "{}",
            r.stdout
        );
    }
    assert!(
        r.stdout
            .ends_with(&format!("All 2 {kinds} are Available.\n")),
        "{}",
        r.stdout
    );
    // A watch, not a poll: no GET of the objects while waiting, and few LISTs.
    {
        let requests = requests_since(mark, &s.ns);
        let m2s_requests: Vec<&Value> = requests
            .iter()
            .filter(|e| {
                e["userAgent"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("m2s/"))
            })
            .filter(|e| {
                e["objectRef"]["resource"]
                    == crate::common::resource_of(target)
                        .split('.')
                        .next()
                        .unwrap()
            })
            .collect();
        let count = |verb: &str| {
            m2s_requests
                .iter()
                .filter(|e| e["verb"] == verb && e["stage"] == "ResponseComplete")
                .count()
        };
        assert!(
            m2s_requests.iter().any(|e| e["verb"] == "watch"),
            "no watch: {m2s_requests:#?}"
        );
        assert_eq!(count("get"), 0, "{m2s_requests:#?}");
        assert!(count("list") <= 2, "{m2s_requests:#?}");
    }
}

fn wait_ends_1_on_failed(target: &'static str) {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, target);
    let model = format!("{}-f", s.prefix);
    s.sb.mlflow().model(&model);
    let name = format!("{model}-production");
    let v = s.promote(&model);
    let r = sync_waiting_while(&s, 60, &[&name], |_| Some(v.clone()), &["Failed"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let message = controller_status(target, "Failed", &s.ns, &name, 1)
        .message
        .unwrap();
    assert!(
        r.stderr.contains(&format!(
            "1 of 1 {} not Available: {name} is Failed ({message})",
            kind(target)
        )),
        "{}",
        r.all()
    );
    // The sync itself succeeded: the summary says so before the wait.
    assert!(r.stdout.contains("Sync: 1 created"), "{}", r.stdout);
}

#[test]
fn wait_ends_1_at_the_timeout_naming_the_object() {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, "kserve");
    let (_, name) = s.production("slow");
    let started = Instant::now();
    // Long enough for the test to write the status on a busy machine, short for a test.
    let r = sync_waiting_while(&s, 8, &[&name], |_| Some("1".into()), &["Creating"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(
        r.stderr.contains(&format!(
            "{name} is still Creating (RevisionMissing: Configuration"
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("after 8s (--wait-timeout)"),
        "{}",
        r.stderr
    );
}

#[test]
fn wait_settings_are_checked_before_anything_runs() {
    let Some(sb) = Sandbox::get() else { return };
    let s = Setup::new(sb, "seldon-v1");
    s.production("x");
    let r = run_expect(s.m2s().args(["sync", "--wait", "--dry-run"]), 1);
    assert!(
        r.stderr
            .contains("--wait (M2S_WAIT) cannot be combined with --dry-run"),
        "{}",
        r.stderr
    );
    let r = run_expect(s.m2s().args(["sync", "--wait", "--wait-timeout", "900"]), 1);
    assert!(
        r.stderr
            .contains("below the run's deadline M2S_RUN_TIMEOUT (120 s)"),
        "{}",
        r.stderr
    );
    assert!(s.sb.objects(&s.ns, "seldon-v1").is_empty());
}

macro_rules! per_target {
    ($module:ident, $target:literal) => {
        mod $module {
            #[test]
            fn status_shows_each_state() {
                super::status_shows_each_state($target);
            }
            #[test]
            fn status_needs_only_get_and_list() {
                super::status_needs_only_get_and_list($target);
            }
            #[test]
            fn wait_ends_0_when_available() {
                super::wait_ends_0_when_available($target);
            }
            #[test]
            fn wait_ends_1_on_failed() {
                super::wait_ends_1_on_failed($target);
            }
        }
    };
}

per_target!(seldon_v1, "seldon-v1");
per_target!(kserve, "kserve");
per_target!(seldon_v2, "seldon-v2");
