//! m2s keeps Seldon Core deployments in step with an MLflow Model Registry.
//!
//! IO sits at the edges ([`mlflow`], [`k8s`]); in between, pure functions turn a registry
//! snapshot into desired objects ([`desired`]) and those plus the cluster's objects into a plan
//! ([`plan`]). [`engine`] wires one run together.

pub mod artifacts;
pub mod cli;
pub mod config;
pub mod desired;
pub mod engine;
pub mod image;
pub mod k8s;
pub mod mlflow;
pub mod naming;
pub mod output;
pub mod plan;

pub use engine::run;
