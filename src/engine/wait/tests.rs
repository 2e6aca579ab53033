use super::*;

fn r(state: State, message: Option<&str>) -> Readiness {
    Readiness {
        state,
        message: message.map(String::from),
        url: None,
    }
}

#[test]
fn follows_states_and_ignores_older_generations() {
    let mut t = Tracker::default();
    t.add("a", Some(2), r(State::Creating, None));
    t.add("b", Some(1), r(State::Pending, None));
    assert!(!t.done());
    // A's status for generation 1 (before m2s's write) is no news.
    assert_eq!(t.observe("a", Some(1), r(State::Available, None)), None);
    assert_eq!(t.observe("other", Some(9), r(State::Failed, None)), None);
    assert_eq!(
        t.observe("a", Some(2), r(State::Available, None)),
        Some(&r(State::Available, None))
    );
    // The same state again is no news either.
    assert_eq!(t.observe("a", Some(2), r(State::Available, None)), None);
    let failed = r(State::Failed, Some("ScheduleFailed: no server"));
    assert_eq!(t.observe("b", Some(1), failed.clone()), Some(&failed));
    assert!(t.done());
    let out = t.outcome(Duration::from_secs(5));
    assert_eq!(out.available, ["a"]);
    assert_eq!(
        out.failed,
        [("b".to_string(), "ScheduleFailed: no server".to_string())]
    );
    assert!(!out.succeeded());
}

#[test]
fn not_ready_and_deleted_objects_are_reported() {
    let mut t = Tracker::default();
    t.add("a", None, r(State::Creating, Some("pulling")));
    t.add("b", None, r(State::Pending, None));
    let deleted = t.deleted("b").unwrap();
    assert_eq!(deleted.state, State::Failed);
    assert!(deleted
        .message
        .as_deref()
        .unwrap()
        .contains("deleted while m2s waited"));
    let out = t.outcome(Duration::from_secs(5));
    assert_eq!(
        out.not_ready,
        [("a".to_string(), r(State::Creating, Some("pulling")))]
    );
    assert_eq!(out.failed[0].0, "b");
}
