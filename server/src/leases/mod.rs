//! The lease manager, as Vault's expiration manager: the one place that knows
//! about time-limited secrets. An engine issues a secret with a
//! [`SecretLease`]; the pipeline registers it here; from then on renewals,
//! revocations (asked for, by prefix, forced, when its token goes, when it
//! expires) and tidying go through this module, which calls back into the engine
//! ([`Revoker`]) to act on the secret itself.
//!
//! Leases are sealed records under `sys/expire/id/<lease id>` (storage is the
//! truth, so any server sharing it can look up, renew or revoke any lease), with
//! an in-memory schedule ([`schedule`]) that one background task works through.
//! A revocation is claimed in storage first (an atomic update, so exactly one
//! revocation of a lease runs at a time, among servers sharing a PostgreSQL
//! storage as among one server's requests and its round), then done by
//! the engine; a failure is retried with back-off and, after
//! [`MAX_REVOCATION_ATTEMPTS`], the lease is marked irrevocable: shown by lookup,
//! logged, counted, retried only every [`IRREVOCABLE_RETRY`].

mod record;
mod schedule;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use encrypted_attr::Error;
use encrypted_attr::storage::Barrier;

use crate::http::{LeaseGrant, SecretLease};
use crate::stores::{Change, SealedRecords};

pub(crate) use record::{LeaseRecord, Revocation, millis, time_of};
use record::{duration_ms, folder, is_lease_id, jitter_ms};

pub(crate) use schedule::TickReport;

/// Where lease records are stored (Vault's own prefix).
const LEASES_PREFIX: &str = "sys/expire/id/";

/// The longest any lease lives from issue (Vault's default system maximum).
pub(crate) const SYSTEM_MAX_TTL: Duration = Duration::from_secs(32 * 24 * 3600);

/// Failed revocations of a lease before it is marked irrevocable (Vault's count).
pub(crate) const MAX_REVOCATION_ATTEMPTS: u32 = 6;

/// Wait after the first failed revocation; doubled after each further failure.
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// How often an irrevocable lease is tried again.
pub(crate) const IRREVOCABLE_RETRY: Duration = Duration::from_secs(3600);

/// How long a claim on a revocation holds: another attempt takes the
/// lease over only after this (the claimer stopped, say).
const CLAIM_LIFETIME: Duration = Duration::from_secs(60);

/// Longest revocation error kept with a lease (Vault keeps 240 characters).
const MAX_ERROR_LENGTH: usize = 240;

/// What the lease manager needs of the engines: acting on the secret behind a
/// lease. Implemented above this module (it resolves the lease's mount), so the
/// manager depends on no engine.
pub(crate) trait Revoker {
    /// Revokes the secret behind `lease` (drops the database user, say). The
    /// error is a message for the operator, with no secret in it.
    fn revoke(&self, lease: &LeaseRecord) -> Result<(), String>;

    /// Extends the secret behind `lease` to live `ttl` from now.
    fn renew(&self, lease: &LeaseRecord, ttl: Duration) -> Result<(), String>;
}

/// Why a lease operation was refused.
#[derive(Debug)]
pub(crate) enum LeaseError {
    /// Storage failed (an outage or worse): the caller answers 5xx.
    Storage(Error),
    /// Refused as Vault refuses it, with its words (400).
    Invalid(String),
    /// The engine could not act on the secret (its message).
    Engine(String),
}

impl From<Error> for LeaseError {
    fn from(error: Error) -> Self {
        Self::Storage(error)
    }
}

/// What a renewal granted.
#[derive(Debug)]
pub(crate) struct Renewal {
    pub(crate) grant: LeaseGrant,
    pub(crate) warnings: Vec<String>,
}

/// How a revocation ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Revoked {
    /// Done (or the lease was gone already).
    Done,
    /// A revocation of it is under way already (on this server or another).
    UnderWay,
}

/// The lease manager of one unsealed server.
pub(crate) struct Leases {
    records: SealedRecords<LeaseRecord>,
    schedule: schedule::Schedule,
    /// Set by `sys/leases/tidy`; the next round tidies.
    tidy_requested: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").finish_non_exhaustive()
    }
}

impl Leases {
    /// The leases kept in `barrier`. Nothing is read here: the schedule loads
    /// them in the background, a bounded number per tick, so unsealing never
    /// waits for them.
    pub(crate) fn open(barrier: Arc<Barrier>) -> Self {
        Self {
            records: SealedRecords::new(barrier, LEASES_PREFIX),
            schedule: schedule::Schedule::default(),
            tidy_requested: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The lease of a secret an engine issued at `path` on `mount` for the token
    /// `holder`, not stored yet ([`store`](Self::store) does).
    pub(crate) fn record_for(
        path: &str,
        mount: &str,
        holder: &str,
        lease: &SecretLease,
        now: SystemTime,
    ) -> Result<LeaseRecord, Error> {
        let random = crate::stores::tokens::random_base62(24);
        if random.is_empty() {
            return Err(Error::RandomSource);
        }
        let max_ttl = lease.max_ttl.min(SYSTEM_MAX_TTL);
        let max_ttl = if max_ttl.is_zero() { SYSTEM_MAX_TTL } else { max_ttl };
        let ttl = lease.ttl.min(max_ttl);
        let now_ms = millis(now);
        let path = path.trim_matches('/');
        Ok(LeaseRecord {
            id: format!("{path}/{random}"),
            path: path.to_owned(),
            mount: mount.trim_matches('/').to_owned(),
            holder: holder.to_owned(),
            issued_ms: now_ms,
            expires_ms: now_ms.saturating_add(duration_ms(ttl)),
            last_renewal_ms: None,
            ttl_secs: ttl.as_secs(),
            max_ttl_secs: max_ttl.as_secs(),
            renewable: lease.renewable,
            internal: lease.internal.clone(),
            revocation: Revocation::default(),
        })
    }

    /// Stores a new lease (before its secret is handed out) and schedules it.
    pub(crate) fn store(&self, record: &LeaseRecord) -> Result<LeaseGrant, Error> {
        if !self.records.put_if_absent(&record.id, record)? {
            // 24 random base62 characters do not collide; were they to, the
            // secret is revoked by the caller rather than given a shared lease.
            return Err(Error::RandomSource);
        }
        self.schedule.insert(record);
        Ok(LeaseGrant {
            id: record.id.clone(),
            renewable: record.renewable,
            duration: record.ttl_secs,
        })
    }

    /// The lease `id`, if stored.
    pub(crate) fn lookup(&self, id: &str) -> Result<Option<LeaseRecord>, Error> {
        if !is_lease_id(id) {
            return Ok(None);
        }
        self.records.get(id)
    }

    /// The next segments of the lease ids under `prefix` (a folder ends in
    /// `/`), sorted: `LIST sys/leases/lookup/:prefix`.
    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let prefix = folder(prefix);
        let mut keys: Vec<String> = self
            .records
            .names_under(&prefix)?
            .into_iter()
            .filter_map(|name| {
                let below = name.strip_prefix(&prefix)?;
                Some(match below.split_once('/') {
                    Some((segment, _)) => format!("{segment}/"),
                    None => below.to_owned(),
                })
            })
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Renews lease `id` by `increment` (zero: its own TTL), within its maximum,
    /// after the engine extended the secret.
    pub(crate) fn renew(
        &self,
        id: &str,
        increment: Duration,
        revoker: &dyn Revoker,
        now: SystemTime,
    ) -> Result<Renewal, LeaseError> {
        let record = self
            .lookup(id)?
            .ok_or_else(|| LeaseError::Invalid("lease not found".into()))?;
        let now_ms = millis(now);
        if record.revocation.is_irrevocable() {
            return Err(LeaseError::Invalid(
                "lease is expired and has failed previous revocation attempts".into(),
            ));
        }
        if record.expires_ms <= now_ms {
            return Err(LeaseError::Invalid("lease expired".into()));
        }
        if !record.renewable {
            return Err(LeaseError::Invalid("lease is not renewable".into()));
        }
        let wanted = if increment.is_zero() {
            Duration::from_secs(record.ttl_secs)
        } else {
            increment
        };
        // Whole seconds, as Vault computes it.
        let end_ms = record
            .issued_ms
            .saturating_add(record.max_ttl_secs.saturating_mul(1000));
        let room = Duration::from_secs(end_ms.saturating_sub(now_ms) / 1000);
        if room.is_zero() {
            return Err(LeaseError::Invalid("past the max TTL, cannot renew".into()));
        }
        let granted = wanted.min(room);
        let warnings = (granted < wanted)
            .then(|| crate::stores::tokens::capped_warning(wanted, granted))
            .into_iter()
            .collect();
        revoker.renew(&record, granted).map_err(LeaseError::Engine)?;
        let mut renewed = None;
        self.records.update(id, &mut |current| match current {
            // Not revoked meanwhile, nor being revoked.
            Some(mut stored) if !stored.being_revoked(now_ms) => {
                stored.expires_ms = now_ms.saturating_add(duration_ms(granted));
                stored.last_renewal_ms = Some(now_ms);
                renewed = Some(stored.clone());
                Change::Put(stored)
            }
            _ => Change::Keep,
        })?;
        let renewed = renewed.ok_or_else(|| LeaseError::Invalid("lease not found".into()))?;
        self.schedule.insert(&renewed);
        Ok(Renewal {
            grant: LeaseGrant {
                id: renewed.id,
                renewable: true,
                duration: granted.as_secs(),
            },
            warnings,
        })
    }

    /// Revokes lease `id` now (`sys/leases/revoke`): done when it is gone, or
    /// was never there, as Vault answers.
    pub(crate) fn revoke(&self, id: &str, revoker: &dyn Revoker, now: SystemTime) -> Result<Revoked, LeaseError> {
        if !is_lease_id(id) {
            return Ok(Revoked::Done);
        }
        self.attempt(id, revoker, now, false)
    }

    /// Marks lease `id` expired now, for the schedule to revoke (`sync=false`).
    pub(crate) fn revoke_later(&self, id: &str, now: SystemTime) -> Result<(), Error> {
        if !is_lease_id(id) {
            return Ok(());
        }
        let now_ms = millis(now);
        let mut marked = None;
        self.records.update(id, &mut |current| match current {
            Some(mut stored) => {
                stored.expires_ms = stored.expires_ms.min(now_ms);
                marked = Some(stored.clone());
                Change::Put(stored)
            }
            None => Change::Keep,
        })?;
        if let Some(record) = marked {
            self.schedule.insert(&record);
        }
        Ok(())
    }

    /// Revokes every lease under `prefix` (`sys/leases/revoke-prefix`), as
    /// Vault: a prefix that is itself a lease id revokes that lease; otherwise
    /// the leases below it, in turn, stopping at the first that fails. With
    /// `force`, the engine's failures are ignored and the leases deleted
    /// anyway (`revoke-force`); without `sync`, they are marked expired for
    /// the schedule.
    pub(crate) fn revoke_prefix(
        &self,
        prefix: &str,
        sync: bool,
        force: bool,
        revoker: &dyn Revoker,
        now: SystemTime,
    ) -> Result<(), LeaseError> {
        let ids = if !prefix.ends_with('/') && self.lookup(prefix)?.is_some() {
            vec![prefix.to_owned()]
        } else {
            let under = folder(prefix);
            if under.is_empty() {
                return Ok(());
            }
            self.records.names_under(&under)?
        };
        let total = ids.len();
        for (index, id) in ids.iter().enumerate() {
            let failed = |why: String| format!("failed to revoke {id:?} ({} / {total}): {why}", index + 1);
            if !sync {
                self.revoke_later(id, now)?;
                continue;
            }
            match self.attempt(id, revoker, now, force) {
                Ok(_) => {}
                Err(LeaseError::Engine(why)) => return Err(LeaseError::Engine(failed(why))),
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// `sys/leases/tidy`: damaged lease records deleted, and leases whose token
    /// is gone marked expired (the schedule revokes them). Returns how many of
    /// each.
    pub(crate) fn tidy(
        &self,
        tokens: &crate::stores::tokens::TokenStore,
        now: SystemTime,
    ) -> Result<(usize, usize), Error> {
        let (mut damaged, mut orphaned) = (0, 0);
        for id in self.records.names_under("")? {
            match self.records.get(&id)? {
                None if self.records.exists(&id)? => {
                    self.records.delete(&id)?;
                    self.schedule.remove(&id);
                    damaged += 1;
                }
                Some(record) if !tokens.holds(&record.holder)? => {
                    self.revoke_later(&id, now)?;
                    orphaned += 1;
                }
                None | Some(_) => {}
            }
        }
        Ok((damaged, orphaned))
    }

    /// One attempt at revoking lease `id`: claimed in storage, revoked by the
    /// engine, then deleted; a failure is recorded for a later retry (unless
    /// `force`, which deletes it anyway).
    fn attempt(&self, id: &str, revoker: &dyn Revoker, now: SystemTime, force: bool) -> Result<Revoked, LeaseError> {
        let now_ms = millis(now);
        let mut claimed = None;
        let mut under_way = false;
        let claim_until = now_ms.saturating_add(duration_ms(CLAIM_LIFETIME));
        self.records.update(id, &mut |current| match current {
            None => Change::Keep,
            Some(stored) if stored.being_revoked(now_ms) => {
                under_way = true;
                claimed = Some(stored);
                Change::Keep
            }
            Some(mut stored) => {
                stored.revocation.claimed_until_ms = Some(claim_until);
                claimed = Some(stored.clone());
                Change::Put(stored)
            }
        })?;
        let Some(record) = claimed else {
            // Gone: revoked elsewhere, or never there (or damaged: tidy's work).
            self.schedule.remove(id);
            return Ok(Revoked::Done);
        };
        if under_way {
            self.schedule
                .postpone(id, record.revocation.claimed_until_ms.unwrap_or(now_ms));
            return Ok(Revoked::UnderWay);
        }
        match revoker.revoke(&record) {
            Ok(()) => {}
            Err(why) if force => {
                tracing::warn!(lease = %record.path, error = %why, "revocation failed, lease deleted anyway (forced)");
            }
            Err(why) => {
                self.record_failure(&record, &why, now_ms)?;
                return Err(LeaseError::Engine(why));
            }
        }
        self.records.delete(id)?;
        self.schedule.remove(id);
        Ok(Revoked::Done)
    }

    /// Records a failed revocation of `record` (claimed by this server): the
    /// next attempt after a doubling wait, or irrevocable after the last.
    fn record_failure(&self, record: &LeaseRecord, why: &str, now_ms: u64) -> Result<(), Error> {
        let mut why: String = why.chars().take(MAX_ERROR_LENGTH).collect();
        if why.is_empty() {
            why = "revocation failed".into();
        }
        let mut updated = None;
        self.records.update(&record.id, &mut |current| match current {
            Some(mut stored) => {
                let revocation = &mut stored.revocation;
                revocation.attempts = revocation.attempts.saturating_add(1);
                revocation.last_error = Some(why.clone());
                revocation.claimed_until_ms = None;
                let wait = if revocation.is_irrevocable() {
                    IRREVOCABLE_RETRY
                } else {
                    FIRST_RETRY.saturating_mul(1 << (revocation.attempts - 1).min(16))
                };
                revocation.retry_at_ms = Some(now_ms.saturating_add(duration_ms(wait) + jitter_ms(&stored.id, wait)));
                updated = Some(stored.clone());
                Change::Put(stored)
            }
            None => Change::Keep,
        })?;
        if let Some(updated) = updated {
            if updated.revocation.is_irrevocable() {
                tracing::error!(
                    lease = %updated.path,
                    attempts = updated.revocation.attempts,
                    error = %why,
                    "lease is irrevocable: its revocation keeps failing; it is retried hourly, or removed with sys/leases/revoke-force"
                );
            } else {
                tracing::warn!(lease = %updated.path, attempts = updated.revocation.attempts, error = %why, "lease revocation failed; it is retried");
            }
            self.schedule.insert(&updated);
        }
        Ok(())
    }

    /// Asks the next round to tidy (`sys/leases/tidy`, which answers at once).
    pub(crate) fn request_tidy(&self) {
        self.tidy_requested.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// One round of the background work (see [`schedule`]), and a tidy if one
    /// was asked for.
    pub(crate) fn tick(
        &self,
        revoker: &dyn Revoker,
        tokens: &crate::stores::tokens::TokenStore,
        now: SystemTime,
    ) -> TickReport {
        if self.tidy_requested.swap(false, std::sync::atomic::Ordering::SeqCst) {
            match self.tidy(tokens, now) {
                Ok((damaged, orphaned)) => tracing::info!(damaged, orphaned, "leases tidied"),
                Err(error) => tracing::error!(%error, "failed to tidy leases"),
            }
        }
        self.schedule.tick(self, revoker, tokens, now)
    }

    /// How many leases this server knows to be irrevocable.
    pub(crate) fn irrevocable(&self) -> usize {
        self.schedule.irrevocable()
    }
}
