//! Monitoring: the chart's ServiceMonitor, PodMonitor and PrometheusRule against the real
//! Prometheus Operator CRDs, the alert rules through promtool (syntax and behaviour), the
//! Grafana dashboard against the metric names m2s really exposes, and `m2s sync
//! --metrics-file` against the sandbox for every outcome of a run.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::chart_support::{
    self as cs, helm, kind, kv_python, render, run, stderr, stdout, temp_dir, template_fails,
    unique_name, RELEASE_NS,
};
use crate::common::{run_expect, unique, Sandbox};
use crate::monitoring_support::*;
use crate::need;
use crate::webhook_support::Receiver;

/// Every monitoring object on: the receiver (with its CronJob) and both monitors.
const ALL_ON: &[&str] = &[
    "--set",
    "webhook.enabled=true",
    "--set",
    "webhook.existingSecret=m2s-webhook",
    "--set",
    "cronJob.enabled=true",
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "metrics.podMonitor.enabled=true",
    "--set",
    "metrics.prometheusRule.enabled=true",
    "--set",
    "metrics.grafanaDashboard.enabled=true",
];

fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    cs::one(docs, k)
}

// ---- The chart's monitoring objects -----------------------------------------------------------

#[test]
fn monitors_scrape_the_receiver_with_the_job_the_alerts_select() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let mut args = ALL_ON.to_vec();
    args.extend([
        "--set",
        "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
        "--set",
        "metrics.serviceMonitor.interval=15s",
        "--set",
        "metrics.podMonitor.relabelings[0].targetLabel=team",
        "--set",
        "metrics.podMonitor.relabelings[0].replacement=mlops",
    ]);
    let docs = render(&helm, &python, &args);
    let sm = one(&docs, "ServiceMonitor");
    let pm = one(&docs, "PodMonitor");
    let service = one(&docs, "Service");
    let pod_labels = &one(&docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
    // The ServiceMonitor selects the receiver's Service by the labels the Service selects pods by.
    let service_labels = service["metadata"]["labels"].as_object().unwrap();
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &service_labels[k], v,
            "the ServiceMonitor does not select the Service"
        );
    }
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"]
    );
    for (k, v) in pm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &pod_labels[k], v,
            "the PodMonitor does not select the receiver's pods"
        );
    }
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["scheme"], "http");
    assert_eq!(endpoint["interval"], "15s");
    assert!(endpoint.get("tlsConfig").is_none());
    let pod_endpoint = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!(pod_endpoint["port"], "http");
    // Both set job=<fullname>-webhook first, so the alerts' selector holds for either.
    let job = json!({"action": "replace", "targetLabel": "job", "replacement": "m2s-webhook"});
    assert_eq!(endpoint["relabelings"], json!([job]));
    assert_eq!(
        pod_endpoint["relabelings"],
        json!([job, {"targetLabel": "team", "replacement": "mlops"}])
    );
    let rule = one(&docs, "PrometheusRule");
    assert!(
        rule.to_string().contains("job=\\\"m2s-webhook\\\""),
        "{rule}"
    );
    // With TLS the scrapes are HTTPS, verified against the Secret's CA for the Service's name.
    args.extend(["--set", "webhook.tls.secretName=m2s-tls"]);
    let docs = render(&helm, &python, &args);
    for (doc, endpoint) in [
        ("ServiceMonitor", "endpoints"),
        ("PodMonitor", "podMetricsEndpoints"),
    ] {
        let e = &one(&docs, doc)["spec"][endpoint][0];
        assert_eq!(e["scheme"], "https", "{doc}");
        assert_eq!(
            e["tlsConfig"],
            json!({"serverName": "m2s-webhook.m2s-system.svc", "ca": {"secret": {"name": "m2s-tls", "key": "ca.crt"}}}),
            "{doc}"
        );
    }
    // Monitors without the receiver have nothing to scrape: refused, naming the way out.
    for monitor in ["serviceMonitor", "podMonitor"] {
        template_fails(
            &helm,
            &["--set", &format!("metrics.{monitor}.enabled=true")],
            &format!("metrics.{monitor}.enabled needs webhook.enabled"),
        );
    }
}

#[test]
fn monitoring_objects_validate_against_the_prometheus_operator_crds() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let sb = need!(cs::Sandbox::get());
    need!(prometheus_operator_crds(&sb));
    let ns = unique_name("monitoring");
    sb.admin(&["create", "namespace", &ns]).unwrap();
    let dir = temp_dir("monitors");
    let mut tls = ALL_ON.to_vec();
    tls.extend([
        "--set",
        "webhook.tls.certManager.enabled=true",
        "--set",
        "webhook.tls.certManager.issuerRef.name=ca",
        "--set",
        "metrics.serviceMonitor.scrapeTimeout=10s",
        "--set",
        "metrics.prometheusRule.labels.role=alert-rules",
        "--set",
        "metrics.prometheusRule.alertLabels.team=mlops",
    ]);
    let kinds = ["ServiceMonitor", "PodMonitor", "PrometheusRule"];
    for (name, args) in [("plain", ALL_ON.to_vec()), ("tls", tls)] {
        let docs = render(&helm, &python, &args);
        for k in kinds {
            let mut doc = one(&docs, k).clone();
            doc["metadata"]["namespace"] = json!(ns);
            let file = dir.join(format!("{name}-{k}.json"));
            fs::write(&file, doc.to_string()).unwrap();
            // Server-side: the operator's schema (types, patterns, enums); kubectl's
            // client-side validation: unknown fields.
            let out = run(sb
                .cmd()
                .args(["apply", "--dry-run=server", "--validate=strict", "-f"])
                .arg(&file))
            .unwrap();
            assert!(out.status.success(), "{name} {k}: {}", stderr(&out));
        }
    }
    // Not vacuous: a wrong interval and an unknown field are refused.
    let docs = render(&helm, &python, ALL_ON);
    let mut bad = one(&docs, "ServiceMonitor").clone();
    bad["metadata"]["namespace"] = json!(ns);
    bad["spec"]["endpoints"][0]["interval"] = json!("30 seconds");
    let mut unknown = one(&docs, "PodMonitor").clone();
    unknown["metadata"]["namespace"] = json!(ns);
    unknown["spec"]["podMetricsEndpoints"][0]["intervall"] = json!("30s");
    for (what, doc) in [("interval", bad), ("unknown field", unknown)] {
        let file = dir.join("bad.json");
        fs::write(&file, doc.to_string()).unwrap();
        let out = run(sb
            .cmd()
            .args(["apply", "--dry-run=server", "--validate=strict", "-f"])
            .arg(&file))
        .unwrap();
        assert!(
            !out.status.success(),
            "a monitor with a bad {what} was accepted"
        );
    }
    let _ = fs::remove_dir_all(dir);
}

/// The PrometheusRule's groups as a Prometheus rule file.
fn rule_file(
    docs: &[Value],
    dir: &Path,
    name: &str,
    strip_annotations: bool,
) -> std::path::PathBuf {
    let mut groups = one(docs, "PrometheusRule")["spec"]["groups"].clone();
    if strip_annotations {
        for g in groups.as_array_mut().unwrap() {
            for r in g["rules"].as_array_mut().unwrap() {
                r.as_object_mut().unwrap().remove("annotations");
            }
        }
    }
    let file = dir.join(name);
    fs::write(&file, json!({"groups": groups}).to_string()).unwrap();
    file
}

#[test]
fn alert_rules_pass_promtool_check_rules_with_runbooks() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let promtool = need!(promtool());
    let dir = temp_dir("rules");
    let docs = render(&helm, &python, ALL_ON);
    let file = rule_file(&docs, &dir, "rules.json", false);
    let (ok, out) = check_rules(&promtool, &file);
    assert!(ok, "promtool check rules:\n{out}");
    assert!(out.contains("SUCCESS: 10 rules found"), "{out}");
    let monitoring = fs::read_to_string(cs::repo().join("docs/monitoring.md")).unwrap();
    let groups = one(&docs, "PrometheusRule")["spec"]["groups"]
        .as_array()
        .unwrap()
        .clone();
    let names: BTreeSet<String> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| {
            let alert = r["alert"].as_str().unwrap().to_string();
            let a = &r["annotations"];
            for key in ["summary", "description", "runbook_url"] {
                assert!(
                    a[key].as_str().is_some_and(|s| !s.is_empty()),
                    "{alert}: no {key}"
                );
            }
            // The runbook is a heading of docs/monitoring.md on the chart's home.
            let url = a["runbook_url"].as_str().unwrap();
            let anchor = alert.to_lowercase();
            assert_eq!(
                url,
                format!("https://github.com/m2s-project/m2s/blob/main/docs/monitoring.md#{anchor}")
            );
            assert!(
                monitoring.contains(&format!("\n### {alert}\n")),
                "docs/monitoring.md has no runbook for {alert}"
            );
            assert_eq!(r["labels"]["severity"], "warning");
            alert
        })
        .collect();
    assert_eq!(names.len(), 10);
    // Only what runs is alerted on: no receiver, no receiver rules; no CronJob, no CronJob rules.
    let cron_only = render(
        &helm,
        &python,
        &["--set", "metrics.prometheusRule.enabled=true"],
    );
    let groups: Vec<&str> = one(&cron_only, "PrometheusRule")["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["m2s-cronjob"]);
    let receiver_only = render(
        &helm,
        &python,
        &[
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "webhook.enabled=true",
            "--set",
            "webhook.existingSecret=s",
        ],
    );
    let groups: Vec<&str> = one(&receiver_only, "PrometheusRule")["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["m2s-receiver"]);
    // The check is not vacuous: a broken expression fails it.
    let broken = fs::read_to_string(&file).unwrap().replace("> 0", "> > 0");
    fs::write(&file, broken).unwrap();
    assert!(
        !check_rules(&promtool, &file).0,
        "a broken rule passed promtool"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn the_cronjob_interval_of_the_alerts_follows_the_schedule() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let threshold = |schedule: &str, extra: &[&str]| -> String {
        let mut args = vec![
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set-string",
        ];
        let s = format!("schedule={schedule}");
        args.push(&s);
        args.extend(extra);
        let docs = render(&helm, &python, &args);
        let rules = one(&docs, "PrometheusRule")["spec"]["groups"][0]["rules"].clone();
        let expr = rules
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["alert"] == "M2sCronJobNoSuccessfulRun")
            .unwrap()["expr"]
            .as_str()
            .unwrap()
            .to_string();
        expr.rsplit("> ").next().unwrap().to_string()
    };
    for (schedule, three_intervals) in [
        ("* * * * *", "180"),
        ("*/15 * * * *", "2700"),
        ("7 * * * *", "10800"),
        ("0 */6 * * *", "64800"),
        ("30 2 * * *", "259200"),
        ("@hourly", "10800"),
    ] {
        assert_eq!(threshold(schedule, &[]), three_intervals, "{schedule}");
    }
    assert_eq!(
        threshold(
            "0 0 1 * *",
            &[
                "--set",
                "metrics.prometheusRule.cronJobIntervalSeconds=2678400"
            ]
        ),
        "8035200"
    );
    template_fails(
        &helm,
        &[
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set-string",
            "schedule=0 0 1 * *",
        ],
        "metrics.prometheusRule.cronJobIntervalSeconds is required",
    );
}

/// promtool's unit tests of the alerts' logic: each fires on the failure it is about, and
/// stays quiet on a healthy m2s. (Annotations are left out here: check_rules covers them.)
#[test]
fn alerts_fire_on_failures_and_stay_quiet_otherwise() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let promtool = need!(promtool());
    let dir = temp_dir("rule-tests");
    let docs = render(&helm, &python, ALL_ON);
    rule_file(&docs, &dir, "rules.json", true);
    let r = r#"namespace="m2s-system",job="m2s-webhook""#;
    let c = r#"namespace="m2s-system",m2s_instance="m2s""#;
    let rl = json!({"namespace": "m2s-system", "job": "m2s-webhook", "severity": "warning"});
    let cl = json!({"namespace": "m2s-system", "m2s_instance": "m2s", "severity": "warning"});
    let series = |name: &str, labels: &str, values: &str| json!({"series": format!("{name}{{{labels}}}"), "values": values});
    let alert = |at: &str, name: &str, labels: &[&Value]| {
        json!({"eval_time": at, "alertname": name,
        "exp_alerts": labels.iter().map(|l| json!({"exp_labels": l})).collect::<Vec<_>>()})
    };
    let failing = json!({
        "interval": "1m",
        "input_series": [
            series("m2s_syncs_total", &format!("{r},kind=\"full\",result=\"failed\""), "0+1x120"),
            series("m2s_last_full_sync_success_timestamp_seconds", r, "0x120"),
            series("m2s_webhook_events_rejected_total", &format!("{r},reason=\"bad_signature\""), "0+10x120"),
            series("m2s_entries_not_deployable", r, "2x120"),
            series("m2s_leader", &format!("{r},pod=\"a\""), "0x120"),
            series("m2s_leader", &format!("{r},pod=\"b\""), "0x120"),
            // Two nodes' textfiles: an old success on one, a newer failed run on the other.
            series("m2s_run_last_timestamp_seconds", &format!("{c},instance=\"node-a\""), "100x120"),
            series("m2s_run_last_success_timestamp_seconds", &format!("{c},instance=\"node-a\""), "100x120"),
            series("m2s_run_last_timestamp_seconds", &format!("{c},instance=\"node-b\""), "1000x120"),
            series("m2s_run_last_success_timestamp_seconds", &format!("{c},instance=\"node-b\""), "100x120"),
            series("m2s_entries_not_deployable", &format!("{c},instance=\"node-b\""), "1x120"),
            // One rollout aborted at minute 20, by the receiver and by a CronJob run.
            series("m2s_rollout_changes_total", &format!("{r},change=\"aborted\""), "0x20 1x100"),
            series("m2s_run_rollout_changes", &format!("{c},instance=\"node-b\",change=\"aborted\""), "0x20 1 0x99"),
        ],
        "alert_rule_test": [
            alert("10m", "M2sSyncsFailing", &[]),
            alert("10m", "M2sRolloutAborted", &[]),
            alert("40m", "M2sRolloutAborted", &[&rl]),
            alert("60m", "M2sRolloutAborted", &[]),
            alert("10m", "M2sCronJobRolloutAborted", &[]),
            alert("40m", "M2sCronJobRolloutAborted", &[&cl]),
            alert("60m", "M2sCronJobRolloutAborted", &[]),
            alert("40m", "M2sSyncsFailing", &[&rl]),
            alert("40m", "M2sNoSuccessfulFullSync", &[&rl]),
            alert("40m", "M2sWebhookDeliveriesRefused", &[&rl]),
            alert("30m", "M2sEntriesNotDeployable", &[]),
            alert("90m", "M2sEntriesNotDeployable", &[&rl]),
            alert("40m", "M2sReceiverNotLeader", &[&rl]),
            alert("40m", "M2sCronJobRunFailing", &[&cl]),
            alert("40m", "M2sCronJobNoSuccessfulRun", &[&cl]),
            alert("90m", "M2sCronJobEntriesNotDeployable", &[&cl]),
        ],
    });
    // Healthy: syncs succeed, timestamps keep up, one replica leads; on the CronJob side the
    // stale file of a node whose run once failed does not count against a newer success.
    let now = "60+60x120"; // the sample's own time, in seconds
    let quiet: Vec<Value> = [
        "M2sSyncsFailing",
        "M2sNoSuccessfulFullSync",
        "M2sWebhookDeliveriesRefused",
        "M2sEntriesNotDeployable",
        "M2sReceiverNotLeader",
        "M2sCronJobRunFailing",
        "M2sCronJobNoSuccessfulRun",
        "M2sCronJobEntriesNotDeployable",
        "M2sRolloutAborted",
        "M2sCronJobRolloutAborted",
    ]
    .iter()
    .map(|a| alert("100m", a, &[]))
    .collect();
    let healthy = json!({
        "interval": "1m",
        "input_series": [
            series("m2s_syncs_total", &format!("{r},kind=\"full\",result=\"ok\""), "0+1x120"),
            series("m2s_syncs_total", &format!("{r},kind=\"full\",result=\"failed\""), "0x120"),
            series("m2s_last_full_sync_success_timestamp_seconds", r, now),
            series("m2s_webhook_events_rejected_total", &format!("{r},reason=\"bad_signature\""), "0+1x120"),
            series("m2s_entries_not_deployable", r, "0x120"),
            series("m2s_leader", &format!("{r},pod=\"a\""), "1x120"),
            series("m2s_leader", &format!("{r},pod=\"b\""), "0x120"),
            series("m2s_run_last_timestamp_seconds", &format!("{c},instance=\"node-a\""), "100x120"),
            series("m2s_run_last_success_timestamp_seconds", &format!("{c},instance=\"node-a\""), "50x120"),
            series("m2s_run_last_timestamp_seconds", &format!("{c},instance=\"node-b\""), now),
            series("m2s_run_last_success_timestamp_seconds", &format!("{c},instance=\"node-b\""), now),
            series("m2s_entries_not_deployable", &format!("{c},instance=\"node-b\""), "0x120"),
            // Rollouts that step and promote, none aborted.
            series("m2s_rollout_changes_total", &format!("{r},change=\"step\""), "0+1x120"),
            series("m2s_rollout_changes_total", &format!("{r},change=\"aborted\""), "0x120"),
            series("m2s_run_rollout_changes", &format!("{c},instance=\"node-b\",change=\"promoted\""), "1x120"),
            series("m2s_run_rollout_changes", &format!("{c},instance=\"node-b\",change=\"aborted\""), "0x120"),
        ],
        "alert_rule_test": quiet,
    });
    // A receiver that is not scraped at all has no leader either.
    let absent = json!({
        "interval": "1m",
        "input_series": [series("m2s_sync_queue_models", r, "0x30")],
        "alert_rule_test": [alert("20m", "M2sReceiverNotLeader", &[&json!({"namespace": "m2s-system", "job": "m2s-webhook", "severity": "warning"})])],
    });
    let tests = json!({
        "rule_files": ["rules.json"],
        "evaluation_interval": "1m",
        "tests": [failing, healthy, absent],
    });
    let file = dir.join("tests.json");
    fs::write(&file, tests.to_string()).unwrap();
    let out = run(Command::new(&promtool).args(["test", "rules"]).arg(&file)).unwrap();
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn the_dashboard_configmap_carries_the_dashboard_as_it_is_in_the_repository() {
    let helm = need!(helm());
    let python = need!(kv_python());
    let mut args = ALL_ON.to_vec();
    args.extend([
        "--set",
        "metrics.grafanaDashboard.annotations.grafana_folder=MLOps",
        "--set",
        "metrics.grafanaDashboard.namespace=monitoring",
    ]);
    let docs = render(&helm, &python, &args);
    let cm = docs
        .iter()
        .find(|d| kind(d) == "ConfigMap" && d["metadata"]["name"] == "m2s-dashboard")
        .expect("the dashboard ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], "MLOps");
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    let text = cm["data"]["m2s.json"].as_str().unwrap();
    let file = fs::read_to_string(cs::repo().join("chart/m2s/dashboards/m2s.json")).unwrap();
    assert_eq!(text, file.trim_end());
    let plain = render(&helm, &python, &[]);
    assert!(plain.iter().all(|d| kind(d) != "ConfigMap"));
    // Every panel has a unique id and reads Prometheus through the data source variable.
    let d = dashboard();
    assert_eq!(d["uid"], "m2s-overview");
    let exprs = dashboard_exprs(&d);
    assert!(exprs.len() >= 15, "{exprs:?}");
}

#[test]
fn the_dashboards_queries_parse_as_promql() {
    let promtool = need!(promtool());
    let dir = temp_dir("dashboard-promql");
    // Grafana's variables as Prometheus would see them after substitution.
    let rules: Vec<Value> = dashboard_exprs(&dashboard())
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let e = e
                .replace("$__rate_interval", "5m")
                .replace("$namespace", ".*");
            json!({"record": format!("m2s:dashboard:{i}"), "expr": e})
        })
        .collect();
    let file = dir.join("dashboard.json");
    fs::write(
        &file,
        json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    let (ok, out) = check_rules(&promtool, &file);
    assert!(ok, "the dashboard's queries:\n{out}");
    let _ = fs::remove_dir_all(dir);
}

// ---- Against the sandbox: what m2s exposes ----------------------------------------------------

/// Reads `m2s sync --metrics-file`'s file into (sample → value).
fn samples(path: &Path) -> std::collections::BTreeMap<String, f64> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn sample(
    samples: &std::collections::BTreeMap<String, f64>,
    name: &str,
    ns: &str,
    extra: &str,
) -> f64 {
    let key = format!("{name}{{namespace=\"{ns}\",m2s_instance=\"m2s\"{extra}}}");
    *samples
        .get(&key)
        .unwrap_or_else(|| panic!("no {key} in {samples:?}"))
}

/// Every metric the dashboard reads is one m2s exposes: on the receiver's /metrics after a
/// full sync, or in the textfile of `m2s sync --metrics-file`. Both pass `promtool check metrics`.
#[test]
fn the_dashboard_reads_only_metrics_m2s_exposes() {
    let Some(sb) = Sandbox::get() else { return };
    let promtool = need!(promtool());
    let ml = sb.mlflow();
    let p = unique("dash");
    let ns = sb.namespace("dash");
    let model = format!("{p}-iris");
    ml.model(&model);
    let exp = ml.experiment(&unique("exp"));
    let v = ml.version_from_run(&model, &exp);
    ml.stage(&model, &v, "Production");
    let receiver = Receiver::start(&sb, sb.m2s(&ns, &p));
    receiver.wait_ready();
    let (status, metrics) = receiver.get("/metrics");
    assert_eq!(status, 200);
    drop(receiver);
    let dir = temp_dir("dash");
    let file = dir.join("m2s.prom");
    run_expect(
        sb.m2s(&ns, &p).args(["sync", "--metrics-file"]).arg(&file),
        0,
    );
    let textfile = fs::read_to_string(&file).unwrap();
    for (what, text) in [("/metrics", &metrics), ("the textfile", &textfile)] {
        let out = crate::chart_support::run_with_input(
            Command::new(&promtool).args(["check", "metrics"]),
            text,
        )
        .unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics on {what}:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    let exposed: BTreeSet<String> = exposed_names(&metrics)
        .union(&exposed_names(&textfile))
        .cloned()
        .collect();
    assert!(exposed.contains("m2s_build_info"), "{exposed:?}");
    let read: BTreeSet<String> = dashboard_exprs(&dashboard())
        .iter()
        .flat_map(|e| names_in_promql(e))
        .collect();
    let unknown: Vec<&String> = read.difference(&exposed).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard reads metrics m2s does not expose: {unknown:?}\nexposed: {exposed:?}"
    );
    // And it reads most of them (a dashboard of one panel would pass the subset check).
    assert!(read.len() >= 15, "{read:?}");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn metrics_file_records_every_outcome_of_a_run() {
    let Some(sb) = Sandbox::get() else { return };
    let ml = sb.mlflow();
    let p = unique("textfile");
    let ns = sb.namespace("textfile");
    let exp = ml.experiment(&unique("exp"));
    let (iris, bad) = (format!("{p}-iris"), format!("{p}-bad"));
    for m in [&iris, &bad] {
        ml.model(m);
        let v = ml.version_from_run(m, &exp);
        ml.stage(m, &v, "Production");
    }
    ml.set_model_tag(&bad, "deployment-image", "Not A/Valid Image:!");
    let dir = temp_dir("textfile").join("collector");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("m2s.prom");
    let sync = |extra: &[(&str, &str)]| {
        let mut c = sb.m2s(&ns, &p);
        c.envs(extra.iter().copied())
            .arg("sync")
            .env("M2S_METRICS_FILE", &file);
        c
    };

    // A run that applies its plan succeeds, though one entry cannot be deployed (exit 1): that
    // entry is counted apart.
    let before = crate::webhook_support::unix_now() as f64;
    run_expect(&mut sync(&[]), 1);
    let s = samples(&file);
    assert_eq!(sample(&s, "m2s_run_success", &ns, ""), 1.0);
    assert_eq!(
        sample(&s, "m2s_run_changes", &ns, ",action=\"created\""),
        1.0
    );
    assert_eq!(
        sample(&s, "m2s_run_changes", &ns, ",action=\"failed\""),
        0.0
    );
    assert_eq!(sample(&s, "m2s_entries_not_deployable", &ns, ""), 1.0);
    let first_success = sample(&s, "m2s_run_last_success_timestamp_seconds", &ns, "");
    assert!(first_success >= before, "{first_success} < {before}");
    assert_eq!(
        sample(&s, "m2s_run_last_timestamp_seconds", &ns, ""),
        first_success
    );
    assert!(sample(&s, "m2s_run_duration_seconds", &ns, "") > 0.0);
    let build: Vec<&String> = s
        .keys()
        .filter(|k| k.starts_with("m2s_build_info{"))
        .collect();
    assert_eq!(build.len(), 1);
    assert!(
        build[0].contains(&format!(
            "namespace=\"{ns}\",m2s_instance=\"m2s\",version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{build:?}"
    );
    // Only the file: no temporary left beside it.
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["m2s.prom"]);

    // MLflow down: a failed run; the last success carries over from the file.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let r = run_expect(&mut sync(&[("M2S_MLFLOW_HOST", "http://127.0.0.1:9")]), 1);
    assert!(
        r.stderr.contains("reading the MLflow model registry"),
        "{}",
        r.stderr
    );
    let s = samples(&file);
    assert_eq!(sample(&s, "m2s_run_success", &ns, ""), 0.0);
    assert_eq!(
        sample(&s, "m2s_run_last_success_timestamp_seconds", &ns, ""),
        first_success
    );
    assert!(sample(&s, "m2s_run_last_timestamp_seconds", &ns, "") > first_success);
    assert_eq!(
        sample(&s, "m2s_run_changes", &ns, ",action=\"created\""),
        0.0
    );
    assert!(
        !s.keys()
            .any(|k| k.starts_with("m2s_entries_not_deployable")),
        "unknown when the run never read the registry: {s:?}"
    );

    // A configuration error is a failed run too, labelled with the namespace given.
    run_expect(&mut sync(&[("M2S_STAGES", "Prod")]), 1);
    let s = samples(&file);
    assert_eq!(sample(&s, "m2s_run_success", &ns, ""), 0.0);
    assert_eq!(
        sample(&s, "m2s_run_last_success_timestamp_seconds", &ns, ""),
        first_success
    );

    // A run its deadline stops (MLflow accepts and never answers) still writes its file.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let r = run_expect(
        &mut sync(&[("M2S_MLFLOW_HOST", &url), ("M2S_RUN_TIMEOUT", "2")]),
        1,
    );
    assert!(r.stderr.contains("exceeded its deadline"), "{}", r.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let s = samples(&file);
    assert_eq!(sample(&s, "m2s_run_success", &ns, ""), 0.0);
    assert!(sample(&s, "m2s_run_duration_seconds", &ns, "") >= 2.0);
    assert_eq!(
        sample(&s, "m2s_run_last_success_timestamp_seconds", &ns, ""),
        first_success
    );
    drop(silent);

    // The next good run: success again, nothing to change.
    run_expect(&mut sync(&[]), 1);
    let s = samples(&file);
    assert_eq!(sample(&s, "m2s_run_success", &ns, ""), 1.0);
    assert!(sample(&s, "m2s_run_last_success_timestamp_seconds", &ns, "") > first_success);
    assert_eq!(
        sample(&s, "m2s_run_changes", &ns, ",action=\"created\""),
        0.0
    );

    // A file that cannot be written fails an otherwise good run, naming the file.
    let mut c = sb.m2s(&ns, &p);
    c.env("M2S_ALLOW_DELETE_ALL", "true")
        .env("M2S_MODEL_FILTER", format!("name = '{iris}'"));
    c.args(["sync", "--metrics-file"])
        .arg(dir.join("no-such-dir/m2s.prom"));
    let r = run_expect(&mut c, 1);
    assert!(r.stderr.contains("no-such-dir/m2s.prom"), "{}", r.stderr);
    assert!(r.stderr.contains("--metrics-file"), "{}", r.stderr);
    let _ = fs::remove_dir_all(dir.parent().unwrap());
}

/// The receiver's /metrics carries m2s_build_info beside its counters.
#[test]
fn the_receiver_exposes_its_build() {
    let Some(sb) = Sandbox::get() else { return };
    let p = unique("build");
    let ns = sb.namespace("build");
    let receiver = Receiver::start(&sb, sb.m2s(&ns, &p));
    let (_, text) = receiver.get("/metrics");
    let line = text
        .lines()
        .find(|l| l.starts_with("m2s_build_info{"))
        .unwrap_or_else(|| panic!("{text}"));
    let version = Command::new(env!("CARGO_BIN_EXE_m2s"))
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    let commit = version
        .trim()
        .rsplit("commit ")
        .next()
        .unwrap()
        .trim_end_matches(')');
    assert_eq!(
        line,
        format!(
            "m2s_build_info{{version=\"{}\",commit=\"{commit}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert!(text.contains("# TYPE m2s_build_info gauge\n"));
    let _ = RELEASE_NS;
}
