use super::*;

/// Every metric the textfile may hold.
const NAMES: [&str; 8] = [
    "m2s_build_info",
    "m2s_run_last_timestamp_seconds",
    "m2s_run_success",
    "m2s_run_last_success_timestamp_seconds",
    "m2s_run_duration_seconds",
    "m2s_run_changes",
    "m2s_run_rollout_changes",
    "m2s_entries_not_deployable",
];

fn metrics(success: bool, changes: Option<Changes>) -> RunMetrics {
    RunMetrics {
        namespace: "models".into(),
        instance: "m2s".into(),
        finished: 1_700_000_100.5,
        duration: 2.25,
        success,
        last_success: if success {
            1_700_000_100.5
        } else {
            1_600_000_000.0
        },
        changes,
    }
}

#[test]
fn a_successful_run_reports_every_sample_with_its_labels() {
    let changes = Changes {
        created: 2,
        updated: 1,
        deleted: 0,
        failed: 0,
        not_deployable: 3,
        rollouts: crate::engine::apply::RolloutCounts {
            steps: 0,
            promoted: 1,
            aborted: 2,
        },
    };
    let text = render(&metrics(true, Some(changes)));
    let l = "namespace=\"models\",m2s_instance=\"m2s\"";
    for line in [
        format!("m2s_run_last_timestamp_seconds{{{l}}} 1700000100.500"),
        format!("m2s_run_success{{{l}}} 1"),
        format!("m2s_run_last_success_timestamp_seconds{{{l}}} 1700000100.500"),
        format!("m2s_run_duration_seconds{{{l}}} 2.250"),
        format!("m2s_run_changes{{{l},action=\"created\"}} 2"),
        format!("m2s_run_changes{{{l},action=\"updated\"}} 1"),
        format!("m2s_run_changes{{{l},action=\"deleted\"}} 0"),
        format!("m2s_run_changes{{{l},action=\"failed\"}} 0"),
        format!("m2s_entries_not_deployable{{{l}}} 3"),
        format!("m2s_run_rollout_changes{{{l},change=\"step\"}} 0"),
        format!("m2s_run_rollout_changes{{{l},change=\"promoted\"}} 1"),
        format!("m2s_run_rollout_changes{{{l},change=\"aborted\"}} 2"),
    ] {
        assert!(
            text.lines().any(|x| x == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Every sample has both labels, every family a HELP and a TYPE, and only NAMES appear.
    for sample in text.lines().filter(|x| !x.starts_with('#')) {
        assert!(sample.contains(l), "{sample}");
        let name = sample.split('{').next().unwrap();
        assert!(NAMES.contains(&name), "{name} is not in NAMES");
        assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{name}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
    }
    assert!(text.ends_with('\n'));
}

#[test]
fn a_run_that_ended_early_reports_failure_and_no_entry_count() {
    let text = render(&metrics(false, None));
    assert!(text.contains("m2s_run_success{namespace=\"models\",m2s_instance=\"m2s\"} 0\n"));
    assert!(text.contains("m2s_run_last_success_timestamp_seconds{namespace=\"models\",m2s_instance=\"m2s\"} 1600000000.000\n"));
    assert!(text.contains("action=\"failed\"} 0\n"));
    assert!(text.contains("change=\"aborted\"} 0\n"));
    assert!(!text.contains("m2s_entries_not_deployable"), "{text}");
}

#[test]
fn the_last_success_is_read_back_from_a_previous_file() {
    let text = render(&metrics(true, None));
    assert_eq!(last_success(&text), Some(1_700_000_100.5));
    assert_eq!(
        last_success("m2s_run_last_success_timestamp_seconds 42\n"),
        Some(42.0)
    );
    assert_eq!(last_success(""), None);
    assert_eq!(
        last_success("m2s_run_last_success_timestamp_seconds_x 1\n"),
        None
    );
    assert_eq!(
        last_success("m2s_run_last_success_timestamp_seconds{a=\"b\"} nope\n"),
        None
    );
}

#[test]
fn label_values_are_escaped() {
    let mut m = metrics(true, None);
    m.instance = "a\"b\\c".into();
    let text = render(&m);
    assert!(text.contains("m2s_instance=\"a\\\"b\\\\c\""), "{text}");
}
