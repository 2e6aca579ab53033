//! Plan output: terraform-style text, or one JSON document. Counts agree with their nouns.

use std::fmt::Write as _;

use serde::Serialize;

use crate::plan::rollout::{RolloutChange, RolloutKind};

use super::Doc;
use crate::config::DeployConfig;
use crate::desired::{EntryError, Registry, Selector};
use crate::plan::{describe, Action, Change, Plan};

/// One line an entry that cannot be deployed ("  ! name  iris v1 (stage Production): why"),
/// names padded to `width`, and a blank line.
pub(crate) fn write_errors(out: &mut String, errors: &[EntryError], width: usize) {
    for e in errors {
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

/// The plan as text, ending with terraform's summary line (or `No changes.`).
pub(crate) fn render_text(plan: &Plan, registry: &Registry, cfg: &DeployConfig) -> String {
    let resource = cfg.target.resource();
    let namespace = &cfg.namespace;
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
            "m2s will make these changes to {} in namespace {namespace:?}:\n",
            resource.kinds(2)
        );
        for c in &plan.changes {
            let what = describe(
                c.model(registry),
                c.version(registry),
                c.previous_version(),
                c.selector(registry),
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
        let _ = if plan.errors.len() == 1 {
            writeln!(
                out,
                "This entry cannot be deployed; its {} is left as it is:\n",
                resource.kind
            )
        } else {
            writeln!(
                out,
                "These entries cannot be deployed; their {} are left as they are:\n",
                resource.kinds(2)
            )
        };
        write_errors(&mut out, &plan.errors, width);
    }
    if let Some(note) = &plan.preflight_skipped {
        let _ = writeln!(out, "{note}\n");
    }
    if plan.changes.is_empty() {
        let n = plan.unchanged.len();
        let _ = writeln!(
            out,
            "No changes. {} in namespace {namespace:?} {} the registry.",
            resource.count(n),
            if n == 1 { "matches" } else { "match" }
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
    target: &'a str,
    api_version: String,
    kind: &'a str,
    namespace: &'a str,
    instance: &'a str,
    changes: Vec<JsonChange<'a>>,
    errors: Vec<JsonError<'a>>,
    unchanged: Vec<&'a str>,
    summary: JsonSummary,
    deletion_guard: JsonGuard,
    /// Why preflight did not check the versions to deploy (null: it checked them all, or was off).
    preflight_skipped: Option<&'a str>,
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
    model_uri: Option<String>,
    /// A progressive rollout's step, promotion, abort or clean-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout: Option<JsonRollout<'a>>,
}

#[derive(Serialize)]
struct JsonRollout<'a> {
    action: &'static str,
    stable_version: &'a str,
    canary_version: &'a str,
    /// The step written (from 1), its traffic percent, and every step's.
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    percent: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<&'a [u8]>,
}

fn json_rollout(r: &RolloutChange) -> JsonRollout<'_> {
    let (step, percent, steps) = match &r.kind {
        RolloutKind::Step { step, steps } => {
            (Some(*step), Some(steps[step - 1]), Some(steps.as_slice()))
        }
        _ => (None, None, None),
    };
    JsonRollout {
        action: r.action(),
        stable_version: &r.stable_version,
        canary_version: &r.canary_version,
        step,
        percent,
        steps,
    }
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

/// Whether the deletion guard refuses this plan, and why (it names what the registry asks for).
#[derive(Serialize)]
struct JsonGuard {
    refused: bool,
    message: Option<String>,
}

fn split_selector(s: Option<&Selector>) -> (Option<&str>, Option<&str>) {
    match s {
        Some(Selector::Stage(v)) => (Some(v), None),
        Some(Selector::Alias(v)) => (None, Some(v)),
        None => (None, None),
    }
}

fn json_change<'a>(c: &'a Change, registry: &'a Registry, cfg: &DeployConfig) -> JsonChange<'a> {
    let (stage, alias) = split_selector(c.selector(registry));
    JsonChange {
        action: c.action,
        name: &c.name,
        model: c.model(registry),
        version: c.version(registry),
        previous_version: c.previous_version(),
        stage,
        alias,
        reason: &c.reason,
        model_uri: c.model_uri(cfg),
        rollout: c.rollout.as_deref().map(json_rollout),
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

/// The plan as one JSON document; `refusal` is the deletion guard's, when it refuses.
/// The plan as one document, JSON or YAML (the same fields).
pub(crate) fn render_doc(
    plan: &Plan,
    registry: &Registry,
    cfg: &DeployConfig,
    refusal: Option<&anyhow::Error>,
    format: Doc,
) -> String {
    let resource = cfg.target.resource();
    let doc = JsonPlan {
        format_version: "1",
        target: cfg.target.id(),
        api_version: resource.api_version(),
        kind: resource.kind,
        namespace: &cfg.namespace,
        instance: &cfg.instance,
        changes: plan
            .changes
            .iter()
            .map(|c| json_change(c, registry, cfg))
            .collect(),
        errors: plan.errors.iter().map(json_error).collect(),
        unchanged: plan.unchanged_names(registry).collect(),
        summary: JsonSummary {
            add: plan.count(Action::Create),
            change: plan.count(Action::Update),
            destroy: plan.count(Action::Delete),
            unchanged: plan.unchanged.len(),
            errors: plan.errors.len(),
        },
        deletion_guard: JsonGuard {
            refused: refusal.is_some(),
            message: refusal.map(|e| format!("{e:#}")),
        },
        preflight_skipped: plan.preflight_skipped.as_deref(),
    };
    format.write(&doc)
}

#[cfg(test)]
mod tests;
