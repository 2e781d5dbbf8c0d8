//! The lease manager's schedule: which leases are due when, in memory, and the
//! background round ([`Schedule::tick`]) that works through them at a bounded
//! rate. Storage stays the truth: the schedule is rebuilt from it after a
//! restart (a bounded number of records per round, so unsealing never waits)
//! and re-listed now and then to see leases other servers made or revoked.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::{LeaseError, LeaseRecord, Leases, Revoked, Revoker, duration_ms, millis};
use crate::stores::tokens::TokenStore;

/// Lease records read per round while the schedule is being rebuilt.
const LOADED_PER_TICK: usize = 500;

/// Revocations started per round (a round is a second): after a restart with
/// many overdue leases, they go at this pace, never all at once.
pub(crate) const REVOCATIONS_PER_TICK: usize = 50;

/// How often the tokens that leases belong to are checked (a token that
/// expired, or was revoked on another server, takes its leases with it).
const TOKEN_SWEEP: Duration = Duration::from_secs(10);

/// How often the lease records are listed again, to see other servers' leases.
const RELIST: Duration = Duration::from_secs(30);

/// What one round did, for the logs and metrics.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TickReport {
    pub(crate) revoked: usize,
    pub(crate) failed: usize,
}

#[derive(Default)]
pub(super) struct Schedule {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    load: Load,
    /// `(due, id)`, earliest first.
    due: BTreeSet<(u64, String)>,
    leases: HashMap<String, Scheduled>,
    by_holder: HashMap<String, HashSet<String>>,
    irrevocable: usize,
    next_sweep_ms: u64,
    next_relist_ms: u64,
}

#[derive(Default)]
enum Load {
    #[default]
    NotStarted,
    /// Names listed and not read yet.
    Pending(Vec<String>),
    Done,
}

struct Scheduled {
    due_ms: u64,
    holder: String,
    irrevocable: bool,
    /// A revocation failed and its retry is scheduled: a gone token does not
    /// bring it forward (the back-off holds).
    retrying: bool,
}

impl State {
    fn insert(&mut self, record: &LeaseRecord) {
        self.remove(&record.id);
        let due_ms = record.due_ms();
        self.due.insert((due_ms, record.id.clone()));
        self.by_holder
            .entry(record.holder.clone())
            .or_default()
            .insert(record.id.clone());
        if record.revocation.is_irrevocable() {
            self.irrevocable += 1;
        }
        self.leases.insert(
            record.id.clone(),
            Scheduled {
                due_ms,
                holder: record.holder.clone(),
                irrevocable: record.revocation.is_irrevocable(),
                retrying: record.revocation.retry_at_ms.is_some(),
            },
        );
    }

    fn remove(&mut self, id: &str) {
        let Some(old) = self.leases.remove(id) else { return };
        self.due.remove(&(old.due_ms, id.to_owned()));
        if let Some(ids) = self.by_holder.get_mut(&old.holder) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_holder.remove(&old.holder);
            }
        }
        if old.irrevocable {
            self.irrevocable -= 1;
        }
    }

    /// Makes lease `id` due at `due_ms` (in memory only).
    fn reschedule(&mut self, id: &str, due_ms: u64) {
        if let Some(entry) = self.leases.get_mut(id) {
            self.due.remove(&(entry.due_ms, id.to_owned()));
            entry.due_ms = due_ms;
            self.due.insert((due_ms, id.to_owned()));
        }
    }

    /// Makes every lease of `holder` due now (its token is gone). In memory:
    /// after a restart the sweep finds the token gone again.
    fn holder_gone(&mut self, holder: &str, now_ms: u64) {
        let ids: Vec<String> = self
            .by_holder
            .get(holder)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            let waiting = self
                .leases
                .get(&id)
                .is_none_or(|entry| entry.retrying || entry.due_ms <= now_ms);
            if !waiting {
                self.reschedule(&id, now_ms);
            }
        }
    }
}

impl Schedule {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn insert(&self, record: &LeaseRecord) {
        self.state().insert(record);
    }

    pub(super) fn remove(&self, id: &str) {
        self.state().remove(id);
    }

    pub(super) fn postpone(&self, id: &str, until_ms: u64) {
        self.state().reschedule(id, until_ms);
    }

    pub(super) fn irrevocable(&self) -> usize {
        self.state().irrevocable
    }

    /// One round: rebuild from storage if needed, take the revoked tokens'
    /// leases, now and then check the holders and re-list, then revoke up to
    /// [`REVOCATIONS_PER_TICK`] leases that are due.
    pub(super) fn tick(
        &self,
        leases: &Leases,
        revoker: &dyn Revoker,
        tokens: &TokenStore,
        now: SystemTime,
    ) -> TickReport {
        let now_ms = millis(now);
        self.load_some(leases, now_ms);
        let mut report = TickReport::default();
        {
            let mut state = self.state();
            for holder in tokens.take_revoked() {
                state.holder_gone(&holder, now_ms);
            }
        }
        self.sweep_holders(tokens, now_ms);
        self.relist(leases, now_ms);
        let due: Vec<String> = {
            let state = self.state();
            state
                .due
                .iter()
                .take_while(|(due, _)| *due <= now_ms)
                .take(REVOCATIONS_PER_TICK)
                .map(|(_, id)| id.clone())
                .collect()
        };
        for id in due {
            match leases.attempt(&id, revoker, now, false) {
                Ok(Revoked::Done) => report.revoked += 1,
                Ok(Revoked::UnderWay) => {}
                Err(LeaseError::Engine(_) | LeaseError::Invalid(_)) => report.failed += 1,
                Err(LeaseError::Storage(error)) => {
                    // Storage is down: the rest wait for the next round, not
                    // for a failure each.
                    tracing::warn!(%error, "lease revocations paused: storage failed");
                    break;
                }
            }
        }
        report
    }

    /// While rebuilding: reads the next records. Returns how many.
    fn load_some(&self, leases: &Leases, now_ms: u64) -> usize {
        let mut names = {
            let mut state = self.state();
            match std::mem::take(&mut state.load) {
                Load::Done => {
                    state.load = Load::Done;
                    return 0;
                }
                Load::Pending(names) => names,
                Load::NotStarted => {
                    drop(state);
                    match leases.records.names_under("") {
                        Ok(mut names) => {
                            names.reverse();
                            names
                        }
                        Err(error) => {
                            tracing::warn!(%error, "leases could not be listed; tried again next round");
                            return 0;
                        }
                    }
                }
            }
        };
        let mut loaded = 0;
        while loaded < LOADED_PER_TICK {
            let Some(name) = names.pop() else { break };
            match leases.records.get(&name) {
                Ok(Some(record)) => {
                    self.insert(&record);
                    loaded += 1;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "a lease could not be read; the rebuild goes on next round");
                    names.push(name);
                    break;
                }
            }
        }
        let mut state = self.state();
        if names.is_empty() {
            state.load = Load::Done;
            state.next_relist_ms = now_ms.saturating_add(duration_ms(RELIST));
            if loaded > 0 {
                tracing::info!(leases = state.leases.len(), "leases loaded");
            }
        } else {
            state.load = Load::Pending(names);
        }
        loaded
    }

    /// Every [`TOKEN_SWEEP`]: the leases of holders no longer valid become due.
    fn sweep_holders(&self, tokens: &TokenStore, now_ms: u64) {
        let holders: Vec<String> = {
            let mut state = self.state();
            if now_ms < state.next_sweep_ms {
                return;
            }
            state.next_sweep_ms = now_ms.saturating_add(duration_ms(TOKEN_SWEEP));
            state.by_holder.keys().cloned().collect()
        };
        for holder in holders {
            match tokens.holds(&holder) {
                Ok(true) => {}
                Ok(false) => self.state().holder_gone(&holder, now_ms),
                // An outage is never a revocation.
                Err(_) => return,
            }
        }
    }

    /// Every [`RELIST`] once rebuilt: adds the leases other servers made, drops
    /// those they revoked.
    fn relist(&self, leases: &Leases, now_ms: u64) {
        {
            let mut state = self.state();
            if !matches!(state.load, Load::Done) || now_ms < state.next_relist_ms {
                return;
            }
            state.next_relist_ms = now_ms.saturating_add(duration_ms(RELIST));
        }
        let Ok(names) = leases.records.names_under("") else {
            return;
        };
        let stored: HashSet<String> = names.into_iter().collect();
        let (gone, new): (Vec<String>, Vec<String>) = {
            let state = self.state();
            (
                state
                    .leases
                    .keys()
                    .filter(|id| !stored.contains(*id))
                    .cloned()
                    .collect(),
                stored
                    .iter()
                    .filter(|id| !state.leases.contains_key(*id))
                    .cloned()
                    .collect(),
            )
        };
        for id in gone {
            self.remove(&id);
        }
        for id in new.into_iter().take(LOADED_PER_TICK) {
            if let Ok(Some(record)) = leases.records.get(&id) {
                self.insert(&record);
            }
        }
    }
}
