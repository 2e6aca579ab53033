//! The integration tests: one crate (one link of the library and its dependencies), a module
//! per suite. Run one suite with `cargo test --test it -- <suite>::`, e.g. `sync::`.
//!
//! The suites need the sandbox (`make sandbox-up`, or `make test`, which starts it): a real
//! MLflow server and a real kube-apiserver with the serving stacks' CRDs. Without it a test
//! skips with `SKIP:` on stderr, or fails under `CI=true` / `M2S_SANDBOX_REQUIRED=1`.

// Helpers shared by the suites.
mod chart_support;
mod common;
mod controllers;
mod faults_support;
mod monitoring_support;
mod net_support;
mod serving_support;
mod webhook_support;

// The suites.
mod chart;
mod chart_conventions;
mod cli;
mod docs;
mod faults;
mod feedback;
mod flags;
mod monitoring;
mod plumbing;
mod preflight;
mod render;
mod replicas;
mod rollout;
mod serving;
mod status;
mod sync;
mod targets;
mod webhook;
