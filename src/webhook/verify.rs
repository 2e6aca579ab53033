//! What makes a request a genuine MLflow delivery: an HMAC-SHA256 signature made with the
//! shared secret over `"{delivery id}.{timestamp}.{raw body}"` (checked in constant time), a
//! timestamp within [`MAX_SKEW_SECS`] of now (MLflow itself enforces no window, so replay
//! protection is the receiver's), and a delivery id not seen before.

use std::collections::{HashSet, VecDeque};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::hmac;

pub const SIGNATURE_HEADER: &str = "x-mlflow-signature";
pub const TIMESTAMP_HEADER: &str = "x-mlflow-timestamp";
pub const DELIVERY_ID_HEADER: &str = "x-mlflow-delivery-id";
/// The only signature scheme MLflow sends.
const SIGNATURE_VERSION: &str = "v1";
/// How far a delivery's timestamp may be from this clock, either way.
pub const MAX_SKEW_SECS: i64 = 300;

/// Why a request is refused (401), as the rejection metric's `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No delivery id, timestamp or signature header.
    MissingHeader,
    /// The signature does not match (wrong secret, altered body or headers, unsigned).
    BadSignature,
    /// Signed, but the timestamp is outside the window (a replay, or a clock far off).
    StaleTimestamp,
}

impl Rejection {
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::MissingHeader => "missing_header",
            Rejection::BadSignature => "bad_signature",
            Rejection::StaleTimestamp => "stale_timestamp",
        }
    }
}

/// The headers of one delivery, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Checks deliveries against the shared secret. Holds the key only (never printed).
pub struct Verifier {
    key: hmac::Key,
}

impl Verifier {
    pub fn new(secret: &str) -> Verifier {
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
    pub fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> String {
        let tag = hmac::sign(&self.key, &Self::signed_content(id, timestamp, body));
        format!("{SIGNATURE_VERSION},{}", STANDARD.encode(tag.as_ref()))
    }

    /// Accepts a delivery signed with this secret whose timestamp is within the window of
    /// `now` (unix seconds). The signature header may list several space-separated
    /// signatures (secret rotation); one valid `v1` signature is enough.
    pub fn verify(&self, d: &Delivery, body: &[u8], now: i64) -> Result<(), Rejection> {
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
pub struct RecentDeliveries {
    seen: HashSet<String>,
    order: VecDeque<(i64, String)>,
    capacity: usize,
}

impl RecentDeliveries {
    pub fn new(capacity: usize) -> RecentDeliveries {
        RecentDeliveries {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `id`, received at `now` (unix seconds); false when it was seen before.
    pub fn first_time(&mut self, id: &str, now: i64) -> bool {
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

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    /// A delivery as MLflow sends it: Python's hmac/base64 over the same content give
    /// this signature for secret "s3cret" (computed with MLflow's _generate_hmac_signature).
    #[test]
    fn matches_mlflows_signature() {
        let v = Verifier::new("s3cret");
        let body = br#"{"entity": "model_version_alias", "action": "created"}"#;
        assert_eq!(
            v.sign("d-1", "1800000000", body),
            "v1,a/Fh10dLe1PcgxmmrTEUUQFv1SmzrEXo3vB8ERedbLg="
        );
    }

    fn delivery<'a>(sig: &'a str, ts: &'a str) -> Delivery<'a> {
        Delivery {
            id: Some("d-1"),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn accepts_only_the_right_secret_body_and_headers() {
        let v = Verifier::new("s3cret");
        let ts = NOW.to_string();
        let body = b"{\"a\":1}";
        let sig = v.sign("d-1", &ts, body);
        assert_eq!(v.verify(&delivery(&sig, &ts), body, NOW), Ok(()));
        let bad = Err(Rejection::BadSignature);
        // Another secret, body, id or timestamp than the one signed.
        let other = Verifier::new("other").sign("d-1", &ts, body);
        assert_eq!(v.verify(&delivery(&other, &ts), body, NOW), bad);
        assert_eq!(v.verify(&delivery(&sig, &ts), b"{\"a\":2}", NOW), bad);
        let mut d = delivery(&sig, &ts);
        d.id = Some("d-2");
        assert_eq!(v.verify(&d, body, NOW), bad);
        let later = (NOW + 1).to_string();
        assert_eq!(v.verify(&delivery(&sig, &later), body, NOW), bad);
        // Malformed signatures and other schemes.
        let b64 = sig.trim_start_matches("v1,");
        for s in ["", "v1,", "v1,!!!", b64, &format!("v2,{b64}"), "v1,AAAA"] {
            assert_eq!(v.verify(&delivery(s, &ts), body, NOW), bad, "{s:?}");
        }
        // One valid signature among several is enough.
        let several = format!("v1,AAAA {sig}");
        assert_eq!(v.verify(&delivery(&several, &ts), body, NOW), Ok(()));
        // Missing headers.
        for d in [
            Delivery {
                id: None,
                ..delivery(&sig, &ts)
            },
            Delivery {
                timestamp: None,
                ..delivery(&sig, &ts)
            },
            Delivery {
                signature: None,
                ..delivery(&sig, &ts)
            },
        ] {
            assert_eq!(v.verify(&d, body, NOW), Err(Rejection::MissingHeader));
        }
    }

    #[test]
    fn the_timestamp_must_be_within_five_minutes_either_way() {
        let v = Verifier::new("s3cret");
        let body = b"{}";
        for (offset, ok) in [
            (0, true),
            (300, true),
            (-300, true),
            (301, false),
            (-301, false),
        ] {
            let ts = (NOW + offset).to_string();
            let sig = v.sign("d-1", &ts, body);
            let want = if ok {
                Ok(())
            } else {
                Err(Rejection::StaleTimestamp)
            };
            assert_eq!(v.verify(&delivery(&sig, &ts), body, NOW), want, "{offset}");
        }
        let sig = v.sign("d-1", "soon", body);
        assert_eq!(
            v.verify(&delivery(&sig, "soon"), body, NOW),
            Err(Rejection::StaleTimestamp)
        );
    }

    #[test]
    fn repeated_ids_are_caught_and_memory_is_bounded() {
        let mut seen = RecentDeliveries::new(3);
        assert!(seen.first_time("a", NOW));
        assert!(!seen.first_time("a", NOW + 1));
        assert!(seen.first_time("b", NOW + 1));
        assert!(seen.first_time("c", NOW + 2));
        assert!(!seen.first_time("b", NOW + 2));
        // A fourth id pushes out the oldest.
        assert!(seen.first_time("d", NOW + 3));
        assert_eq!(seen.len(), 3);
        assert!(!seen.first_time("d", NOW + 3));
        assert!(seen.first_time("a", NOW + 4), "the oldest id was forgotten");
        // Ids older than twice the window are forgotten (their replay is stale anyway).
        let mut seen = RecentDeliveries::new(100);
        assert!(seen.first_time("x", NOW));
        assert!(!seen.first_time("x", NOW + 2 * MAX_SKEW_SECS));
        assert!(seen.first_time("y", NOW + 2 * MAX_SKEW_SECS + 1));
        assert!(seen.first_time("x", NOW + 2 * MAX_SKEW_SECS + 1));
        assert_eq!(seen.len(), 2);
    }
}
