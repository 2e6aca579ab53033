//! m2s keeps model deployments on Kubernetes in step with an MLflow Model Registry.
//!
//! IO sits at the edges ([`mlflow`], [`k8s`]); in between, pure functions turn the registry into
//! entries and objects ([`desired`]) and those plus the cluster's objects into a plan
//! ([`plan`]). What differs per serving stack is behind [`targets::Target`]. [`engine`] wires
//! one run together.

pub mod artifacts;
pub mod cli;
pub mod config;
pub mod desired;
pub mod engine;
pub mod events;
pub mod image;
pub mod k8s;
pub mod mlflow;
pub mod naming;
pub mod output;
pub mod overlay;
pub mod plan;
pub mod quantity;
pub mod settings;
pub mod status;
pub mod sync;
pub mod targets;
pub mod wait;
pub mod writeback;

pub use engine::run;
