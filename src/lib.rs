//! m2s keeps model deployments on Kubernetes in step with an MLflow Model Registry.
//!
//! IO sits at the edges ([`mlflow`], [`k8s`]); in between, pure functions turn the registry into
//! entries and objects ([`desired`]) and those plus the cluster's objects into a plan
//! ([`plan`]). What differs per serving stack is behind [`targets::Target`]. [`engine`] wires
//! one sync together (of every model, or of one: [`scoped`]); [`commands`] runs the one-shot
//! commands and [`webhook`] the long-running receiver of MLflow's registry events.

pub mod artifacts;
pub mod cli;
pub mod commands;
pub mod config;
pub mod desired;
pub mod engine;
pub mod events;
pub mod image;
pub mod k8s;
pub mod logging;
pub mod mlflow;
pub mod naming;
pub mod output;
pub mod overlay;
pub mod plan;
pub mod quantity;
pub mod scoped;
pub mod settings;
pub mod status;
pub mod sync;
pub mod targets;
pub mod wait;
pub mod webhook;
pub mod writeback;

pub use commands::run;
