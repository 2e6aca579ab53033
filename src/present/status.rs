//! `m2s status` as text (a table, as kubectl prints one) and as one JSON document.

use std::fmt::Write as _;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use crate::rollout::RolloutState;

use super::plan::write_errors;
use super::Doc;
use crate::config::DeployConfig;
use crate::desired::Selector;
use crate::plan::describe;
use crate::plan::Verdict;
use crate::status::{ObjectState, StatusReport};
use crate::targets::State;

const STATES: [State; 4] = [
    State::Available,
    State::Creating,
    State::Pending,
    State::Failed,
];
const VERDICTS: [Verdict; 4] = [
    Verdict::InSync,
    Verdict::UpdatePending,
    Verdict::DeletePending,
    Verdict::NotDeployable,
];

/// Seconds since `created` (RFC 3339), if it parses.
fn age_seconds(created: Option<&str>, now: Timestamp) -> Option<i64> {
    let t: Timestamp = created?.parse().ok()?;
    Some((now.as_second() - t.as_second()).max(0))
}

/// An age as kubectl prints it: `45s`, `12m`, `5h`, `3d`, `2y`.
pub(crate) fn short_age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s if s < 86400 * 365 * 2 => format!("{}d", s / 86400),
        s => format!("{}y", s / (86400 * 365)),
    }
}

fn entries(n: usize) -> &'static str {
    if n == 1 {
        "registry entry"
    } else {
        "registry entries"
    }
}

/// "1 Available, 2 Failed" of the non-zero counts, in `order`.
fn counts<T: Copy + PartialEq>(
    items: impl Iterator<Item = T> + Clone,
    order: &[T],
    label: impl Fn(T) -> String,
) -> String {
    order
        .iter()
        .map(|k| (items.clone().filter(|i| i == k).count(), label(*k)))
        .filter(|(n, _)| *n > 0)
        .map(|(n, l)| format!("{n} {l}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an object serves: its version, or both versions of a rollout in progress
/// (`v4 + v5 at 10% (step 1 of 2, 3m)`), or its version and the one whose rollout was aborted.
fn version_cell(o: &ObjectState, now: Timestamp) -> String {
    let version = o.version.clone().unwrap_or_else(|| "-".into());
    match &o.rollout {
        RolloutState::None => version,
        RolloutState::InProgress {
            version: canary,
            steps,
            step,
            since,
        } => format!(
            "v{version} + v{canary} at {}% (step {step} of {}, {})",
            steps[step - 1],
            steps.len(),
            short_age((now.as_second() - since.as_second()).max(0))
        ),
        RolloutState::Aborted {
            version: aborted, ..
        } => {
            format!("v{version} (v{aborted} aborted)")
        }
    }
}

/// The objects as a table with tidy columns; a message goes on its own line under its row.
fn write_table(out: &mut String, objects: &[ObjectState], now: Timestamp) {
    let head = [
        "NAME", "MODEL", "VERSION", "FOLLOWS", "STATE", "AGE", "REGISTRY", "URL",
    ];
    let rows: Vec<[String; 8]> = objects
        .iter()
        .map(|o| {
            [
                o.name.clone(),
                o.model.clone().unwrap_or_else(|| "-".into()),
                version_cell(o, now),
                o.selector
                    .as_ref()
                    .map_or_else(|| "-".into(), Selector::to_string),
                o.readiness.state.to_string(),
                age_seconds(o.created.as_deref(), now).map_or_else(|| "-".into(), short_age),
                o.verdict.label().to_string(),
                o.readiness.url.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(l, "  {cell:<w$}");
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&head));
    for (o, row) in objects.iter().zip(&rows) {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
        if let Some(message) = &o.readiness.message {
            let _ = writeln!(out, "      {message}");
        }
    }
}

/// The report as text: a table of the objects (messages on their own line), the entries not
/// deployed yet or not deployable, and a summary line.
pub(crate) fn render_text(report: &StatusReport, cfg: &DeployConfig, now: Timestamp) -> String {
    let resource = cfg.target.resource();
    let (instance, namespace) = (&cfg.instance, &cfg.namespace);
    let mut out = String::new();
    let objects = &report.objects;
    if objects.is_empty() {
        let _ = writeln!(
            out,
            "No {} of m2s instance {instance:?} in namespace {namespace:?}.",
            resource.kinds(0)
        );
        if !(report.not_deployed.is_empty() && report.not_deployable.is_empty()) {
            out.push('\n');
        }
    } else {
        let _ = writeln!(
            out,
            "{} of m2s instance {instance:?} in namespace {namespace:?}:\n",
            resource.kinds(objects.len())
        );
        write_table(&mut out, objects, now);
        out.push('\n');
    }
    let width = report
        .not_deployed
        .iter()
        .map(|e| e.name.len())
        .chain(report.not_deployable.iter().map(|e| e.name.len()))
        .max()
        .unwrap_or(0);
    if !report.not_deployed.is_empty() {
        let _ = writeln!(out, "Not deployed yet (the next sync creates them):\n");
        for e in &report.not_deployed {
            let what = describe(Some(&e.model), Some(&e.version), None, Some(&e.selector));
            let _ = writeln!(out, "  + {:<width$}  {what}", e.name);
        }
        out.push('\n');
    }
    if !report.not_deployable.is_empty() {
        let _ = writeln!(out, "Cannot be deployed (m2s plan shows why, too):\n");
        write_errors(&mut out, &report.not_deployable, width);
    }
    let summary = summary(report, cfg);
    if !summary.is_empty() {
        let _ = writeln!(out, "{summary}");
    }
    out
}

/// "3 InferenceServices: 2 Available, 1 Failed; 2 in sync, 1 update pending." and the
/// entries without an object.
fn summary(report: &StatusReport, cfg: &DeployConfig) -> String {
    let objects = &report.objects;
    let mut sentences = Vec::new();
    if !objects.is_empty() {
        let states = counts(objects.iter().map(|o| o.readiness.state), &STATES, |st| {
            st.to_string()
        });
        let verdicts = counts(objects.iter().map(|o| o.verdict), &VERDICTS, |v| {
            v.label().to_string()
        });
        sentences.push(format!(
            "{}: {states}; {verdicts}.",
            cfg.target.resource().count(objects.len())
        ));
    }
    for (n, what) in [
        (report.not_deployed.len(), "not deployed yet"),
        (report.not_deployable.len(), "cannot be deployed"),
    ] {
        if n > 0 {
            sentences.push(format!("{n} {} {what}.", entries(n)));
        }
    }
    sentences.join(" ")
}

#[derive(Serialize)]
struct JsonReport<'a> {
    format_version: &'static str,
    target: &'a str,
    api_version: String,
    kind: &'a str,
    namespace: &'a str,
    instance: &'a str,
    objects: Vec<JsonObject<'a>>,
    not_deployed: Vec<JsonEntry<'a>>,
    not_deployable: Vec<JsonEntry<'a>>,
    summary: JsonSummary,
}

#[derive(Serialize)]
struct JsonObject<'a> {
    name: &'a str,
    model: Option<&'a str>,
    version: Option<&'a str>,
    stage: Option<&'a str>,
    alias: Option<&'a str>,
    state: String,
    message: Option<&'a str>,
    url: Option<&'a str>,
    created: Option<&'a str>,
    age_seconds: Option<i64>,
    registry: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout: Option<JsonRollout<'a>>,
}

/// A progressive rollout on an object: `canary` (in progress) or `aborted`.
#[derive(Serialize)]
struct JsonRollout<'a> {
    state: &'static str,
    canary_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<&'a [u8]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    percent: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aborted: Option<&'a str>,
}

fn json_rollout(r: &RolloutState) -> Option<JsonRollout<'_>> {
    match r {
        RolloutState::None => None,
        RolloutState::InProgress {
            version,
            steps,
            step,
            since,
        } => Some(JsonRollout {
            state: "canary",
            canary_version: version,
            step: Some(*step),
            steps: Some(steps),
            percent: Some(steps[step - 1]),
            since: Some(since.to_string()),
            aborted: None,
        }),
        RolloutState::Aborted { version, why } => Some(JsonRollout {
            state: "aborted",
            canary_version: version,
            step: None,
            steps: None,
            percent: None,
            since: None,
            aborted: Some(why),
        }),
    }
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    name: &'a str,
    model: &'a str,
    version: Option<&'a str>,
    stage: Option<&'a str>,
    alias: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl<'a> JsonEntry<'a> {
    fn of(
        name: &'a str,
        model: &'a str,
        version: Option<&'a str>,
        selector: &'a Selector,
        error: Option<&'a str>,
    ) -> JsonEntry<'a> {
        let (stage, alias) = split(Some(selector));
        JsonEntry {
            name,
            model,
            version,
            stage,
            alias,
            error,
        }
    }
}

#[derive(Serialize)]
struct JsonSummary {
    objects: usize,
    available: usize,
    creating: usize,
    pending: usize,
    failed: usize,
    in_sync: usize,
    update_pending: usize,
    delete_pending: usize,
    not_deployable_objects: usize,
    not_deployed: usize,
    not_deployable: usize,
}

fn split(s: Option<&Selector>) -> (Option<&str>, Option<&str>) {
    match s {
        Some(Selector::Stage(v)) => (Some(v), None),
        Some(Selector::Alias(v)) => (None, Some(v)),
        None => (None, None),
    }
}

/// The report as one JSON document.
/// The report as one document, JSON or YAML (the same fields).
pub(crate) fn render_doc(
    report: &StatusReport,
    cfg: &DeployConfig,
    now: Timestamp,
    format: Doc,
) -> String {
    let resource = cfg.target.resource();
    let objects = &report.objects;
    let state = |st: State| objects.iter().filter(|o| o.readiness.state == st).count();
    let verdict = |v: Verdict| objects.iter().filter(|o| o.verdict == v).count();
    let doc = JsonReport {
        format_version: "1",
        target: cfg.target.id(),
        api_version: resource.api_version(),
        kind: resource.kind,
        namespace: &cfg.namespace,
        instance: &cfg.instance,
        objects: objects
            .iter()
            .map(|o| {
                let (stage, alias) = split(o.selector.as_ref());
                JsonObject {
                    name: &o.name,
                    model: o.model.as_deref(),
                    version: o.version.as_deref(),
                    stage,
                    alias,
                    state: o.readiness.state.to_string(),
                    message: o.readiness.message.as_deref(),
                    url: o.readiness.url.as_deref(),
                    created: o.created.as_deref(),
                    age_seconds: age_seconds(o.created.as_deref(), now),
                    registry: o.verdict.label(),
                    rollout: json_rollout(&o.rollout),
                }
            })
            .collect(),
        not_deployed: report
            .not_deployed
            .iter()
            .map(|e| JsonEntry::of(&e.name, &e.model, Some(&e.version), &e.selector, None))
            .collect(),
        not_deployable: report
            .not_deployable
            .iter()
            .map(|e| {
                let version = e.version.as_deref();
                JsonEntry::of(&e.name, &e.model, version, &e.selector, Some(&e.message))
            })
            .collect(),
        summary: JsonSummary {
            objects: objects.len(),
            available: state(State::Available),
            creating: state(State::Creating),
            pending: state(State::Pending),
            failed: state(State::Failed),
            in_sync: verdict(Verdict::InSync),
            update_pending: verdict(Verdict::UpdatePending),
            delete_pending: verdict(Verdict::DeletePending),
            not_deployable_objects: verdict(Verdict::NotDeployable),
            not_deployed: report.not_deployed.len(),
            not_deployable: report.not_deployable.len(),
        },
    };
    format.write(&doc)
}

#[cfg(test)]
mod tests;
