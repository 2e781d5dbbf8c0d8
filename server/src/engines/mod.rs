//! Secrets engines behind one trait, and the one list of their kinds. The core
//! (routing, authorisation, metrics, `sys/mounts`) asks an engine what it needs
//! to know of a mount and never matches a kind's name itself: a new engine is a
//! folder here and a line in [`ENGINES`].

pub(crate) mod kv;
#[cfg(test)]
pub(crate) mod leasing_test;
pub(crate) mod transit;

use std::collections::BTreeMap;

use std::time::{Duration, SystemTime};

use crate::http::{ApiError, ApiResult, Lease, Reply};
use crate::leases::LeaseRecord;
use crate::params::Params;
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::mounts::{MountEntry, TRANSIT_PATH};

/// Every kind of secrets engine this server mounts.
static ENGINES: &[&dyn SecretsEngine] = &[
    &transit::Transit,
    &kv::Kv,
    #[cfg(test)]
    &leasing_test::LeasingTest,
];

/// What the core asks of a kind of secrets engine, for each of its mounts.
pub(crate) trait SecretsEngine: Sync {
    /// The kind's `type` in `sys/mounts`.
    fn kind(&self) -> &'static str;

    /// Whether `sys/mounts` may enable this kind under the name `asked` (its own
    /// or an alias such as `kv-v2`); if so, sets and checks the mount's options.
    fn enables(&self, asked: &str, options: &mut Option<BTreeMap<String, String>>) -> Option<Result<(), ApiError>>;

    /// Serves an authorised request for `rest`, the path below the mount.
    fn handle(&self, state: &Unsealed, at: &Mounted<'_>, op: Operation, rest: &str, params: &Params<'_>) -> ApiResult;

    /// Vault's existence check: whether an update of `rest` would create what it
    /// names (it then needs the `create` capability, not `update`). A storage
    /// failure is an error, never an answer.
    fn creates(&self, state: &Unsealed, at: &Mounted<'_>, rest: &str) -> Result<bool, ApiError>;

    /// The metric family of a request for `rest` (a fixed label).
    fn family(&self, rest: &str) -> &'static str;

    /// Deletes what an unmounted mount held: a later mount at the same path
    /// starts empty.
    fn unmount(&self, state: &Unsealed, entry: &MountEntry) -> Result<(), ApiError>;

    /// Whether an update of `rest` is microseconds of CPU with nothing to wait
    /// for (no storage, nothing due for a re-read), so the async worker answers it
    /// itself rather than a blocking thread (none by default).
    fn answers_inline(&self, _state: &Unsealed, _at: &Mounted<'_>, _rest: &str) -> bool {
        false
    }

    /// After a request for `rest` was answered with a success: counts what it did
    /// in the kind's own metrics (none by default).
    fn count(&self, _metrics: &crate::metrics::Metrics, _op: Operation, _rest: &str, _params: &Params<'_>) {}

    /// Revokes a secret this kind issued with a lease (the lease ended, was
    /// revoked, or its token went). Called by the lease manager only; a kind
    /// that issues no leases is never asked.
    fn revoke(&self, _state: &Unsealed, _at: &Mounted<'_>, _lease: &LeaseRecord) -> Result<(), ApiError> {
        Ok(())
    }

    /// Extends a secret this kind issued to live `ttl` from now (a lease
    /// renewal, already capped by the lease's maximum).
    fn renew(
        &self,
        _state: &Unsealed,
        _at: &Mounted<'_>,
        _lease: &LeaseRecord,
        _ttl: Duration,
    ) -> Result<(), ApiError> {
        Err(ApiError::BadRequest("lease is not renewable".into()))
    }
}

/// The lease manager's way to the engines: the engine of the mount a lease came
/// from renews or revokes its secret.
pub(crate) struct EngineRevoker<'a> {
    pub(crate) open: &'a Unsealed,
}

impl EngineRevoker<'_> {
    fn engine_of(&self, lease: &LeaseRecord) -> Result<Resolved, String> {
        match resolve(self.open, &lease.path) {
            Some(resolved) if resolved.mount_path == lease.mount => Ok(resolved),
            _ => Err(format!("no secrets engine is mounted at {}/ any more", lease.mount)),
        }
    }
}

impl crate::leases::Revoker for EngineRevoker<'_> {
    fn revoke(&self, lease: &LeaseRecord) -> Result<(), String> {
        let resolved = self.engine_of(lease)?;
        resolved
            .engine
            .revoke(self.open, &resolved.mounted(), lease)
            .map_err(|error| error.audit_message())
    }

    fn renew(&self, lease: &LeaseRecord, ttl: Duration) -> Result<(), String> {
        let resolved = self.engine_of(lease)?;
        resolved
            .engine
            .renew(self.open, &resolved.mounted(), lease, ttl)
            .map_err(|error| error.audit_message())
    }
}

/// An engine's answer with its issued secret registered with the lease manager
/// for the token whose `entry` this is (any other answer as it is). Were the lease not
/// stored, the secret is revoked at once and the request fails: no secret is
/// handed out that nothing would revoke.
pub(crate) fn register_issued(
    open: &Unsealed,
    resolved: Option<&Resolved>,
    path: &str,
    entry: &crate::stores::tokens::TokenEntry,
    result: ApiResult,
) -> ApiResult {
    let Ok(Reply::Leased {
        data,
        lease: Lease::Issued(issued),
        warnings,
    }) = result
    else {
        return result;
    };
    let Some(resolved) = resolved else {
        return Err(ApiError::Internal);
    };
    let record =
        crate::leases::Leases::record_for(path, &resolved.mount_path, &entry.holder(), &issued, SystemTime::now())?;
    match open.leases.store(&record) {
        Ok(grant) => Ok(Reply::Leased {
            data,
            lease: Lease::Granted(grant),
            warnings,
        }),
        Err(error) => {
            if let Err(why) = resolved.engine.revoke(open, &resolved.mounted(), &record) {
                tracing::error!(path = %record.path, error = %why.audit_message(), "a secret whose lease could not be stored could not be revoked either");
            }
            Err(error.into())
        }
    }
}

/// A mount a request reached.
pub(crate) struct Mounted<'a> {
    /// Where it is mounted, without slashes (`transit`, `team/kv`).
    pub(crate) path: &'a str,
    /// Its entry in the mount table; `None` for the built-in `transit/`, which
    /// is served without a table lookup (it is the hot path).
    pub(crate) entry: Option<&'a MountEntry>,
}

/// The engine serving a mount of `kind`.
pub(crate) fn of_kind(kind: &str) -> Option<&'static dyn SecretsEngine> {
    ENGINES.iter().copied().find(|engine| engine.kind() == kind)
}

/// The engine `sys/mounts` enables for the type name `asked`, with the mount's
/// options set and checked for it; `None` for a name no engine takes.
pub(crate) fn for_type_name(
    asked: &str,
    options: &mut Option<BTreeMap<String, String>>,
) -> Option<Result<&'static dyn SecretsEngine, ApiError>> {
    ENGINES
        .iter()
        .copied()
        .find_map(|engine| engine.enables(asked, options).map(|checked| checked.map(|()| engine)))
}

/// Whether `kind` is one of this server's engines (what Vault calls a
/// "supported" built-in).
pub(crate) fn is_known(kind: &str) -> bool {
    of_kind(kind).is_some()
}

/// A request's path resolved to the engine and mount serving it.
pub(crate) struct Resolved {
    pub(crate) engine: &'static dyn SecretsEngine,
    pub(crate) mount_path: std::borrow::Cow<'static, str>,
    pub(crate) entry: Option<MountEntry>,
    /// Where the path below the mount starts in the request's path.
    below: usize,
}

impl Resolved {
    /// The mount, as the engine sees it.
    pub(crate) fn mounted(&self) -> Mounted<'_> {
        Mounted {
            path: &self.mount_path,
            entry: self.entry.as_ref(),
        }
    }

    /// The path below the mount in `path` (the request's path this was resolved
    /// from), without leading slashes.
    pub(crate) fn rest<'p>(&self, path: &'p str) -> &'p str {
        path.get(self.below..).unwrap_or_default().trim_start_matches('/')
    }
}

/// The engine and mount serving a request for `path`, or `None` for `sys/` and
/// `auth/` (no secrets engines) and for paths no mount serves. Resolved once per
/// request: authorisation, routing, audit and metrics all take this.
pub(crate) fn resolve_request(open: &Unsealed, path: &str) -> Option<Resolved> {
    if ["sys/", "auth/"].iter().any(|prefix| path.starts_with(prefix)) {
        return None;
    }
    resolve(open, path)
}

/// The engine and mount serving `path` (not `sys/` or `auth/`, which are not
/// secrets engines here): the built-in `transit/` without a lookup, any other
/// mount by the longest prefix in the table.
pub(crate) fn resolve(open: &Unsealed, path: &str) -> Option<Resolved> {
    if path.split('/').next() == Some(TRANSIT_PATH) {
        return Some(Resolved {
            engine: &transit::Transit,
            mount_path: TRANSIT_PATH.into(),
            entry: None,
            below: TRANSIT_PATH.len(),
        });
    }
    let (mount_path, entry) = open.mounts.find(path)?;
    let engine = of_kind(&entry.kind)?;
    Some(Resolved {
        engine,
        below: mount_path.len(),
        mount_path: mount_path.into(),
        entry: Some(entry),
    })
}
