//! The one-shot commands: `sync`, `plan`, `status` and `webhook register`. Each takes validated
//! configuration and plain options and returns a typed result; the presentation layer prints
//! it. (The long-running receiver is [`crate::receiver`].)

pub(crate) mod register;
pub(crate) mod render;

use anyhow::Result;

use crate::config::Config;
use crate::desired::Registry;
use crate::engine::apply::{self, SyncOptions, SyncOutcome, SyncView};
use crate::engine::{self, deletion_guard, Clients, Executor, Guard, Prepared, Scope};
use crate::plan::Plan;
use crate::status::StatusReport;

/// Whoever watches a one-shot sync: sees the plan before anything is written, then what
/// [`SyncView`] shows.
pub(crate) trait SyncCommandView: SyncView {
    /// The plan, before the deletion guard and any write.
    fn planned(&mut self, prepared: &Prepared, config: &Config) -> Result<()>;
}

/// What `m2s plan` found: the plan, and the deletion guard's refusal if it refuses.
pub(crate) struct PlanRun {
    pub(crate) registry: Registry,
    pub(crate) plan: Plan,
    pub(crate) refusal: Option<anyhow::Error>,
    /// A scoped run whose model MLflow did not return: nothing was read from Kubernetes.
    pub(crate) model_absent: bool,
}

/// What `m2s sync` did; `None` outcome when its model was absent (nothing was written).
pub(crate) struct SyncRun {
    pub(crate) outcome: Option<SyncOutcome>,
}

/// `m2s plan`: reads both sides and plans; writes nothing.
pub(crate) fn plan(config: &Config, guard: Guard, scope: &Scope) -> Result<PlanRun> {
    let clients = Clients::connect(config, Executor::own()?)?;
    let prepared = engine::prepare(&clients, config, scope, false)?;
    let refusal = if prepared.model_absent {
        None
    } else {
        deletion_guard(&prepared.plan, config, guard, scope).err()
    };
    Ok(PlanRun {
        model_absent: prepared.model_absent,
        registry: prepared.registry,
        plan: prepared.plan,
        refusal,
    })
}

/// `m2s sync`: plans, shows the plan to `view`, applies it unless the deletion guard refuses,
/// then waits and writes back as `options` ask.
pub(crate) fn sync(
    config: &Config,
    options: &SyncOptions,
    guard: Guard,
    scope: &Scope,
    view: &mut dyn SyncCommandView,
) -> Result<SyncRun> {
    let clients = Clients::connect(config, Executor::own()?)?;
    // Write-back needs every object's state: a full sync only.
    let with_states = options.write_back && *scope == Scope::All;
    let prepared = engine::prepare(&clients, config, scope, with_states)?;
    if prepared.model_absent {
        return Ok(SyncRun { outcome: None });
    }
    view.planned(&prepared, config)?;
    deletion_guard(&prepared.plan, config, guard, scope)?;
    let outcome = apply::apply(prepared, config, options, view)?;
    Ok(SyncRun {
        outcome: Some(outcome),
    })
}

/// `m2s status`: every managed object with its readiness, and the entries without one.
pub(crate) fn status(config: &Config) -> Result<StatusReport> {
    let clients = Clients::connect(config, Executor::own()?)?;
    engine::status(&clients, config)
}
