//! A VM's view of pool health following the gateway's board: brought in on
//! attach and on the VM's timer, written at once on a failure or a probe's
//! outcome, and the probe of a pool coming back claimed as a lease so that
//! one request in the whole gateway probes it.

use super::shared::{update, Board, HealthStore, Record, Unshared};
use super::{ejection_over, Change, Health, Shared, State};

/// How long a worker may hold the probe of a pool coming back: long enough
/// for one request, short so that a probe nobody sends (its worker gets no
/// request for the pool) does not keep the pool out for long.
pub const LEASE: u64 = 10;

impl Health {
    /// The same health, following the gateway's board in `store` from now on:
    /// the records of pools in `names` are brought in, so an ejection outlives
    /// a config push. Records of pools not in `names` (removed from the
    /// config, or renamed) are forgotten once they hold nothing running: an
    /// ejection or a held probe lease stays until it runs out, because the
    /// configuration before the push may still serve draining connections,
    /// and to it a missing record is a pool in service. `me`: this VM's token,
    /// unique among workers.
    pub fn share(
        mut self,
        names: Vec<String>,
        mut store: Box<dyn HealthStore>,
        me: u64,
        now: u64,
    ) -> Health {
        if store.load().is_none() {
            // a first board, so that every later write is compare-and-swap
            store.store(&Board::default().encode(), 0);
        }
        let keep = |name: &[u8], record: &Record| {
            names.iter().any(|n| n.as_bytes() == name)
                || match *record {
                    Record::Closed { .. } => false,
                    Record::Open { until } => !ejection_over(until, now),
                    Record::HalfOpen { holder, until } => holder != 0 && now < until,
                }
        };
        let board = update(store.as_mut(), |b| b.retain(keep));
        self.shared = Some(Shared {
            names,
            store,
            me,
            seen: None,
        });
        if let Some((board, version, ())) = self.shared_outcome(board) {
            self.bring_in(&board, version, now);
        }
        self
    }

    /// Brings in what other workers wrote, if the board changed. For the
    /// VM's timer. It claims nothing: a probe is claimed by a VM about to
    /// route a request (`out_of_service`), and Envoy's main-thread VM, which
    /// ticks but routes nothing, must not hold it.
    pub fn sync(&mut self, now: u64) {
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        let Some((bytes, version)) = shared.store.load() else {
            return;
        };
        if shared.seen != Some(version) {
            self.bring_in(&Board::decode(&bytes), version, now);
        }
    }

    /// What an update of the board gave: the board, or `None` when it did not
    /// reach it; an update that gave up is noted for `give_up_report`.
    fn shared_outcome<T>(&mut self, update: Result<T, Unshared>) -> Option<T> {
        match update {
            Ok(out) => Some(out),
            Err(Unshared::Refused) => None,
            Err(Unshared::GaveUp) => {
                self.gave_up = self.gave_up.saturating_add(1);
                None
            }
        }
    }

    /// `record` on the board; `None` without one, or when the host refused
    /// (the VM's own view then decides).
    pub(super) fn record_shared(&mut self, pool: usize, failed: bool, now: u64) -> Option<Change> {
        let (eject_after, eject_seconds) = (self.eject_after, self.eject_seconds);
        let shared = self.shared.as_mut()?;
        let names = &shared.names;
        let weights = &self.weights;
        let name = names.get(pool)?.clone();
        let updated = update(shared.store.as_mut(), |board| {
            let open = Record::Open {
                until: now.saturating_add(eject_seconds),
            };
            let (next, change) = match (board.get(&name), failed) {
                (Record::Closed { .. }, false) => (Record::Closed { failures: 0 }, Change::None),
                (Record::Closed { failures }, true) => {
                    let failures = failures.saturating_add(1);
                    let another = names.iter().zip(weights).any(|(n, &w)| {
                        *n != name && w > 0 && matches!(board.get(n), Record::Closed { .. })
                    });
                    if failures >= eject_after && another {
                        (open, Change::Ejected)
                    } else {
                        (Record::Closed { failures }, Change::None)
                    }
                }
                (Record::HalfOpen { .. }, false) => {
                    (Record::Closed { failures: 0 }, Change::Restored)
                }
                (Record::HalfOpen { .. }, true) => (open, Change::Ejected),
                // answers to requests sent before the ejection
                (r @ Record::Open { .. }, _) => (r, Change::None),
            };
            board.set(&name, next);
            change
        });
        let (board, version, change) = self.shared_outcome(updated)?;
        self.bring_in(&board, version, now);
        Some(change)
    }

    /// Makes this VM's view the board's. A probe this VM holds stays its
    /// own; a lease held elsewhere, or free, keeps the pool out of service
    /// here until this VM claims it.
    fn bring_in(&mut self, board: &Board, version: u32, now: u64) {
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        shared.seen = (version != 0).then_some(version);
        let me = shared.me;
        let longest = self.eject_seconds;
        let next: Vec<State> = shared
            .names
            .iter()
            .zip(&self.states)
            .map(|(name, &local)| match board.get(name) {
                Record::Closed { failures } => State::Closed { failures },
                // a time further off than an ejection lasts is not one this
                // config wrote (another's data, or a longer ejectSeconds
                // before a push): it is over
                Record::Open { until } if until > now.saturating_add(longest) => {
                    State::HalfOpen { probing: false }
                }
                Record::Open { until } => State::Open { until },
                Record::HalfOpen { until, .. }
                    if now >= until || until > now.saturating_add(LEASE) =>
                {
                    State::HalfOpen { probing: false }
                }
                Record::HalfOpen { holder, .. } if holder == me => match local {
                    State::HalfOpen { probing } => State::HalfOpen { probing },
                    _ => State::HalfOpen { probing: false },
                },
                Record::HalfOpen { until, .. } => State::Leased { until },
            })
            .collect();
        for (pool, state) in next.into_iter().enumerate() {
            self.set(pool, state);
        }
    }

    /// `claim_probe` on the board: `None` without one (or when the host
    /// refused: the VM's own view decides), else whether this VM won the
    /// gateway's probe lease for `pool`. A lease held elsewhere, or a pool
    /// restored or ejected again meanwhile, is brought in.
    pub(super) fn claim_shared(&mut self, pool: usize, now: u64) -> Option<bool> {
        let longest = self.eject_seconds;
        let shared = self.shared.as_mut()?;
        let name = shared.names.get(pool)?.clone();
        let me = shared.me;
        // over, or further off than this config would ever set (as in
        // bring_in): never a pool stuck out of service
        let too_far = |until: u64, most: u64| until > now.saturating_add(most);
        let updated = update(shared.store.as_mut(), |board| {
            let free = match board.get(&name) {
                Record::Open { until } => ejection_over(until, now) || too_far(until, longest),
                Record::HalfOpen { holder, until } => {
                    holder == me || now >= until || too_far(until, LEASE)
                }
                Record::Closed { .. } => false,
            };
            if free {
                board.set(
                    &name,
                    Record::HalfOpen {
                        holder: me,
                        until: now.saturating_add(LEASE),
                    },
                );
            }
            free
        });
        let (board, version, won) = self.shared_outcome(updated)?;
        self.bring_in(&board, version, now);
        if won {
            self.set(pool, State::HalfOpen { probing: true });
        }
        Some(won)
    }

    /// Gives the gateway's probe lease for `pool` back, if this VM holds it.
    pub(super) fn release_shared(&mut self, pool: usize) {
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        let (Some(name), me) = (shared.names.get(pool).cloned(), shared.me) else {
            return;
        };
        let updated = update(shared.store.as_mut(), |board| {
            if let Record::HalfOpen { holder, .. } = board.get(&name) {
                if holder == me {
                    board.set(
                        &name,
                        Record::HalfOpen {
                            holder: 0,
                            until: 0,
                        },
                    );
                }
            }
        });
        self.shared_outcome(updated);
    }
}
