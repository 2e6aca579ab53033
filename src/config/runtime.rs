//! The serving runtime's settings: the protocol Seldon Core 1 serves with
//! (`M2S_SELDON_PROTOCOL`), and what preflight checks versions against (`M2S_PREFLIGHT`,
//! `M2S_RUNTIME_MLFLOW_VERSION`).

use anyhow::{bail, Result};

use super::overlay::Overlay;
use super::{optional, DeployConfig, Inputs};
use crate::runtime::MlflowVersion;
use crate::targets::{Protocol, Target};

/// What preflight checks a version against before it is deployed (`M2S_PREFLIGHT`,
/// `M2S_RUNTIME_MLFLOW_VERSION`).
#[derive(Debug, Clone)]
pub(crate) struct PreflightConfig {
    pub(crate) enabled: bool,
    /// The MLflow the serving runtime loads models with.
    pub(crate) mlflow: MlflowVersion,
    /// That runtime and where its version comes from, as messages name it.
    pub(crate) runtime: String,
}

/// `M2S_SELDON_PROTOCOL`: one of the target's protocols; refused on a target without any, and
/// beside an overlay that sets `spec.protocol` itself.
pub(super) fn protocol(
    s: &Inputs,
    target: &dyn Target,
    overlay: Option<&Overlay>,
) -> Result<Option<Protocol>> {
    let Some(raw) = optional(&s.seldon_protocol) else {
        return Ok(None);
    };
    let known = target.protocols();
    if known.is_empty() {
        bail!(
            "M2S_SELDON_PROTOCOL has no counterpart on target {} ({}): it chooses the server of a Seldon Core 1 SeldonDeployment; remove it",
            target.id(),
            target.resource().kind
        );
    }
    let Some(protocol) = known.iter().find(|p| p.id().eq_ignore_ascii_case(&raw)) else {
        let ids: Vec<&str> = known.iter().map(|p| p.id()).collect();
        bail!(
            "M2S_SELDON_PROTOCOL {raw:?} is not one of {}",
            ids.join(", ")
        );
    };
    if overlay.is_some_and(|o| o.get("/spec/protocol").is_some()) {
        bail!("M2S_SELDON_PROTOCOL is set and the overlay (M2S_OVERLAY) sets spec.protocol too: set only M2S_SELDON_PROTOCOL");
    }
    Ok(Some(*protocol))
}

/// Preflight's settings: the runtime's MLflow is `M2S_RUNTIME_MLFLOW_VERSION`, else what the
/// target's stack ships for the protocol the objects get (M2S_SELDON_PROTOCOL, or the
/// overlay's `spec.protocol`).
pub(super) fn preflight_config(s: &Inputs, deploy: &DeployConfig) -> Result<PreflightConfig> {
    if let Some(raw) = optional(&s.runtime_mlflow_version) {
        let mlflow = MlflowVersion::parse(&raw)
            .map_err(|e| anyhow::anyhow!("M2S_RUNTIME_MLFLOW_VERSION: {e}"))?;
        return Ok(PreflightConfig {
            enabled: s.preflight,
            mlflow,
            runtime: format!(
                "the serving runtime with MLflow {mlflow} (M2S_RUNTIME_MLFLOW_VERSION)"
            ),
        });
    }
    let target = deploy.target;
    let protocol = deploy.protocol.or_else(|| {
        let written = deploy.overlay.as_ref()?.get("/spec/protocol")?.as_str()?;
        // Seldon Core 1 serves MLFLOW_SERVER with MLServer for protocol v2 (and kfserving).
        let v2 = matches!(written, "v2" | "kfserving");
        target
            .protocols()
            .iter()
            .copied()
            .find(|p| (*p == Protocol::V2) == v2)
    });
    let runtime = target.runtime(protocol);
    let mlflow = MlflowVersion::parse(runtime.mlflow).expect("targets name valid MLflow versions");
    Ok(PreflightConfig {
        enabled: s.preflight,
        mlflow,
        runtime: format!("{} with MLflow {}", runtime.server, runtime.mlflow),
    })
}
