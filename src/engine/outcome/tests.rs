use super::*;
use std::time::Duration;

use crate::targets::{by_id, Readiness, State};

fn failure(name: &str) -> Failure {
    Failure {
        action: Action::Update,
        name: name.into(),
        error: "409 Conflict".into(),
    }
}

#[test]
fn the_result_is_the_worst_problem_and_each_is_counted() {
    let mut o = SyncOutcome::default();
    assert_eq!(o.results(), [SyncResult::Ok]);
    o.not_deployable = 2;
    assert_eq!(o.result(), SyncResult::NotDeployable);
    // A refused write-back next to an entry that cannot be deployed is reported as both,
    // and counted as the write-back failure it is.
    o.write_back = Some(WriteBackOutcome {
        set: 1,
        deleted: 0,
        failures: vec!["403 on m2s.models.a.state".into()],
    });
    assert_eq!(
        o.results(),
        [SyncResult::NotDeployable, SyncResult::WriteBackFailed]
    );
    assert_eq!(o.result(), SyncResult::WriteBackFailed);
    let kind = by_id("seldon-v1").unwrap().resource();
    let problems = o.problems(kind);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("write-back: 1 of 2 tag writes refused"));
    assert!(problems[1].starts_with("2 registry entries cannot be deployed"));
    o.failures.push(failure("a"));
    o.changes = 3;
    assert_eq!(o.result(), SyncResult::ApplyFailed);
    assert_eq!(o.result().label(), "failed");
    assert_eq!(
        o.problems(kind)[0],
        "1 of 3 changes failed: a: 409 Conflict"
    );
}

#[test]
fn error_lines_name_the_first_ten_objects_and_count_the_rest() {
    let o = SyncOutcome {
        changes: 30_000,
        failures: (0..30_000).map(|i| failure(&format!("m-{i}"))).collect(),
        ..SyncOutcome::default()
    };
    let line = &o.problems(by_id("kserve").unwrap().resource())[0];
    assert!(line.starts_with("30000 of 30000 changes failed: m-0: 409 Conflict; m-1:"));
    assert!(line.contains("m-9: 409 Conflict; and 29990 more"), "{line}");
    assert!(!line.contains("m-10:"));
    assert!(line.len() < 1_000, "{} bytes", line.len());
}

#[test]
fn objects_not_available_are_named() {
    let w = WaitOutcome {
        available: vec!["a".into()],
        failed: vec![("b".into(), "FailedToLoad".into())],
        not_ready: vec![(
            "c".into(),
            Readiness {
                state: State::Creating,
                message: Some("pulling".into()),
                url: None,
            },
        )],
        timeout: Duration::from_secs(60),
    };
    let o = SyncOutcome {
        wait: Some(w),
        ..SyncOutcome::default()
    };
    assert_eq!(o.result(), SyncResult::NotAvailable);
    assert_eq!(
        o.problems(by_id("seldon-v2").unwrap().resource()),
        ["2 of 3 Models not Available: b is Failed (FailedToLoad); c is still Creating (pulling) after 60s (--wait-timeout)"]
    );
}
