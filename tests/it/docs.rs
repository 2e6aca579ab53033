//! The documentation cannot drift: the configuration reference is generated from the command
//! line's definitions, the chart's values reference (and the chart's README) from
//! `values.yaml`'s `# --` comments, and every relative link in the README and `docs/` must
//! resolve. A stale page fails here; `make docs` (`M2S_UPDATE_DOCS=1`) writes it anew.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compares `path` with what it should contain, or writes it under `M2S_UPDATE_DOCS=1`.
fn check_generated(path: &str, want: &str) {
    let file = repo().join(path);
    if std::env::var("M2S_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        fs::write(&file, want).unwrap();
        return;
    }
    let have = fs::read_to_string(&file).unwrap_or_default();
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
        panic!(
            "{path} is stale (first difference at line {}): run `make docs` and commit it",
            line + 1
        );
    }
}

/// `text` as one table cell: one line, `|` escaped, and `<`/`>` outside code spans written as
/// entities (GitHub would take `<release>` for an HTML tag and drop it).
fn cell(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 0 {
                part.replace('<', "&lt;").replace('>', "&gt;")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("`")
        .replace('|', "\\|")
}

// ---- The configuration reference, from the CLI definitions -----------------------------------

fn arg_row(arg: &clap::Arg) -> Option<String> {
    let long = arg.get_long()?;
    let value = match arg.get_action() {
        clap::ArgAction::SetTrue | clap::ArgAction::SetFalse => String::new(),
        _ => arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| format!(" <{v}>"))
            .unwrap_or_default(),
    };
    let short = arg
        .get_short()
        .map(|s| format!("`-{s}`, "))
        .unwrap_or_default();
    let env = arg
        .get_env()
        .map(|e| format!("`{}`", e.to_string_lossy()))
        .unwrap_or_default();
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|d| d.to_string_lossy().to_string())
        .collect();
    let default = match defaults.as_slice() {
        [] => String::new(),
        [d] if d.is_empty() => "`\"\"`".to_string(),
        ds => format!("`{}`", ds.join(",")),
    };
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| format!("`{}`", p.get_name()))
        .collect();
    let mut help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    if !possible.is_empty() && matches!(arg.get_action(), clap::ArgAction::Set) {
        if !help.ends_with('.') {
            help.push('.');
        }
        help.push_str(&format!(" One of {}.", possible.join(", ")));
    }
    Some(format!(
        "| {short}`--{long}{value}` | {env} | {default} | {} |",
        cell(&help)
    ))
}

fn arg_table(args: &[&clap::Arg]) -> String {
    let mut out =
        String::from("| Flag | Environment variable | Default | Meaning |\n|---|---|---|---|\n");
    for arg in args {
        if let Some(row) = arg_row(arg) {
            out.push_str(&row);
            out.push('\n');
        }
    }
    out
}

fn command_sections(out: &mut String, cmd: &clap::Command, path: &str) {
    let own: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_global_set() && !a.is_hide_set() && a.get_long().is_some())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    out.push_str(&format!("\n## `{path}`\n\n"));
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        out.push_str(&format!("{}\n\n", cell(&about.to_string())));
    }
    if own.is_empty() {
        out.push_str("No settings of its own.\n");
    } else {
        out.push_str(&arg_table(&own));
    }
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        command_sections(out, sub, &format!("{path} {}", sub.get_name()));
    }
}

fn configuration_reference() -> String {
    let cmd = m2s::cli::command();
    let mut out = String::from(
        "<!-- generated from the command line's definitions (src/cli) by `make docs`; do not edit -->\n\
         # Configuration reference\n\n\
         Every setting is a flag and, for most, an environment variable; a flag wins over its \
         variable. [Settings and tags](../settings.md) explains how they combine; this page is \
         generated from the command line's definitions, so it lists exactly what `m2s` \
         accepts.\n\n## Settings of every command\n\n",
    );
    let global: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set() && !a.is_hide_set())
        .collect();
    out.push_str(&arg_table(&global));
    out.push_str("\n## Read from the environment only\n\n| Variable | Meaning |\n|---|---|\n");
    for (name, meaning) in m2s::cli::ENVIRONMENT_ONLY {
        out.push_str(&format!("| `{name}` | {} |\n", cell(meaning)));
    }
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        command_sections(&mut out, sub, &format!("m2s {}", sub.get_name()));
    }
    out
}

#[test]
fn the_configuration_reference_is_generated_from_the_cli() {
    let text = configuration_reference();
    // Every variable m2s reads by name is in it (a new `env("…")` without a flag must be
    // listed in cli::ENVIRONMENT_ONLY).
    for name in variables_read_in(&repo().join("src")) {
        assert!(
            text.contains(&format!("`{name}`")),
            "{name} is read in src/ but not in the configuration reference (add it to cli::ENVIRONMENT_ONLY)"
        );
    }
    check_generated("docs/reference/configuration.md", &text);
}

/// The names in `env("NAME")` calls under `dir`.
fn variables_read_in(dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            names.extend(variables_read_in(&path));
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
            let text = fs::read_to_string(&path).unwrap();
            for piece in text.split("env(\"").skip(1) {
                let name: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                if piece[name.len()..].starts_with("\")") && !name.is_empty() {
                    names.insert(name);
                }
            }
        }
    }
    names
}

// ---- The chart's values, from values.yaml's comments -----------------------------------------

/// One documented value: its dotted path and the text of its `# --` comment.
struct Documented {
    path: String,
    text: String,
}

/// The `# -- …` comments of `values.yaml` and the keys they stand above, in file order; every
/// leaf value must have one (itself or an ancestor).
fn documented_values(text: &str, values: &Value) -> Result<Vec<Documented>, String> {
    let mut out: Vec<Documented> = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(doc) = trimmed.strip_prefix("# -- ") {
            pending = Some(doc.trim().to_string());
            continue;
        }
        if let (Some(p), Some(more)) = (pending.as_mut(), trimmed.strip_prefix("#  ")) {
            p.push(' ');
            p.push_str(more.trim());
            continue;
        }
        if trimmed.starts_with('#') || trimmed.is_empty() || trimmed.starts_with("- ") {
            if trimmed.starts_with("# ---") {
                pending = None;
            }
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let parent = stack.last().map(|(_, p)| p.clone());
        let path = match &parent {
            Some(p) => format!("{p}.{key}"),
            None => key.to_string(),
        };
        stack.push((indent, path.clone()));
        let covered = out
            .iter()
            .any(|d| path.starts_with(&format!("{}.", d.path)));
        match pending.take() {
            Some(doc) => out.push(Documented { path, text: doc }),
            None if covered => {}
            None => {
                let value = lookup(values, &path);
                let container = value.is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty()));
                if !container {
                    return Err(format!(
                        "values.yaml line {}: {path} has no `# --` comment (every value is documented)",
                        n + 1
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn lookup<'v>(values: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(values, |v, k| v.get(k))
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "any",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn values_table(documented: &[Documented], values: &Value) -> String {
    let mut out = String::from("| Key | Type | Default | Description |\n|---|---|---|---|\n");
    for d in documented {
        let value = lookup(values, &d.path).unwrap_or(&Value::Null);
        let default = match value {
            Value::String(s) if s.is_empty() => "`\"\"`".to_string(),
            Value::String(s) => format!("`{s}`"),
            other => format!("`{other}`"),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            d.path,
            type_of(value),
            cell(&default),
            cell(&d.text)
        ));
    }
    out
}

fn chart_values() -> (Vec<Documented>, Value) {
    let text = fs::read_to_string(repo().join("chart/m2s/values.yaml")).unwrap();
    let values: Value = yaml_serde::from_str(&text).unwrap();
    let documented = documented_values(&text, &values).unwrap_or_else(|e| panic!("{e}"));
    (documented, values)
}

/// A field of Chart.yaml (a one-line value, or a folded `>-` block).
fn chart_field(name: &str) -> String {
    let text = fs::read_to_string(repo().join("chart/m2s/Chart.yaml")).unwrap();
    let chart: BTreeMap<String, Value> = yaml_serde::from_str(&text).unwrap();
    chart
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn the_chart_values_reference_and_readme_are_generated_from_values_yaml() {
    let (documented, values) = chart_values();
    let table = values_table(&documented, &values);
    check_generated(
        "docs/reference/chart-values.md",
        &format!(
            "<!-- generated from chart/m2s/values.yaml's `# --` comments by `make docs`; do not edit -->\n\
             # Chart values reference\n\n\
             Every value of the Helm chart (`chart/m2s`), its type, default and meaning, from \
             the comments in `values.yaml`; `values.schema.json` checks each one at install. \
             [Installing into a cluster](../install.md) shows them in use.\n\n{table}"
        ),
    );
    check_generated(
        "chart/m2s/README.md",
        &format!(
            "<!-- generated from Chart.yaml and values.yaml's `# --` comments by `make docs`; do not edit -->\n\
             # m2s\n\n{}\n\n\
             Version {} (m2s {}). Kubernetes {}.\n\n\
             ## Install\n\n\
             ```sh\n\
             helm install m2s ./chart/m2s --namespace m2s-system --create-namespace \\\n  \
             --set mlflow.host=https://mlflow.example.com --set serving.namespace=models\n\
             helm test m2s --namespace m2s-system --logs   # m2s plan under the release's ServiceAccount\n\
             ```\n\n\
             A release publishes the chart as `oci://ghcr.io/<owner>/charts/m2s`, with the \
             released image as its default. More in the project's \
             [installation guide](../../docs/install.md); metrics, the ServiceMonitor, \
             PodMonitor, alerts and the Grafana dashboard in \
             [Monitoring](../../docs/monitoring.md); changes in the \
             [CHANGELOG](../../CHANGELOG.md).\n\n\
             ## Values\n\n{table}",
            chart_field("description"),
            chart_field("version"),
            chart_field("appVersion"),
            chart_field("kubeVersion"),
        ),
    );
}

#[test]
fn a_value_without_a_comment_is_refused() {
    let text = "# -- documented\na: 1\nb:\n  # -- nested\n  c: 2\n  d: 3\n";
    let values: Value = yaml_serde::from_str(text).unwrap();
    let err = documented_values(text, &values).err().unwrap();
    assert!(err.contains("b.d has no `# --` comment"), "{err}");
    let ok = "# -- a map, documented as a whole\nm:\n  x: 1\n# -- two\n#    lines\nn: []\n";
    let values: Value = yaml_serde::from_str(ok).unwrap();
    let docs = documented_values(ok, &values).unwrap();
    let paths: Vec<&str> = docs.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["m", "n"]);
    assert_eq!(docs[1].text, "two lines");
}

// ---- Links ------------------------------------------------------------------------------------

/// GitHub's anchor of a heading: lower case, spaces to '-', other punctuation dropped.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading.trim();
    // [text](url) → text; `code` → code
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match (after.find("]("), after.find(')')) {
            (Some(close), Some(end)) if close < end => {
                text.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            _ => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if fence || hashes == 0 || hashes > 6 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let s = slug(line[hashes..].trim().trim_end_matches('#').trim());
        let n = seen.entry(s.clone()).or_default();
        out.insert(if *n == 0 {
            s.clone()
        } else {
            format!("{s}-{n}")
        });
        *n += 1;
    }
    out
}

/// The relative link targets of a Markdown text, with their line numbers (code is skipped).
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        // Inline code holds no links.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, p)| p)
            .collect::<Vec<_>>()
            .join(" ");
        for piece in prose.split("](").skip(1) {
            let target: String = piece.chars().take_while(|c| *c != ')').collect();
            let target = target.split_whitespace().next().unwrap_or_default();
            let external = target.split_once(':').is_some_and(|(scheme, _)| {
                !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_lowercase())
            });
            if !external && !target.is_empty() {
                out.push((n + 1, target.to_string()));
            }
        }
    }
    out
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md"), repo().join("chart/m2s/README.md")];
    let mut dirs = vec![repo().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_link_resolves_and_every_page_is_in_the_index() {
    let mut problems = Vec::new();
    for file in markdown_files() {
        let text = fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(repo()).unwrap().display().to_string();
        for (line, target) in links(&text) {
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let dest = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !dest.exists() {
                problems.push(format!("{name}:{line}: no file {target}"));
            } else if !fragment.is_empty() {
                let text = fs::read_to_string(&dest).unwrap_or_default();
                if !anchors(&text).contains(fragment) {
                    problems.push(format!("{name}:{line}: no heading #{fragment} in {path}"));
                }
            }
        }
    }
    let index = fs::read_to_string(repo().join("docs/README.md")).unwrap();
    for file in markdown_files() {
        let Ok(rel) = file.strip_prefix(repo().join("docs")) else {
            continue;
        };
        let rel = rel.display().to_string();
        if rel != "README.md"
            && !index.contains(&format!("]({rel})"))
            && !index.contains(&format!("]({rel}#"))
        {
            problems.push(format!("docs/README.md does not link {rel}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn slugs_follow_githubs_rules() {
    assert_eq!(slug("Plan, sync, dry run"), "plan-sync-dry-run");
    assert_eq!(slug("`m2s status`"), "m2s-status");
    assert_eq!(
        slug("Promotion latency (`m2s webhook`)"),
        "promotion-latency-m2s-webhook"
    );
    assert_eq!(slug("[Link](x.md) text"), "link-text");
    let a = anchors("# A\n## A\n```\n# not\n```\n");
    assert_eq!(a, ["a".to_string(), "a-1".to_string()].into());
}

/// `docs/serving.md` shows the Secrets and ServiceAccount a team makes exactly as
/// `tests/serving/examples/` has them (the files the serving suite applies), and names each
/// target's runtime with the MLflow preflight checks against.
#[test]
fn the_serving_page_shows_the_tested_credentials_and_runtimes() {
    use m2s::targets::{by_id, Protocol};
    let page = fs::read_to_string(repo().join("docs/serving.md")).unwrap();
    let mut problems = Vec::new();
    for entry in fs::read_dir(repo().join("tests/serving/examples")).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let yaml: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        let yaml = yaml.join("\n");
        if !page.contains(&yaml) {
            problems.push(format!(
                "docs/serving.md does not show {} as it is:\n{yaml}",
                path.display()
            ));
        }
    }
    let runtimes = [
        ("kserve", None),
        ("seldon-v2", None),
        ("seldon-v1", Some(Protocol::Seldon)),
        ("seldon-v1", Some(Protocol::V2)),
    ];
    for (target, protocol) in runtimes {
        let r = by_id(target).unwrap().runtime(protocol);
        let row = page
            .lines()
            .find(|l| l.starts_with(&format!("| `{target}`")) && l.contains(r.server));
        match row {
            Some(row) if row.contains(&format!("**{}**", r.mlflow)) => {}
            _ => problems.push(format!(
                "docs/serving.md has no runtime row for {target} with `{}` and **{}**",
                r.server, r.mlflow
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
