//! Kubernetes side: list the objects m2s owns (page by page), apply and delete them. The
//! resource is the configured target's; nothing here knows a serving stack.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GetParams, GroupVersionKind, ListParams,
    ObjectList, Patch, PatchParams, Preconditions,
};
use kube::config::Kubeconfig;
use kube::core::{ListMeta, Request, TypeMeta};
use kube::{Client, Config, Resource};
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::cancel::{Cancel, Cancelled};
use crate::json::is_subset;
use crate::keys::owned_selector;
use crate::targets::Resource as TargetResource;

mod events;
mod kubeconfig;
mod lease;
mod listed;
mod others;
mod watch;

pub(crate) use events::{Note, Reason, Recorder};
pub(crate) use lease::LeaseApi;
pub(crate) use listed::{Applied, ListedObject, ObservedStatus, RawStatus};
use listed::{Listed, ListedPage};
pub(crate) use watch::Watched;

pub(crate) const FIELD_MANAGER: &str = "m2s";
const LIST_PAGE: u32 = 500;

/// Whether an object's annotations tie it to a progressive rollout (its status is then read).
fn rollout_related(annotations: &Option<std::collections::BTreeMap<String, String>>) -> bool {
    annotations.as_ref().is_some_and(|a| {
        a.contains_key(crate::keys::ANN_ROLLOUT) || a.contains_key(crate::keys::ANN_CANARY_OF)
    })
}

/// The kube-rs resource of a target.
pub(crate) fn api_resource(r: &TargetResource) -> ApiResource {
    let gvk = GroupVersionKind::gvk(r.group, r.version, r.kind);
    ApiResource::from_gvk_with_plural(&gvk, r.plural)
}

/// A client configured like kubectl (`--kubeconfig`, else `KUBECONFIG`/`~/.kube/config`, else
/// the in-cluster service account; `--context` picks a context other than the current one),
/// and the API server's URL (for error messages).
pub(crate) async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    timeout: Duration,
) -> Result<(Client, String)> {
    let mut config = match (kubeconfig, context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            let options = kubeconfig::options(&kc, context, &path.display().to_string())?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        (None, Some(context)) => kubeconfig::with_context(context).await?,
        (None, None) => Config::infer().await.with_context(|| {
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

pub(crate) struct Kube {
    api: Api<DynamicObject>,
    resource: TargetResource,
    namespace: String,
    server: String,
    requests: AtomicU64,
    writes: AtomicU64,
    /// Set when the sync this client serves is abandoned: no more requests are sent.
    cancel: Option<Cancel>,
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
    pub(crate) fn new(
        client: Client,
        namespace: &str,
        server: String,
        resource: TargetResource,
    ) -> Kube {
        Kube {
            api: Api::namespaced_with(client, namespace, &api_resource(&resource)),
            resource,
            namespace: namespace.to_string(),
            server,
            requests: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            cancel: None,
        }
    }

    /// A client for one sync: the same connections, its own counts, and `cancel`, which stops
    /// it sending once set.
    pub(crate) fn for_sync(&self, cancel: Cancel) -> Kube {
        Kube {
            api: self.api.clone(),
            resource: self.resource,
            namespace: self.namespace.clone(),
            server: self.server.clone(),
            requests: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            cancel: Some(cancel),
        }
    }

    /// Counts a request about to be sent; an error when the sync was abandoned.
    fn sending(&self) -> Result<()> {
        if self.is_cancelled() {
            return Err(anyhow!(Cancelled));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(Cancel::is_cancelled)
    }

    pub(crate) fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn writes_sent(&self) -> u64 {
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
    /// page arrives (one page is held at a time). Returns the collection's resourceVersion (of
    /// the first page: the pages are one snapshot), empty when the server sent none.
    async fn list_pages<T, F, Fut>(
        &self,
        base: ListParams,
        fetch: F,
        mut each: impl FnMut(T),
    ) -> Result<String>
    where
        T: Clone,
        F: Fn(ListParams) -> Fut,
        Fut: std::future::Future<Output = kube::Result<ObjectList<T>>>,
    {
        let mut token: Option<String> = None;
        let mut version: Option<String> = None;
        loop {
            let mut lp = base.clone().limit(LIST_PAGE);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            self.sending()?;
            let page = fetch(lp).await.map_err(|e| self.explain(e, "list", None))?;
            if version.is_none() {
                version = page.metadata.resource_version.clone();
            }
            page.items.into_iter().for_each(&mut each);
            // The last page has an empty continue token, not none.
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(version.unwrap_or_default()),
            }
        }
    }

    /// The objects this instance owns, handed to `each` page by page; the LIST's
    /// resourceVersion.
    pub(crate) async fn list_owned(
        &self,
        instance: &str,
        mut each: impl FnMut(ListedObject),
    ) -> Result<String> {
        let base = ListParams::default().labels(&owned_selector(instance));
        self.list_pages(
            base,
            |lp| async move { self.list_lean::<RawStatus>(&lp).await },
            |o| each(ListedObject::from(o)),
        )
        .await
    }

    /// The models of this instance's objects in a progressive rollout (labelled
    /// `m2s.io/rollout=canary`).
    pub(crate) async fn rollout_models(&self, instance: &str) -> Result<BTreeSet<String>> {
        let selector = format!(
            "{},{}=canary",
            owned_selector(instance),
            crate::keys::LABEL_ROLLOUT
        );
        let mut models = BTreeSet::new();
        self.list_pages(
            ListParams::default().labels(&selector),
            |lp| async move { self.list_lean::<IgnoredAny>(&lp).await },
            |o| {
                let o = ListedObject::with_status(o, None);
                if let Some(m) = o.annotation(crate::keys::ANN_MODEL_NAME) {
                    models.insert(m.to_string());
                }
            },
        )
        .await?;
        Ok(models)
    }

    /// [`list_owned`](Kube::list_owned) with each object's generation, age and status, for
    /// `status` and write-back; `each` reduces the status as the page streams.
    pub(crate) async fn list_owned_with_status(
        &self,
        instance: &str,
        mut each: impl FnMut(ListedObject, ObservedStatus),
    ) -> Result<String> {
        let base = ListParams::default().labels(&owned_selector(instance));
        self.list_pages(
            base,
            |lp| async move { self.list_lean::<Value>(&lp).await },
            |mut o: Listed<Value>| {
                // The plan reads the status of the objects of a rollout only.
                let raw = rollout_related(&o.metadata.annotations)
                    .then(|| serde_json::value::to_raw_value(&o.status).ok())
                    .flatten();
                let observed = ObservedStatus {
                    generation: o.metadata.generation,
                    created: o.metadata.creation_timestamp.take(),
                    status: o.status.take(),
                };
                each(ListedObject::with_status(o, raw), observed)
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
                resource_version: page.metadata.resource_version,
                ..ListMeta::default()
            },
            items: page.items,
        })
    }

    /// The object named `name`, read like a listed one; `None` when
    /// there is none. Scoped syncs read their few candidate names this way instead of a LIST.
    pub(crate) async fn get_lean(&self, name: &str) -> Result<Option<ListedObject>> {
        let url = DynamicObject::url_path(&api_resource(&self.resource), Some(&self.namespace));
        let req = Request::new(url)
            .get(name, &GetParams::default())
            .map_err(|e| self.explain(kube::Error::BuildRequest(e), "get", Some(name)))?;
        self.sending()?;
        match self
            .api
            .clone()
            .into_client()
            .request::<Listed<RawStatus>>(req)
            .await
        {
            Ok(o) => Ok(Some(ListedObject::from(o))),
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.explain(e, "get", Some(name))),
        }
    }

    /// Which of `names` are taken by objects in the namespace that this instance does not own
    /// (metadata only), to keep m2s from taking them over.
    pub(crate) async fn foreign_names(
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
                if names.contains(name.as_str())
                    && !crate::keys::is_owned(o.metadata.labels.as_ref(), instance)
                {
                    taken.insert(name);
                }
            },
        )
        .await?;
        Ok(taken)
    }

    /// The resourceVersion of this instance's objects now (a LIST of at most one item): where a
    /// WATCH starts that misses no later change.
    pub(crate) async fn collection_version(&self, instance: &str) -> Result<String> {
        let lp = ListParams::default()
            .labels(&owned_selector(instance))
            .limit(1);
        self.sending()?;
        let page = self
            .list_lean::<IgnoredAny>(&lp)
            .await
            .map_err(|e| self.explain(e, "list", None))?;
        Ok(page.metadata.resource_version.unwrap_or_default())
    }

    /// Server-side apply of `body` to the object `name`: a create without `resource_version`,
    /// an update with the resourceVersion m2s read, so that an object changed since is not
    /// overwritten blindly: on that conflict the object is read again and accepted if it
    /// already is as `body` says (another m2s run wrote it).
    pub(crate) async fn apply(
        &self,
        name: &str,
        resource_version: Option<&str>,
        mut body: Value,
        dry_run: bool,
    ) -> Result<Applied> {
        if let Some(rv) = resource_version {
            body["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        }
        let mut pp = PatchParams::apply(FIELD_MANAGER).force();
        pp.dry_run = dry_run;
        self.sending()?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        let verb = if resource_version.is_some() {
            "update"
        } else {
            "create"
        };
        match self.api.patch(name, &pp, &Patch::Apply(&body)).await {
            Ok(applied) => Ok(Applied::of(applied)),
            Err(e) if status_code(&e) == Some(409) => {
                self.sending()?;
                let current = self
                    .api
                    .get_opt(name)
                    .await
                    .map_err(|e| self.explain(e, "get", Some(name)))?;
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
                    log::info!("{name}: already as desired (written concurrently)");
                    Ok(Applied::of(current))
                } else {
                    Err(self.explain(e, verb, Some(name)).context(
                        "the object changed since m2s listed it; not overwritten (the next run will retry)",
                    ))
                }
            }
            Err(e) => Err(self.explain(e, verb, Some(name))),
        }
    }

    /// Deletes `name` with the UID and resourceVersion m2s read as preconditions, so a
    /// re-created or changed object of the same name is never deleted by mistake. Already gone
    /// is success.
    pub(crate) async fn delete(
        &self,
        name: &str,
        uid: Option<&str>,
        resource_version: Option<&str>,
        dry_run: bool,
    ) -> Result<()> {
        let dp = delete_params(uid, resource_version, dry_run);
        self.sending()?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        match self.api.delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => {
                log::info!("{name}: already deleted");
                Ok(())
            }
            Err(e) if status_code(&e) == Some(409) => Err(self.explain(e, "delete", Some(name)).context(
                "the object was changed or re-created since m2s listed it; not deleted (the next run decides again)",
            )),
            Err(e) => Err(self.explain(e, "delete", Some(name))),
        }
    }
}

/// A delete that happens only while the object is the one m2s read: its UID (and, when
/// given, its resourceVersion) as preconditions.
fn delete_params(uid: Option<&str>, resource_version: Option<&str>, dry_run: bool) -> DeleteParams {
    DeleteParams {
        dry_run,
        preconditions: Some(Preconditions {
            uid: uid.map(String::from),
            resource_version: resource_version.map(String::from),
        }),
        ..DeleteParams::default()
    }
}

impl Kube {
    /// The client, for the other resources of a run (Events).
    pub(crate) fn client(&self) -> Client {
        self.api.clone().into_client()
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn resource(&self) -> TargetResource {
        self.resource
    }
}
