//! What makes a request a genuine MLflow delivery: an HMAC-SHA256 signature made with the
//! shared secret over `"{delivery id}.{timestamp}.{raw body}"` (checked in constant time), a
//! timestamp within [`MAX_SKEW_SECS`] of now (MLflow itself enforces no window, so replay
//! protection is the receiver's), and a delivery id not seen before.

use std::collections::{HashSet, VecDeque};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::hmac;

pub(crate) const SIGNATURE_HEADER: &str = "x-mlflow-signature";
pub(crate) const TIMESTAMP_HEADER: &str = "x-mlflow-timestamp";
pub(crate) const DELIVERY_ID_HEADER: &str = "x-mlflow-delivery-id";
/// The only signature scheme MLflow sends.
const SIGNATURE_VERSION: &str = "v1";
/// How far a delivery's timestamp may be from this clock, either way.
pub(crate) const MAX_SKEW_SECS: i64 = 300;

/// Why a request is refused (401), as the rejection metric's `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// No delivery id, timestamp or signature header.
    MissingHeader,
    /// The signature does not match (wrong secret, altered body or headers, unsigned).
    BadSignature,
    /// Signed, but the timestamp is outside the window (a replay, or a clock far off).
    StaleTimestamp,
}

impl Rejection {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Rejection::MissingHeader => "missing_header",
            Rejection::BadSignature => "bad_signature",
            Rejection::StaleTimestamp => "stale_timestamp",
        }
    }
}

/// The headers of one delivery, as received.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Delivery<'a> {
    pub(crate) id: Option<&'a str>,
    pub(crate) timestamp: Option<&'a str>,
    pub(crate) signature: Option<&'a str>,
}

/// Checks deliveries against the shared secret. Holds the key only (never printed).
pub(crate) struct Verifier {
    key: hmac::Key,
}

impl Verifier {
    pub(crate) fn new(secret: &str) -> Verifier {
        Verifier {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
        let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
        content.extend_from_slice(id.as_bytes());
        content.push(b'.');
        content.extend_from_slice(timestamp.as_bytes());
        content.push(b'.');
        content.extend_from_slice(body);
        content
    }

    /// The signature header MLflow would send for this delivery (`v1,<base64>`).
    #[cfg(test)]
    pub(crate) fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> String {
        let tag = hmac::sign(&self.key, &Self::signed_content(id, timestamp, body));
        format!("{SIGNATURE_VERSION},{}", STANDARD.encode(tag.as_ref()))
    }

    /// Accepts a delivery signed with this secret whose timestamp is within the window of
    /// `now` (unix seconds). The signature header may list several space-separated
    /// signatures (secret rotation); one valid `v1` signature is enough.
    pub(crate) fn verify(&self, d: &Delivery, body: &[u8], now: i64) -> Result<(), Rejection> {
        let (Some(id), Some(timestamp), Some(signatures)) = (d.id, d.timestamp, d.signature) else {
            return Err(Rejection::MissingHeader);
        };
        let content = Self::signed_content(id, timestamp, body);
        let valid = signatures.split_whitespace().any(|s| {
            s.split_once(',')
                .filter(|(version, _)| *version == SIGNATURE_VERSION)
                .and_then(|(_, b64)| STANDARD.decode(b64).ok())
                .is_some_and(|tag| hmac::verify(&self.key, &content, &tag).is_ok())
        });
        if !valid {
            return Err(Rejection::BadSignature);
        }
        match timestamp.trim().parse::<i64>() {
            Ok(t) if (now - t).abs() <= MAX_SKEW_SECS => Ok(()),
            _ => Err(Rejection::StaleTimestamp),
        }
    }
}

/// The delivery ids seen recently, so a repeated delivery is acknowledged and not acted on
/// twice. Bounded: an id is kept for twice the timestamp window (after that its replay is
/// refused as stale anyway), and at most `capacity` ids are kept (the oldest go first; a
/// replay that slips through only repeats an idempotent sync).
pub(crate) struct RecentDeliveries {
    seen: HashSet<String>,
    order: VecDeque<(i64, String)>,
    capacity: usize,
}

impl RecentDeliveries {
    pub(crate) fn new(capacity: usize) -> RecentDeliveries {
        RecentDeliveries {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `id`, received at `now` (unix seconds); false when it was seen before.
    pub(crate) fn first_time(&mut self, id: &str, now: i64) -> bool {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| now - at > 2 * MAX_SKEW_SECS)
        {
            self.forget_oldest();
        }
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity {
            self.forget_oldest();
        }
        self.seen.insert(id.to_string());
        self.order.push_back((now, id.to_string()));
        true
    }

    fn forget_oldest(&mut self) {
        if let Some((_, old)) = self.order.pop_front() {
            self.seen.remove(&old);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests;
