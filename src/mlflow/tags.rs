//! Write-back's MLflow side: the tags of one version, and setting or deleting one of m2s's
//! own tags (`m2s.…`) on it. Nothing else is ever written.

use anyhow::{bail, Result};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{MlflowClient, Refused, Repeat, Tag};

/// Statuses a tag write handles itself: a refusal names the permission, a missing version or
/// tag needs no write.
const HANDLED: [StatusCode; 3] = [
    StatusCode::UNAUTHORIZED,
    StatusCode::FORBIDDEN,
    StatusCode::NOT_FOUND,
];

impl MlflowClient {
    /// The tags of version `version` of `model` whose keys start with `prefix`; `None` when
    /// the version is gone.
    pub(crate) fn version_tags(
        &self,
        model: &str,
        version: &str,
        prefix: &str,
    ) -> Result<Option<Vec<Tag>>> {
        Ok(self.model_version(model, version)?.map(|v| {
            v.tags
                .into_iter()
                .filter(|t| t.key.starts_with(prefix))
                .collect()
        }))
    }

    /// Sets tag `key` of version `version` of `model` (`model-versions/set-tag`).
    pub(crate) fn set_version_tag(
        &self,
        model: &str,
        version: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let body = json!({ "name": model, "version": version, "key": key, "value": value });
        self.write_tag(
            Method::POST,
            "model-versions/set-tag",
            &body,
            "set",
            model,
            version,
            key,
        )
    }

    /// Deletes tag `key` of version `version` of `model` (`model-versions/delete-tag`); a tag
    /// or version already gone is no error.
    pub(crate) fn delete_version_tag(&self, model: &str, version: &str, key: &str) -> Result<()> {
        let body = json!({ "name": model, "version": version, "key": key });
        self.write_tag(
            Method::DELETE,
            "model-versions/delete-tag",
            &body,
            "delete",
            model,
            version,
            key,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn write_tag(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        verb: &str,
        model: &str,
        version: &str,
        key: &str,
    ) -> Result<()> {
        // m2s writes only its own tags: a key outside them is a bug, never sent.
        if !key.starts_with("m2s.") {
            bail!("refusing to {verb} MLflow tag {key:?}: m2s writes only tags starting with m2s.");
        }
        // Setting a tag to a value, or deleting it, twice is the same as once.
        match self.request_outcome::<Value>(method, path, &[], Some(body), &HANDLED, Repeat::Safe)? {
            Ok(_) => Ok(()),
            Err(Refused { status, .. }) if status == StatusCode::NOT_FOUND => {
                log::debug!("{verb} tag {key} on version {version} of model {model:?}: not found (gone)");
                Ok(())
            }
            Err(Refused { url, status, detail }) => bail!(
                "MLflow at {url} refused to {verb} tag {key} on version {version} of model {model:?} ({status}{detail}): write-back needs the EDIT permission on registered model {model:?}"
            ),
        }
    }
}
