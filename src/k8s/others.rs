//! Objects of a resource other than the target's own, in the same namespace: the canary objects
//! of a progressive rollout (Seldon Core 2's second Model and its Experiment).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use anyhow::{anyhow, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};

use super::{api_resource, delete_params, status_code, Applied, Kube, FIELD_MANAGER};
use crate::keys::is_owned;
use crate::targets::Resource;

/// Whose an object of another resource is.
#[derive(Debug, Clone)]
pub(crate) struct OtherObject {
    pub(crate) uid: Option<String>,
    labels: BTreeMap<String, String>,
}

impl OtherObject {
    pub(crate) fn owned_by(&self, instance: &str) -> bool {
        is_owned(Some(&self.labels), instance)
    }
}

impl Kube {
    fn other_api(&self, resource: &Resource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client(), self.namespace(), &api_resource(resource))
    }

    fn explain_other(
        &self,
        resource: &Resource,
        e: kube::Error,
        verb: &str,
        name: &str,
    ) -> anyhow::Error {
        let hint = match status_code(&e) {
            Some(403) => format!(
                ": forbidden — the identity m2s runs as needs RBAC verb {verb:?} on {} in namespace {:?}",
                resource.qualified_plural(),
                self.namespace()
            ),
            Some(404) => format!(
                ": not found — is the {} CRD ({}) installed?",
                resource.kind,
                resource.api_version()
            ),
            _ => String::new(),
        };
        anyhow!(e).context(format!(
            "{verb} {} {}/{name}{hint}",
            resource.kind,
            self.namespace()
        ))
    }

    /// The object `name` of `resource`, or `None`.
    pub(crate) async fn get_other(
        &self,
        resource: &Resource,
        name: &str,
    ) -> Result<Option<OtherObject>> {
        self.sending()?;
        match self.other_api(resource).get_metadata_opt(name).await {
            Ok(found) => Ok(found.map(|o| OtherObject {
                uid: o.metadata.uid,
                labels: o.metadata.labels.unwrap_or_default(),
            })),
            Err(e) => Err(self.explain_other(resource, e, "get", name)),
        }
    }

    /// Server-side apply of `body` to `name` of `resource` (the caller checked whose it is).
    pub(crate) async fn apply_other(
        &self,
        resource: &Resource,
        name: &str,
        body: serde_json::Value,
        dry_run: bool,
    ) -> Result<Applied> {
        let mut pp = PatchParams::apply(FIELD_MANAGER).force();
        pp.dry_run = dry_run;
        self.sending()?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.other_api(resource)
            .patch(name, &pp, &Patch::Apply(&body))
            .await
            .map(Applied::of)
            .map_err(|e| self.explain_other(resource, e, "patch", name))
    }

    /// Deletes `name` of `resource` if its UID is still `uid`; already gone is success.
    pub(crate) async fn delete_other(
        &self,
        resource: &Resource,
        name: &str,
        uid: Option<&str>,
        dry_run: bool,
    ) -> Result<()> {
        let dp = delete_params(uid, None, dry_run);
        self.sending()?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        match self.other_api(resource).delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.explain_other(resource, e, "delete", name)),
        }
    }
}
