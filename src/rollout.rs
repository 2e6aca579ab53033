//! Progressive rollout as a state machine whose state lives on the object only (its
//! annotations): any run on any machine continues a rollout, and a restart loses nothing. Pure:
//! the plan asks [`next`] what a rollout's object needs now.
//!
//! When an existing object's version changes and `m2s.canary` applies, the new version takes
//! the tag's traffic percents in steps; each step serves (Available) for `m2s.canary-interval`
//! before the next; after the last step the object serves the new version alone. A new version
//! that fails, or is not Available within the deadline (`M2S_CANARY_DEADLINE`), is aborted: the
//! stable version serves alone again, and the aborted version is not tried again until the
//! registry moves once more.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::keys::{
    ANN_CANARY_ABORTED, ANN_CANARY_SINCE, ANN_CANARY_STEP, ANN_CANARY_STEPS, ANN_CANARY_VERSION,
    ANN_ROLLOUT,
};
use crate::settings::CanarySettings;
use crate::targets::{Readiness, State};

/// What an object's annotations say of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum RolloutState {
    /// No rollout.
    #[default]
    None,
    /// `version` takes `steps[step - 1]` % of the traffic since `since`.
    InProgress {
        version: String,
        steps: Vec<u8>,
        step: usize,
        since: Timestamp,
    },
    /// The rollout of `version` was aborted, for `why`.
    Aborted { version: String, why: String },
}

impl RolloutState {
    /// The state recorded in `annotations`; a record m2s cannot read counts as none (the object
    /// is then written as a plain update would write it).
    pub(crate) fn of(annotations: &BTreeMap<String, String>) -> RolloutState {
        let get = |k: &str| annotations.get(k).map(String::as_str);
        let Some(version) = get(ANN_CANARY_VERSION).map(String::from) else {
            return RolloutState::None;
        };
        match get(ANN_ROLLOUT) {
            Some("canary") => {
                let steps: Option<Vec<u8>> = get(ANN_CANARY_STEPS)
                    .unwrap_or_default()
                    .split(',')
                    .map(|p| p.trim().parse().ok())
                    .collect();
                let step: Option<usize> = get(ANN_CANARY_STEP).and_then(|s| s.parse().ok());
                let since: Option<Timestamp> = get(ANN_CANARY_SINCE).and_then(|s| s.parse().ok());
                match (steps, step, since) {
                    (Some(steps), Some(step), Some(since)) if step >= 1 && step <= steps.len() => {
                        RolloutState::InProgress {
                            version,
                            steps,
                            step,
                            since,
                        }
                    }
                    _ => RolloutState::None,
                }
            }
            Some("aborted") => RolloutState::Aborted {
                version,
                why: get(ANN_CANARY_ABORTED).unwrap_or_default().to_string(),
            },
            _ => RolloutState::None,
        }
    }

    /// The annotations recording this state (none for [`RolloutState::None`]).
    pub(crate) fn annotations(&self) -> Vec<(&'static str, String)> {
        match self {
            RolloutState::None => Vec::new(),
            RolloutState::InProgress {
                version,
                steps,
                step,
                since,
            } => vec![
                (ANN_ROLLOUT, "canary".into()),
                (ANN_CANARY_VERSION, version.clone()),
                (ANN_CANARY_STEPS, join_steps(steps)),
                (ANN_CANARY_STEP, step.to_string()),
                (ANN_CANARY_SINCE, since.to_string()),
            ],
            RolloutState::Aborted { version, why } => vec![
                (ANN_ROLLOUT, "aborted".into()),
                (ANN_CANARY_VERSION, version.clone()),
                (ANN_CANARY_ABORTED, why.clone()),
            ],
        }
    }
}

/// `10,50`.
pub(crate) fn join_steps(steps: &[u8]) -> String {
    steps
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// How the canary part of an object is doing, as its stack reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CanaryHealth {
    pub(crate) readiness: Readiness,
    /// When it became Available, when the stack says (a condition's lastTransitionTime).
    pub(crate) available_since: Option<Timestamp>,
}

/// What a rollout's object needs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Move {
    /// Write step `step` (from 1) of `steps`: a new rollout, the next step, or a rollout
    /// started again with another version.
    Step { step: usize, steps: Vec<u8> },
    /// The new version alone: exactly what a plain update writes.
    Promote { why: String },
    /// The stable version alone again; with `record`, the new version is recorded as aborted
    /// (not when the registry itself went back to the stable version: it asks for nothing to
    /// hold off).
    Abort { why: String, record: bool },
    /// The stable version alone, without a rollout's record (the registry went back to it).
    Clear { why: String },
    /// Nothing is due.
    Stay,
    /// The version the registry asks for was aborted: the object stays as it is.
    Held { why: String },
}

/// The settings a rollout is judged by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) now: Timestamp,
    /// A step not Available within this is aborted (`M2S_CANARY_DEADLINE`).
    pub(crate) deadline: Duration,
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::from_secs((now.as_second() - since.as_second()).max(0) as u64)
}

/// What the object that serves `stable`, with rollout state `state`, needs when the registry
/// asks for `wanted` with `canary` (its `m2s.canary` settings, if any) and the canary part is
/// `health`. `None`: no rollout matter (a plain update, or nothing).
pub(crate) fn next(
    wanted: &str,
    stable: &str,
    state: &RolloutState,
    canary: Option<&CanarySettings>,
    health: Option<&CanaryHealth>,
    clock: Clock,
) -> Option<Move> {
    let start = || {
        canary.map(|c| Move::Step {
            step: 1,
            steps: c.steps.clone(),
        })
    };
    match state {
        RolloutState::None if wanted == stable => None,
        RolloutState::None => start(),
        RolloutState::Aborted { version, why } if version == wanted => Some(Move::Held {
            why: format!(
                "the rollout of v{version} was aborted ({why}); v{stable} serves until the registry moves"
            ),
        }),
        RolloutState::Aborted { .. } if wanted == stable => Some(Move::Clear {
            why: "the registry is back on the stable version".into(),
        }),
        RolloutState::Aborted { .. } => start(),
        RolloutState::InProgress { .. } if wanted == stable => Some(Move::Abort {
            why: format!("the registry moved back to v{stable}"),
            record: false,
        }),
        RolloutState::InProgress { version, .. } if version != wanted => {
            Some(start().unwrap_or_else(|| Move::Promote {
                why: format!("v{wanted} replaces the rollout of v{version} (it has no m2s.canary)"),
            }))
        }
        RolloutState::InProgress { step, since, .. } => {
            let Some(canary) = canary else {
                return Some(Move::Promote {
                    why: "m2s.canary was removed".into(),
                });
            };
            Some(step_due(*step, *since, canary, health, clock))
        }
    }
}

/// The move of a rollout in progress of the version the registry still asks for.
fn step_due(
    step: usize,
    since: Timestamp,
    canary: &CanarySettings,
    health: Option<&CanaryHealth>,
    clock: Clock,
) -> Move {
    let state = health.map_or(State::Pending, |h| h.readiness.state);
    let message = health
        .and_then(|h| h.readiness.message.clone())
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    match state {
        State::Failed => Move::Abort {
            why: format!("the new version failed{message}"),
            record: true,
        },
        State::Available => {
            let from = health
                .and_then(|h| h.available_since)
                .map_or(since, |t| t.max(since));
            if elapsed(from, clock.now) < canary.interval {
                Move::Stay
            } else if step < canary.steps.len() {
                Move::Step {
                    step: step + 1,
                    steps: canary.steps.clone(),
                }
            } else {
                Move::Promote {
                    why: "the last step served its interval".into(),
                }
            }
        }
        _ if elapsed(since, clock.now) > clock.deadline => Move::Abort {
            why: format!(
                "the new version was not Available within M2S_CANARY_DEADLINE ({}s){message}",
                clock.deadline.as_secs()
            ),
            record: true,
        },
        _ => Move::Stay,
    }
}

#[cfg(test)]
mod tests;
