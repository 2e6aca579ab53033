//! `m2s webhook register`: create or update this instance's webhook in MLflow. Idempotent: the
//! webhook is found by a name derived from the instance and the namespace, so running it again
//! (or from every release) updates the same webhook. The secret is sent, never printed.

use anyhow::{bail, Context, Result};
use reqwest::Url;
use serde_json::{json, Value};

use crate::config::Config;
use crate::hash::content_hash;
use crate::mlflow::{MlflowClient, Webhook};
use crate::receiver::event::SUBSCRIBED;

/// MLflow's limit on webhook names.
const MAX_NAME: usize = 63;

/// `m2s-<instance>-<namespace>`, or when that is longer than MLflow allows, its first part and
/// 8 hex characters of a hash of the whole (names stay distinct and stable).
pub(crate) fn webhook_name(instance: &str, namespace: &str) -> String {
    let full = format!("m2s-{instance}-{namespace}");
    if full.len() <= MAX_NAME {
        return full;
    }
    let hash = &content_hash(&json!(full))[..8];
    let head =
        full[..MAX_NAME - hash.len() - 1].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{hash}")
}

/// What is sent, without the secret.
pub(crate) fn request_body(name: &str, url: &str, config: &Config) -> Value {
    let events: Vec<Value> = SUBSCRIBED
        .iter()
        .map(|(entity, action)| json!({ "entity": entity, "action": action }))
        .collect();
    json!({
        "name": name,
        "url": url,
        "events": events,
        "description": format!(
            "m2s instance {:?}: syncs {} in namespace {:?} when registry events arrive",
            config.deploy.instance,
            config.deploy.target.resource().kinds(2),
            config.deploy.namespace
        ),
        "status": "ACTIVE",
    })
}

fn check_url(url: &str) -> Result<()> {
    let parsed = Url::parse(url).with_context(|| format!("--url {url:?} is not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!(
            "--url {url:?} must be an http:// or https:// URL with a host (MLflow delivers to it)"
        );
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        bail!(
            "--url must not contain credentials: MLflow authenticates deliveries with the secret"
        );
    }
    Ok(())
}

/// What `m2s webhook register` did, or with `--dry-run` would do.
pub(crate) enum Registration {
    /// Dry run: what would be sent (without the secret), and where.
    Planned { what: String, body: Value },
    /// Done: `verb` is "created" or "updated".
    Done {
        verb: &'static str,
        webhook: Webhook,
        events: Vec<String>,
    },
}

/// Creates or updates this instance's webhook in MLflow, delivering to `url`.
pub(crate) fn register(
    config: &Config,
    url: &str,
    dry_run: bool,
    secret: &str,
) -> Result<Registration> {
    check_url(url)?;
    let mlflow = MlflowClient::new(&config.mlflow)?;
    let name = webhook_name(&config.deploy.instance, &config.deploy.namespace);
    let existing = mlflow
        .webhooks_named(&name)
        .context("listing MLflow's webhooks; nothing was changed")?;
    let mut body = request_body(&name, url, config);
    let target = match existing.as_slice() {
        [] => None,
        [only] => Some(only),
        [first, ..] => {
            log::warn!(
                "{} webhooks are named {name:?}; updating the first ({})",
                existing.len(),
                first.webhook_id
            );
            Some(first)
        }
    };
    if dry_run {
        let what = match target {
            None => format!(
                "create webhook {name:?} (POST {})",
                mlflow.endpoint("webhooks")
            ),
            Some(w) => format!(
                "update webhook {name:?} (id {}, PATCH {})",
                w.webhook_id,
                mlflow.endpoint(&format!("webhooks/{}", w.webhook_id))
            ),
        };
        return Ok(Registration::Planned { what, body });
    }
    body["secret"] = Value::String(secret.to_string());
    let (verb, webhook) = match target {
        None => ("created", mlflow.create_webhook(&body)),
        Some(w) => ("updated", mlflow.update_webhook(&w.webhook_id, &body)),
    };
    let webhook = webhook.with_context(|| format!("registering webhook {name:?} in MLflow"))?;
    let events: Vec<String> = SUBSCRIBED
        .iter()
        .map(|(e, a)| format!("{}.{}", e.to_lowercase(), a.to_lowercase()))
        .collect();
    Ok(Registration::Done {
        verb,
        webhook,
        events,
    })
}

#[cfg(test)]
mod tests;
