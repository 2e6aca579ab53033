use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn model(name: &str, aliases: &[&str]) -> Scope {
    Scope::Model {
        whole: aliases.is_empty(),
        name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
    }
}

/// A queue of the leading replica whose start-up full sync has run.
fn started(t0: Instant) -> Queue {
    let mut q = Queue::new(t0, HOUR);
    q.set_leading(true);
    assert_eq!(q.take(t0), Some((Scope::All, vec![])));
    q.full_done(t0, true, vec![]);
    q
}

#[test]
fn a_full_sync_runs_first_then_every_interval() {
    let t0 = Instant::now();
    let mut q = started(t0);
    assert_eq!(q.take(t0), None);
    // Woken for the rollout tick in between (see the_leader_ticks_for_rollouts…).
    assert_eq!(q.idle_for(t0), Some(ROLLOUT_TICK));
    assert_eq!(q.take(t0 + HOUR).map(|j| j.0), Some(Scope::All));
}

#[test]
fn events_for_one_model_coalesce_into_one_sync_and_one_more() {
    let t0 = Instant::now();
    let mut q = started(t0);
    // 100 events before the sync starts: one sync.
    assert_eq!(q.push("iris", Some("champion")), Queued::New);
    for i in 0..99 {
        let alias = if i % 2 == 0 { Some("champion") } else { None };
        assert_eq!(q.push("iris", alias), Queued::Merged);
    }
    // Some events named no alias: the sync covers the whole model.
    let whole = Scope::Model {
        name: "iris".into(),
        aliases: ["champion".to_string()].into(),
        whole: true,
    };
    assert_eq!(q.take(t0), Some((whole, vec![])));
    // While it runs, 100 more naming one alias: exactly one more sync, of that alias's
    // object only, then nothing.
    for _ in 0..100 {
        q.push("iris", Some("old"));
    }
    assert_eq!(q.take(t0), Some((model("iris", &["old"]), vec![])));
    assert_eq!(q.take(t0), None);
}

#[test]
fn models_are_synced_in_arrival_order() {
    let t0 = Instant::now();
    let mut q = started(t0);
    for m in ["b", "a", "c", "a"] {
        q.push(m, None);
    }
    let order: Vec<Scope> = std::iter::from_fn(|| q.take(t0).map(|j| j.0)).collect();
    assert_eq!(order, [model("b", &[]), model("a", &[]), model("c", &[])]);
}

#[test]
fn a_full_sync_takes_over_waiting_models_and_gives_them_back_on_failure() {
    let t0 = Instant::now();
    let mut q = started(t0);
    q.push("a", Some("champion"));
    q.push("b", None);
    let (scope, covered) = q.take(t0 + HOUR).unwrap();
    assert_eq!(scope, Scope::All);
    assert_eq!(covered, [model("a", &["champion"]), model("b", &[])]);
    assert_eq!(q.waiting(), 0);
    // It failed: they wait again, and the full sync is retried soon.
    q.full_done(t0 + HOUR, false, covered);
    assert_eq!(q.take(t0 + HOUR).unwrap().0, model("a", &["champion"]));
    assert_eq!(q.take(t0 + HOUR).unwrap().0, model("b", &[]));
    assert_eq!(q.take(t0 + HOUR + FULL_RETRY).unwrap().0, Scope::All);
}

#[test]
fn overflow_schedules_a_full_sync_and_keeps_the_queue_bounded() {
    let t0 = Instant::now();
    let mut q = started(t0);
    for i in 0..MAX_MODELS {
        assert_eq!(q.push(&format!("m{i}"), None), Queued::New);
    }
    assert_eq!(q.push("one-too-many", None), Queued::Full);
    assert_eq!(q.waiting(), MAX_MODELS);
    // The full sync comes first and covers every waiting model.
    let (scope, covered) = q.take(t0).unwrap();
    assert_eq!((scope, covered.len()), (Scope::All, MAX_MODELS));
    q.full_done(t0, true, covered);
    assert_eq!(q.take(t0), None);
    // Aliases named for one model are bounded the same way.
    for i in 0..MAX_ALIASES {
        q.push("iris", Some(&format!("a{i}")));
    }
    assert_eq!(q.push("iris", Some("a0")), Queued::Merged);
    assert_eq!(q.push("iris", Some("another")), Queued::Full);
}

#[test]
fn the_scheduler_wakes_for_an_event_and_stops() {
    let s = std::sync::Arc::new(Scheduler::new(HOUR));
    s.set_leading(true);
    assert_eq!(s.next(), Some(Job::Sync(Scope::All, vec![])));
    s.full_done(true, vec![]);
    let waiter = {
        let s = s.clone();
        std::thread::spawn(move || s.next())
    };
    std::thread::sleep(Duration::from_millis(50));
    s.push("iris", None);
    assert_eq!(
        waiter.join().unwrap(),
        Some(Job::Sync(model("iris", &[]), vec![]))
    );
    s.push("a", None);
    assert_eq!(s.stop(), 1);
    assert_eq!(s.next(), None);
}

#[test]
fn only_the_leading_replica_runs_full_syncs() {
    let t0 = Instant::now();
    let mut q = Queue::new(t0, HOUR);
    // Not leading: no full sync, at start or after an interval; events are synced.
    assert_eq!(q.take(t0 + HOUR * 2), None);
    q.push("iris", None);
    assert_eq!(q.take(t0).map(|j| j.0), Some(model("iris", &[])));
    // An overflow does not make a follower run a full sync.
    for i in 0..=MAX_MODELS {
        q.push(&format!("m{i}"), None);
    }
    assert_ne!(q.take(t0).map(|j| j.0), Some(Scope::All));
    // Starting to lead runs one at once, taking over the waiting models.
    q.set_leading(true);
    let (scope, covered) = q.take(t0).unwrap();
    assert_eq!(scope, Scope::All);
    assert_eq!(covered.len(), MAX_MODELS - 1);
    q.full_done(t0, true, covered);
    assert_eq!(q.take(t0), None);
    assert_eq!(q.take(t0 + HOUR).map(|j| j.0), Some(Scope::All));
    // Losing the lead stops them; leading again starts one at once.
    q.full_done(t0 + HOUR, true, vec![]);
    q.set_leading(false);
    assert_eq!(q.take(t0 + HOUR * 3), None);
    q.set_leading(true);
    assert_eq!(q.take(t0 + HOUR).map(|j| j.0), Some(Scope::All));
}

#[test]
fn the_leader_ticks_for_rollouts_and_a_follower_does_not() {
    let t0 = Instant::now();
    let mut q = started(t0);
    // Idle: the leader wakes for its next tick, not only for the next full sync.
    assert_eq!(q.idle_for(t0), Some(ROLLOUT_TICK));
    assert!(!q.tick(t0));
    let t1 = t0 + ROLLOUT_TICK;
    assert!(q.tick(t1));
    assert!(!q.tick(t1), "one tick per period");
    assert!(q.tick(t1 + ROLLOUT_TICK));
    // A full sync due goes first (it moves every rollout on), and puts the next tick off.
    let t2 = t0 + HOUR;
    assert!(!q.tick(t2));
    assert_eq!(q.take(t2).map(|j| j.0), Some(Scope::All));
    q.full_done(t2, true, vec![]);
    assert!(!q.tick(t2 + ROLLOUT_TICK / 2));
    // A follower never ticks: its leader does.
    let mut follower = Queue::new(t0, HOUR);
    assert!(!follower.tick(t0 + 10 * ROLLOUT_TICK));
    assert_eq!(follower.idle_for(t0), Some(HOUR));
}
