//! `--context`: a kubeconfig context other than the current one, as kubectl's flag picks it.
//! An unknown context is an error naming it, the file and the contexts there are.

use anyhow::{bail, Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Config;

/// The options that select `context` in `kc` (read from `source`), after checking it exists.
pub(super) fn options(
    kc: &Kubeconfig,
    context: Option<&str>,
    source: &str,
) -> Result<KubeConfigOptions> {
    let Some(context) = context else {
        return Ok(KubeConfigOptions::default());
    };
    if !kc.contexts.iter().any(|c| c.name == context) {
        let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "--context {context:?}: no such context in {source} (contexts: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(KubeConfigOptions {
        context: Some(context.to_string()),
        ..KubeConfigOptions::default()
    })
}

/// The client configuration of `context` in the kubeconfig kubectl would read: the files of
/// `KUBECONFIG` (merged), else `~/.kube/config`. Never the in-cluster account: a context is a
/// kubeconfig's.
pub(super) async fn with_context(context: &str) -> Result<Config> {
    let source = match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(v) => format!("KUBECONFIG={}", v.to_string_lossy()),
        None => "~/.kube/config".to_string(),
    };
    let kc = Kubeconfig::read()
        .with_context(|| format!("--context {context:?} needs a kubeconfig: reading {source}"))?;
    let options = options(&kc, Some(context), &source)?;
    Config::from_custom_kubeconfig(kc, &options)
        .await
        .with_context(|| format!("loading context {context:?} of {source}"))
}

#[cfg(test)]
mod tests;
