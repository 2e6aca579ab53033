//! `m2s webhook register`: create or update this instance's webhook in MLflow. Idempotent: the
//! webhook is found by a name derived from the instance and the namespace, so running it again
//! (or from every release) updates the same webhook. The secret is sent, never printed.

use anyhow::{bail, Context, Result};
use reqwest::Url;
use serde_json::{json, Value};

use crate::config::Config;
use crate::hash::content_hash;
use crate::mlflow::{MlflowClient, Unanswered, Webhook};
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
    /// Done: the one webhook of this instance now.
    Done {
        /// "created" or "updated".
        verb: &'static str,
        webhook: Webhook,
        events: Vec<String>,
        /// The create's answer was lost, and the webhook was found by its name.
        found_after_lost_answer: bool,
        /// Ids of other webhooks of the same name, deleted (an earlier lost answer, a race).
        removed: Vec<String>,
    },
}

/// How often a create whose answer was lost is looked for and, when MLflow has not stored it,
/// sent again.
const CREATE_ATTEMPTS: u32 = 3;

/// Creates or updates this instance's webhook in MLflow, delivering to `url`, and leaves
/// exactly one webhook of its name, whatever failed on the way: a create whose answer is lost is
/// looked for by name before it is sent again, and duplicates are deleted.
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
    if dry_run {
        let what = match existing.first() {
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
    let registering = || format!("registering webhook {name:?} in MLflow");
    let (verb, webhook, found_after_lost_answer) = match existing.first() {
        Some(w) => (
            "updated",
            mlflow
                .update_webhook(&w.webhook_id, &body)
                .with_context(registering)?,
            false,
        ),
        None => {
            let (webhook, lost) = create_once(&mlflow, &name, &body).with_context(registering)?;
            ("created", webhook, lost)
        }
    };
    // Exactly one webhook of this name: any other (from an earlier lost answer, or a register
    // run at the same moment) is deleted.
    let mut removed = Vec::new();
    for other in mlflow
        .webhooks_named(&name)
        .with_context(|| format!("listing MLflow's webhooks after registering {name:?}"))?
        .into_iter()
        .filter(|w| w.webhook_id != webhook.webhook_id)
    {
        mlflow
            .delete_webhook(&other.webhook_id)
            .with_context(|| format!("deleting the duplicate webhook {}", other.webhook_id))?;
        removed.push(other.webhook_id);
    }
    let events: Vec<String> = SUBSCRIBED
        .iter()
        .map(|(e, a)| format!("{}.{}", e.to_lowercase(), a.to_lowercase()))
        .collect();
    Ok(Registration::Done {
        verb,
        webhook,
        events,
        found_after_lost_answer,
        removed,
    })
}

/// Creates the webhook `name`; when MLflow's answer is lost (it may have stored it), looks for it
/// by name first and creates it again only when it is not there. The webhook, and whether it
/// was found after a lost answer (it is then updated with `body`, so that its secret and URL
/// are the ones asked for).
fn create_once(mlflow: &MlflowClient, name: &str, body: &Value) -> Result<(Webhook, bool)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let lost = match mlflow.create_webhook(body) {
            Ok(w) => return Ok((w, false)),
            Err(e) => e.downcast::<Unanswered>()?,
        };
        log::warn!("creating webhook {name:?}: {lost}; looking for it before creating it again");
        if let Some(stored) = mlflow.webhooks_named(name)?.into_iter().next() {
            let updated = mlflow.update_webhook(&stored.webhook_id, body)?;
            return Ok((updated, true));
        }
        if attempt >= CREATE_ATTEMPTS {
            return Err(anyhow::anyhow!(lost).context(format!(
                "no answer to {attempt} creates, and MLflow lists no webhook named {name:?}"
            )));
        }
    }
}

#[cfg(test)]
mod tests;
