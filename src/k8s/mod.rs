//! Kubernetes side: list the objects m2s owns (page by page), apply and delete them. The
//! resource is the configured target's; nothing here knows a serving stack.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GetParams, GroupVersionKind, ListParams,
    ObjectList, Patch, PatchParams, Preconditions,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ListMeta, Request, TypeMeta};
use kube::{Client, Config, Resource};
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::desired::{LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY};
use crate::plan::{is_subset, ActualObject, Change};
use crate::targets::Resource as TargetResource;

mod listed;
mod watch;

use listed::ListedPage;
pub use listed::{Applied, Listed, Observed};
pub use watch::Watched;

pub const FIELD_MANAGER: &str = "m2s";
const LIST_PAGE: u32 = 500;

/// The kube-rs resource of a target.
pub fn api_resource(r: &TargetResource) -> ApiResource {
    let gvk = GroupVersionKind::gvk(r.group, r.version, r.kind);
    ApiResource::from_gvk_with_plural(&gvk, r.plural)
}

/// Label selector of the objects one m2s instance owns.
pub fn owned_selector(instance: &str) -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_INSTANCE}={instance}")
}

/// A client configured like kubectl: `--kubeconfig`, else `KUBECONFIG`/`~/.kube/config`, else
/// the in-cluster service account.
pub async fn client(kubeconfig: Option<&Path>, timeout: Duration) -> Result<Client> {
    Ok(connect(kubeconfig, timeout).await?.0)
}

/// [`client`], and the API server's URL (for error messages).
pub async fn connect(kubeconfig: Option<&Path>, timeout: Duration) -> Result<(Client, String)> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => Config::infer().await.with_context(|| {
            // Name the file when KUBECONFIG points at one: that is where to look.
            match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
                Some(v) => format!(
                    "loading Kubernetes configuration from KUBECONFIG={} (or the in-cluster service account)",
                    v.to_string_lossy()
                ),
                None => "loading Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster service account)".to_string(),
            }
        })?,
    };
    config.connect_timeout = Some(timeout.min(Duration::from_secs(10)));
    // Requests name m2s in the API server's audit log.
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("m2s/", env!("CARGO_PKG_VERSION"))),
    ));
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config)
        .with_context(|| format!("creating a Kubernetes client for {server}"))?;
    Ok((client, server))
}

pub struct Kube {
    api: Api<DynamicObject>,
    resource: TargetResource,
    namespace: String,
    server: String,
    requests: AtomicU64,
    writes: AtomicU64,
}

/// Whether a transport error is a timeout (connect, read or write).
fn timed_out(e: &kube::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl Kube {
    pub fn new(client: Client, namespace: &str, server: String, resource: TargetResource) -> Kube {
        Kube {
            api: Api::namespaced_with(client, namespace, &api_resource(&resource)),
            resource,
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
        let kind = self.resource.kind;
        let what = match name {
            Some(n) => format!("{kind} {}/{n}", self.namespace),
            None => format!("{kind}s in namespace {}", self.namespace),
        };
        // What RBAC checks: server-side apply is a PATCH, and one that creates the object is
        // also authorized as a create.
        let rbac = match verb {
            "create" => "verbs \"create\" and \"patch\"".to_string(),
            "update" => "verb \"patch\"".to_string(),
            other => format!("verb {other:?}"),
        };
        let hint = match status_code(&e) {
            Some(403) => format!(
                ": forbidden — the identity m2s runs as needs RBAC {rbac} on {} in namespace {:?}",
                self.resource.qualified_plural(),
                self.namespace
            ),
            Some(404) if name.is_none() || verb == "create" => format!(
                ": not found — is the namespace {:?} there and the {kind} CRD ({}) installed?",
                self.namespace,
                self.resource.api_version()
            ),
            Some(401) => ": unauthorized — the Kubernetes credentials were rejected".to_string(),
            Some(_) => String::new(),
            None if timed_out(&e) => format!(
                " (Kubernetes API at {}): timed out (M2S_REQUEST_TIMEOUT)",
                self.server
            ),
            None => format!(" (Kubernetes API at {})", self.server),
        };
        anyhow!(e).context(format!("{verb} {what}{hint}"))
    }

    /// Every page of a LIST, `LIST_PAGE` objects at a time, each item handed to `each` as its
    /// page arrives (one page is held at a time).
    async fn list_pages<T, F, Fut>(
        &self,
        base: ListParams,
        fetch: F,
        mut each: impl FnMut(T),
    ) -> Result<()>
    where
        T: Clone,
        F: Fn(ListParams) -> Fut,
        Fut: std::future::Future<Output = kube::Result<ObjectList<T>>>,
    {
        let mut token: Option<String> = None;
        loop {
            let mut lp = base.clone().limit(LIST_PAGE);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let page = fetch(lp).await.map_err(|e| self.explain(e, "list", None))?;
            page.items.into_iter().for_each(&mut each);
            // The last page has an empty continue token, not none.
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// The objects this instance owns, handed to `each` page by page.
    pub async fn list_owned(
        &self,
        instance: &str,
        mut each: impl FnMut(ActualObject),
    ) -> Result<()> {
        let base = ListParams::default().labels(&owned_selector(instance));
        self.list_pages(
            base,
            |lp| async move { self.list_lean::<IgnoredAny>(&lp).await },
            |o| each(ActualObject::from(o)),
        )
        .await
    }

    /// [`list_owned`](Kube::list_owned) with each object's generation, age and status, for
    /// `status` and write-back; `each` reduces the status as the page streams.
    pub async fn list_owned_with_status(
        &self,
        instance: &str,
        mut each: impl FnMut(ActualObject, Observed),
    ) -> Result<()> {
        let base = ListParams::default().labels(&owned_selector(instance));
        self.list_pages(
            base,
            |lp| async move { self.list_lean::<Value>(&lp).await },
            |mut o: Listed<Value>| {
                let observed = Observed {
                    generation: o.metadata.generation,
                    created: o.metadata.creation_timestamp.take(),
                    status: o.status.take(),
                };
                each(ActualObject::from(o), observed)
            },
        )
        .await
    }

    /// One LIST page, read into [`Listed`]: kube's `ObjectList` and `DynamicObject` buffer a
    /// whole page in serde's `flatten` form first (about 30 KB an object, managedFields
    /// included), which made the list the peak of a run's memory.
    async fn list_lean<S>(&self, lp: &ListParams) -> kube::Result<ObjectList<Listed<S>>>
    where
        S: serde::de::DeserializeOwned + Default + Clone,
    {
        let url = DynamicObject::url_path(&api_resource(&self.resource), Some(&self.namespace));
        let req = Request::new(url)
            .list(lp)
            .map_err(kube::Error::BuildRequest)?;
        let page: ListedPage<S> = self.api.clone().into_client().request(req).await?;
        Ok(ObjectList {
            types: TypeMeta::default(),
            metadata: ListMeta {
                continue_: page.metadata.continue_,
                ..ListMeta::default()
            },
            items: page.items,
        })
    }

    /// The object named `name`, read like a listed one (metadata and spec only); `None` when
    /// there is none. Scoped syncs read their few candidate names this way instead of a LIST.
    pub async fn get_lean(&self, name: &str) -> Result<Option<ActualObject>> {
        let url = DynamicObject::url_path(&api_resource(&self.resource), Some(&self.namespace));
        let req = Request::new(url)
            .get(name, &GetParams::default())
            .map_err(|e| self.explain(kube::Error::BuildRequest(e), "get", Some(name)))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        match self.api.clone().into_client().request::<Listed>(req).await {
            Ok(o) => Ok(Some(ActualObject::from(o))),
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.explain(e, "get", Some(name))),
        }
    }

    /// Which of `names` are taken by objects in the namespace that this instance does not own
    /// (metadata only), to keep m2s from taking them over.
    pub async fn foreign_names(
        &self,
        instance: &str,
        names: &BTreeSet<&str>,
    ) -> Result<BTreeSet<String>> {
        let mut taken = BTreeSet::new();
        self.list_pages(
            ListParams::default(),
            |lp| async move { self.api.list_metadata(&lp).await },
            |o| {
                let name = o.metadata.name.unwrap_or_default();
                if names.contains(name.as_str()) && !is_owned(o.metadata.labels.as_ref(), instance)
                {
                    taken.insert(name);
                }
            },
        )
        .await?;
        Ok(taken)
    }

    /// Server-side apply of a create or update with the rendered `body`. An update carries the
    /// listed resourceVersion, so an object changed since the list is not overwritten blindly:
    /// on that conflict the object is read again and accepted if it already is as desired
    /// (another m2s run did it).
    pub async fn apply(&self, change: &Change, mut body: Value, dry_run: bool) -> Result<Applied> {
        if let Some(rv) = change.resource_version() {
            body["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        }
        let mut pp = PatchParams::apply(FIELD_MANAGER).force();
        pp.dry_run = dry_run;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
        let verb = if change.resource_version().is_some() {
            "update"
        } else {
            "create"
        };
        match self
            .api
            .patch(&change.name, &pp, &Patch::Apply(&body))
            .await
        {
            Ok(applied) => Ok(Applied::of(applied)),
            Err(e) if status_code(&e) == Some(409) => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                let current = self
                    .api
                    .get_opt(&change.name)
                    .await
                    .map_err(|e| self.explain(e, "get", Some(&change.name)))?;
                let already = current.filter(|c| {
                    let c = serde_json::to_value(c).unwrap_or_default();
                    is_subset(&body["metadata"]["labels"], &c["metadata"]["labels"])
                        && is_subset(
                            &body["metadata"]["annotations"],
                            &c["metadata"]["annotations"],
                        )
                        && is_subset(&body["spec"], &c["spec"])
                });
                if let Some(current) = already {
                    log::info!("{}: already as desired (written concurrently)", change.name);
                    Ok(Applied::of(current))
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
                uid: change.uid().map(String::from),
                resource_version: change.resource_version().map(String::from),
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

impl Kube {
    /// The client, for the other resources of a run (Events).
    pub fn client(&self) -> Client {
        self.api.clone().into_client()
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn resource(&self) -> TargetResource {
        self.resource
    }
}

/// Whether labels carry [`owned_selector`] for `instance`.
pub fn is_owned(labels: Option<&BTreeMap<String, String>>, instance: &str) -> bool {
    labels.is_some_and(|l| {
        l.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
            && l.get(LABEL_INSTANCE).map(String::as_str) == Some(instance)
    })
}
