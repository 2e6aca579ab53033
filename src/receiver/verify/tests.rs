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
