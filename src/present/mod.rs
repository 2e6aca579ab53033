//! Presentation: what the commands print, as text (terraform-style plans, kubectl-style
//! tables) and as JSON documents. Nothing below this layer prints.

pub(crate) mod plan;
pub(crate) mod status;
pub(crate) mod sync;
