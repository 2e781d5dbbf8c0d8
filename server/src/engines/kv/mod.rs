//! The KV secrets engine at any path it is mounted on: version 1 (`v1`) and
//! version 2 (`v2`), values kept sealed under the barrier below
//! `logical/<mount uuid>/`, never in clear in storage, logs or the audit log
//! (where strings are HMAC'd).

mod v1;
mod v2;

use std::collections::BTreeMap;
use std::sync::Arc;

use encrypted_attr::storage::Barrier;
use serde_json::{Map, Value};

use super::{Mounted, SecretsEngine};
use crate::http::{ApiError, ApiResult};
use crate::params::Params;
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::mounts::MountEntry;
use crate::stores::{Record, SealedRecords, decode_json, encode_json};

/// The KV kind (`kv`; Vault's older name `generic`, and `kv-v1`/`kv-v2` that
/// choose the version).
pub(crate) struct Kv;

impl SecretsEngine for Kv {
    fn kind(&self) -> &'static str {
        "kv"
    }

    fn enables(&self, asked: &str, options: &mut Option<BTreeMap<String, String>>) -> Option<Result<(), ApiError>> {
        let version = match asked {
            "kv" | "generic" => None,
            "kv-v1" => Some("1"),
            "kv-v2" => Some("2"),
            _ => return None,
        };
        if let Some(version) = version {
            options
                .get_or_insert_with(BTreeMap::new)
                .insert("version".into(), version.into());
        }
        Some(match options.as_ref().and_then(|o| o.get("version")) {
            Some(version) if !matches!(version.as_str(), "1" | "2") => {
                Err(ApiError::BadRequest(format!("invalid KV version {version:?}")))
            }
            _ => Ok(()),
        })
    }

    fn handle(&self, state: &Unsealed, at: &Mounted<'_>, op: Operation, rest: &str, params: &Params<'_>) -> ApiResult {
        let entry = at.entry.ok_or(ApiError::Internal)?;
        route(state, op, at.path, entry, rest, params)
    }

    fn creates(&self, state: &Unsealed, at: &Mounted<'_>, rest: &str) -> Result<bool, ApiError> {
        match at.entry {
            Some(entry) => write_creates(state, entry, rest),
            None => Ok(false),
        }
    }

    fn family(&self, rest: &str) -> &'static str {
        match rest.split('/').next().unwrap_or_default() {
            "data" => "kv/data",
            "metadata" => "kv/metadata",
            "delete" | "undelete" | "destroy" => "kv/versions",
            "config" => "kv/config",
            "subkeys" => "kv/subkeys",
            _ => "kv",
        }
    }

    fn unmount(&self, state: &Unsealed, entry: &MountEntry) -> Result<(), ApiError> {
        crate::stores::mounts::delete_data(&state.barrier, entry).map_err(ApiError::from)
    }
}

/// A KV value as stored: the JSON object written.
pub(crate) struct KvData(pub(crate) Map<String, Value>);

impl Record for KvData {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        encode_json(&self.0)
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        decode_json(bytes).map(Self)
    }
}

/// A KV version 1 mount's values.
fn values(barrier: &Arc<Barrier>, mount: &MountEntry) -> SealedRecords<KvData> {
    SealedRecords::new(barrier.clone(), mount.storage_prefix())
}

/// Serves `rest` (the path inside the mount) on a KV mount.
fn route(
    state: &Unsealed,
    op: Operation,
    mount_path: &str,
    mount: &MountEntry,
    rest: &str,
    params: &Params<'_>,
) -> ApiResult {
    // An entry's name never ends in `/` (that is a folder): as Vault, a write there
    // is refused and a read finds nothing, before storage is asked.
    if entry_name(mount, rest).ends_with('/') {
        match op {
            Operation::Update | Operation::Patch => {
                return Err(ApiError::BadRequest("cannot write to a path ending in '/'".into()));
            }
            Operation::Read => return Err(ApiError::NotFound),
            Operation::List | Operation::Delete => {}
        }
    }
    match mount.kv_version() {
        1 => v1::route(&values(&state.barrier, mount), mount, op, rest, params),
        2 => v2::route(&v2::Store::new(&state.barrier, mount), op, rest, params),
        _ => Err(ApiError::UnsupportedPath(format!("{mount_path}/{rest}"))),
    }
}

/// Whether a write to `rest` on a KV mount would create its entry (it then needs
/// the `create` capability rather than `update`).
fn write_creates(state: &Unsealed, mount: &MountEntry, rest: &str) -> Result<bool, ApiError> {
    if entry_name(mount, rest).ends_with('/') {
        // Refused by `route`, whatever the capability.
        return Ok(false);
    }
    match mount.kv_version() {
        1 => Ok(!values(&state.barrier, mount).exists(rest.trim_end_matches('/'))?),
        2 => v2::Store::new(&state.barrier, mount).write_creates(rest),
        _ => Ok(false),
    }
}

/// The entry's name in `rest`: all of it on version 1, what follows the area
/// (`data/`, `metadata/`…) on version 2.
fn entry_name<'r>(mount: &MountEntry, rest: &'r str) -> &'r str {
    if mount.kv_version() == 2 {
        rest.split_once('/').map_or("", |(_, name)| name)
    } else {
        rest
    }
}

/// The direct children of `folder` (which is empty or ends in `/`) among stored
/// names, as Vault lists them: leaves by name, sub-folders with a trailing `/`.
pub(crate) fn children(names: Vec<String>, folder: &str) -> Vec<String> {
    let mut out: Vec<String> = names
        .into_iter()
        .filter_map(|name| {
            let inside = name.strip_prefix(folder)?;
            Some(match inside.find('/') {
                Some(slash) => inside[..=slash].to_owned(),
                None => inside.to_owned(),
            })
        })
        .filter(|child| !child.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_show_leaves_and_folders_once() {
        let names = ["a", "b/c", "b/d/e", "bc", "x/"].map(str::to_owned).to_vec();
        assert_eq!(super::children(names.clone(), ""), ["a", "b/", "bc", "x/"]);
        assert_eq!(super::children(names.clone(), "b/"), ["c", "d/"]);
        assert!(super::children(names, "z/").is_empty());
    }
}
