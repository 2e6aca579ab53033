//! Helpers of the monitoring suite: promtool (Debian's prometheus package, unpacked by
//! tests/tools/install.sh), the Prometheus Operator's CRDs in the sandbox, the chart's rendered
//! monitoring objects, and metric names out of exposition text and PromQL.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::chart_support::{repo, run, stderr, stdout, unavailable, Sandbox};

/// A tool from tests/tools/install.sh (installed into the cache on first use).
pub fn tool(name: &str) -> Option<PathBuf> {
    static TOOLS: OnceLock<
        std::sync::Mutex<std::collections::BTreeMap<String, Result<PathBuf, String>>>,
    > = OnceLock::new();
    let tools = TOOLS.get_or_init(Default::default);
    let mut tools = tools.lock().unwrap();
    let found = tools.entry(name.to_string()).or_insert_with(|| {
        let out = run(Command::new("bash")
            .arg(repo().join("tests/tools/install.sh"))
            .arg(name))
        .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(PathBuf::from(stdout(&out).trim()))
        } else {
            Err(format!(
                "tests/tools/install.sh {name} failed: {}",
                stderr(&out)
            ))
        }
    });
    match found {
        Ok(p) => Some(p.clone()),
        Err(e) => unavailable(&format!("no {name}: {e}")),
    }
}

pub fn promtool() -> Option<PathBuf> {
    tool("promtool")
}

/// The Prometheus Operator's CRDs (../shared/prometheus-operator, or
/// M2S_PROMETHEUS_OPERATOR_CRDS), created in the sandbox when absent and served.
pub fn prometheus_operator_crds(sb: &Sandbox) -> Option<()> {
    let dir = std::env::var_os("M2S_PROMETHEUS_OPERATOR_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/prometheus-operator"));
    for plural in ["servicemonitors", "podmonitors", "prometheusrules"] {
        let name = format!("{plural}.monitoring.coreos.com");
        let file = dir.join(format!("{name}.v1.yaml"));
        if !file.is_file() {
            return unavailable(&format!("no Prometheus Operator CRD at {}", file.display()));
        }
        if sb.admin(&["get", "crd", &name]).is_err() {
            // Another test may create it at the same moment: AlreadyExists is fine.
            let out = run(sb.cmd().args(["create", "-f"]).arg(&file)).unwrap();
            let err = stderr(&out);
            assert!(
                out.status.success() || err.contains("AlreadyExists"),
                "kubectl create -f {}: {err}",
                file.display()
            );
        }
        // Served, and its schema published in the API server's OpenAPI document: kubectl's
        // client-side validation (unknown fields) reads it, and a CRD just created is
        // published a moment after it is served.
        let mut ready = false;
        for _ in 0..240 {
            if sb
                .admin(&["get", plural, "-A", "--request-timeout=5s"])
                .is_ok()
                && sb.admin(&["explain", &format!("{plural}.spec")]).is_ok()
            {
                ready = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        assert!(ready, "the sandbox does not serve {name} with its schema");
    }
    Some(())
}

/// The metric names in Prometheus exposition text (samples, not families: a histogram's
/// `_bucket`, `_sum` and `_count` each).
pub fn exposed_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// `expr` without label matchers (`{...}`) and label lists (`by (...)`, `without (...)`,
/// `on (...)`, `ignoring (...)`, `group_left (...)`, `group_right (...)`): what is left names
/// metrics, functions and numbers only.
fn without_labels(expr: &str) -> String {
    const LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let mut out = String::new();
    let mut chars = expr.chars().peekable();
    // The last identifier, while only whitespace followed it.
    let mut last = String::new();
    let mut current = String::new();
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '_' {
            current.push(c);
            out.push(c);
            continue;
        }
        if !current.is_empty() {
            last = std::mem::take(&mut current);
        }
        let close = match c {
            '{' => Some('}'),
            '(' if LISTS.contains(&last.as_str()) => Some(')'),
            _ => None,
        };
        if let Some(close) = close {
            for c in chars.by_ref() {
                if c == close {
                    break;
                }
            }
            out.push(' ');
            last.clear();
            continue;
        }
        if !c.is_whitespace() {
            last.clear();
        }
        out.push(c);
    }
    out
}

/// The m2s metric names a PromQL expression reads.
pub fn names_in_promql(expr: &str) -> BTreeSet<String> {
    let expr = without_labels(expr);
    let mut names = BTreeSet::new();
    let mut rest = expr.as_str();
    while let Some(i) = rest.find("m2s_") {
        let boundary = rest[..i]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if boundary {
            names.insert(name.clone());
        }
        rest = &rest[i + name.len()..];
    }
    names
}

#[test]
fn label_names_are_not_metric_names() {
    let names = names_in_promql(
        r#"time() - max by (m2s_instance) (m2s_run_last_timestamp_seconds{m2s_instance="m2s_x"}) > on (m2s_instance) group_left m2s_build_info"#,
    );
    assert_eq!(
        names,
        BTreeSet::from([
            "m2s_run_last_timestamp_seconds".to_string(),
            "m2s_build_info".to_string()
        ])
    );
    let names = names_in_promql("sum by(kind) (rate(m2s_syncs_total[5m]))");
    assert_eq!(names, BTreeSet::from(["m2s_syncs_total".to_string()]));
}

/// Every `expr` of the Grafana dashboard's panels.
pub fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(e)) = m.get("expr") {
                    out.push(e.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&dashboard["panels"], &mut out);
    out
}

pub fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo().join("chart/m2s/dashboards/m2s.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `promtool check rules FILE`: its output, and whether it passed.
pub fn check_rules(promtool: &Path, file: &Path) -> (bool, String) {
    let out = run(Command::new(promtool).args(["check", "rules"]).arg(file)).unwrap();
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}
