use super::*;

#[test]
fn identities_are_the_pod_and_a_random_part() {
    let a = identity(Some("m2s-webhook-7d9f-abcde".into()));
    let b = identity(Some("m2s-webhook-7d9f-abcde".into()));
    assert!(a.starts_with("m2s-webhook-7d9f-abcde_"), "{a}");
    assert_eq!(a.len(), "m2s-webhook-7d9f-abcde_".len() + 8);
    assert_ne!(a, b, "a restarted pod of the same name is a new candidate");
    assert!(identity(Some("  ".into())).contains('_'));
}

#[test]
fn the_renew_deadline_ends_before_the_lease_does() {
    // A holder that cannot renew stops leading before any other replica may take over.
    assert!(RENEW_DEADLINE < LEASE_DURATION);
    assert!(RETRY_PERIOD * 3 < RENEW_DEADLINE);
    let always = Leadership::always();
    assert!(always.is_leader() && always.is_settled());
    let l = Leadership::default();
    assert!(!l.is_leader() && !l.is_settled());
}
