//! Kubernetes side: list the SeldonDeployments m2s owns, apply and delete them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, Preconditions,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

use crate::desired::{LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY};
use crate::plan::{is_subset, ActualObject, Change};

pub const FIELD_MANAGER: &str = "m2s";
pub const RESOURCE: &str = "seldondeployments.machinelearning.seldon.io";
const LIST_PAGE: u32 = 500;

pub fn seldon_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("machinelearning.seldon.io", "v1", "SeldonDeployment");
    ApiResource::from_gvk_with_plural(&gvk, "seldondeployments")
}

/// Label selector of the objects one m2s instance owns.
pub fn owned_selector(instance: &str) -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_INSTANCE}={instance}")
}

/// A client configured like kubectl: `--kubeconfig`, else `KUBECONFIG`/`~/.kube/config`, else
/// the in-cluster service account.
pub async fn client(kubeconfig: Option<&Path>, timeout: Duration) -> Result<Client> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => Config::infer().await.context(
            "loading Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster service account)",
        )?,
    };
    config.connect_timeout = Some(timeout.min(Duration::from_secs(10)));
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    let server = config.cluster_url.to_string();
    Client::try_from(config).with_context(|| format!("creating a Kubernetes client for {server}"))
}

pub struct Kube {
    api: Api<DynamicObject>,
    namespace: String,
    server: String,
    requests: AtomicU64,
    writes: AtomicU64,
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl Kube {
    pub fn new(client: Client, namespace: &str, server: String) -> Kube {
        Kube {
            api: Api::namespaced_with(client, namespace, &seldon_resource()),
            namespace: namespace.to_string(),
            server,
            requests: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn writes_sent(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Explains an API error for `verb`, naming the object and what to check.
    fn explain(&self, e: kube::Error, verb: &str, name: Option<&str>) -> anyhow::Error {
        let what = match name {
            Some(n) => format!("SeldonDeployment {}/{n}", self.namespace),
            None => format!("SeldonDeployments in namespace {}", self.namespace),
        };
        let hint = match status_code(&e) {
            Some(403) => format!(
                ": forbidden — the identity m2s runs as needs RBAC verb {verb:?} on {RESOURCE} in namespace {:?}",
                self.namespace
            ),
            Some(404) if name.is_none() || verb == "create" => format!(
                ": not found — is the namespace {:?} there and the SeldonDeployment CRD (machinelearning.seldon.io/v1) installed?",
                self.namespace
            ),
            Some(401) => ": unauthorized — the Kubernetes credentials were rejected".to_string(),
            Some(_) => String::new(),
            None => format!(" (Kubernetes API at {})", self.server),
        };
        anyhow!(e).context(format!("{verb} {what}{hint}"))
    }

    /// The SeldonDeployments this instance owns, paginated.
    pub async fn list_owned(&self, instance: &str) -> Result<Vec<ActualObject>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default()
                .labels(&owned_selector(instance))
                .limit(LIST_PAGE);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let page = self
                .api
                .list(&lp)
                .await
                .map_err(|e| self.explain(e, "list", None))?;
            out.extend(page.items.into_iter().map(to_actual));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Names of every SeldonDeployment in the namespace (metadata only), to keep m2s from
    /// taking over objects it does not own.
    pub async fn all_names(&self) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(LIST_PAGE);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let page = self
                .api
                .list_metadata(&lp)
                .await
                .map_err(|e| self.explain(e, "list", None))?;
            out.extend(page.items.into_iter().filter_map(|o| o.metadata.name));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(out)
    }

    /// Server-side apply of a create or update. An update carries the listed resourceVersion,
    /// so an object changed since the list is not overwritten blindly: on that conflict the
    /// object is read again and accepted if it already is as desired (another m2s run did it).
    pub async fn apply(&self, change: &Change, dry_run: bool) -> Result<()> {
        let mut body = change.object.clone().context("apply without an object")?;
        if let Some(rv) = &change.resource_version {
            body["metadata"]["resourceVersion"] = Value::String(rv.clone());
        }
        let mut pp = PatchParams::apply(FIELD_MANAGER).force();
        pp.dry_run = dry_run;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
        let verb = if change.resource_version.is_some() {
            "update"
        } else {
            "create"
        };
        match self
            .api
            .patch(&change.name, &pp, &Patch::Apply(&body))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(409) => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                let current = self
                    .api
                    .get_opt(&change.name)
                    .await
                    .map_err(|e| self.explain(e, "get", Some(&change.name)))?;
                let wanted = change.object.as_ref().expect("checked above");
                let already = current.as_ref().is_some_and(|c| {
                    let c = serde_json::to_value(c).unwrap_or_default();
                    is_subset(&wanted["metadata"]["labels"], &c["metadata"]["labels"])
                        && is_subset(
                            &wanted["metadata"]["annotations"],
                            &c["metadata"]["annotations"],
                        )
                        && is_subset(&wanted["spec"], &c["spec"])
                });
                if already {
                    log::info!("{}: already as desired (written concurrently)", change.name);
                    Ok(())
                } else {
                    Err(self.explain(e, verb, Some(&change.name)).context(
                        "the object changed since m2s listed it; not overwritten (the next run will retry)",
                    ))
                }
            }
            Err(e) => Err(self.explain(e, verb, Some(&change.name))),
        }
    }

    /// Deletes with the listed UID and resourceVersion as preconditions, so a re-created or
    /// changed object of the same name is never deleted by mistake. Already gone is success.
    pub async fn delete(&self, change: &Change, dry_run: bool) -> Result<()> {
        let dp = DeleteParams {
            dry_run,
            preconditions: Some(Preconditions {
                uid: change.uid.clone(),
                resource_version: change.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
        match self.api.delete(&change.name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => {
                log::info!("{}: already deleted", change.name);
                Ok(())
            }
            Err(e) if status_code(&e) == Some(409) => Err(self.explain(e, "delete", Some(&change.name)).context(
                "the object was changed or re-created since m2s listed it; not deleted (the next run decides again)",
            )),
            Err(e) => Err(self.explain(e, "delete", Some(&change.name))),
        }
    }
}

fn to_actual(o: DynamicObject) -> ActualObject {
    let meta = o.metadata;
    ActualObject {
        name: meta.name.unwrap_or_default(),
        uid: meta.uid,
        resource_version: meta.resource_version,
        labels: meta.labels.unwrap_or_default(),
        annotations: meta
            .annotations
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        spec: o.data.get("spec").cloned().unwrap_or(Value::Null),
    }
}
