//! Plan output: terraform-style text, or one JSON document.

use std::fmt::Write as _;

use serde::Serialize;

use crate::desired::{EntryError, Selector};
use crate::plan::{Action, Change, Plan};

fn describe(
    model: Option<&str>,
    version: Option<&str>,
    previous: Option<&str>,
    selector: Option<&Selector>,
) -> String {
    let mut s = String::new();
    if let Some(m) = model {
        let _ = write!(s, "{m}");
    }
    match (previous, version) {
        (Some(p), Some(v)) if p != v => {
            let _ = write!(s, " v{p} → v{v}");
        }
        (_, Some(v)) => {
            let _ = write!(s, " v{v}");
        }
        _ => {}
    }
    if let Some(sel) = selector {
        let _ = write!(s, " ({sel})");
    }
    s.trim().to_string()
}

/// The plan as text, ending with terraform's summary line (or `No changes.`).
pub fn render_text(plan: &Plan, namespace: &str) -> String {
    let mut out = String::new();
    let width = plan
        .changes
        .iter()
        .map(|c| c.name.len())
        .chain(plan.errors.iter().map(|e| e.name.len()))
        .max()
        .unwrap_or(0);
    if !plan.changes.is_empty() {
        let _ = writeln!(
            out,
            "m2s will make these changes to SeldonDeployments in namespace {namespace:?}:\n"
        );
        for c in &plan.changes {
            let what = describe(
                c.model.as_deref(),
                c.version.as_deref(),
                c.previous_version.as_deref(),
                c.selector.as_ref(),
            );
            let _ = writeln!(
                out,
                "  {} {:<width$}  {what}: {}",
                c.action.symbol(),
                c.name,
                c.reason
            );
        }
        out.push('\n');
    }
    if !plan.errors.is_empty() {
        let _ = writeln!(
            out,
            "These entries cannot be deployed; their SeldonDeployments are left as they are:\n"
        );
        for e in &plan.errors {
            let what = describe(
                Some(&e.model),
                e.version.as_deref(),
                None,
                Some(&e.selector),
            );
            let _ = writeln!(out, "  ! {:<width$}  {what}: {}", e.name, e.message);
        }
        out.push('\n');
    }
    if plan.changes.is_empty() {
        let _ = writeln!(
            out,
            "No changes. {} SeldonDeployment{} in namespace {namespace:?} match the registry.",
            plan.unchanged.len(),
            if plan.unchanged.len() == 1 { "" } else { "s" }
        );
    } else {
        let _ = writeln!(
            out,
            "Plan: {} to add, {} to change, {} to destroy.",
            plan.count(Action::Create),
            plan.count(Action::Update),
            plan.count(Action::Delete)
        );
    }
    out
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    format_version: &'static str,
    namespace: &'a str,
    instance: &'a str,
    changes: Vec<JsonChange<'a>>,
    errors: Vec<JsonError<'a>>,
    unchanged: &'a [String],
    summary: JsonSummary,
}

#[derive(Serialize)]
struct JsonChange<'a> {
    action: Action,
    name: &'a str,
    model: Option<&'a str>,
    version: Option<&'a str>,
    previous_version: Option<&'a str>,
    stage: Option<&'a str>,
    alias: Option<&'a str>,
    reason: &'a str,
    model_uri: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonError<'a> {
    name: &'a str,
    model: &'a str,
    version: Option<&'a str>,
    stage: Option<&'a str>,
    alias: Option<&'a str>,
    error: &'a str,
}

#[derive(Serialize)]
struct JsonSummary {
    add: usize,
    change: usize,
    destroy: usize,
    unchanged: usize,
    errors: usize,
}

fn split_selector(s: Option<&Selector>) -> (Option<&str>, Option<&str>) {
    match s {
        Some(Selector::Stage(v)) => (Some(v), None),
        Some(Selector::Alias(v)) => (None, Some(v)),
        None => (None, None),
    }
}

fn json_change(c: &Change) -> JsonChange<'_> {
    let (stage, alias) = split_selector(c.selector.as_ref());
    JsonChange {
        action: c.action,
        name: &c.name,
        model: c.model.as_deref(),
        version: c.version.as_deref(),
        previous_version: c.previous_version.as_deref(),
        stage,
        alias,
        reason: &c.reason,
        model_uri: c.model_uri.as_deref(),
    }
}

fn json_error(e: &EntryError) -> JsonError<'_> {
    let (stage, alias) = split_selector(Some(&e.selector));
    JsonError {
        name: &e.name,
        model: &e.model,
        version: e.version.as_deref(),
        stage,
        alias,
        error: &e.message,
    }
}

pub fn render_json(plan: &Plan, namespace: &str, instance: &str) -> String {
    let doc = JsonPlan {
        format_version: "1",
        namespace,
        instance,
        changes: plan.changes.iter().map(json_change).collect(),
        errors: plan.errors.iter().map(json_error).collect(),
        unchanged: &plan.unchanged,
        summary: JsonSummary {
            add: plan.count(Action::Create),
            change: plan.count(Action::Update),
            destroy: plan.count(Action::Delete),
            unchanged: plan.unchanged.len(),
            errors: plan.errors.len(),
        },
    };
    serde_json::to_string_pretty(&doc).expect("plan serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(
        action: Action,
        name: &str,
        version: &str,
        previous: Option<&str>,
        reason: &str,
    ) -> Change {
        Change {
            action,
            name: name.into(),
            model: Some(name.split('-').next().unwrap().into()),
            version: Some(version.into()),
            previous_version: previous.map(String::from),
            selector: Some(Selector::Stage("Production".into())),
            reason: reason.into(),
            object: (action != Action::Delete).then(|| "{}".to_string()),
            model_uri: (action != Action::Delete).then(|| "s3://b/m".to_string()),
            uid: None,
            resource_version: None,
        }
    }

    fn sample() -> Plan {
        Plan {
            changes: vec![
                change(
                    Action::Create,
                    "iris-production",
                    "4",
                    None,
                    "new deployment",
                ),
                change(
                    Action::Update,
                    "fraud-production",
                    "3",
                    Some("2"),
                    "version 2 → 3",
                ),
                change(
                    Action::Delete,
                    "old-production",
                    "1",
                    None,
                    "registered model \"old\" is gone",
                ),
            ],
            unchanged: vec!["kept-production".into()],
            errors: vec![EntryError {
                name: "bad-production".into(),
                model: "bad".into(),
                selector: Selector::Stage("Production".into()),
                version: Some("1".into()),
                message: "tag broken".into(),
            }],
            managed: 3,
        }
    }

    #[test]
    fn text_follows_terraform() {
        let text = render_text(&sample(), "models");
        let expected = "\
m2s will make these changes to SeldonDeployments in namespace \"models\":

  + iris-production   iris v4 (stage Production): new deployment
  ~ fraud-production  fraud v2 → v3 (stage Production): version 2 → 3
  - old-production    old v1 (stage Production): registered model \"old\" is gone

These entries cannot be deployed; their SeldonDeployments are left as they are:

  ! bad-production    bad v1 (stage Production): tag broken

Plan: 1 to add, 1 to change, 1 to destroy.
";
        assert_eq!(text, expected);
    }

    #[test]
    fn text_without_changes() {
        let plan = Plan {
            unchanged: vec!["a".into(), "b".into()],
            ..Plan::default()
        };
        assert_eq!(
            render_text(&plan, "ns"),
            "No changes. 2 SeldonDeployments in namespace \"ns\" match the registry.\n"
        );
    }

    #[test]
    fn json_document() {
        let v: serde_json::Value =
            serde_json::from_str(&render_json(&sample(), "models", "m2s")).unwrap();
        assert_eq!(
            v["summary"],
            json!({"add": 1, "change": 1, "destroy": 1, "unchanged": 1, "errors": 1})
        );
        assert_eq!(v["changes"][0]["action"], "create");
        assert_eq!(v["changes"][0]["stage"], "Production");
        assert_eq!(v["changes"][0]["alias"], serde_json::Value::Null);
        assert_eq!(v["changes"][0]["model_uri"], "s3://b/m");
        assert_eq!(v["changes"][1]["previous_version"], "2");
        assert_eq!(v["changes"][2]["action"], "delete");
        assert_eq!(v["errors"][0]["error"], "tag broken");
        assert_eq!(v["namespace"], "models");
    }
}
