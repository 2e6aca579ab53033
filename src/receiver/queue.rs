//! The sync queue between the receiver and the one thread that syncs. Events are coalesced per
//! model: however many arrive for a model before its sync starts, it is synced once; events
//! that arrive while it is being synced make exactly one more sync after it. The queue is
//! bounded: past [`MAX_MODELS`] waiting models (or [`MAX_ALIASES`] aliases named for one model)
//! a full sync is scheduled instead, which covers every model, so nothing is lost. Full syncs
//! run only on the replica that leads (the Lease's holder): at once when it starts leading, then
//! every resync interval; when one starts it takes over the waiting models (it reads them too)
//! and gives them back if it fails. A replica that does not lead drops an overflow (the
//! leader's next full sync covers it).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::engine::Scope;

pub(crate) const MAX_MODELS: usize = 10_000;
pub(crate) const MAX_ALIASES: usize = 64;
/// Wait before retrying a failed full sync (or the resync interval, if shorter).
pub(crate) const FULL_RETRY: Duration = Duration::from_secs(15);
/// A model with a progressive rollout in progress is synced again this often, so that its
/// steps move on (and a failing canary is aborted) without waiting for an event.
pub(crate) const ROLLOUT_TICK: Duration = Duration::from_secs(30);

/// What an event did to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
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
pub(crate) struct Queue {
    /// Waiting models, with the aliases their events named and whether an event asked for
    /// the whole model (one naming no alias); `order` is their arrival order.
    waiting: BTreeMap<String, Waiting>,
    order: VecDeque<String>,
    /// A full sync was asked for by an overflow.
    full_asked: bool,
    next_full: Instant,
    interval: Duration,
    stopping: bool,
    /// Whether this replica leads: only then are full syncs due.
    leading: bool,
    /// Models with a rollout in progress, as the last syncs saw them, and when they are
    /// synced next.
    rollouts: BTreeSet<String>,
    next_tick: Instant,
}

impl Queue {
    /// A queue whose first full sync is due at `now`, once the replica leads.
    pub(crate) fn new(now: Instant, interval: Duration) -> Queue {
        Queue {
            waiting: BTreeMap::new(),
            order: VecDeque::new(),
            full_asked: false,
            next_full: now,
            interval,
            stopping: false,
            leading: false,
            rollouts: BTreeSet::new(),
            next_tick: now,
        }
    }

    /// What a sync of `scope` saw of rollouts in progress: a full sync saw them all, a
    /// model's sync that model's.
    pub(crate) fn rollouts_after(
        &mut self,
        now: Instant,
        scope: &Scope,
        models: &BTreeSet<String>,
    ) {
        match scope {
            Scope::All => self.rollouts = models.clone(),
            Scope::Model { name, .. } if models.contains(name) => {
                self.rollouts.insert(name.clone());
            }
            Scope::Model { name, .. } => {
                self.rollouts.remove(name);
            }
        }
        if self.rollouts.is_empty() || self.next_tick <= now {
            self.next_tick = now + ROLLOUT_TICK;
        }
    }

    /// Queues a sync of every model in rollout when the tick is due.
    fn tick(&mut self, now: Instant) {
        if self.rollouts.is_empty() || now < self.next_tick {
            return;
        }
        self.next_tick = now + ROLLOUT_TICK;
        for model in self.rollouts.clone() {
            self.push(&model, None);
        }
    }

    /// The replica starts or stops leading; one that starts runs a full sync at once.
    pub(crate) fn set_leading(&mut self, leading: bool) {
        if leading && !self.leading {
            self.full_asked = true;
        }
        self.leading = leading;
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Asks for a sync of `model`: of the object of `alias` if the event named one, else of
    /// every object of the model.
    pub(crate) fn push(&mut self, model: &str, alias: Option<&str>) -> Queued {
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
    pub(crate) fn take(&mut self, now: Instant) -> Option<(Scope, Vec<Scope>)> {
        self.tick(now);
        if self.full_due(now) {
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
    pub(crate) fn full_done(&mut self, now: Instant, ok: bool, covered: Vec<Scope>) {
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

    fn full_due(&self, now: Instant) -> bool {
        self.leading && (self.full_asked || now >= self.next_full)
    }

    /// How long the worker may sleep at `now`: `None` when a sync can start at once.
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        let tick_due = !self.rollouts.is_empty() && now >= self.next_tick;
        if self.full_due(now) || !self.order.is_empty() || tick_due {
            return None;
        }
        // Woken by an event or by starting to lead, else.
        let mut wait = Duration::from_secs(3600);
        if self.leading {
            wait = wait.min(self.next_full - now);
        }
        if !self.rollouts.is_empty() {
            wait = wait.min(self.next_tick - now);
        }
        Some(wait)
    }
}

/// The queue shared by the receiver (which pushes) and the sync thread (which takes).
pub(crate) struct Scheduler {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Scheduler {
    pub(crate) fn new(interval: Duration) -> Scheduler {
        Scheduler {
            queue: Mutex::new(Queue::new(Instant::now(), interval)),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock ends the process (see the sync thread's guard).
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The replica starts or stops leading (see [`Queue::set_leading`]).
    pub(crate) fn set_leading(&self, leading: bool) {
        self.lock().set_leading(leading);
        self.wake.notify_one();
    }

    /// Asks for a sync of `model` and returns at once.
    pub(crate) fn push(&self, model: &str, alias: Option<&str>) -> (Queued, usize) {
        let mut q = self.lock();
        let queued = q.push(model, alias);
        let waiting = q.waiting();
        drop(q);
        self.wake.notify_one();
        (queued, waiting)
    }

    /// Blocks until a sync is due; `None` once [`stop`](Scheduler::stop) was called.
    pub(crate) fn next(&self) -> Option<(Scope, Vec<Scope>)> {
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

    pub(crate) fn full_done(&self, ok: bool, covered: Vec<Scope>) {
        self.lock().full_done(Instant::now(), ok, covered);
    }

    /// See [`Queue::rollouts_after`].
    pub(crate) fn rollouts_after(&self, scope: &Scope, models: &BTreeSet<String>) {
        self.lock().rollouts_after(Instant::now(), scope, models);
    }

    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiting()
    }

    /// No sync starts after this; returns how many models were still waiting.
    pub(crate) fn stop(&self) -> usize {
        let mut q = self.lock();
        q.stopping = true;
        let waiting = q.waiting();
        drop(q);
        self.wake.notify_all();
        waiting
    }
}

#[cfg(test)]
mod tests;
