//! Pool health for failover: consecutive gateway-level failures (classes in
//! `outcome`) eject a pool
//! for a while; then one probe request decides whether it is back
//! (half-open). Pure: the caller passes the time (seconds) and the outcome
//! of each response.
//!
//! Each VM keeps its own view (`states`), which routing reads with no host
//! call. With a [`HealthStore`] attached (`share`), the view follows the one
//! board every worker of the gateway writes: failures and probe results are
//! written there at once, and `sync` (on the VM's timer) brings in what the
//! other workers wrote. Without one, the view is the VM's alone.

mod follow;
mod shared;

pub use shared::{update, Board, HealthStore, Record, Stored, Unshared, ATTEMPTS};

/// What a pool's health is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// In service; `failures` consecutive gateway-level failures so far.
    Closed { failures: u32 },
    /// Ejected through the given second: over once the clock reads a later
    /// second (see [`ejection_over`]).
    Open { until: u64 },
    /// Ejection over: the next request routed there is a probe; while it is
    /// in flight (`probing`), the pool stays out of service.
    HalfOpen { probing: bool },
    /// Ejection over, and another worker of the gateway holds the probe
    /// until the given time: out of service here until its outcome arrives
    /// or the lease runs out.
    Leased { until: u64 },
}

/// What a response did to a pool's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// The pool was ejected (from service, or again after a failed probe).
    Ejected,
    /// A probe succeeded: the pool is back in service.
    Restored,
}

#[derive(Debug)]
pub struct Health {
    eject_after: u32,
    eject_seconds: u64,
    weights: Vec<u32>,
    states: Vec<State>,
    /// Pools not `Closed`: while 0, routing needs no clock and no set.
    troubled: usize,
    shared: Option<Shared>,
    /// Board updates given up since the last report (`give_up_report`).
    gave_up: u32,
    /// When the last give-up report was made.
    reported_at: Option<u64>,
}

/// How often, at most, a worker reports board updates that gave up: a board
/// that keeps changing under every write would otherwise log on every
/// request.
pub const GIVE_UP_REPORT_SECONDS: u64 = 10;

/// Whether an ejection through second `until` is over at `now`. Times are
/// whole seconds (the clock floored), and an ejection starting at any point
/// of second `t` is recorded through `t + ejectSeconds`: it ends when the
/// clock reads `t + ejectSeconds + 1`, so it lasts more than `ejectSeconds`
/// (up to one second more), never less. The board keeps `until` as earlier
/// builds wrote it (start second plus `ejectSeconds`), so workers of both
/// builds agree on it during a rollout; an earlier build ends it one second
/// sooner.
pub fn ejection_over(until: u64, now: u64) -> bool {
    now > until
}

/// The gateway's board, for a view that follows it.
struct Shared {
    /// The pools' names, in config order: the board is keyed by name, so a
    /// config push that keeps a pool keeps its record.
    names: Vec<String>,
    store: Box<dyn HealthStore>,
    /// This VM's token, as the holder of a probe lease.
    me: u64,
    /// The board's version last brought in: an unchanged board is not read
    /// again.
    seen: Option<u32>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("names", &self.names)
            .field("me", &self.me)
            .field("seen", &self.seen)
            .finish()
    }
}

impl Health {
    /// `weights`: the pools' weights, in config order.
    pub fn new(weights: Vec<u32>, eject_after: u32, eject_seconds: u32) -> Self {
        let states = vec![State::Closed { failures: 0 }; weights.len()];
        Health {
            eject_after: eject_after.max(1),
            eject_seconds: u64::from(eject_seconds),
            weights,
            states,
            troubled: 0,
            shared: None,
            gave_up: 0,
            reported_at: None,
        }
    }

    pub fn state(&self, pool: usize) -> Option<State> {
        self.states.get(pool).copied()
    }

    /// Whether every pool is in service (no clock needed to route).
    pub fn all_closed(&self) -> bool {
        self.troubled == 0
    }

    /// The pools to keep traffic away from at `now`; ejections and probe
    /// leases that have run out become half-open here (no host call: the
    /// probe is claimed only by the request routed there). `None` when every
    /// pool is in service.
    pub fn out_of_service(&mut self, now: u64) -> Option<Vec<bool>> {
        if self.troubled == 0 {
            return None;
        }
        for state in &mut self.states {
            match *state {
                State::Open { until } if ejection_over(until, now) => {
                    *state = State::HalfOpen { probing: false }
                }
                State::Leased { until } if now >= until => {
                    *state = State::HalfOpen { probing: false }
                }
                _ => {}
            }
        }
        let out = self
            .states
            .iter()
            .map(|s| {
                matches!(
                    s,
                    State::Open { .. } | State::HalfOpen { probing: true } | State::Leased { .. }
                )
            })
            .collect();
        Some(out)
    }

    /// A request was routed to `pool` at `now`: it is the probe when the
    /// pool is half-open, no probe is in flight, and (with a board) this VM
    /// wins the gateway's probe lease. `true` when it is the probe.
    pub fn claim_probe(&mut self, pool: usize, now: u64) -> bool {
        if self.states.get(pool) != Some(&State::HalfOpen { probing: false }) {
            return false;
        }
        if let Some(won) = self.claim_shared(pool, now) {
            return won;
        }
        self.set(pool, State::HalfOpen { probing: true });
        true
    }

    /// A probe ended without an answer that tells (the stream was reset, or
    /// Envoy's circuit breaker shed it): another request may probe, and the
    /// gateway's lease is given back.
    pub fn probe_abandoned(&mut self, pool: usize) {
        if self.states.get(pool) == Some(&State::HalfOpen { probing: true }) {
            self.set(pool, State::HalfOpen { probing: false });
            self.release_shared(pool);
        }
    }

    /// The outcome of a response from `pool` at `now`: `failed` when Envoy
    /// itself failed to reach the pool. With a board, a failure, a probe's
    /// outcome or the first success after failures is written there (the
    /// healthy path, a success with no failures known, writes nothing).
    pub fn record(&mut self, pool: usize, failed: bool, now: u64) -> Change {
        let Some(state) = self.states.get(pool).copied() else {
            return Change::None;
        };
        if failed || state != (State::Closed { failures: 0 }) {
            if let Some(change) = self.record_shared(pool, failed, now) {
                return change;
            }
        }
        let (next, change) = match (state, failed) {
            (State::Closed { .. }, false) => (State::Closed { failures: 0 }, Change::None),
            (State::Closed { failures }, true) => {
                let failures = failures.saturating_add(1);
                if failures >= self.eject_after && self.another_in_service(pool) {
                    (self.open(now), Change::Ejected)
                } else {
                    (State::Closed { failures }, Change::None)
                }
            }
            (State::HalfOpen { .. } | State::Leased { .. }, false) => {
                (State::Closed { failures: 0 }, Change::Restored)
            }
            (State::HalfOpen { .. } | State::Leased { .. }, true) => {
                (self.open(now), Change::Ejected)
            }
            // responses of requests sent before the ejection
            (State::Open { .. }, _) => (state, Change::None),
        };
        self.set(pool, next);
        change
    }

    /// The pools a user moved off a failing pool must not go to at `now`:
    /// those out of service, and those half-open (ejection over, no probe
    /// answered yet: the pool may still be dead, and a user moved there would
    /// fail a second time). `None` when every pool is in service.
    pub fn not_for_failover(&mut self, now: u64) -> Option<Vec<bool>> {
        let mut out = self.out_of_service(now)?;
        for (slot, state) in out.iter_mut().zip(&self.states) {
            *slot |= !matches!(state, State::Closed { .. });
        }
        Some(out)
    }

    /// Board updates that gave up (the board kept changing under every
    /// compare-and-swap) since the last report, for the glue to log: at most
    /// one report per [`GIVE_UP_REPORT_SECONDS`], summing those in between.
    pub fn give_up_report(&mut self, now: u64) -> Option<u32> {
        let due = self
            .reported_at
            .is_none_or(|at| now >= at.saturating_add(GIVE_UP_REPORT_SECONDS));
        if self.gave_up == 0 || !due {
            return None;
        }
        self.reported_at = Some(now);
        Some(std::mem::take(&mut self.gave_up))
    }

    fn open(&self, now: u64) -> State {
        State::Open {
            until: now.saturating_add(self.eject_seconds),
        }
    }

    fn set(&mut self, pool: usize, next: State) {
        if let Some(s) = self.states.get_mut(pool) {
            let was = matches!(s, State::Closed { .. });
            let is = matches!(next, State::Closed { .. });
            *s = next;
            match (was, is) {
                (true, false) => self.troubled += 1,
                (false, true) => self.troubled = self.troubled.saturating_sub(1),
                _ => {}
            }
        }
    }

    /// Whether a pool with weight other than `pool` is in service: the last
    /// pool that takes new users is never ejected.
    fn another_in_service(&self, pool: usize) -> bool {
        self.states
            .iter()
            .zip(&self.weights)
            .enumerate()
            .any(|(i, (s, &w))| i != pool && w > 0 && matches!(s, State::Closed { .. }))
    }
}
