//! Abandoning a sync: a token the receiver sets when a sync runs past its deadline or its
//! replica loses the lead; both clients check it before each request, so an abandoned sync
//! sends nothing more (what it already wrote stays: each write is one atomic request).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared between a sync's clients and whoever may abandon it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Stops every client holding this token from sending another request.
    pub(crate) fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The error of a request not sent because its sync was abandoned.
#[derive(Debug)]
pub(crate) struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the sync was abandoned; no more requests are sent")
    }
}

impl std::error::Error for Cancelled {}
