//! `sys/leases/*` and the older `sys/renew`, `sys/revoke`, `sys/revoke-prefix`,
//! `sys/revoke-force`: what Vault's clients send to look up, renew, list, revoke
//! and tidy leases, answered by the lease manager (`crate::leases`).

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::engines::EngineRevoker;
use crate::http::{ApiError, ApiResult, Lease, Reply};
use crate::leases::{LeaseError, LeaseRecord, Revoked, time_of};
use crate::params::{Params, Reads};
use crate::request::Operation;
use crate::seal::Unsealed;

/// What `sys/leases/tidy` answers (OpenBao's words, with this server's name).
const TIDY_STARTED: &str =
    "Tidy operation successfully started. Any information from the operation will be printed to the server's logs.";

/// Serves `rest` (the path below `sys/`, split) when it is a lease path; `None`
/// for any other path.
pub(super) fn route(state: &Unsealed, op: Operation, rest: &[&str], params: &Params<'_>) -> Option<ApiResult> {
    use Operation::{List, Update};
    let (head, tail) = match rest {
        ["leases", head, tail @ ..] => (*head, tail),
        [
            head @ ("renew" | "revoke" | "revoke-prefix" | "revoke-force"),
            tail @ ..,
        ] => (*head, tail),
        _ => return None,
    };
    let joined = || tail.join("/");
    Some(match (head, op) {
        ("lookup", Update) if tail.is_empty() => lookup(state, params),
        ("lookup", List) => list(state, &joined()),
        ("renew", Update) => renew(state, &joined(), params),
        ("revoke", Update) => revoke(state, &joined(), params),
        ("revoke-prefix", Update) if !tail.is_empty() => revoke_prefix(state, &joined(), params, false),
        ("revoke-force", Update) if !tail.is_empty() => revoke_prefix(state, &joined(), params, true),
        ("tidy", Update) if tail.is_empty() && rest[0] == "leases" => Ok(tidy(state)),
        _ => return None,
    })
}

fn revoker(state: &Unsealed) -> EngineRevoker<'_> {
    EngineRevoker { open: state }
}

/// The lease id from the body, or else from the path.
fn lease_id(params: &Params<'_>, in_path: &str) -> Result<String, ApiError> {
    let id = params.string("lease_id")?.unwrap_or_default();
    let id = if id.is_empty() { in_path.to_owned() } else { id };
    if id.is_empty() {
        return Err(ApiError::BadRequest("lease_id must be specified".into()));
    }
    Ok(id)
}

fn refused(error: LeaseError) -> ApiError {
    match error {
        LeaseError::Storage(error) => error.into(),
        LeaseError::Invalid(message) => ApiError::BadRequest(message),
        LeaseError::Engine(message) => ApiError::Failed(format!("failed to revoke entry: {message}")),
    }
}

/// `PUT sys/leases/lookup`.
fn lookup(state: &Unsealed, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[&["lease_id"]]));
    let id = lease_id(params, "")?;
    let record = state
        .leases
        .lookup(&id)?
        .ok_or_else(|| ApiError::BadRequest("invalid lease".into()))?;
    Ok(Reply::data(describe(&record, SystemTime::now()), vec![]))
}

/// What a lookup shows of a lease, in Vault's fields.
fn describe(record: &LeaseRecord, now: SystemTime) -> Value {
    let expires = time_of(record.expires_ms);
    let left = expires.duration_since(now).unwrap_or(Duration::ZERO);
    // Rounded to the second, as Vault's `ttl`.
    let ttl = (left.as_millis() + 500) / 1000;
    let mut data = json!({
        "id": record.id,
        "issue_time": crate::encoding::format_rfc3339_nanos(time_of(record.issued_ms)),
        "expire_time": crate::encoding::format_rfc3339_nanos(expires),
        "last_renewal": record.last_renewal_ms.map(|ms| crate::encoding::format_rfc3339_nanos(time_of(ms))),
        "renewable": record.renewable && !record.revocation.is_irrevocable() && left > Duration::ZERO,
        "ttl": u64::try_from(ttl).unwrap_or(u64::MAX),
        "path": record.path,
    });
    if record.revocation.is_irrevocable()
        && let (Value::Object(map), Some(why)) = (&mut data, &record.revocation.last_error)
    {
        map.insert("revoke_error".into(), json!(why));
    }
    data
}

/// `LIST sys/leases/lookup/:prefix` (sudo).
fn list(state: &Unsealed, prefix: &str) -> ApiResult {
    let keys = state.leases.list(prefix)?;
    if keys.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Reply::data(json!({ "keys": keys }), vec![]))
}

/// `PUT sys/leases/renew[/:lease_id]`, `PUT sys/renew[/:lease_id]`.
fn renew(state: &Unsealed, in_path: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[&["lease_id", "url_lease_id", "increment"]]));
    let id = lease_id(params, in_path)?;
    let increment = params.duration("increment")?.unwrap_or(Duration::ZERO);
    let renewal = state
        .leases
        .renew(&id, increment, &revoker(state), SystemTime::now())
        .map_err(|error| match error {
            LeaseError::Engine(message) => ApiError::Failed(format!("failed to renew entry: {message}")),
            other => refused(other),
        })?;
    Ok(Reply::Leased {
        data: Value::Null,
        lease: Lease::Granted(renewal.grant),
        warnings: renewal.warnings,
    })
}

/// `sync` (default true): whether to revoke before answering (204), or mark
/// the leases expired for the background revoker (202).
fn sync(params: &Params<'_>) -> Result<bool, ApiError> {
    Ok(params.bool("sync")?.unwrap_or(true))
}

fn accepted() -> Reply {
    Reply::Data {
        status: StatusCode::ACCEPTED,
        data: Value::Null,
        warnings: vec![],
    }
}

/// `PUT sys/leases/revoke[/:lease_id]`, `PUT sys/revoke[/:lease_id]`.
fn revoke(state: &Unsealed, in_path: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[&["lease_id", "url_lease_id", "sync"]]));
    let id = lease_id(params, in_path)?;
    let now = SystemTime::now();
    if !sync(params)? {
        state.leases.revoke_later(&id, now)?;
        return Ok(accepted());
    }
    match state.leases.revoke(&id, &revoker(state), now).map_err(refused)? {
        Revoked::Done => Ok(Reply::NoContent),
        // A revocation of it is under way already: accepted, not done here.
        Revoked::UnderWay => Ok(accepted()),
    }
}

/// `PUT sys/leases/revoke-prefix/:prefix` (sudo, `sync`), `revoke-force` (sudo):
/// the leases under the prefix, and the tokens made there.
fn revoke_prefix(state: &Unsealed, prefix: &str, params: &Params<'_>, force: bool) -> ApiResult {
    params.declare(if force {
        &Reads(&[&["prefix"]])
    } else {
        &Reads(&[&["prefix", "sync"]])
    });
    let sync = if force { true } else { sync(params)? };
    state
        .leases
        .revoke_prefix(prefix, sync, force, &revoker(state), SystemTime::now())
        .map_err(|error| match error {
            LeaseError::Engine(message) => ApiError::Failed(message),
            other => refused(other),
        })?;
    // Tokens are leases in Vault: revoking `auth/userpass/` revokes its logins.
    state.tokens.revoke_prefix(prefix)?;
    Ok(if sync { Reply::NoContent } else { accepted() })
}

/// `PUT sys/leases/tidy`: started in the background, as Vault.
fn tidy(state: &Unsealed) -> Reply {
    state.leases.request_tidy();
    Reply::Data {
        status: StatusCode::ACCEPTED,
        data: Value::Null,
        warnings: vec![TIDY_STARTED.to_owned()],
    }
}
