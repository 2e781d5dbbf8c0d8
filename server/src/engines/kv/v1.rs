//! KV version 1: read, write, list and delete of one JSON object per path.

use serde_json::Value;

use super::{KvData, children};
use crate::encoding::parse_duration;
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::Params;
use crate::request::Operation;
use crate::stores::SealedRecords;
use crate::stores::mounts::MountEntry;

/// The lease a read reports unless the value carries `ttl` (or `lease`): Vault's
/// system default, 768 hours.
const DEFAULT_LEASE_SECONDS: u64 = 768 * 3600;

pub(super) fn route(
    values: &SealedRecords<KvData>,
    mount: &MountEntry,
    op: Operation,
    rest: &str,
    params: &Params<'_>,
) -> ApiResult {
    // Version 1 stores whatever it is sent: nothing is ignored (as in Vault).
    params.declare_anything();
    match op {
        Operation::Read => read(values, mount, rest),
        Operation::Update => write(values, rest, params),
        Operation::Delete => {
            values.delete(rest.trim_end_matches('/'))?;
            Ok(Reply::NoContent)
        }
        Operation::List => list(values, rest),
        Operation::Patch => Err(ApiError::UnsupportedOperation),
    }
}

/// A value, with its lease: its own `ttl` (or `lease`), else the mount's
/// `default_lease_ttl`, else 768 hours; at most the mount's `max_lease_ttl` (or
/// 768 hours).
fn read(values: &SealedRecords<KvData>, mount: &MountEntry, path: &str) -> ApiResult {
    let Some(KvData(data)) = values.get(path)? else {
        return Err(ApiError::NotFound);
    };
    let lease = data
        .get("ttl")
        .or_else(|| data.get("lease"))
        .and_then(|ttl| match ttl {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => parse_duration(s).map(|d| d.as_secs()),
            _ => None,
        })
        .unwrap_or(match mount.config.default_lease_ttl {
            0 => DEFAULT_LEASE_SECONDS,
            own => own,
        });
    let ceiling = match mount.config.max_lease_ttl {
        0 => DEFAULT_LEASE_SECONDS,
        own => own,
    };
    Ok(Reply::leased(Value::Object(data), lease.min(ceiling)))
}

fn write(values: &SealedRecords<KvData>, path: &str, params: &Params<'_>) -> ApiResult {
    if path.is_empty() {
        return Err(ApiError::BadRequest("missing path".into()));
    }
    let data = params.fields_as_sent()?.into_owned();
    if data.is_empty() {
        return Err(ApiError::BadRequest("missing data fields".into()));
    }
    values.put(path, &KvData(data))?;
    Ok(Reply::NoContent)
}

fn list(values: &SealedRecords<KvData>, path: &str) -> ApiResult {
    let folder = if path.is_empty() || path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    let keys = children(values.names_under(&folder)?, &folder);
    if keys.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Reply::data(serde_json::json!({ "keys": keys }), vec![]))
}
