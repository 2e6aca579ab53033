//! `m2s webhook register`: create or update this instance's webhook in MLflow. Idempotent: the
//! webhook is found by a name derived from the instance and the namespace, so running it again
//! (or from every release) updates the same webhook. The secret is sent, never printed.

use anyhow::{bail, Context, Result};
use reqwest::Url;
use serde_json::{json, Value};

use super::event::SUBSCRIBED;
use crate::cli::RegisterArgs;
use crate::config::Config;
use crate::desired::content_hash;
use crate::mlflow::MlflowClient;

/// MLflow's limit on webhook names.
const MAX_NAME: usize = 63;

/// `m2s-<instance>-<namespace>`, or when that is longer than MLflow allows, its first part and
/// 8 hex characters of a hash of the whole (names stay distinct and stable).
pub fn webhook_name(instance: &str, namespace: &str) -> String {
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
pub fn request_body(name: &str, url: &str, config: &Config) -> Value {
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

pub fn register(config: &Config, args: &RegisterArgs, secret: &str) -> Result<()> {
    check_url(&args.url)?;
    let mlflow = MlflowClient::new(&config.mlflow)?;
    let name = webhook_name(&config.deploy.instance, &config.deploy.namespace);
    let existing = mlflow
        .webhooks_named(&name)
        .context("listing MLflow's webhooks; nothing was changed")?;
    let mut body = request_body(&name, &args.url, config);
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
    if args.dry_run {
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
        println!("Would {what} with:");
        println!("{}", serde_json::to_string_pretty(&body)?);
        println!("and \"secret\" set to M2S_WEBHOOK_SECRET (not shown). Nothing was changed.");
        return Ok(());
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
    println!(
        "{verb} webhook {name:?} (id {}): {} → {} ({})",
        webhook.webhook_id,
        events.join(", "),
        webhook.url,
        webhook.status.as_deref().unwrap_or("ACTIVE")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_mlflow_webhook_names() {
        assert_eq!(webhook_name("m2s", "models"), "m2s-m2s-models");
        let long = webhook_name(&"i".repeat(63), &"n".repeat(63));
        assert_eq!(long.len(), 63, "{long}");
        assert_ne!(long, webhook_name(&"i".repeat(63), &"n".repeat(62)));
        assert!(long.starts_with("m2s-iii"));
        for name in [long, webhook_name("a.b_c", "ns")] {
            let b = name.as_bytes();
            assert!(b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric());
            assert!(b
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c)));
        }
    }

    #[test]
    fn urls_must_be_http_without_credentials() {
        check_url("http://m2s.m2s-system.svc:8080/webhook").unwrap();
        check_url("https://m2s.example/webhook").unwrap();
        for bad in [
            "m2s:8080",
            "ftp://x/y",
            "http://user:pw@x/webhook",
            "not a url",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
