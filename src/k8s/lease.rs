//! The `coordination.k8s.io/v1` Lease the receiver's replicas elect their leader with: read,
//! created, and replaced with the resourceVersion it was read at (so two replicas cannot both
//! take it: the second write is a 409). RBAC: get, create, update on leases.

use anyhow::{anyhow, Context, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::Client;

/// A write that lost to another replica's (409): nothing was changed.
#[derive(Debug)]
pub(crate) struct Taken;

/// One named Lease.
pub(crate) struct LeaseApi {
    api: Api<Lease>,
    namespace: String,
    name: String,
}

impl LeaseApi {
    pub(crate) fn new(client: Client, namespace: &str, name: &str) -> LeaseApi {
        LeaseApi {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn explain(&self, e: kube::Error, verb: &str) -> anyhow::Error {
        let hint = match &e {
            kube::Error::Api(s) if s.code == 403 => format!(
                ": forbidden — the receiver needs RBAC verbs \"get\", \"create\" and \"update\" on leases.coordination.k8s.io (named {:?}) in namespace {:?} (or M2S_LEADER_ELECTION=false for a single replica)",
                self.name, self.namespace
            ),
            _ => String::new(),
        };
        anyhow!(e).context(format!(
            "{verb} Lease {}/{}{hint}",
            self.namespace, self.name
        ))
    }

    /// The Lease, or `None` when there is none.
    pub(crate) async fn get(&self) -> Result<Option<Lease>> {
        self.api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.explain(e, "get"))
    }

    /// Creates the Lease with `spec`; `Err(Taken)` when another replica created it first.
    pub(crate) async fn create(&self, spec: LeaseSpec) -> Result<Result<Lease, Taken>> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(l) => Ok(Ok(l)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Err(Taken)),
            Err(e) => Err(self.explain(e, "create")),
        }
    }

    /// Replaces the Lease as read (`lease` keeps the resourceVersion it was read at) with
    /// `spec`; `Err(Taken)` when it changed since.
    pub(crate) async fn replace(
        &self,
        lease: &Lease,
        spec: LeaseSpec,
    ) -> Result<Result<Lease, Taken>> {
        let mut next = lease.clone();
        next.spec = Some(spec);
        next.metadata.managed_fields = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(l) => Ok(Ok(l)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Err(Taken)),
            Err(e) => {
                Err(self.explain(e, "update")).context("the Lease changed or could not be written")
            }
        }
    }
}
