use super::*;

fn record(kind: &'static str, result: &'static str, secs: f64) -> SyncRecord {
    SyncRecord {
        kind,
        result,
        duration: Duration::from_secs_f64(secs),
        requests: Requests {
            mlflow: 2,
            kube: 4,
            kube_writes: 1,
        },
        created: 0,
        updated: 1,
        deleted: 0,
        not_deployable: Some(3),
        rollouts: RolloutCounts {
            steps: 1,
            promoted: 0,
            aborted: usize::from(result == "failed"),
        },
    }
}

#[test]
fn renders_every_series_and_counts_what_happened() {
    let m = Metrics::new();
    let text = m.render();
    assert!(text.contains("m2s_webhook_events_rejected_total{reason=\"bad_signature\"} 0"));
    assert!(text.contains("m2s_syncs_total{kind=\"model\",result=\"ok\"} 0"));
    assert!(text.contains("m2s_last_full_sync_success_timestamp_seconds 0"));
    assert!(text.contains("m2s_rollout_changes_total{change=\"aborted\"} 0\n"));
    let build = format!(
        "m2s_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION"),
        env!("M2S_COMMIT")
    );
    assert!(text.contains(&build), "{text}");
    assert!(!m.ready());
    m.received("model_version_alias.created");
    m.received("something.else");
    m.rejected("bad_signature");
    m.ignored("duplicate");
    m.sync_finished(&record("model", "ok", 0.2));
    m.sync_finished(&record("full", "failed", 3.0));
    assert!(!m.ready(), "a failed full sync does not make it ready");
    m.sync_finished(&record("full", "not_deployable", 1.5));
    assert!(m.ready());
    let text = m.render();
    for line in [
        "m2s_webhook_events_received_total{event=\"model_version_alias.created\"} 1",
        "m2s_webhook_events_received_total{event=\"other\"} 1",
        "m2s_webhook_events_rejected_total{reason=\"bad_signature\"} 1",
        "m2s_webhook_events_ignored_total{reason=\"duplicate\"} 1",
        "m2s_syncs_total{kind=\"model\",result=\"ok\"} 1",
        "m2s_syncs_total{kind=\"full\",result=\"failed\"} 1",
        "m2s_sync_duration_seconds_bucket{kind=\"model\",le=\"0.1\"} 0",
        "m2s_sync_duration_seconds_bucket{kind=\"model\",le=\"0.25\"} 1",
        "m2s_sync_duration_seconds_bucket{kind=\"full\",le=\"2.5\"} 1",
        "m2s_sync_duration_seconds_bucket{kind=\"full\",le=\"+Inf\"} 2",
        "m2s_sync_duration_seconds_count{kind=\"full\"} 2",
        "m2s_sync_requests_total{kind=\"model\",backend=\"kubernetes\"} 4",
        "m2s_sync_changes_total{kind=\"full\",action=\"update\"} 2",
        "m2s_rollout_changes_total{change=\"step\"} 3",
        "m2s_rollout_changes_total{change=\"promoted\"} 0",
        "m2s_rollout_changes_total{change=\"aborted\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("m2s_last_full_sync_success_timestamp_seconds 0\n"));
    assert!(text.contains("m2s_leader 0\n"));
    assert!(
        text.contains("m2s_entries_not_deployable 3\n"),
        "from the full syncs"
    );
    m.set_leader(true);
    assert!(m.render().contains("m2s_leader 1\n"));
    // Every sample line belongs to a family declared with # TYPE.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(text.contains(&format!("# TYPE {base} ")), "{l}");
    }
}
