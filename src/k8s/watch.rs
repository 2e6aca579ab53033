//! WATCH of the objects of one instance (`sync --wait`).

use anyhow::{anyhow, Result};
use futures::StreamExt;
use kube::api::{WatchEvent, WatchParams};

use super::{Applied, Kube};
use crate::keys::owned_selector;

/// One change a watch reported about an object of this instance.
#[derive(Debug, Clone)]
pub(crate) enum Watched {
    Changed { name: String, object: Applied },
    Deleted { name: String },
}

impl Kube {
    /// One WATCH of this instance's objects after `resource_version`, for at most `secs`
    /// seconds (kept below the request timeout, which bounds every read), each change handed
    /// to `each` until it returns false. An empty `resource_version` starts with the current
    /// state of every object. Returns the resourceVersion to watch on from, or `None` when the
    /// server no longer has that version (410 Gone).
    pub(crate) async fn watch_owned(
        &self,
        instance: &str,
        resource_version: &str,
        secs: u32,
        mut each: impl FnMut(Watched) -> bool,
    ) -> Result<Option<String>> {
        let wp = WatchParams::default()
            .labels(&owned_selector(instance))
            .timeout(secs.max(1));
        self.sending()?;
        let stream = self
            .api
            .watch(&wp, resource_version)
            .await
            .map_err(|e| self.explain(e, "watch", None))?;
        futures::pin_mut!(stream);
        let mut last = resource_version.to_string();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                // The server ends a watch by closing it; a cut connection ends it the same way.
                Err(e) => {
                    log::debug!("watch ended: {e}");
                    break;
                }
            };
            match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    let name = o.metadata.name.clone().unwrap_or_default();
                    let object = Applied::of(o);
                    if let Some(rv) = &object.resource_version {
                        last.clone_from(rv);
                    }
                    if !each(Watched::Changed { name, object }) {
                        break;
                    }
                }
                WatchEvent::Deleted(o) => {
                    if let Some(rv) = &o.metadata.resource_version {
                        last.clone_from(rv);
                    }
                    let name = o.metadata.name.unwrap_or_default();
                    if !each(Watched::Deleted { name }) {
                        break;
                    }
                }
                WatchEvent::Bookmark(b) => last = b.metadata.resource_version,
                WatchEvent::Error(status) if status.code == 410 => return Ok(None),
                WatchEvent::Error(status) => {
                    return Err(anyhow!(
                        "watch {}s in namespace {} (Kubernetes API at {}): {} ({})",
                        self.resource.kind,
                        self.namespace,
                        self.server,
                        status.message,
                        status.code
                    ))
                }
            }
        }
        Ok(Some(last))
    }
}
