//! m2s keeps model deployments on Kubernetes in step with an MLflow Model Registry.
//!
//! The crate is a binary's library: its public surface is what the `m2s` binary and the
//! integration tests need, and nothing else. The modules are layers; each imports only those
//! below it:
//!
//! 1. what a serving stack is: [`targets`] (the seam every stack sits behind), `naming`,
//!    `quantity`, `settings` (per-model tags), `image`, `artifacts`, what an MLflow release
//!    loads (`runtime`), and the keys m2s writes (`keys`), with small helpers (`hash`, `json`, `files`: atomic writes) and what this build
//!    is (`build_info`);
//! 2. configuration: `config`, checked before any network call;
//! 3. the clients: `mlflow` (blocking REST) and `k8s`, which know nothing of plans;
//! 4. the pure core: `desired` (the registry → the objects that should exist), `plan` (those
//!    and the cluster's objects → changes), `preflight` (a version's `MLmodel` against the
//!    serving runtime) and `status` (what serves, as data);
//! 5. the engine: one sync in phases, and what follows it (apply, wait, write-back);
//! 6. the one-shot `commands` and the long-running `receiver`;
//! 7. presentation (`present`): text and JSON;
//! 8. the command line ([`cli`]), which `main` calls.

#![warn(missing_docs)]

// 1. What a serving stack is.
mod artifacts;
mod build_info;
mod cancel;
mod files;
mod hash;
mod image;
mod json;
mod keys;
mod naming;
pub mod quantity;
mod runtime;
pub mod settings;
pub mod targets;
// 2. Configuration.
pub mod config;
// 3. Clients.
mod k8s;
mod mlflow;
// 4. The pure core.
mod desired;
mod plan;
mod preflight;
mod rollout;
mod status;
// 5. The engine.
mod engine;
// 6. Commands and the receiver.
mod commands;
mod receiver;
// 7. Presentation.
mod present;
// 8. The command line.
pub mod cli;
mod logging;

#[cfg(test)]
mod tests;
