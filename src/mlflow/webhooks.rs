//! MLflow's webhook API (MLflow 3.3+): list, create, update, delete. Managing webhooks needs an
//! admin on servers with authentication. A create is sent once ([`Repeat::Once`]): MLflow does
//! not make names unique, so a create repeated after a lost answer would make a second webhook.

use std::collections::HashSet;

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{MlflowClient, Repeat, MAX_PAGES};

/// A webhook as MLflow lists it (its secret is never returned).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct Webhook {
    pub(crate) webhook_id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WebhooksPage {
    #[serde(default)]
    webhooks: Vec<Webhook>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WebhookResponse {
    webhook: Webhook,
}

impl MlflowClient {
    /// The webhooks named `name` (MLflow does not make names unique), all pages read.
    pub(crate) fn webhooks_named(&self, name: &str) -> Result<Vec<Webhook>> {
        let mut found = Vec::new();
        let mut seen_tokens = HashSet::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("max_results", "1000")];
            if let Some(t) = &token {
                query.push(("page_token", t.as_str()));
            }
            let page: WebhooksPage = self.get_json("webhooks", &query)?.with_context(|| {
                format!(
                    "MLflow at {} has no webhook API (404): webhooks need MLflow 3.3 or later with a SQL backend",
                    self.endpoint("webhooks")
                )
            })?;
            found.extend(page.webhooks.into_iter().filter(|w| w.name == name));
            match page.next_page_token.filter(|t| !t.is_empty()) {
                None => return Ok(found),
                Some(next) if seen_tokens.insert(next.clone()) => token = Some(next),
                Some(_) => bail!(
                    "MLflow at {} returned a page token it had returned before",
                    self.endpoint("webhooks")
                ),
            }
        }
        bail!(
            "MLflow at {} returned too many pages of webhooks",
            self.endpoint("webhooks")
        )
    }

    /// Creates a webhook from `body` (name, url, events, secret, ...). Not retried after a
    /// failure MLflow may have acted on: that is an [`Unanswered`](super::Unanswered) error.
    pub(crate) fn create_webhook(&self, body: &Value) -> Result<Webhook> {
        self.send_webhook(Method::POST, "webhooks".to_string(), body, Repeat::Once)
    }

    /// Updates webhook `id` with the fields of `body`.
    pub(crate) fn update_webhook(&self, id: &str, body: &Value) -> Result<Webhook> {
        self.send_webhook(Method::PATCH, format!("webhooks/{id}"), body, Repeat::Safe)
    }

    /// Deletes webhook `id`; one already gone is no error.
    pub(crate) fn delete_webhook(&self, id: &str) -> Result<()> {
        let _: Option<Value> = self.request_json(
            Method::DELETE,
            &format!("webhooks/{id}"),
            &[],
            None,
            &[reqwest::StatusCode::NOT_FOUND],
            Repeat::Safe,
        )?;
        Ok(())
    }

    fn send_webhook(
        &self,
        method: Method,
        path: String,
        body: &Value,
        repeat: Repeat,
    ) -> Result<Webhook> {
        let r: Option<WebhookResponse> =
            self.request_json(method, &path, &[], Some(body), &[], repeat)?;
        r.map(|r| r.webhook).with_context(|| {
            format!(
                "MLflow at {} answered without the webhook",
                self.endpoint(&path)
            )
        })
    }
}
