//! KV version 2: versioned values with check-and-set, soft delete, undelete and
//! destroy, and per-path metadata (`data/`, `metadata/`, `delete/`, `undelete/`,
//! `destroy/`, `config`).
//!
//! A path's metadata and all its kept versions are one sealed record, changed in
//! one atomic storage update: two writers (on one server or several) never take
//! the same version number, and a reader never sees metadata without its data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use encrypted_attr::storage::Barrier;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

mod metadata;

use crate::encoding::{format_duration, format_rfc3339_nanos};
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Fields, Params, Reads};
use crate::request::Operation;
use crate::stores::mounts::MountEntry;
use crate::stores::{Change, Record, SealedRecords, decode_json, encode_json};
use metadata::{
    VersionChange, change_versions, delete_metadata, list, max_versions_param, read_metadata, write_metadata,
};

/// Versions kept per path when neither the path nor the mount says (Vault's).
const DEFAULT_MAX_VERSIONS: u64 = 10;

/// One version of a path.
#[derive(Clone, Serialize, Deserialize)]
struct Version {
    /// Nanoseconds since the Unix epoch.
    created: u128,
    /// When it was (or will be) soft-deleted.
    deleted: Option<u128>,
    destroyed: bool,
    /// `None` once destroyed.
    data: Option<Map<String, Value>>,
}

/// A path: its metadata and its kept versions.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct Secret {
    current_version: u64,
    oldest_version: u64,
    /// 0: the mount's setting.
    max_versions: u64,
    cas_required: bool,
    /// Seconds; 0: never.
    delete_version_after: u64,
    custom_metadata: Option<BTreeMap<String, String>>,
    created: u128,
    updated: u128,
    metadata_version: u64,
    versions: BTreeMap<u64, Version>,
}

impl Record for Secret {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        encode_json(self)
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        decode_json(bytes)
    }
}

/// The mount's settings (`config`).
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct MountSettings {
    max_versions: u64,
    cas_required: bool,
    delete_version_after: u64,
}

impl Record for MountSettings {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        encode_json(self)
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        decode_json(bytes)
    }
}

/// A KV version 2 mount's storage.
pub(crate) struct Store {
    secrets: SealedRecords<Secret>,
    settings: SealedRecords<MountSettings>,
}

impl Store {
    pub(crate) fn new(barrier: &Arc<Barrier>, mount: &MountEntry) -> Self {
        let prefix = mount.storage_prefix();
        Self {
            secrets: SealedRecords::new(barrier.clone(), format!("{prefix}secrets/")),
            settings: SealedRecords::new(barrier.clone(), format!("{prefix}settings/")),
        }
    }

    /// The record of `path`; a record storage holds but that cannot be read is
    /// an error (500), never "absent": a write would otherwise start the path
    /// again at version 1 over it.
    fn load(&self, path: &str) -> Result<Option<Secret>, ApiError> {
        match self.secrets.get(path)? {
            Some(secret) => Ok(Some(secret)),
            None if self.secrets.exists(path)? => {
                tracing::error!("a KV version 2 record cannot be read; it is left as it is");
                Err(ApiError::Internal)
            }
            None => Ok(None),
        }
    }

    fn settings(&self) -> Result<MountSettings, ApiError> {
        Ok(self.settings.get("config")?.unwrap_or_default())
    }

    /// Whether a write to `path` (below `data/` or `metadata/`) would create it.
    pub(crate) fn write_creates(&self, path: &str) -> Result<bool, ApiError> {
        let path = path.trim_end_matches('/');
        let inner = path.strip_prefix("data/").or_else(|| path.strip_prefix("metadata/"));
        match inner {
            Some(inner) => Ok(!self.secrets.exists(inner)?),
            None => Ok(false),
        }
    }
}

fn now() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn time_text(nanos: Option<u128>) -> String {
    match nanos {
        None => String::new(),
        Some(n) => {
            let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
            let sub = u32::try_from(n % 1_000_000_000).unwrap_or(0);
            format_rfc3339_nanos(UNIX_EPOCH + Duration::new(secs, sub))
        }
    }
}

fn version_metadata(secret: &Secret, number: u64, version: &Version) -> Value {
    json!({
        "version": number,
        "created_time": time_text(Some(version.created)),
        "deletion_time": time_text(version.deleted),
        "destroyed": version.destroyed,
        "custom_metadata": secret.custom_metadata,
    })
}

/// What `config` writes read.
const CONFIG_FIELDS: Fields = &["max_versions", "cas_required", "delete_version_after"];
/// What `data` and `subkeys` reads read.
const READ_FIELDS: Fields = &["version"];
const SUBKEYS_FIELDS: Fields = &["depth", "version"];
/// What `data` writes and patches read.
const WRITE_FIELDS: Fields = &["data", "options"];
/// What `delete`, `undelete` and `destroy` read.
const VERSIONS_FIELDS: Fields = &["versions"];
/// What `metadata` writes read.
const METADATA_FIELDS: Fields = &[
    "max_versions",
    "cas_required",
    "delete_version_after",
    "custom_metadata",
];

/// Serves `rest` (the path inside the mount) on a KV version 2 mount.
pub(super) fn route(store: &Store, op: Operation, rest: &str, params: &Params<'_>) -> ApiResult {
    let (area, path) = rest.split_once('/').unwrap_or((rest, ""));
    use Operation::{Delete, List, Patch, Read, Update};
    match (area, op) {
        ("config", Read) if path.is_empty() => read_config(store),
        ("config", Update) if path.is_empty() => write_config(store, params),
        ("data", Read) => read_data(store, path, params),
        ("data", Update) => write_data(store, path, params),
        ("data", Delete) => delete_latest(store, path),
        ("data", Patch) => patch_data(store, path, params),
        ("subkeys", Read) => subkeys(store, path, params),
        ("delete", Update) => change_versions(store, path, params, VersionChange::Delete),
        ("undelete", Update) => change_versions(store, path, params, VersionChange::Undelete),
        ("destroy", Update) => change_versions(store, path, params, VersionChange::Destroy),
        ("metadata", Read) => read_metadata(store, path),
        ("metadata", List) => list(store, path),
        ("metadata", Update) => write_metadata(store, path, params),
        ("metadata", Delete) => delete_metadata(store, path),
        ("config" | "data" | "delete" | "undelete" | "destroy" | "subkeys", _) => Err(ApiError::UnsupportedOperation),
        _ => Err(ApiError::UnsupportedPath(rest.to_owned())),
    }
}

fn read_config(store: &Store) -> ApiResult {
    let settings = store.settings()?;
    Ok(Reply::data(
        json!({
            "max_versions": settings.max_versions,
            "cas_required": settings.cas_required,
            "metadata_cas_required": false,
            "delete_version_after": format_duration(Duration::from_secs(settings.delete_version_after)),
        }),
        vec![],
    ))
}

fn write_config(store: &Store, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[CONFIG_FIELDS]));
    let max_versions = max_versions_param(params)?;
    let cas_required = params.bool("cas_required")?;
    let delete_after = params.duration("delete_version_after")?.map(|d| d.as_secs());
    // One atomic change: a concurrent change to another setting is not lost.
    store.settings.update("config", &mut |current| {
        let mut settings = current.unwrap_or_default();
        if let Some(max) = max_versions {
            settings.max_versions = max;
        }
        if let Some(cas) = cas_required {
            settings.cas_required = cas;
        }
        if let Some(after) = delete_after {
            settings.delete_version_after = after;
        }
        Change::Put(settings)
    })?;
    Ok(Reply::NoContent)
}

fn read_data(store: &Store, path: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[READ_FIELDS]));
    read_version(store, path, params, "data", |data| Value::Object(data.clone()))
}

/// Answers a version of `path` (`?version=N`, else the latest) as `{field:
/// shown(data), metadata}`; a deleted or destroyed version is 404 with its
/// metadata and `field` null, as Vault answers.
fn read_version(
    store: &Store,
    path: &str,
    params: &Params<'_>,
    field: &str,
    shown: impl FnOnce(&Map<String, Value>) -> Value,
) -> ApiResult {
    let Some(secret) = store.load(path)? else {
        return Err(ApiError::NotFound);
    };
    let number = match params.int("version")? {
        Some(v) if v > 0 => u64::try_from(v).unwrap_or(0),
        _ => secret.current_version,
    };
    let Some(version) = secret.versions.get(&number) else {
        return Err(ApiError::NotFound);
    };
    let metadata = version_metadata(&secret, number, version);
    let gone = version.destroyed || version.deleted.is_some_and(|at| at <= now());
    match (&version.data, gone) {
        (Some(data), false) => Ok(Reply::data(json!({ field: shown(data), "metadata": metadata }), vec![])),
        _ => Ok(Reply::Data {
            status: StatusCode::NOT_FOUND,
            data: json!({ field: null, "metadata": metadata }),
            warnings: vec![],
        }),
    }
}

/// The `data` of a write or a patch, and its `cas` option if sent.
fn data_and_cas(params: &Params<'_>) -> Result<(Map<String, Value>, Option<u64>), ApiError> {
    let data = match params.raw("data") {
        Some(Value::Object(map)) => map.clone(),
        _ => return Err(ApiError::BadRequest("no data provided".into())),
    };
    Ok((data, cas_option(params)?))
}

/// The `cas` option of a write, if sent.
fn cas_option(params: &Params<'_>) -> Result<Option<u64>, ApiError> {
    let Some(Value::Object(options)) = params.raw("options") else {
        return Ok(None);
    };
    match options.get("cas") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest("error parsing check-and-set parameter".into())),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest("error parsing check-and-set parameter".into())),
        Some(_) => Err(ApiError::BadRequest("error parsing check-and-set parameter".into())),
    }
}

fn write_data(store: &Store, path: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[WRITE_FIELDS]));
    if path.is_empty() {
        return Err(ApiError::BadRequest("missing path".into()));
    }
    let (data, cas) = data_and_cas(params)?;
    store.load(path)?;
    let settings = store.settings()?;
    let created = now();
    let mut outcome: Result<Value, ApiError> = Err(ApiError::Internal);
    store.secrets.update(path, &mut |current| {
        let mut secret = current.unwrap_or_else(|| Secret {
            created,
            ..Secret::default()
        });
        if let Err(error) = check_and_set(cas, &settings, &secret) {
            outcome = Err(error);
            return Change::Keep;
        }
        outcome = Ok(add_version(&mut secret, &settings, created, data.clone()));
        Change::Put(secret)
    })?;
    Ok(Reply::data(outcome?, vec![]))
}

/// Vault's check-and-set rules for a new version: `cas` must name the current
/// version when given, and must be given when the path or the mount requires it.
fn check_and_set(cas: Option<u64>, settings: &MountSettings, secret: &Secret) -> Result<(), ApiError> {
    match cas {
        Some(cas) if cas != secret.current_version => Err(ApiError::BadRequest(
            "check-and-set parameter did not match the current version".into(),
        )),
        None if settings.cas_required || secret.cas_required => Err(ApiError::BadRequest(
            "check-and-set parameter required for this call".into(),
        )),
        _ => Ok(()),
    }
}

/// Adds `data` as the next version of `secret` (its deletion scheduled by
/// `delete_version_after`, the oldest versions past `max_versions` dropped); the
/// new version's metadata.
fn add_version(secret: &mut Secret, settings: &MountSettings, created: u128, data: Map<String, Value>) -> Value {
    let number = secret.current_version + 1;
    let after = match (secret.delete_version_after, settings.delete_version_after) {
        (0, 0) => None,
        (0, mount) => Some(mount),
        (own, _) => Some(own),
    };
    let version = Version {
        created,
        deleted: after.map(|secs| created + u128::from(secs) * 1_000_000_000),
        destroyed: false,
        data: Some(data),
    };
    let metadata = version_metadata(secret, number, &version);
    secret.versions.insert(number, version);
    secret.current_version = number;
    secret.updated = created;
    let max = match (secret.max_versions, settings.max_versions) {
        (0, 0) => DEFAULT_MAX_VERSIONS,
        (0, mount) => mount,
        (own, _) => own,
    };
    // As Vault counts: `oldest_version` stays 0 until the first trim, then names
    // the oldest version kept (and does not move back if `max_versions` grows).
    if number.saturating_sub(secret.oldest_version) >= max {
        let last_dropped = number - max;
        secret.versions.retain(|&kept, _| kept > last_dropped);
        secret.oldest_version = last_dropped + 1;
    }
    metadata
}

/// `PATCH data/:path`: the latest version with `data` merged in (RFC 7396: a
/// `null` removes a key, objects merge key by key), written as a new version under
/// the same check-and-set rules as a write. A path with no live latest version is
/// 404, with that version's metadata when it has one, as in Vault.
fn patch_data(store: &Store, path: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[WRITE_FIELDS]));
    let (patch, cas) = data_and_cas(params)?;
    store.load(path)?;
    let settings = store.settings()?;
    let created = now();
    let mut outcome: ApiResult = Err(ApiError::Internal);
    store.secrets.update(path, &mut |current| {
        let Some(mut secret) = current else {
            outcome = Err(ApiError::NotFound);
            return Change::Keep;
        };
        if let Err(error) = check_and_set(cas, &settings, &secret) {
            outcome = Err(error);
            return Change::Keep;
        }
        let latest = secret.current_version;
        let data = match secret.versions.get(&latest) {
            Some(version) if version.destroyed || version.deleted.is_some_and(|at| at <= created) => {
                outcome = Ok(Reply::Data {
                    status: StatusCode::NOT_FOUND,
                    data: version_metadata(&secret, latest, version),
                    warnings: vec![],
                });
                return Change::Keep;
            }
            version => version.and_then(|v| v.data.clone()),
        };
        let Some(mut data) = data else {
            outcome = Err(ApiError::NotFound);
            return Change::Keep;
        };
        merge_patch(&mut data, &patch);
        outcome = Ok(Reply::data(add_version(&mut secret, &settings, created, data), vec![]));
        Change::Put(secret)
    })?;
    outcome
}

/// `GET subkeys/:path`: a version's keys with every value replaced by `null`
/// (`depth`: how many levels of objects to show, 0 for all; `version`: which, the
/// latest by default), as Vault answers it — the shape of a secret without its
/// values. A deleted or destroyed version is 404 with its metadata.
fn subkeys(store: &Store, path: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[SUBKEYS_FIELDS]));
    let depth = params.int("depth")?.unwrap_or(0);
    read_version(store, path, params, "subkeys", |data| {
        let mut shape = data.clone();
        strip_values(&mut shape, 1, depth);
        Value::Object(shape)
    })
}

/// Replaces every value below `map` (at `level`, 1 for the secret's own keys) with
/// `null`, keeping non-empty objects as objects down to `max_depth` levels (0:
/// all), counted as Vault counts them (`depth=1` shows the top-level keys only);
/// an object past that depth becomes `null` too, so no value leaks.
fn strip_values(map: &mut Map<String, Value>, level: i64, max_depth: i64) {
    for value in map.values_mut() {
        match value {
            Value::Object(inner) if !inner.is_empty() && (max_depth == 0 || level < max_depth) => {
                strip_values(inner, level + 1, max_depth);
            }
            other => *other = Value::Null,
        }
    }
}

/// RFC 7396's merge of `patch` into `target`: `null` removes a key, an object
/// merges into an object key by key, anything else replaces. Arrays are taken as
/// they are sent, nulls inside them included (OpenBao's JSON library also drops
/// nulls from objects inside a patch's arrays when the key is new; RFC 7396 does
/// not).
fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let slot = target.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(slot) = slot {
                    merge_patch(slot, inner);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

fn delete_latest(store: &Store, path: &str) -> ApiResult {
    let deleted = now();
    store.secrets.update(path, &mut |current| {
        let Some(mut secret) = current else { return Change::Keep };
        let latest = secret.current_version;
        match secret.versions.get_mut(&latest) {
            // A version whose deletion is only scheduled (`delete_version_after`)
            // is deleted now.
            Some(version) if version.deleted.is_none_or(|at| at > deleted) && !version.destroyed => {
                version.deleted = Some(deleted);
                Change::Put(secret)
            }
            _ => Change::Keep,
        }
    })?;
    Ok(Reply::NoContent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes stored as they are.
    struct Raw(Vec<u8>);

    impl Record for Raw {
        fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
            Ok(self.0.clone())
        }
        fn decode(bytes: &[u8]) -> Option<Self> {
            Some(Self(bytes.to_vec()))
        }
    }

    #[test]
    fn subkeys_keep_the_shape_and_drop_every_value() {
        // The answers OpenBao gives for this secret at each depth.
        let data = serde_json::json!({"a": 1, "b": {"c": {"d": "secret"}, "e": {}}, "f": [1, 2]});
        let map = data.as_object().expect("an object");
        for (depth, expected) in [
            (
                0,
                serde_json::json!({"a": null, "b": {"c": {"d": null}, "e": null}, "f": null}),
            ),
            (1, serde_json::json!({"a": null, "b": null, "f": null})),
            (
                2,
                serde_json::json!({"a": null, "b": {"c": null, "e": null}, "f": null}),
            ),
            (-1, serde_json::json!({"a": null, "b": null, "f": null})),
        ] {
            let mut shape = map.clone();
            super::strip_values(&mut shape, 1, depth);
            assert_eq!(serde_json::Value::Object(shape), expected, "depth {depth}");
        }
    }

    #[test]
    fn a_damaged_record_is_an_error_never_a_fresh_start() {
        let barrier = crate::stores::memory_barrier().expect("barrier");
        let mount = MountEntry::new("kv", String::new(), None);
        let store = Store::new(&barrier, &mount);
        let write = |body: &'static [u8]| {
            let params = Params::from_body(body).expect("parses");
            write_data(&store, "app", &params)
        };
        assert!(write(br#"{"data": {"a": "1"}}"#).is_ok());
        let raw = SealedRecords::<Raw>::new(barrier.clone(), format!("{}secrets/", mount.storage_prefix()));
        raw.put("app", &Raw(b"not json".to_vec())).expect("overwrite");
        assert!(matches!(write(br#"{"data": {"a": "2"}}"#), Err(ApiError::Internal)));
        let read = |path| read_data(&store, path, &Params::from_body(b"{}").expect("parses"));
        assert!(matches!(read("app"), Err(ApiError::Internal)));
        assert!(matches!(read("other"), Err(ApiError::NotFound)));
    }
}
