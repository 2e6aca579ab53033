use super::*;
use crate::engine::apply::Failure;
use crate::plan::Action;
use crate::targets::by_id;

#[test]
fn summary_line_counts() {
    let mut o = SyncOutcome {
        created: 1,
        deleted: 1,
        unchanged: 1,
        not_deployable: 1,
        changes: 3,
        failures: vec![Failure {
            action: Action::Update,
            name: "a".into(),
            error: "409".into(),
        }],
        ..SyncOutcome::default()
    };
    assert_eq!(
        summary_line(&o),
        "Sync: 1 created, 0 updated, 1 deleted, 1 unchanged, 1 failed, 1 not deployable."
    );
    o.dry_run = true;
    assert!(summary_line(&o).starts_with("Dry run (nothing persisted): 1 created"));
}

#[test]
fn wait_lines_name_state_message_and_url() {
    let r = Readiness {
        state: State::Available,
        message: None,
        url: Some("http://iris".into()),
    };
    assert_eq!(wait_line("iris", &r), "  iris: Available at http://iris");
    let failed = Readiness {
        state: State::Failed,
        message: Some("FailedToLoad".into()),
        url: Some("http://iris".into()),
    };
    assert_eq!(wait_line("iris", &failed), "  iris: Failed (FailedToLoad)");
}

#[test]
fn the_end_of_a_wait_agrees_with_its_count() {
    let kind = by_id("kserve").unwrap().resource();
    let one = WaitOutcome {
        available: vec!["a".into()],
        ..WaitOutcome::default()
    };
    assert_eq!(
        waited_line(&one, kind),
        "The InferenceService is Available."
    );
    let two = WaitOutcome {
        available: vec!["a".into(), "b".into()],
        ..WaitOutcome::default()
    };
    assert_eq!(
        waited_line(&two, kind),
        "All 2 InferenceServices are Available."
    );
    let bad = WaitOutcome {
        available: vec!["a".into()],
        failed: vec![("b".into(), "FailedToLoad".into())],
        timeout: Duration::from_secs(5),
        ..WaitOutcome::default()
    };
    assert_eq!(
        waited_line(&bad, kind),
        "1 of 2 InferenceServices not Available: b is Failed (FailedToLoad)."
    );
}
