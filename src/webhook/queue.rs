//! The sync queue between the receiver and the one thread that syncs. Events are coalesced per
//! model: however many arrive for a model before its sync starts, it is synced once; events
//! that arrive while it is being synced make exactly one more sync after it. The queue is
//! bounded: past [`MAX_MODELS`] waiting models (or [`MAX_ALIASES`] aliases named for one model)
//! a full sync is scheduled instead, which covers every model, so nothing is lost. A full sync
//! is due at start and every resync interval; when it starts it takes over the waiting models
//! (it reads them too) and gives them back if it fails.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::engine::Scope;

pub const MAX_MODELS: usize = 10_000;
pub const MAX_ALIASES: usize = 64;
/// Wait before retrying a failed full sync (or the resync interval, if shorter).
pub const FULL_RETRY: Duration = Duration::from_secs(15);

/// What an event did to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// The model now waits for a sync.
    New,
    /// The model was already waiting: this event rides on that sync.
    Merged,
    /// The queue is full: a full sync is scheduled instead.
    Full,
}

#[derive(Debug, Default)]
struct Waiting {
    aliases: BTreeSet<String>,
    whole: bool,
}

impl Waiting {
    fn scope(self, name: String) -> Scope {
        Scope::Model {
            name,
            aliases: self.aliases,
            whole: self.whole,
        }
    }
}

#[derive(Debug)]
pub struct Queue {
    /// Waiting models, with the aliases their events named and whether an event asked for
    /// the whole model (one naming no alias); `order` is their arrival order.
    waiting: BTreeMap<String, Waiting>,
    order: VecDeque<String>,
    /// A full sync was asked for by an overflow.
    full_asked: bool,
    next_full: Instant,
    interval: Duration,
    stopping: bool,
}

impl Queue {
    /// A queue whose first full sync is due at `now`.
    pub fn new(now: Instant, interval: Duration) -> Queue {
        Queue {
            waiting: BTreeMap::new(),
            order: VecDeque::new(),
            full_asked: false,
            next_full: now,
            interval,
            stopping: false,
        }
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Asks for a sync of `model`: of the object of `alias` if the event named one, else of
    /// every object of the model.
    pub fn push(&mut self, model: &str, alias: Option<&str>) -> Queued {
        if let Some(waiting) = self.waiting.get_mut(model) {
            match alias {
                Some(a) if waiting.aliases.len() < MAX_ALIASES || waiting.aliases.contains(a) => {
                    waiting.aliases.insert(a.to_string());
                }
                Some(_) => {
                    self.full_asked = true;
                    return Queued::Full;
                }
                None => waiting.whole = true,
            }
            return Queued::Merged;
        }
        if self.waiting.len() >= MAX_MODELS {
            self.full_asked = true;
            return Queued::Full;
        }
        self.waiting.insert(
            model.to_string(),
            Waiting {
                aliases: alias.into_iter().map(String::from).collect(),
                whole: alias.is_none(),
            },
        );
        self.order.push_back(model.to_string());
        Queued::New
    }

    /// The next sync to run at `now`, if any: a due full sync first (taking over the waiting
    /// models), else the model that has waited longest.
    pub fn take(&mut self, now: Instant) -> Option<(Scope, Vec<Scope>)> {
        if self.full_asked || now >= self.next_full {
            self.full_asked = false;
            let covered = self.drain();
            return Some((Scope::All, covered));
        }
        let name = self.order.pop_front()?;
        let waiting = self.waiting.remove(&name).unwrap_or_default();
        Some((waiting.scope(name), Vec::new()))
    }

    fn drain(&mut self) -> Vec<Scope> {
        let mut waiting = std::mem::take(&mut self.waiting);
        self.order
            .drain(..)
            .map(|name| waiting.remove(&name).unwrap_or_default().scope(name))
            .collect()
    }

    /// Records the end of a full sync that took over `covered`: the next is due one interval
    /// later, or sooner after a failure, when `covered` waits again.
    pub fn full_done(&mut self, now: Instant, ok: bool, covered: Vec<Scope>) {
        if ok {
            self.next_full = now + self.interval;
            return;
        }
        self.next_full = now + self.interval.min(FULL_RETRY);
        for scope in covered {
            if let Scope::Model {
                name,
                aliases,
                whole,
            } = scope
            {
                if whole {
                    self.push(&name, None);
                }
                for alias in &aliases {
                    self.push(&name, Some(alias));
                }
            }
        }
    }

    /// How long the worker may sleep at `now`: `None` when a sync can start at once.
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.full_asked || !self.order.is_empty() || now >= self.next_full {
            None
        } else {
            Some(self.next_full - now)
        }
    }
}

/// The queue shared by the receiver (which pushes) and the sync thread (which takes).
pub struct Scheduler {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Scheduler {
    pub fn new(interval: Duration) -> Scheduler {
        Scheduler {
            queue: Mutex::new(Queue::new(Instant::now(), interval)),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock ends the process (see the sync thread's guard).
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a sync of `model` and returns at once.
    pub fn push(&self, model: &str, alias: Option<&str>) -> (Queued, usize) {
        let mut q = self.lock();
        let queued = q.push(model, alias);
        let waiting = q.waiting();
        drop(q);
        self.wake.notify_one();
        (queued, waiting)
    }

    /// Blocks until a sync is due; `None` once [`stop`](Scheduler::stop) was called.
    pub fn next(&self) -> Option<(Scope, Vec<Scope>)> {
        let mut q = self.lock();
        loop {
            if q.stopping {
                return None;
            }
            let now = Instant::now();
            match q.idle_for(now) {
                None => return q.take(now),
                Some(wait) => {
                    q = self
                        .wake
                        .wait_timeout(q, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    pub fn full_done(&self, ok: bool, covered: Vec<Scope>) {
        self.lock().full_done(Instant::now(), ok, covered);
    }

    pub fn waiting(&self) -> usize {
        self.lock().waiting()
    }

    /// No sync starts after this; returns how many models were still waiting.
    pub fn stop(&self) -> usize {
        let mut q = self.lock();
        q.stopping = true;
        let waiting = q.waiting();
        drop(q);
        self.wake.notify_all();
        waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn model(name: &str, aliases: &[&str]) -> Scope {
        Scope::Model {
            whole: aliases.is_empty(),
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// A queue whose start-up full sync has run.
    fn started(t0: Instant) -> Queue {
        let mut q = Queue::new(t0, HOUR);
        assert_eq!(q.take(t0), Some((Scope::All, vec![])));
        q.full_done(t0, true, vec![]);
        q
    }

    #[test]
    fn a_full_sync_runs_first_then_every_interval() {
        let t0 = Instant::now();
        let mut q = started(t0);
        assert_eq!(q.take(t0), None);
        assert_eq!(q.idle_for(t0), Some(HOUR));
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
        assert_eq!(s.next(), Some((Scope::All, vec![])));
        s.full_done(true, vec![]);
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.next())
        };
        std::thread::sleep(Duration::from_millis(50));
        s.push("iris", None);
        assert_eq!(waiter.join().unwrap().unwrap().0, model("iris", &[]));
        s.push("a", None);
        assert_eq!(s.stop(), 1);
        assert_eq!(s.next(), None);
    }
}
