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
/// The leader looks this often for progressive rollouts in progress (whoever started them) and
/// syncs their models, so that steps move on, and a failing canary is aborted, without waiting
/// for an event.
pub(crate) const ROLLOUT_TICK: Duration = Duration::from_secs(30);

/// What the sync thread is to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Job {
    /// A sync, and (for a full sync) the model syncs it took over.
    Sync(Scope, Vec<Scope>),
    /// The leader's rollout tick: find the models with a rollout in progress and queue them.
    Tick,
}

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
    /// When the leader's next rollout tick is due.
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
            next_tick: now + ROLLOUT_TICK,
        }
    }

    /// Whether the leader's rollout tick is due at `now`; if so, the next is one tick later.
    /// A full sync due first goes first (it moves every rollout on anyway).
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        if !self.leading || now < self.next_tick || self.full_due(now) {
            return false;
        }
        self.next_tick = now + ROLLOUT_TICK;
        true
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
            // The full sync moved every rollout on.
            self.next_tick = now + ROLLOUT_TICK;
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
        let tick_due = self.leading && now >= self.next_tick;
        if self.full_due(now) || !self.order.is_empty() || tick_due {
            None
        } else if self.leading {
            Some((self.next_full - now).min(self.next_tick - now))
        } else {
            // Woken by an event or by starting to lead.
            Some(Duration::from_secs(3600))
        }
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

    /// Blocks until a job is due; `None` once [`stop`](Scheduler::stop) was called.
    pub(crate) fn next(&self) -> Option<Job> {
        let mut q = self.lock();
        loop {
            if q.stopping {
                return None;
            }
            let now = Instant::now();
            if q.tick(now) {
                return Some(Job::Tick);
            }
            match q.idle_for(now) {
                None => {
                    if let Some((scope, covered)) = q.take(now) {
                        return Some(Job::Sync(scope, covered));
                    }
                }
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
