use super::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const T0: &str = "2026-03-01T12:00:00Z";

fn clock(now: &str) -> Clock {
    Clock {
        now: t(now),
        deadline: Duration::from_secs(900),
    }
}

fn canary(steps: &[u8], interval: u64) -> CanarySettings {
    CanarySettings {
        steps: steps.to_vec(),
        interval: Duration::from_secs(interval),
    }
}

fn in_progress(version: &str, step: usize) -> RolloutState {
    RolloutState::InProgress {
        version: version.into(),
        steps: vec![10, 50],
        step,
        since: t(T0),
    }
}

fn health(state: State, since: Option<&str>) -> CanaryHealth {
    CanaryHealth {
        readiness: Readiness {
            state,
            message: (state == State::Failed).then(|| "FailedToLoad".to_string()),
            url: None,
        },
        available_since: since.map(t),
    }
}

#[test]
fn the_state_lives_in_the_annotations_and_reads_back() {
    for state in [
        RolloutState::None,
        in_progress("5", 2),
        RolloutState::Aborted {
            version: "5".into(),
            why: "Failed".into(),
        },
    ] {
        let annotations: BTreeMap<String, String> = state
            .annotations()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(RolloutState::of(&annotations), state);
    }
    // A record that does not read (a step out of range) is no rollout.
    let mut broken: BTreeMap<String, String> = in_progress("5", 1)
        .annotations()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    broken.insert(ANN_CANARY_STEP.into(), "3".into());
    assert_eq!(RolloutState::of(&broken), RolloutState::None);
}

#[test]
fn a_version_change_with_m2s_canary_starts_a_rollout_and_without_is_plain() {
    let c = canary(&[10, 50], 600);
    let none = RolloutState::None;
    assert_eq!(next("5", "4", &none, None, None, clock(T0)), None);
    assert_eq!(next("4", "4", &none, Some(&c), None, clock(T0)), None);
    assert_eq!(
        next("5", "4", &none, Some(&c), None, clock(T0)),
        Some(Move::Step {
            step: 1,
            steps: vec![10, 50]
        })
    );
}

#[test]
fn a_step_advances_once_it_has_served_its_interval() {
    let c = canary(&[10, 50], 600);
    let state = in_progress("5", 1);
    // Not Available yet, within the deadline: nothing.
    let creating = health(State::Creating, None);
    let at = |now| next("5", "4", &state, Some(&c), Some(&creating), clock(now));
    assert_eq!(at("2026-03-01T12:05:00Z"), Some(Move::Stay));
    // Available since 12:03 (the stack's transition time): due at 12:13, not 12:10.
    let ok = health(State::Available, Some("2026-03-01T12:03:00Z"));
    let at = |now| next("5", "4", &state, Some(&c), Some(&ok), clock(now));
    assert_eq!(at("2026-03-01T12:10:00Z"), Some(Move::Stay));
    assert_eq!(
        at("2026-03-01T12:13:00Z"),
        Some(Move::Step {
            step: 2,
            steps: vec![10, 50]
        })
    );
    // Without a transition time, the interval counts from the step.
    let ok = health(State::Available, None);
    assert_eq!(
        next(
            "5",
            "4",
            &state,
            Some(&c),
            Some(&ok),
            clock("2026-03-01T12:10:00Z")
        ),
        Some(Move::Step {
            step: 2,
            steps: vec![10, 50]
        })
    );
    // The last step done: promote. An interval of 0s moves at once.
    let last = in_progress("5", 2);
    let zero = canary(&[10, 50], 0);
    assert!(matches!(
        next("5", "4", &last, Some(&zero), Some(&ok), clock(T0)),
        Some(Move::Promote { .. })
    ));
}

#[test]
fn a_failed_or_late_canary_is_aborted_and_then_held() {
    let c = canary(&[10, 50], 600);
    let state = in_progress("5", 1);
    let failed = health(State::Failed, None);
    let Some(Move::Abort { why, record: true }) =
        next("5", "4", &state, Some(&c), Some(&failed), clock(T0))
    else {
        panic!("not aborted");
    };
    assert!(why.contains("failed: FailedToLoad"), "{why}");
    // Still Creating 15 minutes on: the deadline.
    let creating = health(State::Creating, None);
    assert_eq!(
        next(
            "5",
            "4",
            &state,
            Some(&c),
            Some(&creating),
            clock("2026-03-01T12:14:59Z")
        ),
        Some(Move::Stay)
    );
    let Some(Move::Abort { why, record: true }) = next(
        "5",
        "4",
        &state,
        Some(&c),
        Some(&creating),
        clock("2026-03-01T12:15:01Z"),
    ) else {
        panic!("not aborted at the deadline");
    };
    assert!(why.contains("M2S_CANARY_DEADLINE (900s)"), "{why}");
    // Aborted: not tried again while the registry asks for it; the registry moving goes on.
    let aborted = RolloutState::Aborted {
        version: "5".into(),
        why: "failed".into(),
    };
    assert!(matches!(
        next("5", "4", &aborted, Some(&c), None, clock(T0)),
        Some(Move::Held { .. })
    ));
    assert!(matches!(
        next("4", "4", &aborted, Some(&c), None, clock(T0)),
        Some(Move::Clear { .. })
    ));
    assert_eq!(
        next("6", "4", &aborted, Some(&c), None, clock(T0)),
        Some(Move::Step {
            step: 1,
            steps: vec![10, 50]
        })
    );
    assert_eq!(next("6", "4", &aborted, None, None, clock(T0)), None);
}

#[test]
fn the_registry_moving_mid_rollout() {
    let c = canary(&[10, 50], 600);
    let state = in_progress("5", 2);
    // Another new version: again from the first step.
    assert_eq!(
        next("6", "4", &state, Some(&c), None, clock(T0)),
        Some(Move::Step {
            step: 1,
            steps: vec![10, 50]
        })
    );
    // Another new version without m2s.canary: it replaces the rollout at once.
    assert!(matches!(
        next("6", "4", &state, None, None, clock(T0)),
        Some(Move::Promote { .. })
    ));
    // Back to the stable version: abort.
    assert!(matches!(
        next("4", "4", &state, Some(&c), None, clock(T0)),
        Some(Move::Abort { record: false, .. })
    ));
    // m2s.canary removed: promote at once (the emergency skip).
    let Some(Move::Promote { why }) = next("5", "4", &state, None, None, clock(T0)) else {
        panic!("not promoted");
    };
    assert!(why.contains("m2s.canary was removed"), "{why}");
}
